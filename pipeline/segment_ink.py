"""The ink steps of the line segmenter: load a page, binarise it, deskew it, remove page
furniture and drawings.  Everything here works on the reduced working image.

1. load: about ``work_height`` rows (JPEG pages are decoded directly at 1/2, 1/4 or 1/8
   scale), so that a 2550x3300 scan takes around a third of a second;
2. binarise: Sauvola's local threshold, AND-ed with "at least ``min_contrast`` below the
   local paper level" so that paper texture and faint bleed-through are not ink;
3. deskew: the shear in +-``max_skew`` degrees that makes the row profile most peaked
   (the later steps work on the sheared page; coordinates are sheared back at the end);
4. page furniture: ruling (solid, dashed or dotted) and frames, found as long straight
   runs on a low-contrast mask, and specks of a few pixels;
5. graphics: components taller than a few line spacings (drawings, frames, stamps).
"""
from __future__ import annotations

import math
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError
from scipy import ndimage as ndi
from skimage.filters import threshold_sauvola
from skimage.morphology import remove_small_objects

from pipeline.segment_types import SegmentConfig, SegmentError


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



# ---------------------------------------------------------------- graphics

def remove_graphics(ink: np.ndarray, period: float, config: SegmentConfig) -> np.ndarray:
    """Drop drawings, frames and stamps: components taller than ``max_glyph_height``
    line periods (handwriting, even touching across two or three lines, is lower)."""
    labels, count = ndi.label(ink, structure=np.ones((3, 3), bool))
    if not count:
        return ink
    tall = [index for index, box in enumerate(ndi.find_objects(labels), start=1)
            if box[0].stop - box[0].start > config.max_glyph_height * period]
    return ink & ~np.isin(labels, tall) if tall else ink

