"""Coordinate parsing and polygon cropping (data_prep.geometry)."""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from common import skips
from data_prep.geometry import (MIN_LINE_HEIGHT, GeometryError, box_polygon, crop_polygon, format_points,
                                min_line_size, page_background, parse_points, polygon_area, polygon_mask)
from data_prep.records import MAX_NAME, line_image_path
from common.skips import one_line


def test_parse_points_reads_page_and_alto_forms():
    assert parse_points("10,20 30,40 50,60") == [[10, 20], [30, 40], [50, 60]]
    assert parse_points("10 20 30 40 50 60") == [[10, 20], [30, 40], [50, 60]]
    assert parse_points("1.5,2.25 -3,4e1") == [[1.5, 2.25], [-3.0, 40.0]]
    assert parse_points("") == [] and parse_points(None) == [] and parse_points("   ") == []


def test_parse_points_rejects_an_odd_count():
    with pytest.raises(GeometryError, match="odd") as error:
        parse_points("10 20 30")
    assert error.value.reason == skips.ODD_COORDINATES


coordinates = st.lists(st.tuples(st.integers(-5000, 5000), st.integers(-5000, 5000)), max_size=20)


@given(coordinates, st.sampled_from([" ", ","]))
def test_format_then_parse_gives_the_points_back(points, separator):
    as_lists = [[float(x), float(y)] for x, y in points]
    assert parse_points(format_points(as_lists, separator)) == as_lists


def test_box_polygon_and_area():
    box = box_polygon(10, 20, 30, 5)
    assert box == [[10, 20], [40, 20], [40, 25], [10, 25]]
    assert polygon_area(np.asarray(box, dtype=float)) == pytest.approx(150)
    assert polygon_area(np.asarray(box[::-1], dtype=float)) == pytest.approx(150)


def test_page_background_is_the_paper_level():
    page = np.full((100, 300), 220, dtype=np.uint8)
    page[40:50, 20:280] = 10  # a line of ink covers a small part of the page
    assert page_background(page) == 220


def _gradient_page(height: int = 60, width: int = 80) -> np.ndarray:
    """Every pixel distinct enough to tell where a crop came from; none equal to 255."""
    rows, cols = np.mgrid[0:height, 0:width]
    return ((rows * 3 + cols) % 250).astype(np.uint8)


def test_crop_is_the_polygon_bounding_box_with_outside_masked():
    page = _gradient_page()
    triangle = [[10, 10], [50, 10], [10, 40]]  # right angle at the top left
    crop = crop_polygon(page, triangle, background=255)
    assert crop.shape == (31, 41)  # rows 10..40, columns 10..50, border included
    assert crop[0, 0] == page[10, 10]  # a corner inside the polygon keeps the page pixel
    assert crop[2, 2] == page[12, 12]
    assert crop[28, 38] == 255  # page (48, 38): inside the box, outside the triangle
    assert crop[30, 40] == 255
    inside = polygon_mask(np.asarray(triangle, dtype=float) - [10, 10], crop.shape)
    assert (crop[~inside] == 255).all()
    assert (crop[inside] == page[10:41, 10:51][inside]).all()


def test_crop_clips_a_polygon_partly_outside_the_page():
    page = _gradient_page(40, 50)
    crop = crop_polygon(page, box_polygon(-10, 30, 30, 30), background=255)
    assert crop.shape == (10, 21)  # rows 30..39, columns 0..20
    assert (crop == page[30:40, 0:21]).all()


@pytest.mark.parametrize("polygon", [
    box_polygon(100, 10, 20, 10),  # right of the page
    box_polygon(10, -50, 20, 10),  # above it
    box_polygon(-40, 5, 20, 10),  # left of it
])
def test_crop_outside_the_page_is_an_outside_page_error(polygon):
    with pytest.raises(GeometryError) as error:
        crop_polygon(_gradient_page(40, 50), polygon, background=255)
    assert error.value.reason == skips.OUTSIDE_PAGE


@pytest.mark.parametrize("polygon", [
    [[10, 10], [30, 10], [30, 10], [10, 10]],  # a flat box
    [[10, 10], [20, 20], [30, 30]],  # collinear points
    [[10, 10], [20, 20]],  # two points
    [],
])
def test_crop_of_a_zero_area_polygon_is_a_zero_area_error(polygon):
    with pytest.raises(GeometryError) as error:
        crop_polygon(_gradient_page(), polygon, background=255)
    assert error.value.reason == skips.ZERO_AREA


@settings(max_examples=60, deadline=None)
@given(left=st.integers(-20, 70), top=st.integers(-20, 50),
       width=st.integers(2, 40), height=st.integers(2, 30))
def test_box_crop_is_the_clipped_box_of_the_page(left, top, width, height):
    page = _gradient_page()
    polygon = box_polygon(left, top, width, height)
    right, bottom = min(80, left + width + 1), min(60, top + height + 1)
    x0, y0 = max(0, left), max(0, top)
    if right - x0 < 2 or bottom - y0 < 2:
        with pytest.raises(GeometryError):
            crop_polygon(page, polygon, background=255)
        return
    crop = crop_polygon(page, polygon, background=255)
    assert (crop == page[y0:bottom, x0:right]).all()


# ---------------------------------------------------------------- hostile input (issue 16)

_TOKENS = st.one_of(st.integers(-10**6, 10**6).map(str), st.floats(allow_nan=True, allow_infinity=True).map(repr),
                    st.sampled_from(["nan", "-inf", "Infinity", "1e999", "1_000", "0x10", "", "abc", "1.5e3", ".5", "5."]))


@settings(max_examples=300, deadline=None)
@given(st.lists(_TOKENS, max_size=12), st.sampled_from([" ", ",", ", ", "\t"]))
def test_parse_points_gives_finite_pairs_or_a_geometry_error(tokens, separator):
    try:
        points = parse_points(separator.join(tokens))
    except GeometryError as error:
        assert error.reason in {skips.NON_FINITE, skips.BAD_GEOMETRY, skips.ODD_COORDINATES}
        return
    assert all(len(p) == 2 and np.isfinite(p).all() for p in points)


@given(st.lists(st.integers(-5000, 5000), min_size=2, max_size=12), st.data())
def test_a_nan_anywhere_in_the_points_is_refused_not_re_paired(numbers, data):
    position = data.draw(st.integers(0, len(numbers)))
    tokens = [str(n) for n in numbers]
    tokens.insert(position, data.draw(st.sampled_from(["nan", "NaN", "inf", "-inf"])))
    with pytest.raises(GeometryError) as error:
        parse_points(" ".join(tokens))
    assert error.value.reason == skips.NON_FINITE


_COORD = st.one_of(st.floats(-200, 300), st.sampled_from([float("nan"), float("inf"), -1e12, 1e12, 0.0]))


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(_COORD, _COORD), max_size=8), st.text(max_size=60))
def test_a_kept_crop_is_never_degenerate(points, text):
    page = _gradient_page()
    min_size = min_line_size(text)
    try:
        crop = crop_polygon(page, [list(p) for p in points], background=255, min_size=min_size)
    except GeometryError as error:
        assert error.reason in {skips.NON_FINITE, skips.OUTSIDE_PAGE, skips.FAR_OUTSIDE, skips.ZERO_AREA, skips.TOO_SMALL}
        return
    array = np.asarray(points)
    assert np.isfinite(array).all()
    assert (array[:, 0] >= -80).all() and (array[:, 0] <= 160).all()  # within a page size of the 80x60 page
    assert (array[:, 1] >= -60).all() and (array[:, 1] <= 120).all()
    assert crop.shape[0] >= max(MIN_LINE_HEIGHT, min_size[1]) and crop.shape[1] >= min_size[0]
    assert (crop != 255).sum() >= min_size[0] * min_size[1]  # enough of the page is inside the polygon


@given(st.text(min_size=1, max_size=400))
def test_every_line_id_gets_a_short_plain_stable_file_name(line_id):
    path = line_image_path(line_id)
    name = path.removeprefix("lines/")
    assert path.startswith("lines/") and name.endswith(".png") and len(name) <= MAX_NAME + 4
    assert name[0].isascii() and name[0].isalnum() or name[0] == "_"
    assert all(c.isascii() and (c.isalnum() or c in "_.-") for c in name)
    assert line_image_path(line_id) == path
    assert line_image_path(line_id + "x") != path


@given(st.text(max_size=2000))
def test_skip_messages_are_one_bounded_line(text):
    shown = one_line(text)
    assert "\n" not in shown and "\r" not in shown and len(shown) <= 300
