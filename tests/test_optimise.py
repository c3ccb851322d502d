"""The learning-rate warm-up (``--lr-warmup``) and the optimiser helpers of ``htr train``."""
from __future__ import annotations

import json

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from pipeline.optimise import scaled_rate, warmup_factor
from test_train import run_train, tiny  # noqa: F401 (tiny: the fixture)


@given(warmup=st.integers(0, 500), update=st.integers(0, 2000))
def test_warm_up_is_a_linear_ramp_to_the_scheduled_rate(warmup, update):
    factor = warmup_factor(update, warmup)
    assert 0 < factor <= 1 and factor <= warmup_factor(update + 1, warmup)
    if update + 1 >= warmup:
        assert factor == 1
    else:
        assert factor == pytest.approx((update + 1) / warmup)


def test_a_scaled_rate_is_taken_off_again_even_after_an_error():
    optimizer = torch.optim.Adam([torch.nn.Parameter(torch.zeros(2))], lr=0.01)
    with scaled_rate(optimizer, 0.25):
        assert optimizer.param_groups[0]["lr"] == pytest.approx(0.0025)
    assert optimizer.param_groups[0]["lr"] == 0.01
    with pytest.raises(RuntimeError), scaled_rate(optimizer, 0.5):
        raise RuntimeError("a failed step")
    assert optimizer.param_groups[0]["lr"] == 0.01


def test_warm_up_shrinks_the_first_updates_and_leaves_the_logged_rate_alone(tiny, tmp_path):
    """Adam moves each weight by about the rate per update: over a first epoch of 3 updates,
    a warm-up of 1000 updates moves the weights by about a thousandth as far; the rate in
    the metrics is still the scheduled one."""
    def weights(name: str, *flags: str) -> dict:
        assert run_train(tiny, tmp_path / name, "--max-epochs", "1", "--lr", "0.01", *flags) == 0
        return torch.load(tmp_path / name / "last.pt", weights_only=False)["model"]

    start, plain, warm = weights("start", "--lr", "0"), weights("plain"), weights("warm", "--lr-warmup", "1000")
    moved = lambda after: sum(float((after[k] - start[k]).norm()) for k in start)  # noqa: E731
    assert 0 < moved(warm) < 0.05 * moved(plain)
    assert json.loads((tmp_path / "warm" / "metrics.json").read_text())[0]["lr"] == 0.01


def test_a_negative_warm_up_is_one_line(tiny, tmp_path, capsys):
    assert run_train(tiny, tmp_path / "model", "--lr-warmup", "-3") == 1
    err = capsys.readouterr().err
    assert "--lr-warmup -3" in err and "Traceback" not in err
