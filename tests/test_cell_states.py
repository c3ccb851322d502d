"""scripts/cell_states.py: cell-state sizes per 2D-LSTM layer, and the forget-gate bias that
keeps them bounded (the cause of CTC's long all-blank phase, reports/probes/README.md)."""
from __future__ import annotations


import torch

from pipeline.mdlstm import MDLSTM2d
from script_module import load_script
from test_train import TRAIN_TEXTS, write_tiny_set

MODEL = ["--height", "16", "--mdlstm-hidden", "2,3,4", "--mdlstm-conv", "3,4", "--sub-height", "2", "--mdlstm-impl", "cpp"]


def test_the_forget_bias_shifts_both_forget_gates_and_nothing_else():
    torch.manual_seed(3)
    plain = MDLSTM2d(4, 5)
    torch.manual_seed(3)
    shifted = MDLSTM2d(4, 5, forget_bias=-1.0)
    difference = (shifted.bias - plain.bias).detach()
    assert torch.allclose(difference[:, 5:15], torch.full((4, 10), -1.0))
    assert torch.equal(difference[:, :5], torch.zeros(4, 5)) and torch.equal(difference[:, 15:], torch.zeros(4, 10))
    assert torch.equal(shifted.weight_ih, plain.weight_ih) and torch.equal(shifted.weight_hh, plain.weight_hh)


def test_the_report_has_one_row_per_layer_and_a_negative_bias_bounds_the_states(tmp_path, capsys):
    manifest = write_tiny_set(tmp_path / "lines", TRAIN_TEXTS)
    script = load_script("cell_states")
    assert script.main(["--manifest", str(manifest), "--", *MODEL, "--mdlstm-forget-bias", "-2"]) == 0
    rows = [line.split() for line in capsys.readouterr().out.splitlines()[2:]]
    assert [row[0] for row in rows] == ["0", "1", "2"]
    for row in rows:
        assert float(row[4]) < 1.0 and float(row[5]) == 0.0  # |c| p99 below 1, nothing saturated
        assert float(row[6]) < -1.0
    assert script.main(["--manifest", str(tmp_path / "none.jsonl"), "--", *MODEL]) == 1
