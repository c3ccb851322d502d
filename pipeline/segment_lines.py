"""Line finding of the segmenter, on the deskewed ink mask of the working image.

1. line spacing: the first clear peak of the row-profile autocorrelation (per vertical
   strip);
2. line cores: the ink smoothed by an anisotropic filter (wide along the line, narrow
   across it) turns each line into a ridge; ridge pixels are column-wise maxima, and
   ridge fragments that continue one another are joined (word gaps, wavy lines);
3. ink to lines: each connected component goes whole to the line whose ridge it holds
   (or the nearest one, if within a line spacing); a component holding the ridges of
   several lines (touching ascenders/descenders) is cut along the valley of the
   smoothed map by a watershed; short or faint "lines" right above/below a longer line
   (accents, ascender tips) are folded into it;
4. per line a polygon (upper and lower ink envelope, bridged over letter gaps) and a
   baseline (where the line's row profile falls off below its body);
5. reading order: top to bottom, left to right for lines sharing a band.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy import ndimage as ndi
from skimage.segmentation import watershed

from pipeline.segment_types import SegmentConfig


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
class RawLine:
    """A found line: its ink pixels in working (deskewed) coordinates."""

    ys: np.ndarray
    xs: np.ndarray
    glyph: float  # typical component height (pixel-weighted median)

    @property
    def centre(self) -> float:
        return float(np.median(self.ys))

    def merge(self, other: "RawLine") -> None:
        self.ys = np.concatenate([self.ys, other.ys])
        self.xs = np.concatenate([self.xs, other.xs])

    def moved(self, down: int, right: int) -> "RawLine":
        """The same line in a frame whose origin is ``(down, right)`` pixels up-left of this one's."""
        return RawLine(self.ys + down, self.xs + right, self.glyph)


def find_lines(ink: np.ndarray, period: float, config: SegmentConfig) -> list[RawLine]:
    """The lines of an ink mask (a page or one of its regions), in no particular order:
    ridges, ink to lines, stray marks folded in, specks dropped."""
    smooth, ridges = ridge_lines(ink, period)
    assigned, sizes = assign_ink(ink, smooth, ridges, period)
    return collect_lines(assigned, sizes, period, config)


def collect_lines(assigned: np.ndarray, sizes: np.ndarray, period: float, config: SegmentConfig) -> list[RawLine]:
    """Per line label its ink pixels; fold stray marks into their line, drop specks."""
    lines = []
    for label, box in enumerate(ndi.find_objects(assigned), start=1):
        if box is None:
            continue
        inside = assigned[box] == label
        ys, xs = np.nonzero(inside)
        lines.append(RawLine(ys + box[0].start, xs + box[1].start, float(np.median(sizes[box][inside]))))
    lines = _fold_fragments(lines, period)
    return [line for line in lines if len(line.ys) >= config.min_line_ink * period ** 2]


def drop_small_print(groups: list[list[RawLine]], config: SegmentConfig) -> list[list[RawLine]]:
    """Optionally drop lines of print much smaller than the page's handwriting (the
    typical glyph over every region of the page, so a region of small print goes too)."""
    glyphs = [line.glyph for lines in groups for line in lines]
    if not glyphs or config.min_text_height <= 0:
        return groups
    least = config.min_text_height * float(np.median(glyphs))
    return [[line for line in lines if line.glyph >= least] for lines in groups]


def _fold_fragments(lines: list[RawLine], period: float) -> list[RawLine]:
    """A short or faint line (accent row, a dot, a row of ascender tips) sitting within
    a line period of a longer line that spans it horizontally is part of that line."""
    if not lines:
        return lines
    typical_ink = float(np.median([len(line.ys) for line in lines]))
    lines = sorted(lines, key=lambda line: -len(line.ys))
    kept: list[RawLine] = []
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


def envelope(line: RawLine, period: float, bridge: float = 1.5) -> tuple[np.ndarray, np.ndarray]:
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


def _baseline(line: RawLine, left: int, right: int) -> np.ndarray:
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


def reading_order(lines: list[RawLine], period: float) -> list[RawLine]:
    """Top to bottom; lines that share their vertical band are read left to right."""
    ordered = sorted(lines, key=lambda line: line.centre)
    rows: list[list[RawLine]] = []
    for line in ordered:
        if rows and abs(line.centre - rows[-1][0].centre) < period * 0.35:
            rows[-1].append(line)
        else:
            rows.append([line])
    return [line for row in rows for line in sorted(row, key=lambda l: l.xs.min())]

