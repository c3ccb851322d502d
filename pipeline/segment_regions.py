"""Text regions of a page (columns, margin notes, a header or footer block), found before
the lines so that no line runs across a gutter, and the order in which they are read.

Method: a recursive XY cut of the deskewed ink mask, at the scale of the line period.

* A region is split at a **gutter**: a run of at least ``min_gutter`` line periods of
  columns without ink over the region's whole height.  A false gutter would cut lines in
  two, so the evidence must hold over several lines: the region must be at least
  ``MIN_CUT_HEIGHT`` line periods high (word gaps line up over two lines often, over
  three or more rarely), each side must have ``MIN_LINES_BESIDE`` lines beside lines of
  the other (two: a page label or a one-line note beside a paragraph stays with the
  paragraph, and scattered single lines are no column), and both sides must look
  like writing, not like the stubs of ruling or dotted leaders left on a form (their
  pieces are much lower than the page's glyphs: ``TEXT_LIKE``).
* Where no gutter runs the whole height (a title or a page number across the columns),
  the region is cut into **bands** at blank stretches of at least ``BAND_GAP`` line
  periods.  Consecutive bands that have a gutter are joined and cut again (two columns
  with aligned paragraph breaks stay two columns); consecutive bands without one stay
  together as one region (a header block, or the paragraphs of a single column).
* A page where nothing splits is one region, and is segmented as it always was.

Gutters are measured with the page's skew undone for vertical lines too: the deskew
shears columns of pixels up or down, which leaves the gutters of a tilted page tilted.

Reading order: the XY cut's order (left before right at a gutter, top before bottom at a
band cut), except for **margin notes**: a region beside a column (their rows overlap)
that is narrower and lower than ``NOTE_SHARE`` of it is read right after that column (the
one it overlaps most), notes beside the same column from top to bottom.  (Two columns of
a page are about as wide, and a short last column is still as wide as the first.)
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy import ndimage as ndi
from scipy.spatial import ConvexHull, QhullError

from data_prep.geometry import Polygon
from data_prep.layout import bounds, box_points

MIN_CUT_HEIGHT = 3.0  # line periods: a region lower than this is never split at a gutter
MIN_LINES_BESIDE = 2  # lines of each side of a gutter beside lines of the other side
BESIDE_SLACK = 0.75  # line periods above and below a side's lines that still count as beside them
ROW_INK = 0.15  # x line period: ink pixels in a row of a line's body, at least
BODY_SHARE = 0.3  # a row of a line's body holds at least this share of the side's densest rows' ink
TEXT_LIKE = 0.5  # each side's typical component is at least this x the page's glyph height
BAND_GAP = 1.0  # line periods of blank rows between two bands (more than between lines)
NOTE_SHARE = 0.75  # a margin note is narrower and lower than this share of the column it is beside
MAX_DEPTH = 8  # nested cuts; real pages need two or three
NOISE_SHARE = 1 / 200  # a column (row) with at most this share of the region's height (width) in ink is empty


@dataclass
class InkRegion:
    """One region's ink in the working (deskewed) page: its box and the ink inside it."""

    top: int
    left: int
    mask: np.ndarray  # bool, the region's own ink within its box
    margin: bool = False  # a margin note (read after the column it sits beside)

    @property
    def bottom(self) -> int:
        return self.top + self.mask.shape[0]

    @property
    def width(self) -> int:
        return self.mask.shape[1]

    @property
    def height(self) -> int:
        return self.mask.shape[0]

    @property
    def right(self) -> int:
        return self.left + self.mask.shape[1]


def find_regions(ink: np.ndarray, period: float, skew: float, min_gutter: float) -> list[InkRegion]:
    """The regions of the deskewed ``ink`` in reading order; [] when the page is one
    region (or ``min_gutter`` is 0), which the caller segments as a whole."""
    ys, xs = np.nonzero(ink)
    if min_gutter <= 0 or not len(ys):
        return []
    upright_x = xs - (ys - ink.shape[0] / 2) * math.tan(math.radians(skew))
    groups = _Cutter(ys, upright_x, _component_heights(ink)[ys, xs], period, min_gutter * period).cut(np.arange(len(ys)), 0)
    if len(groups) < 2:
        return []
    return reading_order([_region(ys[group], xs[group]) for group in groups])


def _region(ys: np.ndarray, xs: np.ndarray) -> InkRegion:
    top, left = int(ys.min()), int(xs.min())
    mask = np.zeros((int(ys.max()) - top + 1, int(xs.max()) - left + 1), bool)
    mask[ys - top, xs - left] = True
    return InkRegion(top, left, mask)


def _component_heights(ink: np.ndarray) -> np.ndarray:
    """Per pixel, the height of the ink component it belongs to."""
    labels, count = ndi.label(ink, structure=np.ones((3, 3), bool))
    heights = np.zeros(count + 1, np.int32)
    for index, box in enumerate(ndi.find_objects(labels), start=1):
        heights[index] = box[0].stop - box[0].start
    return heights[labels]


def _runs(flags: np.ndarray) -> list[tuple[int, int]]:
    """(start, stop) of every run of True in a 1-D boolean array."""
    edges = np.diff(np.concatenate([[0], flags.astype(np.int8), [0]]))
    return list(zip(np.flatnonzero(edges == 1).tolist(), np.flatnonzero(edges == -1).tolist()))


class _Cutter:
    """The recursive XY cut over the ink pixels (rows ``ys``, gutter-upright columns ``xs``)."""

    def __init__(self, ys: np.ndarray, xs: np.ndarray, heights: np.ndarray, period: float, gutter: float):
        self.ys, self.xs, self.heights, self.period, self.min_gap = ys, xs, heights, period, gutter
        self.glyph = float(np.median(heights))  # the page's glyph height, pixel-weighted

    def cut(self, idx: np.ndarray, depth: int) -> list[np.ndarray]:
        """The pixels ``idx`` as regions (index arrays) in XY-cut order."""
        if depth >= MAX_DEPTH:
            return [idx]
        at = self.gutter(idx)
        if at is not None:
            left = self.xs[idx] < at
            return self.cut(idx[left], depth + 1) + self.cut(idx[~left], depth + 1)
        bands = self.bands(idx)
        split = [self.gutter(band) is not None for band in bands]
        if not any(split):
            return [idx]
        regions: list[np.ndarray] = []
        start = 0
        for stop in range(1, len(bands) + 1):  # runs of consecutive bands alike
            if stop < len(bands) and split[stop] == split[start]:
                continue
            run, joined = bands[start:stop], np.concatenate(bands[start:stop])
            if not split[start]:
                regions.append(joined)  # a block without columns: one region
            elif len(run) > 1 and self.gutter(joined) is None:
                for band in run:  # the bands' gutters do not line up: each on its own
                    regions += self.cut(band, depth + 1)
            else:
                regions += self.cut(joined, depth + 1)
            start = stop
        return regions

    def gutter(self, idx: np.ndarray) -> float | None:
        """The x of the widest gutter of the pixels ``idx``, or None."""
        if not len(idx):
            return None
        ys, xs = self.ys[idx], self.xs[idx]
        height = int(ys.max() - ys.min()) + 1
        if height < MIN_CUT_HEIGHT * self.period:
            return None
        left = math.floor(xs.min())
        profile = np.bincount((xs - left).astype(int))
        best_width, best_at = 0, None
        for start, stop in _runs(profile <= height * NOISE_SHARE):
            at = left + (start + stop) / 2
            if stop - start >= max(self.min_gap, best_width + 1) and self._separates_text(idx, xs < at):
                best_width, best_at = stop - start, at
        return best_at

    def _separates_text(self, idx: np.ndarray, left: np.ndarray) -> bool:
        """Does a gap with the pixels ``idx[left]`` on one side separate text from text?
        Both sides hold writing (not ruling stubs or dotted leaders: their pieces are far
        lower than the page's glyphs), side by side over at least two lines' rows (not a
        lone label beside a paragraph, nor two single lines far apart)."""
        sides = (idx[left], idx[~left])
        if any(np.median(self.heights[side]) < TEXT_LIKE * self.glyph for side in sides):
            return False
        one, other = (self._line_bodies(side) for side in sides)
        return min(self._within(one, other), self._within(other, one)) >= MIN_LINES_BESIDE

    def _line_bodies(self, idx: np.ndarray) -> np.ndarray:
        """Middle rows of the lines of the pixels ``idx``: runs of rows dense with ink, the
        bodies of the letters (a speck or a ruling stub is too thin or too sparse; the rows
        of ascenders and descenders between two lines are sparser than either body)."""
        top = int(self.ys[idx].min())
        profile = np.bincount(self.ys[idx] - top)
        dense = profile >= max(ROW_INK * self.period, BODY_SHARE * np.percentile(profile, 90))
        return np.array([top + (a + b) / 2 for a, b in _runs(dense) if b - a >= 0.1 * self.period])

    def _within(self, bodies: np.ndarray, others: np.ndarray) -> int:
        """How many of ``bodies`` lie beside the lines ``others`` (within the rows they span,
        give or take ``BESIDE_SLACK`` line periods: a note's lines are closer than a column's)."""
        if not len(bodies) or not len(others):
            return 0
        slack = BESIDE_SLACK * self.period
        return int(((bodies >= others.min() - slack) & (bodies <= others.max() + slack)).sum())

    def bands(self, idx: np.ndarray) -> list[np.ndarray]:
        """The pixels ``idx`` cut at blank stretches of rows, top to bottom."""
        ys, xs = self.ys[idx], self.xs[idx]
        top = int(ys.min())
        profile = np.bincount(ys - top)
        blank = profile <= (xs.max() - xs.min() + 1) * NOISE_SHARE
        cuts = [top + (start + stop) // 2 for start, stop in _runs(blank) if stop - start >= BAND_GAP * self.period]
        band = np.searchsorted(cuts, ys)
        return [idx[band == number] for number in range(len(cuts) + 1)]


def reading_order(regions: list[InkRegion]) -> list[InkRegion]:
    """``regions`` in XY-cut order, each margin note moved right after its column."""
    host = {index: column for index, region in enumerate(regions)
            if (column := _column_beside(region, regions)) is not None}
    for index in host:  # a note beside a note goes with the column (no circles: a host is wider)
        while host[index] in host:
            host[index] = host[host[index]]
        regions[index].margin = True
    order: list[int] = []
    for index in range(len(regions)):
        if index not in host:
            notes = sorted((k for k in host if host[k] == index), key=lambda k: regions[k].top)
            order += [index, *notes]
    return [regions[index] for index in order]


def _column_beside(note: InkRegion, regions: list[InkRegion]) -> int | None:
    """The region that ``note`` is a margin note of: one clearly wider and higher whose
    rows overlap it (the most, then the nearest, if several), or None."""
    best, column = (0, 0), None
    for number, other in enumerate(regions):
        overlap = min(note.bottom, other.bottom) - max(note.top, other.top)
        distance = max(other.left - note.right, note.left - other.right, 0)
        if (overlap, -distance) > best and overlap > 0 and note.width < NOTE_SHARE * other.width \
                and note.height < NOTE_SHARE * other.height:
            best, column = (overlap, -distance), number
    return column


def outline(polygons: list[Polygon]) -> Polygon:
    """A region's polygon: the convex hull of its lines' polygons (their box when the
    points are collinear)."""
    points = np.asarray([point for polygon in polygons for point in polygon], float)
    try:
        hull = ConvexHull(points)
    except (QhullError, ValueError):
        return box_points(bounds(points.tolist()))
    return points[hull.vertices].round(1).tolist()
