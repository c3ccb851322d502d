"""Pages rotated beyond the deskew range of ``htr segment`` (issue 16, item 5).

Deskewing (a shear of at most ``max_skew`` degrees) is right for the few degrees of a
careless scan; a page photographed or scanned askew by 10-45 degrees needs a rotation.
:func:`page_angle` finds the dominant text-line direction in +-``limit`` degrees (the
projection of the ink that makes its profile most peaked, the same criterion as the
deskew), :func:`upright` rotates the working image so its lines are horizontal, and
:func:`to_original` maps full-page coordinates of the upright canvas back to the page.
Beyond ``limit`` (45 degrees: a page on its side) the angle is ambiguous and the page
is segmented as it is.  Geometry only: :func:`pipeline.segment.segment_turned` puts these
together with the line finder, so this module never imports the segmenter back.
"""
from __future__ import annotations

import math

import numpy as np
from PIL import Image

SAMPLE = 30000  # ink pixels; a histogram of a sample is enough
CLEAR_GAIN = 1.3  # a wide angle must beat the best small one by this factor in profile peakedness


def _profile_score(ys: np.ndarray, xs: np.ndarray, angle: float) -> float:
    """Peakedness of the ink profile across lines tilted by ``angle`` (degrees, CCW)."""
    a = math.radians(angle)
    rows = ys * math.cos(a) + xs * math.sin(a)
    hist = np.bincount((rows - rows.min()).astype(int))
    return float((hist.astype(float) ** 2).sum())


def page_angle(ink: np.ndarray, small: float, limit: float = 45.0) -> float:
    """Counter-clockwise rotation of the text lines in degrees, searched in +-``limit``;
    0 when the best angle is within +-``small`` (the deskew handles those) or when no
    wide angle is clearly better than every small one."""
    ys, xs = np.nonzero(ink)
    if len(ys) < 200 or limit <= small:
        return 0.0
    if len(ys) > SAMPLE:
        pick = np.random.default_rng(0).choice(len(ys), SAMPLE, replace=False)
        ys, xs = ys[pick], xs[pick]
    ys, xs = ys.astype(float), xs - ink.shape[1] / 2
    angles = np.arange(-limit, limit + 1e-9, 1.0)
    scores = np.array([_profile_score(ys, xs, a) for a in angles])
    best = float(angles[int(np.argmax(scores))])
    near = scores[np.abs(angles) <= small].max()
    if abs(best) <= small or scores.max() < CLEAR_GAIN * near:
        return 0.0
    fine = np.arange(best - 1.0, best + 1.0 + 1e-9, 0.1)
    return float(fine[int(np.argmax([_profile_score(ys, xs, a) for a in fine]))])


def upright(gray: np.ndarray, angle: float) -> np.ndarray:
    """The working image turned by ``-angle`` (its lines horizontal), on a canvas grown to
    hold the whole page, the new corners filled with the paper level."""
    paper = int(np.percentile(gray[::4, ::4], 90))
    image = Image.fromarray(gray).rotate(-angle, resample=Image.BILINEAR, expand=True, fillcolor=paper)
    return np.asarray(image)


def to_original(points: list[list[float]], angle: float, canvas: tuple[float, float],
                page: tuple[int, int]) -> list[list[float]]:
    """Full-page ``points`` of the upright canvas (``canvas`` = its full-page size) mapped
    back onto the page of size ``page`` (width, height), clipped to it."""
    if not points:
        return []
    a = math.radians(angle)
    array = np.asarray(points, dtype=float) - [canvas[0] / 2, canvas[1] / 2]
    # upright = R(-angle) applied to the page; undo it with R(angle) (y grows downwards)
    xs = array[:, 0] * math.cos(a) + array[:, 1] * math.sin(a) + page[0] / 2
    ys = -array[:, 0] * math.sin(a) + array[:, 1] * math.cos(a) + page[1] / 2
    xs, ys = np.clip(xs, 0, page[0] - 1), np.clip(ys, 0, page[1] - 1)
    return np.column_stack([xs, ys]).round(1).tolist()
