"""Pages rotated beyond the deskew range (issue 16, item 5): the page angle is found up
to 45 degrees, the page is segmented upright and its lines are mapped back, scoring
within 0.05 line F1 (IoU 0.5) of the same page upright; upright and slightly skewed pages
are left to the deskew."""
from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image

from data_prep.readers import read_alto
from common.skips import SkipLog
from pipeline import rotation, segment_eval
from pipeline.segment import segment_page
from pipeline.segment_ink import binarise
from pipeline.segment_types import SegmentConfig
from test_segment import make_page

COPISTE_DEV = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "copiste" / "dev"


def f1(pred: list, gt: list) -> float:
    score = segment_eval.score_page("page", pred, gt)
    return segment_eval.prf(score.matched["0.5"], score.pred_lines, score.gt_lines)["f1"]


def turn(source: Path, target: Path, angle: float, polygons: list) -> list:
    """Rotate a page image by ``angle`` degrees (counter-clockwise, canvas grown to hold
    it all) and its line polygons with it."""
    image = Image.open(source).convert("L")
    width, height = image.size
    turned = image.rotate(angle, resample=Image.BILINEAR, expand=True, fillcolor=245)
    a, (new_width, new_height) = math.radians(angle), turned.size
    turned.save(target)
    return [[[new_width / 2 + (x - width / 2) * math.cos(a) + (y - height / 2) * math.sin(a),
              new_height / 2 - (x - width / 2) * math.sin(a) + (y - height / 2) * math.cos(a)] for x, y in polygon]
            for polygon in polygons]


@pytest.fixture(scope="module")
def upright_page(tmp_path_factory):
    folder = tmp_path_factory.mktemp("rotation")
    page = make_page(folder / "upright.png", 10, spacing=52, font_size=40, seed=7)  # dense: tilted lines overlap
    result = segment_page(page.path, SegmentConfig())
    return page, f1([line.polygon for line in result.lines], page.lines)


@pytest.mark.parametrize("angle", [20.0, -20.0, 12.0, -35.0])
def test_a_page_rotated_beyond_the_deskew_range_segments_as_well_as_upright(tmp_path, upright_page, angle):
    page, upright_f1 = upright_page
    truth = turn(page.path, tmp_path / "turned.png", angle, page.lines)
    result = segment_page(tmp_path / "turned.png", SegmentConfig())
    assert abs(result.skew - angle) < 1.0  # the page angle is reported as its skew
    assert upright_f1 >= 0.95
    assert f1([line.polygon for line in result.lines], truth) >= upright_f1 - 0.05
    width, height = Image.open(tmp_path / "turned.png").size
    for line in result.lines:  # every coordinate is on the page it was read from
        points = np.asarray(line.polygon + line.baseline)
        assert points.min() >= 0 and (points[:, 0] <= width - 1).all() and (points[:, 1] <= height - 1).all()


@pytest.mark.parametrize("angle", [20.0, -20.0])
def test_without_the_rotation_search_a_20_degree_page_fails(tmp_path, upright_page, angle):
    """What the search buys: the deskew alone (5 degrees) gives bands across lines."""
    page, _ = upright_page
    truth = turn(page.path, tmp_path / "turned.png", angle, page.lines)
    result = segment_page(tmp_path / "turned.png", SegmentConfig(max_rotation=0))
    assert f1([line.polygon for line in result.lines], truth) < 0.5


@pytest.mark.parametrize("angle", [0.0, 3.0, -4.5])
def test_upright_and_slightly_skewed_pages_are_left_to_the_deskew(tmp_path, angle):
    page = make_page(tmp_path / "page.png", 6, angle=angle, seed=8)
    gray = np.asarray(Image.open(page.path).convert("L"))
    assert rotation.page_angle(binarise(gray, SegmentConfig()), 5.0, 45.0) == 0.0


def test_a_blank_page_has_no_angle():
    assert rotation.page_angle(np.zeros((300, 200), bool), 5.0, 45.0) == 0.0


@settings(max_examples=50, deadline=None)
@given(angle=st.floats(-45, 45), points=st.lists(st.tuples(st.floats(0, 399), st.floats(0, 299)), min_size=1, max_size=10))
def test_to_original_undoes_the_upright_turn(angle, points):
    """A page point turned upright (as PIL turns the canvas) and mapped back is itself."""
    width, height = 400, 300
    a = math.radians(-angle)  # upright() turns by -angle
    canvas = (abs(width * math.cos(a)) + abs(height * math.sin(a)), abs(width * math.sin(a)) + abs(height * math.cos(a)))
    turned = [[canvas[0] / 2 + (x - width / 2) * math.cos(a) + (y - height / 2) * math.sin(a),
               canvas[1] / 2 - (x - width / 2) * math.sin(a) + (y - height / 2) * math.cos(a)] for x, y in points]
    back = rotation.to_original(turned, angle, canvas, (width, height))
    assert np.allclose(back, np.asarray(points, dtype=float).round(1), atol=0.11)


@pytest.mark.shared
@pytest.mark.skipif(not COPISTE_DEV.is_dir(), reason=f"{COPISTE_DEV} not available")
def test_a_20_degree_rotated_copiste_page_scores_within_0_05_f1_of_upright(tmp_path):
    xml = sorted(COPISTE_DEV.glob("*.xml"))[0]
    spec = next(read_alto(xml, SkipLog(stream=None)))
    truth = [line.polygon for line in spec.lines]
    upright = f1([line.polygon for line in segment_page(spec.image, SegmentConfig()).lines], truth)
    turned_truth = turn(spec.image, tmp_path / "turned.png", 20.0, truth)
    result = segment_page(tmp_path / "turned.png", SegmentConfig())
    assert abs(result.skew - 20.0) < 1.0
    assert f1([line.polygon for line in result.lines], turned_truth) >= upright - 0.05
