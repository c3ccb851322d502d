"""scripts/finetune_bench.py: the first/second-page manifests of the two-page documents, the
greedy CER before and after a fine-tuning, and the per-run JSON and Markdown reports, on a
tiny generated model and manifest."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from pipeline.model import ModelConfig, build_model
from pipeline.model_folder import save_model_folder
from script_module import load_script

ALPHABET = ["", " ", "a", "b", "c"]
TINY = dict(height=16, mdlstm_hidden="2,3,4", mdlstm_conv="3,4", sub_height=2, mdlstm_impl="wavefront",
            dropout=0.5, dropout_where="top")


@pytest.fixture
def bench(tmp_path, monkeypatch):
    module = load_script("finetune_bench")
    monkeypatch.setattr(module, "WORK", tmp_path / "work")
    monkeypatch.setattr(module, "REPORTS", tmp_path / "reports")
    monkeypatch.setattr(module, "IN_PROCESS", True)  # htr train/recognize set torch's threads: restored after
    threads = torch.get_num_threads()
    yield module
    torch.set_num_threads(threads)


def _dev_manifest(root: Path) -> Path:
    """Two two-page documents (d1: 3 + 2 lines, d2: 2 + 1), and a one-page document."""
    rng = np.random.default_rng(0)
    (root / "dev" / "lines").mkdir(parents=True)
    records = []
    for page, count in (("d1_1", 3), ("d1_2", 2), ("d2_1", 2), ("d2_2", 1), ("solo", 2)):
        for number in range(count):
            line_id = f"{page}_l{number}"
            image = np.full((24, 160), 235, np.uint8)
            for x in range(8, 150, 14):
                image[6:18, x:x + int(rng.integers(4, 10))] = 30
            Image.fromarray(image).save(root / "dev" / "lines" / f"{line_id}.png")
            records.append({"id": line_id, "image": f"lines/{line_id}.png", "text": ["ab c", "ba", "cab"][number % 3],
                            "page": f"/pages/{page}.jpg", "writer": page.split("_")[0], "split": "dev"})
    manifest = root / "dev" / "manifest.jsonl"
    manifest.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
    return manifest


def test_first_and_second_pages_of_the_two_page_documents(bench, tmp_path):
    manifest = _dev_manifest(tmp_path)
    split = bench.split_pages(manifest, tmp_path / "out")
    assert split == {"documents": ["d1", "d2"], "first_pages": 5, "second_pages": 3}
    first = [json.loads(line) for line in (tmp_path / "out" / "first_pages.jsonl").read_text().splitlines()]
    assert [r["id"] for r in first] == ["d1_1_l0", "d1_1_l1", "d1_1_l2", "d2_1_l0", "d2_1_l1"]
    assert first[0]["image"] == "../dev/lines/d1_1_l0.png"  # relative to the new manifest
    assert all((tmp_path / "out" / r["image"]).is_file() for r in first)


def test_a_run_measures_before_and_after_and_writes_its_reports(bench, tmp_path):
    manifest = _dev_manifest(tmp_path)
    torch.manual_seed(0)
    config = ModelConfig(arch="mdlstm", **TINY)
    save_model_folder(tmp_path / "base", config, ALPHABET, build_model(config, len(ALPHABET)))
    flags = ["--max-epochs", "2", "--batch-size", "2", "--lr", "0.001"]
    # a budget of minutes that --max-epochs reaches first: a loaded machine must not cut the run short
    report = bench.bench("tiny", tmp_path / "base", 10, 1, "first", 0.0, flags, manifest)
    assert report["before"]["chars"] == report["after"]["chars"] == 4 + 2 + 4  # "ab c", "ba"; "ab c"
    assert report["training"]["epochs"] == 2 and report["training"]["lines_per_s"] > 0
    assert report["relative_change"] == pytest.approx(
        (report["after"]["cer"] - report["before"]["cer"]) / report["before"]["cer"], abs=1e-4)
    # --dropout 0 goes to htr train, which keeps it over the base folder's 0.5
    assert json.loads((tmp_path / "base" / "model.json").read_text())["config"]["dropout"] == 0.5
    trained = json.loads((tmp_path / "work" / "runs" / "tiny" / "model.json").read_text())
    assert trained["config"]["dropout"] == 0.0
    saved = json.loads((tmp_path / "reports" / "tiny.json").read_text())
    assert saved["train_flags"] == flags and saved["threads"] == 1 and "--dropout 0" in saved["command"]
    assert "--init" in saved["train_command"] and "--dev" in saved["train_command"]
    row = (tmp_path / "reports" / "tiny.md").read_text().splitlines()
    assert row[0].startswith("| run | base | flags |") and row[2].startswith("| tiny |")
    summary = (tmp_path / "reports" / "summary.md").read_text()
    assert "| tiny |" in summary and saved["command"] in summary
    # a second run reuses the base measurement and starts its training afresh
    again = bench.bench("tiny", tmp_path / "base", 10, 1, "none", None, ["--max-epochs", "1"], manifest)
    assert again["before"] == report["before"] and again["training"]["epochs"] == 1
    assert again["init"] == report["base"]


def test_heldout_trains_on_four_fifths_of_the_first_pages_and_selects_on_the_rest(bench, tmp_path):
    manifest = _dev_manifest(tmp_path)  # first pages: d1_1 3 lines, d2_1 2 lines
    bench.split_pages(manifest, tmp_path / "out")
    assert bench.hold_out(tmp_path / "out", every=2) == {"first_train": 3, "first_heldout": 2}
    read = lambda name: [json.loads(line)["id"] for line in (tmp_path / "out" / f"{name}.jsonl").read_text().splitlines()]  # noqa: E731
    assert read("first_heldout") == ["d1_1_l1", "d2_1_l1"]  # every hand in both parts, no line in both
    assert read("first_train") == ["d1_1_l0", "d1_1_l2", "d2_1_l0"]
    args = bench.train_args("base", "run", tmp_path / "out", 3, 2, "heldout", ["--lr", "1"])
    assert args[args.index("--train") + 1].endswith("first_train.jsonl")
    assert args[args.index("--dev") + 1].endswith("first_heldout.jsonl") and args[-2:] == ["--lr", "1"]
    assert "--dev" not in bench.train_args("base", "run", tmp_path / "out", 3, 2, "none", [])

    torch.manual_seed(0)
    config = ModelConfig(arch="mdlstm", **TINY)
    save_model_folder(tmp_path / "base", config, ALPHABET, build_model(config, len(ALPHABET)))
    report = bench.bench("held", tmp_path / "base", 0.5, 1, "heldout", None, ["--max-epochs", "1"], manifest)
    assert (report["train_lines"], report["heldout_lines"]) == (5, 0)  # every fifth line: none of 3 and 2
    assert "first_heldout.jsonl" in report["train_command"] and "(dev heldout)" in bench.table_row(report)
