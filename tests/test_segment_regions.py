"""Text regions (issue 15, item 4): two columns, or a note in the margin, come out as
regions whose lines stay on their side of the gutter, read region by region (columns left
to right, a margin note right after its column); a one-column page is one region with the
lines it always had.  Pages are drawn here with a handwriting font (Pillow's default font
when none is installed), the true line boxes kept as ground truth."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image, ImageDraw

from pipeline import segment_eval
from pipeline.segment import segment_page
from pipeline.segment_regions import InkRegion, reading_order
from pipeline.segment_types import SegmentConfig
from test_segment import WORDS, font, make_page


@dataclass
class Columns:
    path: Path
    lines: list[list[list[float]]]  # true line boxes in reading order
    regions: list[int]  # the region (reading-order rank) of each line
    gutters: list[tuple[float, float]]  # white x ranges between the regions, left to right


def _block(draw: ImageDraw.ImageDraw, rng: np.random.Generator, left: float, top: float, width: float,
           count: int, spacing: float, size: int, choose: int = 12) -> list[list[list[float]]]:
    """``count`` lines of words no wider than ``width``; their boxes."""
    face, boxes = font(size), []
    for number in range(count):
        words = list(rng.choice(WORDS, size=choose))
        while len(words) > 1 and draw.textlength(" ".join(words), font=face) > width:
            words.pop()
        y = top + number * spacing
        draw.text((left, y), " ".join(words), fill=25, font=face)
        l, t, r, b = draw.textbbox((left, y), " ".join(words), font=face)
        boxes.append([[l, t], [r, t], [r, b], [l, b]])
    return boxes


def make_columns(path: Path, *, columns: int = 2, lines: int = 10, gutter: float = 110, offset: float = 0,
                 note: str | None = None, title: bool = False, spacing: float = 70, size: int = 40,
                 seed: int = 0) -> Columns:
    """A page of ``columns`` columns with a ``gutter`` px wide between them (column k
    starts ``k * offset`` px lower), optionally a three-line note in the ``note``
    ("left"/"right") margin beside the upper half of the nearest column, and a title
    line across the columns above them."""
    rng = np.random.default_rng(seed)
    width, height, margin, note_width = 1400, 1300, 80, 170
    image = Image.new("L", (width, height), 245)
    draw = ImageDraw.Draw(image)
    left = margin + (note_width + gutter if note == "left" else 0)
    right = width - margin - (note_width + gutter if note == "right" else 0)
    column = (right - left - gutter * (columns - 1)) / columns
    top = 120 + (2 * spacing if title else 0)
    blocks = [_block(draw, rng, left + k * (column + gutter), top + k * offset, column, lines, spacing, size)
              for k in range(columns)]
    if title:
        blocks.insert(0, _block(draw, rng, left, 120, right - left, 1, spacing, size, choose=40))
    gutters = [(left + k * column + (k - 1) * gutter, left + k * (column + gutter)) for k in range(1, columns)]
    if note:
        x = margin if note == "left" else right + gutter
        boxes = _block(draw, rng, x, 120 + 2 * spacing, note_width, 3, 0.8 * spacing, int(0.8 * size))
        blocks.insert(1 if note == "left" else columns, boxes)  # right after the column it is beside
        gutters.append((margin + note_width, left) if note == "left" else (right, x))
    path.parent.mkdir(parents=True, exist_ok=True)
    image.save(path)
    return Columns(path, [box for block in blocks for box in block],
                   [rank for rank, block in enumerate(blocks) for _ in block], gutters)


def score(page: Columns, config: SegmentConfig | None = None):
    result = segment_page(page.path, config or SegmentConfig())
    return result, segment_eval.score_page(page.path.stem, [line.polygon for line in result.lines], page.lines,
                                           page.regions)


def crossing(result, gutters, below: float = 0) -> list[int]:
    """Numbers of the predicted lines (starting under ``below``) that reach across a
    gutter (into both of its outer quarters)."""
    bad = []
    for number, line in enumerate(result.lines):
        points = np.asarray(line.polygon)
        if points[:, 1].min() >= below and any(
                points[:, 0].min() < a + (b - a) * 0.25 and points[:, 0].max() > b - (b - a) * 0.25 for a, b in gutters):
            bad.append(number)
    return bad


def test_two_columns_are_two_regions_read_column_by_column(tmp_path):
    page = make_columns(tmp_path / "two.png")
    result, s = score(page)
    assert len(result.regions) == 2
    assert crossing(result, page.gutters) == []
    assert s.pred_lines == s.matched["0.5"] == len(page.lines) == 20
    assert s.same_order and s.region_order
    left, right = (np.asarray([p for line in region.lines for p in line.polygon]) for region in result.regions)
    assert left[:, 0].max() < page.gutters[0][1] and right[:, 0].min() > page.gutters[0][0]


def test_without_regions_the_columns_run_together(tmp_path):
    """What the regions buy: with min_gutter 0 (one region, as before) the lines of the
    two columns are merged across the gutter."""
    page = make_columns(tmp_path / "two.png")
    result, s = score(page, SegmentConfig(min_gutter=0))
    assert len(result.regions) == 1 and crossing(result, page.gutters)
    assert s.matched["0.5"] < len(page.lines) / 2


def test_a_margin_note_is_its_own_region_read_after_its_column(tmp_path):
    for side in ("left", "right"):
        page = make_columns(tmp_path / f"{side}.png", columns=1, lines=12, note=side, seed=3)
        result, s = score(page)
        assert [region.margin for region in result.regions] == [False, True]
        assert crossing(result, page.gutters) == []
        assert s.matched["0.5"] == s.pred_lines == len(page.lines) == 15
        assert s.same_order and s.region_order


def test_two_columns_and_a_note(tmp_path):
    page = make_columns(tmp_path / "both.png", lines=9, note="left", seed=4, gutter=120)
    result, s = score(page)
    assert [region.margin for region in result.regions] == [False, True, False]
    assert crossing(result, page.gutters) == [] and s.matched["0.5"] == s.pred_lines == len(page.lines)
    assert s.same_order


def test_a_title_across_two_columns_is_read_first_then_the_columns(tmp_path):
    page = make_columns(tmp_path / "title.png", lines=8, title=True, seed=5)
    result, s = score(page)
    assert len(result.regions) == 3 and len(result.regions[0].lines) == 1  # the title, then the columns
    assert crossing(result, page.gutters, below=page.lines[1][0][1] - 20) == []
    assert s.matched["0.5"] == s.pred_lines == len(page.lines) == 17
    assert s.same_order and s.region_order


@settings(max_examples=8, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(gutter=st.floats(1.3, 3.0), offset=st.floats(0, 1), lines=st.integers(4, 12), seed=st.integers(0, 1000))
def test_lines_never_cross_the_gutter_and_are_read_column_by_column(tmp_path, gutter, offset, lines, seed):
    """Whatever the gutter (1.3-3 line spacings), the offset of the second column's lines
    against the first's and the column length."""
    page = make_columns(tmp_path / "page.png", gutter=gutter * 70, offset=offset * 70, lines=lines, seed=seed)
    result, s = score(page)
    assert crossing(result, page.gutters) == []
    assert s.region_order and s.same_order
    assert s.matched["0.5"] >= len(page.lines) - 1


def test_a_one_column_page_is_one_region_with_the_same_lines(tmp_path):
    page = make_page(tmp_path / "one.png", 10, seed=6)
    result = segment_page(page.path, SegmentConfig())
    whole = segment_page(page.path, SegmentConfig(min_gutter=0))  # the page segmented as one region
    assert len(result.regions) == 1 and not result.regions[0].margin
    assert [(line.polygon, line.baseline) for line in result.lines] == [(line.polygon, line.baseline) for line in whole.lines]
    outline = np.asarray(result.regions[0].polygon)
    for line in result.lines:  # the region's outline holds its lines
        points = np.asarray(line.polygon)
        assert outline[:, 0].min() <= points[:, 0].min() and points[:, 0].max() <= outline[:, 0].max()
        assert outline[:, 1].min() <= points[:, 1].min() and points[:, 1].max() <= outline[:, 1].max()


def test_region_order_score():
    boxes = [[[100 + 500 * c, 100 + 80 * i], [500 + 500 * c, 100 + 80 * i], [500 + 500 * c, 150 + 80 * i],
              [100 + 500 * c, 150 + 80 * i]] for c in range(2) for i in range(3)]
    regions = [0, 0, 0, 1, 1, 1]
    interleaved = [boxes[i] for i in (0, 3, 1, 4, 2, 5)]
    s = segment_eval.score_page("rows", interleaved, boxes, regions)
    assert s.matched["0.5"] == 6 and not s.same_order and not s.region_order
    swapped = [boxes[i] for i in (1, 0, 2, 3, 5, 4)]
    s = segment_eval.score_page("within", swapped, boxes, regions)
    assert not s.same_order and s.region_order


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 900), st.integers(0, 900), st.integers(1, 400), st.integers(1, 400)),
                min_size=1, max_size=8))
def test_reading_order_keeps_every_region_once_and_each_note_after_its_column(boxes):
    regions = [InkRegion(top, left, np.ones((height, width), bool)) for top, left, height, width in boxes]
    ordered = reading_order(list(regions))
    assert sorted(map(id, ordered)) == sorted(map(id, regions))
    for number, note in enumerate(ordered):
        if note.margin:  # its column (wider and higher; beside it, or beside the note it is beside) is before it
            assert any(not column.margin and column.width > note.width and column.height > note.height
                       for column in ordered[:number])
