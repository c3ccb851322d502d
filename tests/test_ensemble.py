"""``htr ensemble``: model folders combined into one folder that every reader takes as a model."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from pipeline import recognize as recognize_module
from pipeline.finetune import initial_model
from pipeline.folders import MODEL_JSON, WEIGHTS, model_files
from pipeline.logits import load_logits
from pipeline.model import ModelConfig, build_model
from pipeline.model_folder import load_model_folder, main as ensemble_main, save_model_folder
from test_train import write_tiny_set

ALPHABET = ["", "a", "b", "c"]
TINY = dict(height=16, crnn_conv="4,6,8", crnn_pools=3, crnn_lstm_hidden=6, crnn_lstm_layers=1)


def save_crnn(folder, seed, alphabet=ALPHABET, **changes):
    torch.manual_seed(seed)
    config = ModelConfig(arch="crnn", **{**TINY, **changes})
    model = build_model(config, len(alphabet))
    save_model_folder(folder, config, alphabet, model)
    return model.eval()


def reordered_copy(model, folder, order):
    """The same network with its outputs in another order: ``alphabet[k] = ALPHABET[order[k]]``."""
    state = dict(model.state_dict())
    state["output.weight"], state["output.bias"] = state["output.weight"][order], state["output.bias"][order]
    config = ModelConfig(arch="crnn", **TINY)
    copy = build_model(config, len(ALPHABET))
    copy.load_state_dict(state)
    save_model_folder(folder, config, [ALPHABET[k] for k in order], copy)


def batch(seed=1, widths=(40, 24)):
    generator = torch.Generator().manual_seed(seed)
    return torch.rand(len(widths), 1, 16, max(widths), generator=generator), torch.tensor(widths)


def test_ensemble_output_is_the_renormalised_mean_of_its_members(tmp_path):
    first = save_crnn(tmp_path / "one", seed=0)
    second = save_crnn(tmp_path / "two", seed=1)
    assert ensemble_main([str(tmp_path / "one"), str(tmp_path / "two"), "--out", str(tmp_path / "ens")]) == 0
    model, config, alphabet = load_model_folder(tmp_path / "ens")
    images, widths = batch()
    with torch.no_grad():
        got, lengths = model(images, widths)
        expected = F.log_softmax((first(images, widths)[0] + second(images, widths)[0]) / 2, dim=-1)
    assert alphabet == ALPHABET and config.height == 16
    assert torch.allclose(got, expected, atol=1e-5)
    assert lengths.tolist() == [5, 3]
    assert torch.allclose(got.exp().sum(-1), torch.ones(got.shape[:2]), atol=1e-5)


def test_members_with_reordered_alphabets_are_aligned_by_symbol(tmp_path):
    """A model and the same network with its outputs permuted agree exactly: their ensemble is
    the model itself, which it is only if each member's outputs are matched by symbol."""
    model = save_crnn(tmp_path / "plain", seed=3)
    reordered_copy(model, tmp_path / "shuffled", [0, 3, 1, 2])
    assert ensemble_main([str(tmp_path / "plain"), str(tmp_path / "shuffled"), "--out", str(tmp_path / "ens")]) == 0
    ensemble, _, alphabet = load_model_folder(tmp_path / "ens")
    images, widths = batch(seed=4)
    with torch.no_grad():
        assert torch.allclose(ensemble(images, widths)[0], model(images, widths)[0], atol=1e-5)
    assert alphabet == ALPHABET


@pytest.mark.parametrize("change, words", [
    (dict(height=32), "height 32"),
    (dict(line_norm="none"), "line_norm none"),
    (dict(crnn_pools=2), "frames"),
    (dict(alphabet=["", "a", "b", "d"]), "alphabet"),
])
def test_members_that_cannot_be_averaged_are_named_and_nothing_is_written(tmp_path, capsys, change, words):
    save_crnn(tmp_path / "one", seed=0)
    alphabet = change.pop("alphabet", ALPHABET)
    save_crnn(tmp_path / "odd", seed=1, alphabet=alphabet, **change)
    code = ensemble_main([str(tmp_path / "one"), str(tmp_path / "odd"), "--out", str(tmp_path / "ens")])
    err = capsys.readouterr().err
    assert code == 1 and str(tmp_path / "odd") in err and words in err
    assert not (tmp_path / "ens").exists()


def test_one_member_or_a_missing_one_is_refused(tmp_path, capsys):
    save_crnn(tmp_path / "one", seed=0)
    assert ensemble_main([str(tmp_path / "one"), "--out", str(tmp_path / "ens")]) == 1
    assert "at least two" in capsys.readouterr().err
    assert ensemble_main([str(tmp_path / "one"), str(tmp_path / "gone"), "--out", str(tmp_path / "ens")]) == 1
    assert str(tmp_path / "gone" / MODEL_JSON) in capsys.readouterr().err


def test_a_model_folder_turned_ensemble_keeps_no_stale_weights(tmp_path):
    save_crnn(tmp_path / "one", seed=0)
    save_crnn(tmp_path / "two", seed=1)
    save_crnn(tmp_path / "default", seed=2)
    assert ensemble_main([str(tmp_path / "one"), str(tmp_path / "two"), "--out", str(tmp_path / "default")]) == 0
    assert not (tmp_path / "default" / WEIGHTS).exists()
    description = json.loads((tmp_path / "default" / MODEL_JSON).read_text(encoding="utf-8"))
    assert description["ensemble"] == ["one", "two"] and set(description["members"]) == {"one", "two"}
    # what htr transcribe compares its outputs' age with: every member's files
    assert set(model_files(tmp_path / "default")) == {tmp_path / "default" / MODEL_JSON} | {
        tmp_path / "default" / name / file for name in ("one", "two") for file in (MODEL_JSON, WEIGHTS)}


def test_recognize_reads_an_ensemble_like_a_model(tmp_path):
    save_crnn(tmp_path / "one", seed=0)
    save_crnn(tmp_path / "two", seed=1)
    ensemble_main([str(tmp_path / "one"), str(tmp_path / "two"), "--out", str(tmp_path / "ens")])
    manifest = write_tiny_set(tmp_path / "lines", ["abc", "cab"])
    out = tmp_path / "dev.npz"
    assert recognize_module.main(["--model", str(tmp_path / "ens"), "--manifest", str(manifest), "--out", str(out),
                                  "--threads", "1", "--quiet"]) == 0
    cache = load_logits(out)
    assert cache.ids == ["l0", "l1"] and cache.alphabet == ALPHABET
    assert all(np.allclose(np.logaddexp.reduce(m, axis=1), 0, atol=1e-4) for m in cache.logprobs)


def test_fine_tuning_an_ensemble_starts_from_its_first_member(tmp_path, capsys):
    first = save_crnn(tmp_path / "one", seed=0)
    save_crnn(tmp_path / "two", seed=1)
    ensemble_main([str(tmp_path / "one"), str(tmp_path / "two"), "--out", str(tmp_path / "ens")])
    start = initial_model(tmp_path / "ens", ["abc"], seed=0)
    assert "fine-tuning its first member" in capsys.readouterr().err
    assert start.alphabet == ALPHABET and start.added == []
    assert all(torch.equal(start.state[key], value) for key, value in first.state_dict().items())


def test_rewriting_an_ensemble_drops_the_members_it_leaves_out(tmp_path):
    for seed, name in enumerate(("one", "two", "three")):
        save_crnn(tmp_path / name, seed=seed)
    assert ensemble_main([str(tmp_path / "one"), str(tmp_path / "two"), "--out", str(tmp_path / "ens")]) == 0
    assert ensemble_main([str(tmp_path / "one"), str(tmp_path / "three"), "--out", str(tmp_path / "ens")]) == 0
    assert sorted(p.name for p in (tmp_path / "ens").iterdir()) == [MODEL_JSON, "one", "three"]
    load_model_folder(tmp_path / "ens")


def test_ensemble_probe_scores_each_cache_and_each_combination(tmp_path, capsys):
    import importlib.util
    from pathlib import Path
    from pipeline.logits import save_logits
    spec = importlib.util.spec_from_file_location("ensemble_probe", Path(__file__).parents[1] / "scripts" / "ensemble_probe.py")
    probe = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(probe)
    path = [1, 0, 2, 2, 0]  # "ab" in ALPHABET's order
    right = np.log(np.eye(4)[path] * 0.9 + 0.025)
    wrong = np.log(np.eye(4)[[3, 0, 2, 2, 0]] * 0.6 + 0.1)  # "cb", less sure
    order = [0, 3, 1, 2]  # the second cache lists its columns as "", c, a, b
    save_logits(tmp_path / "a.npz", ["l0"], [right], ALPHABET)
    save_logits(tmp_path / "b.npz", ["l0"], [wrong[:, order]], [ALPHABET[k] for k in order])
    (tmp_path / "refs.tsv").write_text("l0\tab\n", encoding="utf-8")
    assert probe.main(["--refs", str(tmp_path / "refs.tsv"), str(tmp_path / "a.npz"), str(tmp_path / "b.npz")]) == 0
    rows = [row.split(" | ") for row in capsys.readouterr().out.splitlines()[2:]]
    assert [(row[1], row[2]) for row in rows] == [("alone", "0.00"), ("alone", "50.00"),
                                                  ("mean log-prob", "0.00"), ("mean prob", "0.00")]
    save_logits(tmp_path / "c.npz", ["other"], [right], ALPHABET)
    assert probe.main(["--refs", str(tmp_path / "refs.tsv"), str(tmp_path / "a.npz"), str(tmp_path / "c.npz")]) == 1
    assert "other line ids" in capsys.readouterr().err


def test_ensemble_probe_weighs_the_first_cache_and_checks_the_weight_on_held_out_writers(tmp_path, capsys):
    import importlib.util
    from pathlib import Path
    from pipeline.logits import save_logits
    spec = importlib.util.spec_from_file_location("ensemble_probe", Path(__file__).parents[1] / "scripts" / "ensemble_probe.py")
    probe = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(probe)
    right = np.log(np.eye(4)[[1, 0, 2, 2, 0]] * 0.9 + 0.025)  # "ab"
    wrong = np.log(np.eye(4)[[3, 0, 2, 2, 0]] * 0.6 + 0.1)  # "cb", less sure
    save_logits(tmp_path / "a.npz", ["l0", "l1"], [right, wrong], ALPHABET)
    save_logits(tmp_path / "b.npz", ["l0", "l1"], [wrong, right], ALPHABET)
    manifest = tmp_path / "refs.jsonl"
    manifest.write_text("".join(json.dumps({"id": i, "image": f"{i}.png", "text": "ab", "writer": w}) + "\n"
                                for i, w in (("l0", "w0"), ("l1", "w1"))), encoding="utf-8")
    caches = [str(tmp_path / "a.npz"), str(tmp_path / "b.npz")]
    assert probe.main(["--refs", str(manifest), "--first-weights", "0,1,9", *caches]) == 0
    out = capsys.readouterr().out
    # weight 0: b alone (l0 wrong); 1: the plain mean (both right); 9: nearly a alone (l1 wrong)
    assert "| 0 | 25.00 |" in out and "| 1 | 0.00 |" in out and "| 9 | 25.00 |" in out
    # w0 held out, weights 0 and 1 tie on l1 and the first listed (0) then misreads l0: 25.00, worse than weight 1 on all
    assert "(2 writers, weights chosen: 0, 1): CER 25.00" in out
    assert probe.main(["--refs", str(manifest), "--first-weights", "1,0,9", *caches]) == 0
    assert "(2 writers, weights chosen: 1): CER 0.00" in capsys.readouterr().out
    (tmp_path / "refs.tsv").write_text("l0\tab\nl1\tab\n", encoding="utf-8")
    assert probe.main(["--refs", str(tmp_path / "refs.tsv"), "--first-weights", "1,2", *caches]) == 1
    assert "needs a manifest" in capsys.readouterr().err
    assert probe.main(["--refs", str(manifest), "--first-weights", "1,x", *caches]) == 1
    assert "--first-weights 1,x: comma-separated numbers" in capsys.readouterr().err
    manifest.write_text(json.dumps({"id": "l0", "image": "l0.png", "text": "ab", "writer": "w0"}) + "\n", encoding="utf-8")
    assert probe.main(["--refs", str(manifest), "--first-weights", "1,2", *caches]) == 1
    assert "1 lines are not there or name no writer (e.g. l1)" in capsys.readouterr().err


def test_a_malformed_ensemble_description_is_one_clear_error(tmp_path):
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / MODEL_JSON).write_text(json.dumps({"ensemble": [1, None]}))
    with pytest.raises(FileNotFoundError, match="weights.pt: missing"):
        load_model_folder(tmp_path / "bad")
    (tmp_path / "bad" / MODEL_JSON).write_text(json.dumps({"ensemble": ["gone", "also-gone"]}))
    with pytest.raises(FileNotFoundError, match="gone/model.json: missing"):
        load_model_folder(tmp_path / "bad")
