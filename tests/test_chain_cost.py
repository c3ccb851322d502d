"""scripts/chain_cost.py: the training cost of chained probes, as run and up to the kept epochs."""
from __future__ import annotations

import json

import pytest

from script_module import load_script


@pytest.fixture
def chain_cost(tmp_path, monkeypatch):
    module = load_script("chain_cost")
    monkeypatch.setattr(module.probe, "REPORTS", tmp_path)
    return module


def recorded(reports, name: str, cers: list[float], minutes_per_epoch: float) -> None:
    """A probe record as scripts/probe.py writes it: one row per epoch, cumulative CPU-minutes."""
    rows = ["epoch,dev_cer,train_loss,lines_per_s,cpu_minutes"]
    rows += [f"{k + 1},{cer},1.0,20.0,{(k + 1) * minutes_per_epoch}" for k, cer in enumerate(cers)]
    (reports / f"{name}.csv").write_text("\n".join(rows) + "\n")
    (reports / f"{name}.json").write_text(json.dumps({"name": name, "flags": [], "threads": 1}))


def test_a_shared_pretraining_counts_once_and_kept_epochs_bound_the_cost(chain_cost, tmp_path, capsys):
    recorded(tmp_path, "pretrain", [80, 60, 65], minutes_per_epoch=10)   # best at epoch 2: 20 of 30 min
    recorded(tmp_path, "big", [30, 20, 15, 16], minutes_per_epoch=100)   # best at 3: 300 of 400
    recorded(tmp_path, "small", [40, 30], minutes_per_epoch=50)          # best at 2: 100 of 100
    assert chain_cost.main(["--cores", "2", "--chain", "pretrain", "big", "--chain", "pretrain", "small"]) == 0
    out = capsys.readouterr().out
    assert "| 1 | big | 4 | 3 (15.00) | 400.0 | 300.0 |" in out
    assert "| 1 | **chain** | | | 430.0 | 320.0 |" in out
    # 530 / 420 minutes in all with the pretraining once; the longest chain (430 / 320) is longer
    # than half the total (265 / 210), so it bounds the hours on two cores
    assert "530 CPU-minutes as run, 420 to the kept epochs" in out
    assert "7.17 hours as run, 5.33 hours to the kept epochs" in out


def test_a_named_epoch_replaces_the_best_one(chain_cost, tmp_path, capsys):
    recorded(tmp_path, "big", [30, 20, 15, 16], minutes_per_epoch=100)
    assert chain_cost.main(["--cores", "1", "--chain", "big@2"]) == 0
    out = capsys.readouterr().out
    assert "| 1 | big | 4 | 2 (20.00) | 400.0 | 200.0 |" in out
    assert "6.67 hours as run, 3.33 hours to the kept epochs" in out


@pytest.mark.parametrize("spec, message", [
    ("missing", "missing: no "),
    ("big@9", "big recorded epochs 1-4, not 9"),
    ("big@x", "the kept epoch after @ must be a positive whole number"),
    ("big@2 --chain big", "big: named with two kept epochs (2 and 3)"),
])
def test_a_bad_stage_is_named_without_a_traceback(chain_cost, tmp_path, capsys, spec, message):
    recorded(tmp_path, "big", [30, 20, 15, 16], minutes_per_epoch=100)
    assert chain_cost.main(["--chain", *spec.split()]) == 1
    assert message in capsys.readouterr().err
