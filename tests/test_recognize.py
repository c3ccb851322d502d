"""``htr recognize``: the log-probability cache every decoder reads."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from pipeline import recognize as recognize_module
from pipeline.logits import load_logits
from pipeline.model import ModelConfig, build_model
from pipeline.model_folder import save_model_folder
from pipeline.decoders.greedy import greedy_decode
from test_train import draw_line, write_tiny_set

ALPHABET = ["", "a", "b", "c"]
TINY = dict(height=16, mdlstm_hidden="2,3,4", mdlstm_conv="3,4", sub_height=2, mdlstm_impl="wavefront",
            crnn_conv="4,6,8", crnn_pools=3, crnn_lstm_hidden=6, crnn_lstm_layers=2)



@pytest.fixture
def model_folder(tmp_path):
    torch.manual_seed(0)
    config = ModelConfig(arch="mdlstm", **TINY)
    save_model_folder(tmp_path / "model", config, ALPHABET, build_model(config, len(ALPHABET)))
    return tmp_path / "model"


def test_cache_holds_every_readable_line_in_manifest_order(tmp_path, model_folder, capsys):
    texts = ["abc", "b", "cabca", "ab"]
    manifest = write_tiny_set(tmp_path / "lines", texts)
    (tmp_path / "lines" / "l1.png").unlink()  # a missing image: skipped, named, counted
    out = tmp_path / "out" / "dev.npz"
    code = recognize_module.main(["--model", str(model_folder), "--manifest", str(manifest), "--out", str(out),
                                  "--batch-size", "2", "--threads", "1", "--quiet"])
    assert code == 0
    captured = capsys.readouterr()
    assert "l1.png" in captured.err and "1 lines skipped" in captured.out
    cache = load_logits(out)
    assert cache.ids == ["l0", "l2", "l3"] and cache.alphabet == ALPHABET and cache.blank == 0
    for text, matrix in zip(["abc", "cabca", "ab"], cache.logprobs):
        width = draw_line(text).width  # lines are drawn 16 px high: no rescaling
        assert matrix.shape == (math.ceil(width / 8), len(ALPHABET))
        assert np.allclose(np.logaddexp.reduce(matrix, axis=1), 0, atol=1e-4)


def test_missing_model_is_a_clear_error(tmp_path, capsys):
    manifest = write_tiny_set(tmp_path / "lines", ["ab"])
    code = recognize_module.main(["--model", str(tmp_path / "none"), "--manifest", str(manifest),
                                  "--out", str(tmp_path / "x.npz"), "--quiet"])
    assert code == 1 and "model.json" in capsys.readouterr().err
    assert not (tmp_path / "x.npz").exists()


def test_greedy_decoding_merges_repeats_and_drops_blanks():
    path = [1, 1, 0, 1, 2, 2, 0, 0, 3, 3]
    logprobs = np.log(np.eye(4)[path] * 0.97 + 0.01)
    assert greedy_decode(logprobs, ALPHABET) == "aabc"
    assert greedy_decode(torch.from_numpy(logprobs), ALPHABET) == "aabc"
