"""``htr train --average-from E``: the kept model is the mean of the weights at the end of
epochs E, E+1, ...; batch-norm statistics are the averaged network's own; the average
survives a stop and resume exactly.  Tiny generated lines (tests/test_train.py's glyphs)."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from common.skips import SkipLog
from pipeline import train as train_module
from pipeline.averaging import WeightAverage, bn_sample
from pipeline.data import LineDataset, load_lines
from pipeline.model import ModelConfig, build_model
from test_train import TINY_MODEL, straight_and_split, strip_timing, write_tiny_set

TEXTS = ["ab", "ca", "bca", "abc", "cab", "ba", "acb", "cc"]


@pytest.fixture
def lines(tmp_path: Path) -> dict:
    return {"train": write_tiny_set(tmp_path / "train", TEXTS), "dev": write_tiny_set(tmp_path / "dev", TEXTS[:3])}


def train(lines: dict, out: Path, *extra: str) -> int:
    return train_module.main(["--train", str(lines["train"]), "--dev", str(lines["dev"]), "--out", str(out),
                              "--batch-size", "3", "--no-progress", "--arch", "crnn", "--lr", "0.01",
                              *TINY_MODEL, *extra])


def last(out: Path) -> dict:
    return torch.load(out / "last.pt", weights_only=False)


def test_the_average_is_the_mean_of_the_epochs_weights_from_the_first_averaged_epoch(lines, tmp_path):
    out = tmp_path / "run"
    assert train(lines, out, "--max-epochs", "1", "--average-from", "2") == 0
    assert last(out)["average"]["n_averaged"] == 0  # epoch 1 is before the average starts
    snapshots = []
    for epochs in (2, 3):
        assert train_module.main(["--resume", "--out", str(out), "--max-epochs", str(epochs)]) == 0
        snapshots.append(last(out)["model"])
    average = last(out)["average"]
    assert int(average["n_averaged"]) == 2
    for name, tensor in snapshots[0].items():
        if tensor.is_floating_point() and "running" not in name:
            expected = (tensor + snapshots[1][name]) / 2
            assert torch.allclose(average[f"module.{name}"], expected, atol=1e-6), name
    metrics = json.loads((out / "metrics.json").read_text())
    assert [row.get("averaged") for row in metrics] == [0, 1, 2]
    assert "averaged" in (out / "metrics.csv").read_text().splitlines()[0]


def test_a_stopped_averaging_run_resumes_exactly(lines, tmp_path):
    flags = ["--average-from", "1", "--dropout-where", "all", "--augment"]
    straight, split = straight_and_split(lambda out, *more: train(lines, out, *more), tmp_path, 2, 3, flags)
    for name, tensor in straight["average"].items():
        assert torch.equal(tensor, split["average"][name]), name
    assert strip_timing(straight["progress"]["metrics"]) == strip_timing(split["progress"]["metrics"])


def test_the_kept_model_is_the_average_with_its_own_batch_norm_statistics(lines, tmp_path):
    out = tmp_path / "run"
    assert train(lines, out, "--max-epochs", "1", "--average-from", "1") == 0  # a first epoch is always kept
    saved, state = torch.load(out / "weights.pt", weights_only=True), last(out)
    for name, tensor in saved.items():
        assert torch.equal(tensor, state["average"][f"module.{name}"]), name
    means = [name for name in saved if name.endswith("running_mean")]
    assert means and all(not torch.equal(saved[name], state["model"][name]) for name in means)


def test_batch_norm_statistics_are_re_estimated_on_the_sampled_lines(lines):
    config = ModelConfig(arch="crnn", height=16, crnn_conv="4,6,8", crnn_pools=3, crnn_lstm_hidden=6, crnn_lstm_layers=2)
    model = build_model(config, 4)
    dataset = LineDataset(load_lines(lines["train"], ["", "a", "b", "c"], 16, 512, None, SkipLog()), 16, 512)
    average = WeightAverage(model)
    average.update(model, dataset, 3, torch.device("cpu"))
    norm = next(module for module in average.model.modules() if isinstance(module, torch.nn.BatchNorm2d))
    assert int(norm.num_batches_tracked) > 0 and not torch.allclose(norm.running_var, torch.ones_like(norm.running_var))
    assert average.count == 1


@pytest.mark.parametrize("count, limit", [(5, 10), (10, 10), (4505, 1024), (1025, 1024)])
def test_the_batch_norm_sample_is_spread_and_within_range(count, limit):
    sample = bn_sample(count, limit)
    assert len(sample) == min(count, limit) and len(set(sample)) == len(sample)
    assert sample == sorted(sample) and 0 <= sample[0] and sample[-1] < count


def test_a_negative_first_epoch_is_refused_by_name(lines, tmp_path, capsys):
    assert train(lines, tmp_path / "run", "--max-epochs", "1", "--average-from", "-2") == 1
    assert "--average-from -2" in capsys.readouterr().err


def test_averaging_can_start_when_a_plain_run_is_resumed(lines, tmp_path):
    out = tmp_path / "run"
    assert train(lines, out, "--max-epochs", "1") == 0
    assert train_module.main(["--resume", "--out", str(out), "--max-epochs", "2", "--average-from", "2"]) == 0
    assert int(last(out)["average"]["n_averaged"]) == 1
    header, *rows = (out / "metrics.csv").read_text().splitlines()
    assert header.endswith(",averaged") and len(rows) == 2 and rows[0].endswith(",") and rows[1].endswith(",1")
