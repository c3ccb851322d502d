"""``--line-norm``: the grey levels of a normalised line, kept in the model folder and used
wherever the model reads lines (training, recognition, ensembles)."""
from __future__ import annotations

import json

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image

from pipeline import recognize as recognize_module
from pipeline.data import LINE_NORMS, normalise_image
from pipeline.logits import load_logits
from pipeline.model import ModelConfig
from test_train import run_train, tiny  # noqa: F401 (tiny: the fixture)

QUANTUM = 1.5 / 255  # normalised lines are 8-bit images


def page(background: int, ink: int, width: int = 40) -> Image.Image:
    """A 16 px line of paper at grey ``background`` with one stroke at grey ``ink``."""
    pixels = np.full((16, width), background, dtype=np.uint8)
    pixels[4:12, 10:14] = ink
    return Image.fromarray(pixels)


@settings(max_examples=40, deadline=None)
@given(background=st.integers(120, 255), depth=st.integers(40, 120), norm=st.sampled_from(LINE_NORMS))
def test_each_normalisation_sets_the_background_and_ink_levels_it_names(background, depth, norm):
    ink = background - depth
    line = normalise_image(page(background, ink), height=16, max_width=64, norm=norm)
    paper, stroke = line[0, 0], line[6, 11]
    subtract, stretch = norm.startswith("median"), norm.endswith("peak")
    raw_paper, raw_stroke = 1 - background / 255, 1 - ink / 255
    expected_paper = 0.0 if subtract else raw_paper
    expected_stroke = raw_stroke - raw_paper if subtract else raw_stroke
    if stretch:
        expected_paper, expected_stroke = expected_paper / expected_stroke, 1.0
    assert paper == pytest.approx(expected_paper, abs=QUANTUM)
    assert stroke == pytest.approx(expected_stroke, abs=QUANTUM)


def test_an_unknown_normalisation_is_refused_by_name():
    with pytest.raises(ValueError, match="median-peak"):
        normalise_image(page(230, 30), 16, 64, norm="zscore")
    with pytest.raises(ValueError, match="line_norm"):
        ModelConfig(line_norm="zscore").check()


def test_a_model_reads_lines_with_the_normalisation_it_was_trained_with(tiny, tmp_path):
    """The model folder records --line-norm, and recognition reads lines its way: the same
    weights told another normalisation give other outputs."""
    out = tmp_path / "model"
    assert run_train(tiny, out, "--max-epochs", "1", "--line-norm", "none") == 0
    description = json.loads((out / "model.json").read_text())
    assert description["config"]["line_norm"] == "none"

    def outputs(name: str) -> list[np.ndarray]:
        argv = ["--model", str(out), "--manifest", str(tiny["dev"]), "--out", str(tmp_path / name), "--threads", "1"]
        assert recognize_module.main([*argv, "--quiet"]) == 0
        return load_logits(tmp_path / name).logprobs

    own = outputs("own.npz")
    description["config"]["line_norm"] = "median-peak"
    (out / "model.json").write_text(json.dumps(description))
    other = outputs("other.npz")
    assert any(not np.allclose(a, b) for a, b in zip(own, other))


def test_a_model_folder_naming_an_unknown_normalisation_is_one_line_naming_its_file(tiny, tmp_path, capsys):
    out = tmp_path / "model"
    assert run_train(tiny, out, "--max-epochs", "1") == 0
    description = json.loads((out / "model.json").read_text())
    description["config"]["line_norm"] = "zscore"
    (out / "model.json").write_text(json.dumps(description))
    argv = ["--model", str(out), "--manifest", str(tiny["dev"]), "--out", str(tmp_path / "x.npz"), "--quiet"]
    assert recognize_module.main(argv) == 1
    err = capsys.readouterr().err
    assert str(out / "model.json") in err and "zscore" in err and "Traceback" not in err
    assert not (tmp_path / "x.npz").exists()
