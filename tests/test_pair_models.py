"""scripts/pair_models.py: two model folders read the same lines; the paired reduction of errors,
the cache of each model's outputs, and one-line errors, on tiny generated models and lines."""
from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from pipeline.model import ModelConfig, build_model
from pipeline.model_folder import save_model_folder
from script_module import load_script

ALPHABET = ["", " ", "a", "b", "c"]
TINY = dict(height=16, mdlstm_hidden="2,3,4", mdlstm_conv="3,4", sub_height=2, mdlstm_impl="wavefront")


@pytest.fixture
def pair(tmp_path, monkeypatch):
    module = load_script("pair_models")
    monkeypatch.setattr(module, "WORK", tmp_path / "work")
    monkeypatch.setattr(module, "IN_PROCESS", True)
    return module


def _manifest(root: Path, count: int = 5, writers: int = 0) -> Path:
    rng = np.random.default_rng(0)
    (root / "lines").mkdir(parents=True)
    records = []
    for number in range(count):
        image = np.full((24, 160), 235, np.uint8)
        for x in range(8, 150, 14):
            image[6:18, x:x + int(rng.integers(4, 10))] = 30
        Image.fromarray(image).save(root / "lines" / f"l{number}.png")
        records.append({"id": f"l{number}", "image": f"lines/l{number}.png", "text": ["ab c", "ba", "cab"][number % 3],
                        **({"writer": f"w{number % writers}"} if writers else {})})
    manifest = root / "manifest.jsonl"
    manifest.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
    return manifest


def _model(folder: Path, seed: int) -> Path:
    torch.manual_seed(seed)
    config = ModelConfig(arch="mdlstm", **TINY)
    save_model_folder(folder, config, ALPHABET, build_model(config, len(ALPHABET)))
    return folder


def test_the_reduction_is_the_share_of_b_errors_that_a_does_not_make(pair, tmp_path, capsys):
    manifest = _manifest(tmp_path / "data")
    a, b = _model(tmp_path / "a", 1), _model(tmp_path / "b", 2)
    out = tmp_path / "reports" / "a-vs-b.json"
    assert pair.main([str(a), str(b), "--manifest", str(manifest), "--out", str(out)]) == 0
    report = json.loads(out.read_text())
    row = report["comparisons"][0]
    errors_a, errors_b = row["a"]["char_errors"], row["b"]["char_errors"]
    assert row["a"]["chars"] == row["b"]["chars"] == 4 + 2 + 3 + 4 + 2
    assert row["a"]["lines"] == 5
    assert row["a"]["cer"] == pytest.approx(100 * errors_a / row["a"]["chars"], abs=0.01)
    assert row["cer_reduction"]["reduction"] == pytest.approx(100 * (errors_b - errors_a) / errors_b, abs=0.1)
    assert row["cer_reduction"]["low"] <= row["cer_reduction"]["reduction"] <= row["cer_reduction"]["high"]
    assert "per_line" not in json.dumps(report) and report["command"].startswith("scripts/pair_models.py")
    assert str(manifest) in capsys.readouterr().out


def test_by_writer_adds_the_intervals_from_resampling_writers(pair, tmp_path, capsys):
    manifest = _manifest(tmp_path / "data", count=6, writers=3)
    a, b = _model(tmp_path / "a", 1), _model(tmp_path / "b", 2)
    out = tmp_path / "a-vs-b.json"
    assert pair.main([str(a), str(b), "--manifest", str(manifest), "--by-writer", "--out", str(out)]) == 0
    report = json.loads(out.read_text())
    row = report["comparisons"][0]
    assert row["a"]["writers"] == 3 and len(row["a"]["cer_ci95_writers"]) == 2
    cut, by = row["cer_reduction"], row["cer_reduction_writers"]
    assert by["reduction"] == cut["reduction"] and by["low"] <= by["reduction"] <= by["high"]
    assert "resampling the 3 writers" in capsys.readouterr().out and report["command"].endswith("--by-writer")
    bare = _manifest(tmp_path / "bare")  # no writers: one line naming what is missing
    assert pair.main([str(a), str(b), "--manifest", str(bare), "--by-writer"]) == 1
    assert "name no writer" in capsys.readouterr().err


def test_a_model_against_itself_reduces_nothing(pair, tmp_path):
    manifest = _manifest(tmp_path / "data")
    a = _model(tmp_path / "a", 1)
    [row] = pair.compare(a, a, manifest, 1)
    assert row["cer_reduction"] == {"reduction": 0.0, "low": 0.0, "high": 0.0}


def test_outputs_are_reused_until_the_model_changes(pair, tmp_path, monkeypatch):
    manifest = _manifest(tmp_path / "data")
    a, b = _model(tmp_path / "a", 1), _model(tmp_path / "b", 2)
    pair.compare(a, b, manifest, 1)
    calls = []
    real_htr = pair.htr
    monkeypatch.setattr(pair, "htr", lambda args: (calls.append(args[0]), real_htr(args)))
    pair.compare(a, b, manifest, 1)
    assert calls == []  # nothing recognized or evaluated again
    future = (tmp_path / "a" / "weights.pt").stat().st_mtime + 10
    os.utime(tmp_path / "a" / "weights.pt", (future, future))
    pair.compare(a, b, manifest, 1)
    assert calls == ["recognize", "decode", "evaluate", "evaluate"]  # A again, then the pairing


def test_a_subset_is_scored_from_the_outputs_on_the_whole_manifest(pair, tmp_path, monkeypatch):
    manifest = _manifest(tmp_path / "data")
    subset = tmp_path / "data" / "subset.jsonl"
    subset.write_text("".join(manifest.read_text().splitlines(keepends=True)[1:4]), encoding="utf-8")
    a, b = _model(tmp_path / "a", 1), _model(tmp_path / "b", 2)
    out = tmp_path / "a-vs-b.json"
    assert pair.main([str(a), str(b), "--manifest", str(manifest), "--subset", str(subset), "--out", str(out)]) == 0
    whole, part = json.loads(out.read_text())["comparisons"]
    assert (whole["a"]["lines"], part["a"]["lines"]) == (5, 3)
    assert part["a"]["chars"] == 2 + 3 + 4 and part["read_within"] == str(manifest)
    # the subset's lines as read within the whole manifest: the same transcriptions, no new recognition
    hyp = dict(row.split("\t", 1) for row in (pair.WORK / pair.slug(a) / f"{pair.slug(manifest)}.tsv")
               .read_text().splitlines())
    per_line = json.loads((pair.WORK / pair.slug(a) / f"{pair.slug(manifest)}@{pair.slug(subset)}.json").read_text())
    assert {line["id"]: line["hyp"] for line in per_line["per_line"]} == {f"l{k}": hyp[f"l{k}"] for k in (1, 2, 3)}
    assert "--subset" in json.loads(out.read_text())["command"]


def test_bad_inputs_are_one_line(pair, tmp_path, capsys):
    manifest = _manifest(tmp_path / "data")
    a = _model(tmp_path / "a", 1)
    assert pair.main([str(a), str(tmp_path / "nowhere"), "--manifest", str(manifest)]) == 1
    assert "not a model folder" in capsys.readouterr().err
    assert pair.main([str(a), str(a), "--manifest", str(tmp_path / "missing.jsonl")]) == 1
    assert "no such manifest" in capsys.readouterr().err
    stranger = tmp_path / "stranger.jsonl"
    stranger.write_text(json.dumps({"id": "elsewhere", "image": "x.png", "text": "a"}) + "\n", encoding="utf-8")
    assert pair.main([str(a), str(a), "--manifest", str(manifest), "--subset", str(stranger)]) == 1
    assert "not in" in capsys.readouterr().err
