"""Line segmentation: a page image -> text lines in reading order, written as ALTO v4.

The page is processed at a reduced working size (about ``work_height`` rows; JPEG pages
are decoded directly at 1/2, 1/4 or 1/8 scale), and every coordinate is mapped back to
the full page at the end, which keeps a 2550x3300 scan around a third of a second.

Steps, each a small function below:

1. binarise: Sauvola's local threshold, AND-ed with "at least ``min_contrast`` below the
   local paper level" so that paper texture and faint bleed-through are not ink;
2. deskew: the shear in +-``max_skew`` degrees that makes the row profile most peaked
   (all later steps work on the sheared page; coordinates are sheared back at the end);
3. remove page furniture: ruling (solid, dashed or dotted) and frames, found as long
   straight runs on a low-contrast mask, and specks of a few pixels;
4. line spacing: the first clear peak of the row-profile autocorrelation (per vertical
   strip); components taller than a few line spacings (drawings, frames) are dropped;
5. line cores: the ink smoothed by an anisotropic filter (wide along the line, narrow
   across it) turns each line into a ridge; ridge pixels are column-wise maxima, and
   ridge fragments that continue one another are joined (word gaps, wavy lines);
6. ink to lines: each connected component goes whole to the line whose ridge it holds
   (or the nearest one, if within a line spacing); a component holding the ridges of
   several lines (touching ascenders/descenders) is cut along the valley of the
   smoothed map by a watershed; short or faint "lines" right above/below a longer line
   (accents, ascender tips) are folded into it;
7. per line a polygon (upper and lower ink envelope, bridged over letter gaps), a
   baseline (where the line's row profile falls off below its body) and a box;
8. reading order: top to bottom, left to right for lines sharing a band.
"""
from __future__ import annotations

import argparse
import math
import sys
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, UnidentifiedImageError
from scipy import ndimage as ndi
from skimage.filters import threshold_sauvola
from skimage.morphology import remove_small_objects
from skimage.segmentation import watershed
from tqdm import tqdm

from common import skips
from data_prep.layout import LayoutLine, PageLayout, Step, relative_image, single_region
from data_prep.layout_formats import FORMATS, layout_bytes
from common.cliconfig import CliConfig
from data_prep.geometry import Polygon
from common.image_files import images_in
from common.outlock import OutputError, claim_output
from common.files import atomic_write_bytes
from common.skips import SkipLog
from pipeline import rotation


@dataclass
class SegmentConfig(CliConfig):
    """Parameters of the segmenter (the defaults suit 150-300 dpi handwriting)."""

    work_height: int = field(default=850, metadata={"help": "rows of the internal working image; pages are downscaled to about this"})
    sauvola_window: int = field(default=31, metadata={"help": "Sauvola window (working pixels, odd)"})
    sauvola_k: float = field(default=0.1, metadata={"help": "Sauvola k"})
    min_contrast: int = field(default=30, metadata={"help": "ink is at least this many grey levels darker than the paper"})
    max_skew: float = field(default=5.0, metadata={"help": "largest page skew searched, degrees"})
    max_rotation: float = field(default=45.0, metadata={"help": "pages whose lines run at more than max-skew and up to this many degrees are rotated upright first (0: never)"})
    rule_contrast: int = field(default=15, metadata={"help": "grey levels below the paper at which ruling lines are looked for"})
    max_glyph_height: float = field(default=4.0, metadata={"help": "ink components taller than this many line spacings are drawings, not text"})
    min_line_ink: float = field(default=0.06, metadata={"help": "drop lines with fewer ink pixels than this x (line spacing)^2: specks, stray dots"})
    min_text_height: float = field(default=0.0, metadata={"help": "drop lines whose typical glyph (component) height is below this x the page median: small print such as a form header; 0 keeps all (lines without ascenders can fall to ~0.35)"})


@dataclass
class Line:
    """A segmented line in full-page pixel coordinates."""

    polygon: Polygon
    baseline: Polygon
    box: tuple[int, int, int, int]  # left, top, right, bottom


@dataclass
class PageResult:
    image: Path
    width: int
    height: int
    lines: list[Line]
    skew: float


class SegmentError(ValueError):
    """The page cannot be segmented (unreadable image); the message names the file, and
    ``detail`` is the cause alone (for ``skipped: FILE: reason (detail)``, said once)."""

    def __init__(self, path: Path, detail: str):
        super().__init__(f"{path}: {skips.UNREADABLE_IMAGE} ({detail})")
        self.detail = detail


# ---------------------------------------------------------------- loading

def load_page(path: Path, work_height: int) -> tuple[np.ndarray, int, int]:
    """Grayscale working image (about ``work_height`` rows) and the full page size."""
    try:
        image = Image.open(path)
        width, height = image.size
        target = (max(1, round(width * work_height / height)), work_height)
        if height > work_height:
            image.draft("L", target)  # JPEG: DCT-domain downscale, much faster than decode + resize
        image = image.convert("L")
        if image.size[1] > work_height * 1.05:
            image = image.resize(target, Image.BILINEAR, reducing_gap=2.0)
    except (OSError, UnidentifiedImageError, Image.DecompressionBombError) as error:
        raise SegmentError(path, f"{error}; re-export it as PNG, JPEG or TIFF") from error
    return np.asarray(image), width, height


# ---------------------------------------------------------------- ink

def binarise(gray: np.ndarray, config: SegmentConfig) -> np.ndarray:
    """Ink mask: locally dark (Sauvola) and clearly darker than the local paper level."""
    window = config.sauvola_window | 1
    local = threshold_sauvola(gray, window_size=window, k=config.sauvola_k)
    return (gray < local) & (gray < paper_level(gray) - config.min_contrast)


def paper_level(gray: np.ndarray) -> np.ndarray:
    """Local paper brightness (uneven lighting, scanner gradients): a high percentile
    over blocks of about a tenth of the page, smoothed and brought back to full size."""
    step = max(1, min(gray.shape) // 80)
    small = ndi.percentile_filter(gray[::step, ::step].astype(np.float32), 85, size=9)
    small = ndi.uniform_filter(small, 5)
    # a big dark drawing is not paper: the level stays near the page's own paper
    small = np.maximum(small, np.percentile(gray[::step, ::step], 90) - 40)
    full = np.repeat(np.repeat(small, step, axis=0), step, axis=1)
    return full[: gray.shape[0], : gray.shape[1]]


def remove_furniture(ink: np.ndarray, gray: np.ndarray, config: SegmentConfig) -> np.ndarray:
    """Drop ruling lines/frames and specks of a few pixels.

    Rules are found on a low-contrast mask (a faint printed rule is continuous there,
    while its binarised version is only broken dashes) as long thin horizontal or
    vertical runs.  Ink inside a rule is kept where it continues above or below the
    rule: that is a letter crossing it."""
    height, width = ink.shape
    faint = (gray < paper_level(gray) - config.rule_contrast).astype(np.uint8)
    horizontal = _long_runs(faint, max(15, width // 6), axis=1)
    # dotted or dashed rules: the same after bridging gaps of a few pixels, but longer
    bridged = ndi.maximum_filter1d(faint, 5, axis=1)
    bridged = ndi.minimum_filter1d(bridged, 5, axis=1)
    horizontal |= _long_runs(bridged, max(15, width // 4), axis=1) & faint.astype(bool)
    vertical = _long_runs(faint, max(15, height // 6), axis=0)
    rules = horizontal | vertical
    if rules.any():
        zone = ndi.binary_dilation(horizontal, structure=np.ones((3, 1), bool)) | \
            ndi.binary_dilation(vertical, structure=np.ones((1, 3), bool))
        kept = ink & ~zone
        cross = np.ones((3, 3), bool)
        for _ in range(2):  # grow the kept ink back into the rule where a stroke crosses it
            kept |= ink & zone & ndi.binary_dilation(kept, structure=cross)
        ink = kept
    return remove_small_objects(ink, max_size=3)


def _long_runs(mask: np.ndarray, length: int, axis: int) -> np.ndarray:
    """Pixels on straight runs of at least ``length`` along ``axis``: a morphological
    opening with a line, done with running min/max filters (cost independent of length)."""
    eroded = ndi.minimum_filter1d(mask, length, axis=axis)
    return ndi.maximum_filter1d(eroded, length, axis=axis).astype(bool)


# ---------------------------------------------------------------- deskew

def estimate_skew(ink: np.ndarray, max_skew: float) -> float:
    """Page rotation in degrees, counter-clockwise positive (text rising to the right),
    as the shear that makes the row profile of the ink most peaked (largest sum of squares)."""
    ys, xs = np.nonzero(ink)
    if len(ys) < 50 or max_skew <= 0:
        return 0.0
    if len(ys) > 40000:  # a sample is enough for a histogram
        pick = np.random.default_rng(0).choice(len(ys), 40000, replace=False)
        ys, xs = ys[pick], xs[pick]
    xs = xs - ink.shape[1] / 2

    def score(angle: float) -> float:
        rows = ys + xs * math.tan(math.radians(angle))
        hist = np.bincount((rows - rows.min()).astype(int))
        return float((hist.astype(float) ** 2).sum())

    coarse = np.arange(-max_skew, max_skew + 1e-9, 0.5)
    best = coarse[int(np.argmax([score(a) for a in coarse]))]
    fine = np.arange(best - 0.5, best + 0.5 + 1e-9, 0.1)
    return float(fine[int(np.argmax([score(a) for a in fine]))])


def column_shifts(width: int, angle: float) -> np.ndarray:
    """Per-column vertical shift that undoes a skew of ``angle`` degrees (a shear: exact
    to invert, and for a few degrees indistinguishable from a rotation)."""
    shift = np.round((np.arange(width) - width / 2) * math.tan(math.radians(angle))).astype(int)
    return shift - shift.min()


def shear_rows(image: np.ndarray, shift: np.ndarray, fill: float = 0) -> np.ndarray:
    """``image`` with column x moved down by ``shift[x]`` (so ``y_sheared = y + shift[x]``)."""
    height, width = image.shape
    out = np.full((height + int(shift.max()), width), fill, dtype=image.dtype)
    rows = np.arange(height)[:, None] + shift[None, :]
    out[rows, np.arange(width)[None, :]] = image
    return out


# ---------------------------------------------------------------- line geometry

def line_period(ink: np.ndarray) -> float:
    """Line spacing: the first clear peak of the row-profile autocorrelation.

    The search range comes from the glyph size (pixel-weighted median component
    height); profiles of four vertical strips are used (lines that slope or wave are
    sharp within a strip), square-rooted so that a dense printed header does not
    dominate; and the first peak at least half as high as the best one is taken, so a
    multiple of the spacing (paragraph rhythm) is not.  Falls back to the glyph size."""
    labels, count = ndi.label(ink)
    if not count:
        return 20.0
    heights = np.array([box[0].stop - box[0].start for box in ndi.find_objects(labels)], float)
    areas = np.bincount(labels.ravel())[1:].astype(float)
    by_cc = 2.2 * _weighted_median(heights, areas)
    corr = np.zeros(ink.shape[0])
    for strip in np.array_split(np.arange(ink.shape[1]), 4):  # sloped or wavy lines stay sharp in a strip
        profile = np.sqrt(ink[:, strip].sum(axis=1).astype(float))
        profile -= profile.mean()
        corr += np.correlate(profile, profile, mode="full")[len(profile) - 1:]
    if corr[0] <= 0:
        return by_cc
    corr /= corr[0]
    lo = max(4, int(0.4 * by_cc))
    hi = min(len(corr) - 2, int(max(4 * by_cc, len(corr) / 8)))
    if hi <= lo + 2:
        return by_cc
    window = corr[lo - 1:hi + 2]
    peaks = np.nonzero((window[1:-1] >= window[:-2]) & (window[1:-1] > window[2:]))[0] + lo
    peaks = peaks[corr[peaks] > 0.05]
    if not len(peaks):
        return by_cc
    return float(peaks[np.nonzero(corr[peaks] >= 0.5 * corr[peaks].max())[0][0]])


def remove_graphics(ink: np.ndarray, period: float, config: SegmentConfig) -> np.ndarray:
    """Drop drawings, frames and stamps: components taller than ``max_glyph_height``
    line periods (handwriting, even touching across two or three lines, is lower)."""
    labels, count = ndi.label(ink, structure=np.ones((3, 3), bool))
    if not count:
        return ink
    tall = [index for index, box in enumerate(ndi.find_objects(labels), start=1)
            if box[0].stop - box[0].start > config.max_glyph_height * period]
    return ink & ~np.isin(labels, tall) if tall else ink


def _weighted_median(values: np.ndarray, weights: np.ndarray) -> float:
    """Median of ``values`` with each counted ``weights`` times (big components count more than specks)."""
    order = np.argsort(values)
    cumulative = np.cumsum(weights[order])
    return float(values[order][np.searchsorted(cumulative, cumulative[-1] / 2)])


def ridge_lines(ink: np.ndarray, period: float) -> tuple[np.ndarray, np.ndarray]:
    """Smoothed map and labelled ridge fragments (one label per candidate text line)."""
    # Gaussian across the line; along it two box filters (nearly Gaussian, sigma ~ 0.9
    # period, and much cheaper for the long kernel)
    smooth = ndi.gaussian_filter1d(ink.astype(np.float32), period * 0.13, axis=0)
    box = max(3, int(round(period * 0.9 * math.sqrt(6))))
    smooth = ndi.uniform_filter1d(ndi.uniform_filter1d(smooth, box, axis=1), box, axis=1)
    strong = float(np.percentile(smooth[ink], 90)) if ink.any() else 1.0
    up = np.vstack([smooth[:1], smooth[:-1]])
    down = np.vstack([smooth[1:], smooth[-1:]])
    ridge = (smooth >= up) & (smooth > down) & (smooth > 0.15 * strong)
    ridge = ndi.binary_dilation(ridge, structure=np.ones((3, 3), bool))  # join 1-px steps
    labels, _ = ndi.label(ridge)
    return smooth, _join_fragments(labels, period)


def _join_fragments(labels: np.ndarray, period: float) -> np.ndarray:
    """Merge ridge fragments that continue one another; drop short side ridges."""
    objects = ndi.find_objects(labels)
    frags = []
    for index, box in enumerate(objects, start=1):
        if box is None:
            continue
        ys, xs = np.nonzero(labels[box] == index)
        xs = xs + box[1].start
        ys = ys + box[0].start
        frags.append((index, xs.min(), xs.max(), ys, xs))
    parent = {f[0]: f[0] for f in frags}

    def find(a: int) -> int:
        while parent[a] != a:
            parent[a] = parent[parent[a]]
            a = parent[a]
        return a

    def y_at(frag, x: int) -> float:
        near = np.abs(frag[4] - x) <= max(2, period * 0.3)
        return float(frag[3][near].mean()) if near.any() else float(frag[3].mean())

    frags.sort(key=lambda f: f[1])
    for i, a in enumerate(frags):
        for b in frags[i + 1:]:
            if b[1] - a[2] > period * 3:
                continue
            gap = b[1] - a[2]
            if gap >= 0:
                dy = abs(y_at(a, a[2]) - y_at(b, b[1]))
            else:  # overlapping in x: compare at the middle of the overlap
                mid = (b[1] + min(a[2], b[2])) // 2
                dy = abs(y_at(a, mid) - y_at(b, mid))
            if dy < period * 0.35:
                parent[find(b[0])] = find(a[0])
    mapping = np.zeros(labels.max() + 1, np.int32)
    roots = sorted({find(f[0]) for f in frags})
    for new, root in enumerate(roots, start=1):
        for f in frags:
            if find(f[0]) == root:
                mapping[f[0]] = new
    return mapping[labels]


def assign_ink(ink: np.ndarray, smooth: np.ndarray, ridges: np.ndarray, period: float) -> tuple[np.ndarray, np.ndarray]:
    """Label every ink pixel with a line: components go whole to one line, unless they
    hold several lines' ridges, then they are cut by a watershed of the smoothed map.
    A component more than a line period away from every line core (a margin stroke, the
    shadow of the page edge) is left out.  Also returns, per pixel, the height of the
    component it belongs to (the glyph size, which tells small print from handwriting)."""
    # basins and distances at half resolution: they only decide which line a stroke joins
    half = watershed(-smooth[::2, ::2], markers=ridges[::2, ::2])
    basins = np.repeat(np.repeat(half, 2, axis=0), 2, axis=1)[: ink.shape[0], : ink.shape[1]]
    far = ndi.distance_transform_edt(ridges[::2, ::2] == 0) * 2 > period
    far = np.repeat(np.repeat(far, 2, axis=0), 2, axis=1)[: ink.shape[0], : ink.shape[1]]
    components, count = ndi.label(ink, structure=np.ones((3, 3), bool))
    out = np.zeros(ink.shape, np.int32)
    sizes = np.zeros(ink.shape, np.float32)
    for index, box in enumerate(ndi.find_objects(components), start=1):
        if box is None:
            continue
        mask = components[box] == index
        sizes[box][mask] = box[0].stop - box[0].start
        held = np.unique(ridges[box][mask])
        held = held[held > 0]
        local_basins = basins[box][mask]
        if len(held) > 1:
            out[box][mask] = local_basins
        elif len(held) == 1:
            out[box][mask] = held[0]
        elif not far[box][mask].all():
            out[box][mask] = np.bincount(local_basins).argmax()
    return out, sizes


@dataclass
class _RawLine:
    ys: np.ndarray
    xs: np.ndarray
    glyph: float  # typical component height (pixel-weighted median)

    @property
    def centre(self) -> float:
        return float(np.median(self.ys))

    def merge(self, other: "_RawLine") -> None:
        self.ys = np.concatenate([self.ys, other.ys])
        self.xs = np.concatenate([self.xs, other.xs])


def collect_lines(assigned: np.ndarray, sizes: np.ndarray, period: float, config: SegmentConfig) -> list[_RawLine]:
    """Per line label its ink pixels; fold stray marks into their line, drop specks and
    (optionally) print much smaller than the page's handwriting."""
    lines = []
    for label, box in enumerate(ndi.find_objects(assigned), start=1):
        if box is None:
            continue
        inside = assigned[box] == label
        ys, xs = np.nonzero(inside)
        lines.append(_RawLine(ys + box[0].start, xs + box[1].start, float(np.median(sizes[box][inside]))))
    lines = _fold_fragments(lines, period)
    lines = [line for line in lines if len(line.ys) >= config.min_line_ink * period ** 2]
    if lines and config.min_text_height > 0:
        typical = float(np.median([line.glyph for line in lines]))
        lines = [line for line in lines if line.glyph >= config.min_text_height * typical]
    return lines


def _fold_fragments(lines: list[_RawLine], period: float) -> list[_RawLine]:
    """A short or faint line (accent row, a dot, a row of ascender tips) sitting within
    a line period of a longer line that spans it horizontally is part of that line."""
    if not lines:
        return lines
    typical_ink = float(np.median([len(line.ys) for line in lines]))
    lines = sorted(lines, key=lambda line: -len(line.ys))
    kept: list[_RawLine] = []
    for line in lines:
        left, right = line.xs.min(), line.xs.max()
        host = None
        if right - left < 2 * period or len(line.ys) < 0.2 * typical_ink:
            near = [k for k in kept
                    if k.xs.min() - period * 0.5 <= left and right <= k.xs.max() + period * 0.5
                    and abs(k.centre - line.centre) < period * 0.75]
            host = min(near, key=lambda k: abs(k.centre - line.centre), default=None)
        if host is not None:
            host.merge(line)
        else:
            kept.append(line)
    return kept


def envelope(line: _RawLine, period: float, bridge: float = 1.5) -> tuple[np.ndarray, np.ndarray]:
    """Polygon (upper envelope left->right, lower envelope right->left) and baseline
    points, in working (sheared) coordinates."""
    step = max(2, int(period * 0.35))
    left, right = int(line.xs.min()), int(line.xs.max())
    edges = np.arange(left, right + step, step)
    bins = np.clip(np.digitize(line.xs, edges) - 1, 0, len(edges) - 1)
    top = np.full(len(edges), np.nan)
    bottom = np.full(len(edges), np.nan)
    np.fmin.at(top, bins, line.ys.astype(float))
    np.fmax.at(bottom, bins, line.ys.astype(float))
    filled = ~np.isnan(top)
    centres = edges + step / 2
    top = np.interp(centres, centres[filled], top[filled])
    bottom = np.interp(centres, centres[filled], bottom[filled])
    # an envelope that spans the gaps between ascenders/descenders (a hull of the line,
    # as annotators draw it) rather than diving to the x-height between letters
    span = max(1, int(round(bridge * period / step))) | 1
    top = ndi.uniform_filter1d(ndi.minimum_filter1d(top, span, mode="nearest"), span, mode="nearest")
    bottom = ndi.uniform_filter1d(ndi.maximum_filter1d(bottom, span, mode="nearest"), span, mode="nearest")
    pad = max(1.0, period * 0.06)
    xs_up = np.concatenate([[left - pad], np.clip(centres, left, right), [right + pad]])
    upper = np.column_stack([xs_up, np.concatenate([[top[0]], top, [top[-1]]]) - pad])
    lower = np.column_stack([xs_up, np.concatenate([[bottom[0]], bottom, [bottom[-1]]]) + pad])[::-1]
    polygon = np.vstack([upper, lower])
    baseline = _baseline(line, left, right)
    return polygon, baseline


def _baseline(line: _RawLine, left: int, right: int) -> np.ndarray:
    """A straight baseline (in sheared coordinates, i.e. deskewed): the row under the
    line's body where the ink profile drops below 40% of its peak, fitted per half."""
    points = []
    halves = np.linspace(left, right + 1, 3)
    for a, b in zip(halves[:-1], halves[1:]):
        inside = (line.xs >= a) & (line.xs < b)
        if inside.sum() < 5:
            continue
        ys = line.ys[inside]
        profile = np.bincount(ys - ys.min()).astype(float)
        profile = np.convolve(profile, np.ones(3) / 3, mode="same")
        peak = int(np.argmax(profile))
        below = np.nonzero(profile[peak:] < 0.4 * profile[peak])[0]
        y = ys.min() + peak + (below[0] if len(below) else len(profile) - peak)
        points.append([(a + b) / 2, float(y)])
    if not points:
        return np.array([[left, line.ys.max()], [right, line.ys.max()]], float)
    if len(points) == 1:
        points = [[left, points[0][1]], [right, points[0][1]]]
    else:  # extend the two half-points to the line ends
        (x0, y0), (x1, y1) = points
        slope = (y1 - y0) / (x1 - x0) if x1 != x0 else 0.0
        points = [[left, y0 + (left - x0) * slope], [right, y0 + (right - x0) * slope]]
    return np.asarray(points, float)


def reading_order(lines: list[_RawLine], period: float) -> list[_RawLine]:
    """Top to bottom; lines that share their vertical band are read left to right."""
    ordered = sorted(lines, key=lambda line: line.centre)
    rows: list[list[_RawLine]] = []
    for line in ordered:
        if rows and abs(line.centre - rows[-1][0].centre) < period * 0.35:
            rows[-1].append(line)
        else:
            rows.append([line])
    return [line for row in rows for line in sorted(row, key=lambda l: l.xs.min())]


# ---------------------------------------------------------------- page

def segment_array(gray: np.ndarray, full_size: tuple[int, int], config: SegmentConfig,
                  ink: np.ndarray | None = None) -> tuple[list[Line], float]:
    """Segment a working-size grayscale page (``ink``: its binarisation, if already made);
    coordinates are returned for ``full_size``."""
    width, height = full_size
    scale_x, scale_y = width / gray.shape[1], height / gray.shape[0]
    ink = binarise(gray, config) if ink is None else ink
    if ink.sum() < 20:
        return [], 0.0
    # skew first (ruling, where there is any, only helps), so that ruling is horizontal
    # when it is looked for
    skew = estimate_skew(remove_small_objects(ink, max_size=3), config.max_skew)
    shift = column_shifts(gray.shape[1], skew)
    paper = float(np.percentile(gray[::4, ::4], 90))
    sheared = remove_furniture(shear_rows(ink, shift), shear_rows(gray, shift, paper), config)
    if sheared.sum() < 20:
        return [], skew
    sheared = remove_graphics(sheared, line_period(sheared), config)
    if sheared.sum() < 20:
        return [], skew
    period = line_period(sheared)
    smooth, ridges = ridge_lines(sheared, period)
    assigned, sizes = assign_ink(sheared, smooth, ridges, period)
    raw = reading_order(collect_lines(assigned, sizes, period, config), period)

    def to_page(points: np.ndarray) -> Polygon:
        xs = np.clip(points[:, 0], 0, gray.shape[1] - 1)
        ys = points[:, 1] - shift[np.clip(np.round(xs).astype(int), 0, len(shift) - 1)]
        xs, ys = (xs + 0.5) * scale_x, (ys + 0.5) * scale_y
        return np.column_stack([np.clip(xs, 0, width - 1), np.clip(ys, 0, height - 1)]).round(1).tolist()

    lines = []
    for line in raw:
        polygon, baseline = envelope(line, period)
        full_polygon = to_page(polygon)
        array = np.asarray(full_polygon)
        box = (int(array[:, 0].min()), int(array[:, 1].min()), int(math.ceil(array[:, 0].max())), int(math.ceil(array[:, 1].max())))
        lines.append(Line(polygon=full_polygon, baseline=to_page(baseline), box=box))
    return lines, skew


def segment_turned(gray: np.ndarray, size: tuple[int, int], angle: float, config: SegmentConfig) -> list[Line]:
    """Segment a page whose lines run at ``angle`` degrees: upright it, segment that, and
    map each line (polygon, baseline, box) back onto the page of full ``size``."""
    turned = rotation.upright(gray, angle)
    scale_x, scale_y = size[0] / gray.shape[1], size[1] / gray.shape[0]
    canvas = (turned.shape[1] * scale_x, turned.shape[0] * scale_y)
    lines, _ = segment_array(turned, (round(canvas[0]), round(canvas[1])), config)
    result = []
    for line in lines:
        polygon = rotation.to_original(line.polygon, angle, canvas, size)
        array = np.asarray(polygon)
        box = (int(array[:, 0].min()), int(array[:, 1].min()),
               int(math.ceil(array[:, 0].max())), int(math.ceil(array[:, 1].max())))
        result.append(Line(polygon=polygon, baseline=rotation.to_original(line.baseline, angle, canvas, size), box=box))
    return result


def segment_page(path: Path, config: SegmentConfig) -> PageResult:
    gray, width, height = load_page(path, config.work_height)
    ink = binarise(gray, config)
    angle = rotation.page_angle(ink, config.max_skew, config.max_rotation)
    if angle:  # beyond the deskew range: rotate upright, segment, rotate the lines back
        lines = segment_turned(gray, (width, height), angle, config)
        return PageResult(image=path, width=width, height=height, lines=lines, skew=angle)
    lines, skew = segment_array(gray, (width, height), config, ink)
    return PageResult(image=path, width=width, height=height, lines=lines, skew=skew)


def page_layout(result: PageResult, out_dir: Path, config: SegmentConfig | None = None) -> PageLayout:
    """The page's lines (one region, reading order) for an XML file in ``out_dir``: the
    image's base name for eScriptorium and Transkribus, its path relative to ``out_dir``
    for the project's readers (``htr prepare alto:DIR``), the segmentation as processing step."""
    lines = [LayoutLine(id=f"l{number:03d}", polygon=line.polygon, baseline=line.baseline)
             for number, line in enumerate(result.lines, start=1)]
    step = Step("line segmentation", {k: str(v) for k, v in (config or SegmentConfig()).to_dict().items()})
    return single_region(result.image.name, result.width, result.height, lines,
                         image_path=relative_image(result.image, out_dir), steps=[step],
                         created=datetime.now(timezone.utc))


def page_alto(result: PageResult, out_dir: Path) -> bytes:
    """ALTO v4 bytes of a segmented page (see :func:`page_layout`)."""
    return layout_bytes(page_layout(result, out_dir), "alto")


def draw_page(result: PageResult, max_height: int = 1650) -> bytes:
    """JPEG of the page with polygons (alternating colours), baselines and line numbers."""
    import io

    image = Image.open(result.image).convert("RGB")
    factor = min(1.0, max_height / image.height)
    if factor < 1:
        image = image.resize((round(image.width * factor), round(image.height * factor)), Image.BILINEAR)
    draw = ImageDraw.Draw(image)
    colours = [(230, 25, 75), (60, 180, 75), (0, 130, 200), (245, 130, 48), (145, 30, 180), (70, 240, 240)]
    width = max(2, round(3 * factor * 2))
    for number, line in enumerate(result.lines, start=1):
        colour = colours[number % len(colours)]
        polygon = [(x * factor, y * factor) for x, y in line.polygon]
        draw.line(polygon + polygon[:1], fill=colour, width=width)
        draw.line([(x * factor, y * factor) for x, y in line.baseline], fill=(0, 0, 255), width=width)
        draw.text((max(0, polygon[0][0] - 30), polygon[0][1]), str(number), fill=colour)
    buffer = io.BytesIO()
    image.save(buffer, "JPEG", quality=85)
    return buffer.getvalue()


# ---------------------------------------------------------------- command line

def _work(task: tuple[Path, Path, SegmentConfig, bool, str]) -> tuple[Path, int, str | None]:
    """Segment one page and write its outputs; returns (image, lines, error message)."""
    path, out_dir, config, draw, fmt = task
    try:
        result = segment_page(path, config)
    except SegmentError as error:
        return path, 0, error.detail
    atomic_write_bytes(out_dir / f"{path.stem}.xml", layout_bytes(page_layout(result, out_dir, config), fmt))
    if draw:
        atomic_write_bytes(out_dir / f"{path.stem}.draw.jpg", draw_page(result))
    return path, len(result.lines), None


def _images(inputs: list[Path]) -> list[Path]:
    found = []
    for item in inputs:
        if item.is_dir():
            found += images_in(item)
        else:
            found.append(item)
    return found


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="htr segment",
        description="Find the text lines of page images. Writes OUT/NAME.xml per page NAME.jpg "
                    "(ALTO v4, or PAGE 2019 with --format page: a text region, its lines in reading "
                    "order with a polygon following the ink and a baseline); read it back with "
                    "'htr prepare alto:OUT' (or page:OUT), or import it into eScriptorium or Transkribus.")
    parser.add_argument("images", nargs="+", type=Path, help="page images (or folders of them)")
    parser.add_argument("--out", type=Path, required=True, help="output folder")
    parser.add_argument("--jobs", type=int, default=1, help="worker processes, one page each (default 1)")
    parser.add_argument("--draw", action="store_true", help="also write OUT/NAME.draw.jpg with polygons and baselines drawn")
    parser.add_argument("--format", choices=FORMATS, default="alto", help="XML format: alto (ALTO v4, default) or page (PAGE 2019-07-15)")
    parser.add_argument("--config", type=Path, help="JSON segmenter config (flags override it)")
    SegmentConfig.add_arguments(parser.add_argument_group("segmenter"))
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    config = SegmentConfig.from_args(args, SegmentConfig.load(args.config) if args.config else None)
    images = _images(args.images)
    log = SkipLog()
    for path in [p for p in images if not p.is_file()]:
        log.skip_file(path, skips.MISSING_IMAGE)
    images = [p for p in images if p.is_file()]
    stems = [p.stem for p in images]
    if len(set(stems)) != len(stems):
        print("htr segment: several images share a name; their ALTO files would overwrite each other", file=sys.stderr)
        return 2
    try:
        with claim_output(args.out, "htr segment", folder=True):
            return _segment_all(args, config, images, log)
    except OutputError as error:
        print(f"htr segment: {error}", file=sys.stderr)
        return 1


def _segment_all(args: argparse.Namespace, config: SegmentConfig, images: list[Path], log: SkipLog) -> int:
    tasks = [(path, args.out, config, args.draw, args.format) for path in images]
    total = 0
    with tqdm(total=len(tasks), unit="page", desc="segment") as progress:
        if args.jobs > 1 and len(tasks) > 1:
            with ProcessPoolExecutor(max_workers=args.jobs) as pool:
                outcomes = pool.map(_work, tasks, chunksize=1)
                for outcome in outcomes:
                    total += _report(outcome, log, progress)
        else:
            for task in tasks:
                total += _report(_work(task), log, progress)
    pages = len(images) - log.files[skips.UNREADABLE_IMAGE]
    print(f"segment: {total} lines on {pages} pages -> {args.out}", file=sys.stderr)
    if log.files:
        print(f"segment: {sum(log.files.values())} files skipped: {dict(log.files)}", file=sys.stderr)
    if not pages:
        print(f"htr segment: no page could be segmented ({sum(log.files.values())} inputs skipped, "
              "see above); nothing written", file=sys.stderr)
        return 1
    return 0


def _report(outcome: tuple[Path, int, str | None], log: SkipLog, progress: tqdm) -> int:
    path, count, error = outcome
    if error:
        log.skip_file(path, skips.UNREADABLE_IMAGE, error)
    progress.update(1)
    return count
