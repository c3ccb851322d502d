"""Line segmentation (``htr segment``) and its scoring (``htr segment-eval``) on pages
generated here: text rendered with a handwriting font from tools/fonts (Pillow's
default font when none is there), with the true line boxes kept as ground truth."""
from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageDraw, ImageFont

from data_prep.alto_writer import AltoLine, alto_document
from data_prep.readers import read_alto
from common.skips import SkipLog
from pipeline import segment, segment_eval
from pipeline.segment import segment_page
from pipeline.segment_types import SegmentConfig

REPO = Path(__file__).resolve().parents[1]
FONT_FILE = REPO / "tools" / "fonts" / "fonts-ecolier-court" / "Ecolier-court.ttf"
WORDS = ("the quick brown fox jumps over lazy dog while happy young scribes copy long "
         "pages of fine text by candle light").split()


def font(size: int) -> ImageFont.ImageFont:
    if FONT_FILE.is_file():
        return ImageFont.truetype(str(FONT_FILE), size)
    return ImageFont.load_default(size=size)


@dataclass
class Page:
    path: Path
    lines: list[list[list[float]]]  # true line polygons, in reading order


def make_page(path: Path, n_lines: int, *, size=(1000, 1300), spacing: int = 75, font_size: int = 44,
              angle: float = 0.0, drawing: bool = False, seed: int = 0, top: int = 120,
              left: int = 80) -> Page:
    """Render ``n_lines`` lines of words, optionally with a big drawing at the bottom and
    rotated by ``angle`` degrees; the true polygons are the rendered text boxes."""
    rng = np.random.default_rng(seed)
    image = Image.new("L", size, 245)
    draw = ImageDraw.Draw(image)
    face = font(font_size)
    boxes = []
    for number in range(n_lines):
        words = rng.choice(WORDS, size=int(rng.integers(5, 9)))
        text = " ".join(words)
        x, y = left + int(rng.integers(0, 40)), top + number * spacing
        draw.text((x, y), text, fill=25, font=face)
        l, t, r, b = draw.textbbox((x, y), text, font=face)
        boxes.append([[l, t], [min(r, size[0] - 5), t], [min(r, size[0] - 5), b], [l, b]])
    if drawing:
        y0 = top + n_lines * spacing + 40
        draw.ellipse((150, y0, 850, y0 + 420), fill=90, outline=20, width=6)
        draw.rectangle((100, y0 - 20, 900, y0 + 440), outline=30, width=5)
    if angle:
        image = image.rotate(angle, resample=Image.BILINEAR, fillcolor=245)
        cx, cy = size[0] / 2, size[1] / 2
        a = math.radians(angle)  # PIL rotates counter-clockwise; y grows downwards
        boxes = [[[cx + (x - cx) * math.cos(a) + (y - cy) * math.sin(a),
                   cy - (x - cx) * math.sin(a) + (y - cy) * math.cos(a)] for x, y in box] for box in boxes]
    path.parent.mkdir(parents=True, exist_ok=True)
    image.save(path)
    return Page(path, boxes)


def scores(page: Page, config: SegmentConfig | None = None):
    result = segment_page(page.path, config or SegmentConfig())
    return result, segment_eval.score_page(page.path.stem, [line.polygon for line in result.lines], page.lines)


def test_blank_page_gives_no_lines(tmp_path):
    path = tmp_path / "blank.png"
    noise = np.random.default_rng(1).normal(240, 3, (1300, 1000)).clip(0, 255).astype(np.uint8)
    Image.fromarray(noise).save(path)
    result = segment_page(path, SegmentConfig())
    assert result.lines == []
    assert (result.width, result.height) == (1000, 1300)


def test_single_line(tmp_path):
    page = make_page(tmp_path / "one.png", 1, top=500)
    result, score = scores(page)
    assert len(result.lines) == 1
    assert score.matched["0.5"] == 1
    left, top, right, bottom = result.lines[0].box
    true = np.asarray(page.lines[0])
    assert left <= true[:, 0].min() + 15 and right >= true[:, 0].max() - 15
    baseline = np.asarray(result.lines[0].baseline)
    assert top < baseline[:, 1].mean() < bottom


@pytest.mark.parametrize("angle", [-5.0, 3.0])
def test_rotated_page_lines_found_in_order(tmp_path, angle):
    page = make_page(tmp_path / "rot.png", 10, angle=angle, seed=2)
    result, score = scores(page)
    assert abs(result.skew - angle) < 0.5  # skew is the counter-clockwise page rotation
    assert score.pred_lines == 10 and score.matched["0.5"] == 10
    assert score.same_order


def test_page_with_big_drawing(tmp_path):
    page = make_page(tmp_path / "drawing.png", 6, drawing=True, seed=3)
    result, score = scores(page)
    assert score.matched["0.5"] == 6
    assert score.pred_lines == 6  # the ellipse and frame are not text lines
    assert score.same_order


def test_touching_lines_are_split(tmp_path):
    # spacing below the font's ascender-to-descender height: strokes of neighbouring lines touch
    page = make_page(tmp_path / "touch.png", 8, spacing=44, font_size=50, seed=4)
    image = Image.open(page.path)
    draw = ImageDraw.Draw(image)
    for number in range(7):  # explicit long strokes joining each line to the next
        y = 120 + number * 44 + 30
        draw.line((300 + 40 * number, y, 305 + 40 * number, y + 40), fill=25, width=4)
    image.save(page.path)
    result, score = scores(page)
    assert score.pred_lines == 8
    assert score.matched["0.5"] == 8
    assert score.under == 0
    assert score.same_order


def test_alto_output_read_back(tmp_path):
    page = make_page(tmp_path / "pages" / "p1.jpg", 4, seed=5)
    out = tmp_path / "seg"
    assert segment.main([str(page.path), "--out", str(out), "--draw"]) == 0
    assert (out / "p1.draw.jpg").is_file()
    specs = list(read_alto(out / "p1.xml", SkipLog(stream=None)))
    assert len(specs) == 1
    assert specs[0].image is not None and specs[0].image.resolve() == page.path.resolve()
    assert len(specs[0].lines) == 4
    for line in specs[0].lines:
        assert len(line.polygon) >= 4 and len(line.baseline) >= 2


def test_cli_jobs_segments_every_page(tmp_path):
    paths = [make_page(tmp_path / f"p{i}.png", 2 + i, seed=i).path for i in range(3)]
    out = tmp_path / "seg"
    assert segment.main([*map(str, paths), "--out", str(out), "--jobs", "2"]) == 0
    counts = [len(next(read_alto(out / f"p{i}.xml", SkipLog(stream=None))).lines) for i in range(3)]
    assert counts == [2, 3, 4]


def test_unreadable_image_is_a_counted_skip(tmp_path, capsys):
    bad = tmp_path / "bad.jpg"
    bad.write_bytes(b"not an image")
    good = make_page(tmp_path / "good.png", 1, top=400).path
    assert segment.main([str(bad), str(good), "--out", str(tmp_path / "seg")]) == 0
    assert "bad.jpg" in capsys.readouterr().err
    assert (tmp_path / "seg" / "good.xml").is_file() and not (tmp_path / "seg" / "bad.xml").exists()


def _write_gt(folder: Path, name: str, polygons: list) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    lines = [AltoLine(id=f"l{i}", polygon=p) for i, p in enumerate(polygons)]
    (folder / f"{name}.xml").write_bytes(alto_document(f"{name}.png", 1000, 1300, lines))


def _boxes(n: int) -> list:
    return [[[100, 100 + 80 * i], [900, 100 + 80 * i], [900, 150 + 80 * i], [100, 150 + 80 * i]] for i in range(n)]


def test_eval_identical_is_perfect(tmp_path):
    _write_gt(tmp_path / "gt", "a", _boxes(6))
    _write_gt(tmp_path / "pred", "a", _boxes(6))
    report = segment_eval.evaluate(tmp_path / "pred", tmp_path / "gt", SkipLog(stream=None))
    for threshold in ("0.5", "0.75"):
        assert report["total"][f"iou>={threshold}"]["f1"] == 1.0
    assert report["total"]["same_order_pages"] == 1
    assert report["total"]["over_segmented"] == report["total"]["under_segmented"] == 0


def test_eval_missing_line_lowers_recall(tmp_path, capsys):
    boxes = _boxes(8)
    _write_gt(tmp_path / "gt", "a", boxes)
    _write_gt(tmp_path / "pred", "a", boxes[:3] + boxes[4:])
    out = tmp_path / "report.json"
    assert segment_eval.main(["--pred", str(tmp_path / "pred"), "--gt", str(tmp_path / "gt"), "--out", str(out)]) == 0
    total = segment_eval.evaluate(tmp_path / "pred", tmp_path / "gt", SkipLog(stream=None))["total"]
    assert total["iou>=0.5"]["recall"] == pytest.approx(7 / 8, abs=1e-4)
    assert total["iou>=0.5"]["precision"] == 1.0
    assert out.is_file() and "IoU>=0.5" in capsys.readouterr().out


def test_eval_counts_over_under_and_order():
    gt = _boxes(3)
    halves = [[[100, 100], [500, 100], [500, 150], [100, 150]], [[500, 100], [900, 100], [900, 150], [500, 150]]]
    merged = [[[100, 180], [900, 180], [900, 310], [100, 310]]]  # lines 2 and 3 in one
    score = segment_eval.score_page("x", halves + merged, gt)
    assert score.over == 1 and score.under == 1
    swapped = segment_eval.score_page("y", [gt[1], gt[0], gt[2]], gt)
    assert swapped.matched["0.5"] == 3 and not swapped.same_order and swapped.in_order == 2


def test_eval_maps_each_predicted_line_to_its_ground_truth_line_or_none(tmp_path):
    boxes = _boxes(3)
    header = [[[100, 20], [600, 20], [600, 60], [100, 60]]]  # above every ground-truth line
    _write_gt(tmp_path / "gt", "a", boxes)
    _write_gt(tmp_path / "pred", "a", header + [boxes[1], boxes[0], boxes[2]])
    report = segment_eval.evaluate(tmp_path / "pred", tmp_path / "gt", SkipLog(stream=None))
    page = report["pages"][0]
    assert list(page["line_map"].values())[0] is None and report["total"]["unannotated_pred_lines"] == 1
    assert [gt[-1] for gt in list(page["line_map"].values())[1:]] == ["1", "0", "2"]
