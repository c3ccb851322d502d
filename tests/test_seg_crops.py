"""``htr seg-crops``: the segmenter's crops of training pages paired with ground-truth text.

Fixtures are two small manifests built in tmp_path: a ground-truth one (``gt/``) and a
predicted one (``pred/``), each with its own tiny line images, lines given as boxes.
"""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from data_prep.records import read_manifest, resolve_image
from pipeline import seg_crops, segment_eval
from pipeline.cli import COMMANDS

REPO = Path(__file__).resolve().parents[1]


def box(left: float, top: float, right: float, bottom: float) -> list[list[float]]:
    return [[left, top], [right, top], [right, bottom], [left, bottom]]


def write_manifest(folder: Path, lines: list[dict]) -> Path:
    """``folder/manifest.jsonl`` with a 4x8 PNG per line (``image`` relative to the folder,
    as ``htr prepare`` writes it); a line's ``"image": None`` leaves its image out."""
    (folder / "lines").mkdir(parents=True, exist_ok=True)
    records = []
    for line in lines:
        record = {"text": "", **line}
        if "image" not in record:
            record["image"] = f"lines/{record['id']}.png"
            Image.fromarray(np.full((4, 8), 200, np.uint8), mode="L").save(folder / record["image"])
        elif record["image"] is None:
            record["image"] = f"lines/{record['id']}.png"  # never written
        records.append(record)
    path = folder / "manifest.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
    return path


GT_BOXES = {"a": box(10, 10, 210, 40), "b": box(10, 60, 210, 90), "c": box(10, 110, 210, 140)}
GT_TEXT = {"a": "la première ligne", "b": "la deuxième", "c": "et la troisième"}


def gt_manifest(tmp_path: Path, page: str = "/pages/p1.jpg") -> Path:
    return write_manifest(tmp_path / "gt", [
        {"id": f"p1_{k}", "text": GT_TEXT[k], "page": page, "polygon": poly, "writer": "w1", "split": "train"}
        for k, poly in GT_BOXES.items()])


def run(capsys, *argv: str) -> tuple[int, str, str]:
    code = seg_crops.main(list(argv))
    out = capsys.readouterr()
    return code, out.out, out.err


def crops(folder: Path) -> list[dict]:
    return [json.loads(line) for line in (folder / "manifest.jsonl").read_text(encoding="utf-8").splitlines()]


def test_matching_gives_each_crop_the_text_of_its_line(tmp_path, capsys):
    gt = gt_manifest(tmp_path)
    # predicted in another order, a little off the annotators' boxes
    pred = write_manifest(tmp_path / "pred", [
        {"id": "p1_l1", "page": "/elsewhere/p1.jpg", "polygon": box(14, 108, 205, 143)},
        {"id": "p1_l2", "page": "/elsewhere/p1.jpg", "polygon": box(12, 8, 212, 38), "baseline": [[12, 35], [212, 35]]},
        {"id": "p1_l3", "page": "/elsewhere/p1.jpg", "polygon": box(8, 62, 200, 92)}])
    code, out, _ = run(capsys, "--pred", str(pred), "--gt", str(gt), "--out", str(tmp_path / "out"))
    assert code == 0
    kept = {r["id"]: r for r in crops(tmp_path / "out")}
    assert {i: (r["gt_id"], r["text"]) for i, r in kept.items()} == {
        "p1_l1": ("p1_c", GT_TEXT["c"]), "p1_l2": ("p1_a", GT_TEXT["a"]), "p1_l3": ("p1_b", GT_TEXT["b"])}
    assert [r["id"] for r in crops(tmp_path / "out")] == ["p1_l1", "p1_l2", "p1_l3"]  # predicted order
    first = kept["p1_l2"]
    assert first["polygon"] == box(12, 8, 212, 38) and first["baseline"] == [[12, 35], [212, 35]]
    assert first["page"] == "/elsewhere/p1.jpg" and first["writer"] == "w1" and first["split"] == "train"
    assert first["source"] == "segmenter" and 0.8 < first["iou"] <= 1.0
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert summary["kept"] == 3 and summary["dropped"] == 0 and summary["gt_without_partner"] == 0
    assert out.splitlines()[0].startswith("seg-crops: 3 predicted lines") and "kept 3 at IoU >= 0.5" in out


def test_one_to_one_two_crops_of_one_line_keep_one(tmp_path, capsys):
    gt = gt_manifest(tmp_path)
    pred = write_manifest(tmp_path / "pred", [
        {"id": "good", "page": "p1.jpg", "polygon": box(10, 10, 205, 40)},   # IoU 0.975 with a
        {"id": "also", "page": "p1.jpg", "polygon": box(10, 12, 210, 40)},   # IoU 0.93 with a as well
        {"id": "other", "page": "p1.jpg", "polygon": box(10, 60, 210, 90)}])
    assert run(capsys, "--pred", str(pred), "--gt", str(gt), "--out", str(tmp_path / "out"))[0] == 0
    kept = crops(tmp_path / "out")
    assert [(r["id"], r["gt_id"]) for r in kept] == [("good", "p1_a"), ("other", "p1_b")]
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert summary["dropped_reasons"]["unmatched"] == 1 and summary["gt_without_partner"] == 1  # c
    assert summary["pred_lines"] == 3 and summary["gt_lines"] == 3


def test_low_iou_is_dropped_and_counted_unless_min_iou_allows_it(tmp_path, capsys):
    gt = gt_manifest(tmp_path)
    pred = write_manifest(tmp_path / "pred", [
        {"id": "half", "page": "p1.jpg", "polygon": box(10, 10, 90, 40)},   # 40% of line a: IoU ~0.4
        {"id": "full", "page": "p1.jpg", "polygon": box(10, 60, 210, 90)},
        {"id": "nowhere", "page": "p1.jpg", "polygon": box(300, 300, 400, 330)}])
    code, out, _ = run(capsys, "--pred", str(pred), "--gt", str(gt), "--out", str(tmp_path / "out"))
    assert code == 0
    assert [r["id"] for r in crops(tmp_path / "out")] == ["full"]
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert summary["dropped_reasons"] == {"unmatched": 1, "low_iou": 1, "no_gt_page": 0, "gt_without_text": 0}
    assert summary["gt_without_partner"] == 2 and summary["mean_iou"] == 1.0
    assert "1 IoU below 0.5" in out and "1 unmatched" in out
    assert run(capsys, "--pred", str(pred), "--gt", str(gt), "--out", str(tmp_path / "loose"), "--min-iou", "0.3")[0] == 0
    assert [r["id"] for r in crops(tmp_path / "loose")] == ["half", "full"]


def test_pages_are_paired_by_name_and_a_page_without_ground_truth_is_counted(tmp_path, capsys):
    gt = gt_manifest(tmp_path)
    pred = write_manifest(tmp_path / "pred", [
        {"id": "q_l1", "page": "/pages/q.jpg", "polygon": box(10, 10, 210, 40)},  # same place, other page
        {"id": "p_l1", "page": "/pages/p1.jpg", "polygon": box(10, 110, 210, 140)}])
    assert run(capsys, "--pred", str(pred), "--gt", str(gt), "--out", str(tmp_path / "out"))[0] == 0
    assert [(r["id"], r["text"]) for r in crops(tmp_path / "out")] == [("p_l1", GT_TEXT["c"])]
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert summary["dropped_reasons"]["no_gt_page"] == 1 and summary["pages_matched"] == 1


def test_combined_manifest_reads_and_its_images_resolve(tmp_path, capsys):
    gt = gt_manifest(tmp_path)
    pred = write_manifest(tmp_path / "pred", [
        {"id": "p1_a", "page": "p1.jpg", "polygon": box(12, 10, 210, 40)},  # an id the ground truth has
        {"id": "p1_l2", "page": "p1.jpg", "polygon": box(10, 60, 205, 90)}])
    out, combined = tmp_path / "seg", tmp_path / "deeper" / "plus"
    code, stdout, _ = run(capsys, "--pred", str(pred), "--gt", str(gt), "--out", str(out), "--combined", str(combined))
    assert code == 0 and "2 segmenter crops" in stdout
    for manifest in (out / "manifest.jsonl", combined / "manifest.jsonl"):
        records = read_manifest(manifest)  # the project's reader: every stage's input
        assert all(not Path(r.image).is_absolute() and resolve_image(manifest, r).is_file() for r in records)
    records = read_manifest(combined / "manifest.jsonl")
    assert [r.id for r in records] == ["p1_a", "p1_b", "p1_c", "p1_a_seg", "p1_l2"]
    assert [r.text for r in records] == [GT_TEXT[k] for k in "abc"] + [GT_TEXT["a"], GT_TEXT["b"]]
    assert resolve_image(combined / "manifest.jsonl", records[0]).samefile(tmp_path / "gt" / "lines" / "p1_a.png")
    assert resolve_image(combined / "manifest.jsonl", records[3]).samefile(tmp_path / "pred" / "lines" / "p1_a.png")
    summary = json.loads((combined / "summary.json").read_text())
    assert summary["combined"] == {"path": str(combined / "manifest.jsonl"), "gt_lines": 3, "seg_crops": 2,
                                   "lines": 5, "renamed_ids": 1}


def test_bad_records_are_skipped_and_counted(tmp_path, capsys):
    gt = gt_manifest(tmp_path)
    pred = write_manifest(tmp_path / "pred", [
        {"id": "ok", "page": "p1.jpg", "polygon": box(10, 10, 210, 40)},
        {"id": "nopage", "polygon": box(10, 60, 210, 90)},
        {"id": "twopoints", "page": "p1.jpg", "polygon": [[10, 60], [210, 90]]},
        {"id": "nan", "page": "p1.jpg", "polygon": [[10, 60], [float("nan"), 60], [210, 90]]},
        {"id": "huge", "page": "p1.jpg", "polygon": box(0, 0, 1e9, 1e9)},
        {"id": "noimage", "page": "p1.jpg", "polygon": box(10, 110, 210, 140), "image": None},
        {"id": "ok", "page": "p1.jpg", "polygon": box(10, 110, 210, 140)}])
    code, out, err = run(capsys, "--pred", str(pred), "--gt", str(gt), "--out", str(tmp_path / "out"))
    assert code == 0 and [r["id"] for r in crops(tmp_path / "out")] == ["ok"]
    skipped = json.loads((tmp_path / "out" / "summary.json").read_text())["skipped"]
    assert skipped["lines_skipped"] == 6
    assert set(skipped["line_skip_reasons"]) == {"no page field", "no coordinates", "non-finite coordinate",
                                                 "polygon too large", "missing image", "repeated line id"}
    assert "skipped 6 records" in out and err.count("skipped: ") == 6 and str(pred) in err


@pytest.mark.parametrize("which", ["--pred", "--gt"])
def test_a_missing_manifest_is_one_clear_message_and_exit_2(tmp_path, capsys, which):
    gt = gt_manifest(tmp_path)
    args = {"--pred": str(gt), "--gt": str(gt)}
    args[which] = str(tmp_path / "nothere" / "manifest.jsonl")
    code, out, err = run(capsys, *[x for kv in args.items() for x in kv], "--out", str(tmp_path / "out"))
    assert code == 2 and out == ""
    assert err.strip().count("\n") == 0 and str(tmp_path / "nothere" / "manifest.jsonl") in err
    assert "manifest not found" in err and not (tmp_path / "out").exists()


def test_the_htr_command_reports_errors_without_a_traceback(tmp_path):
    gt = gt_manifest(tmp_path)
    (tmp_path / "broken.jsonl").write_text('{"id": "x", "image": "x.png", "text": ""}\nnot json\n')
    for pred in (tmp_path / "missing.jsonl", tmp_path / "broken.jsonl"):
        done = subprocess.run([sys.executable, "-m", "pipeline.cli", "seg-crops", "--pred", str(pred), "--gt", str(gt),
                               "--out", str(tmp_path / "out")], cwd=REPO, capture_output=True, text=True, timeout=120)
        assert done.returncode == 2, done.stderr
        assert "Traceback" not in done.stderr and done.stderr.startswith(f"htr seg-crops: {pred}")
        assert len(done.stderr.strip().splitlines()) == 1


def test_no_match_exits_1_and_outputs_never_overwrite_an_input(tmp_path, capsys):
    gt = gt_manifest(tmp_path)
    pred = write_manifest(tmp_path / "pred", [{"id": "x", "page": "other.jpg", "polygon": box(0, 0, 50, 20)}])
    code, _, err = run(capsys, "--pred", str(pred), "--gt", str(gt), "--out", str(tmp_path / "out"))
    assert code == 1 and "no predicted line matched" in err
    before = pred.read_text()
    code, _, err = run(capsys, "--pred", str(pred), "--gt", str(gt), "--out", str(tmp_path / "o"),
                       "--combined", str(tmp_path / "pred"))
    assert code == 2 and "is an input" in err and pred.read_text() == before
    assert run(capsys, "--pred", str(pred), "--gt", str(gt), "--out", str(tmp_path / "o"), "--min-iou", "0")[0] == 2


def test_match_polygons_is_segment_evals_matching():
    gt = list(GT_BOXES.values())
    pred = [box(10, 10, 205, 40), [[0, 0], [1, 1]], box(10, 12, 210, 40), box(10, 60, 90, 90)]
    pairs = segment_eval.match_polygons(pred, gt)
    assert [(p, g) for p, g, _ in pairs] == [(0, 0), (3, 1)]  # the 2-point polygon takes no part
    score = segment_eval.score_page("p", pred, gt)
    for threshold in segment_eval.THRESHOLDS:
        assert score.matched[str(threshold)] == sum(iou >= threshold for _, _, iou in pairs)
    assert score.mean_iou < np.mean([iou for _, _, iou in pairs])  # score_page averages in the 0-IoU pair too


def test_registered_with_a_help_that_explains(capsys):
    assert COMMANDS["seg-crops"][0] == "pipeline.seg_crops"
    with pytest.raises(SystemExit) as exit_info:
        seg_crops.main(["--help"])
    assert exit_info.value.code == 0
    text = " ".join(capsys.readouterr().out.split())
    for phrase in ("--pred", "--gt", "--min-iou", "--combined", "one-to-one", "training pages only", "htr train"):
        assert phrase in text
