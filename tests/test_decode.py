"""Decoders, the log-probability cache and tuning (pipeline/decode.py, logits.py, tune.py).

The language models are tiny ARPA files written here, so these tests need no KenLM tools.
"""
from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from pipeline.cli import main
from pipeline.decode import DECODERS, DecodeConfig, decode_all, make_decoder, resolve_config
from pipeline.logits import SyntheticNoise, alphabet_of, load_logits, save_logits, synthetic_logprobs
from pipeline.decoders.config import default_decoder

WORDS = ["the", "cat", "sat", "on", "mat", "a", "hat", "cat,", "mat."]  # surface words
TOKENS = ["the", "cat", "sat", "on", "mat", "a", "hat", ",", "."]
BIGRAMS = [("<s>", "the"), ("the", "cat"), ("cat", "sat"), ("sat", "on"), ("on", "the"), ("the", "mat"),
           ("mat", "."), (".", "</s>"), ("cat", ","), ("a", "hat")]
ALPHABET = alphabet_of(WORDS)  # "", " ", ",", ".", letters
INDEX = {c: i for i, c in enumerate(ALPHABET)}
SETTINGS = dict(deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


def write_arpa(path: Path, unigrams: list[str], bigrams: list[tuple[str, str]] = ()) -> None:
    """A small (not normalised) ARPA model: KenLM only needs the format."""
    vocab = ["<unk>", "<s>", "</s>"] + unigrams
    uniform = -math.log10(len(vocab))
    lines = ["\\data\\", f"ngram 1={len(vocab)}"] + ([f"ngram 2={len(bigrams)}"] if bigrams else []) + ["", "\\1-grams:"]
    for word in vocab:
        logp = -99 if word == "<s>" else uniform
        lines.append(f"{logp:.4f}\t{word}" + ("\t-0.3" if bigrams and word != "</s>" else ""))
    if bigrams:
        lines += ["", "\\2-grams:"] + [f"-0.2\t{a} {b}" for a, b in bigrams]
    path.write_text("\n".join(lines + ["", "\\end\\", ""]), encoding="utf-8")


@pytest.fixture(scope="module")
def lm_dir(tmp_path_factory) -> Path:
    """What 'htr lm --char' writes, in miniature."""
    out = tmp_path_factory.mktemp("lm")
    write_arpa(out / "lm.arpa", TOKENS, BIGRAMS)
    write_arpa(out / "char.arpa", ["<sp>"] + [c for c in ALPHABET if c.strip()], [("t", "h"), ("h", "e"), ("e", "<sp>")])
    (out / "lexicon.txt").write_text("".join(f"{t}\t1\n" for t in TOKENS), encoding="utf-8")
    (out / "words.txt").write_text("".join(f"{w}\t1\n" for w in WORDS), encoding="utf-8")
    (out / "lm.json").write_text(json.dumps({"config": {"lowercase": False}}), encoding="utf-8")
    return out


@pytest.fixture(scope="module")
def decoders(lm_dir):
    return {name: make_decoder(DecodeConfig(decoder=name, beam=16, lm_weight=0.5), ALPHABET, 0, lm_dir)
            for name in DECODERS}


def one_hot(text: str, repeats: list[int] | None = None, noise: float = 0.0, seed: int = 0) -> np.ndarray:
    """Log-probs whose best path spells ``text`` (blank between characters)."""
    path = [0]
    for i, char in enumerate(text):
        path += [INDEX[char]] * (repeats[i] if repeats else 2) + [0]
    logits = np.random.default_rng(seed).normal(0, noise, (len(path), len(ALPHABET))) if noise else \
        np.zeros((len(path), len(ALPHABET)))
    logits[np.arange(len(path)), path] += 20.0
    return (logits - np.logaddexp.reduce(logits, axis=1, keepdims=True)).astype(np.float32)


def random_logprobs(seed: int, frames: int, scale: float) -> np.ndarray:
    logits = np.random.default_rng(seed).normal(0, scale, (frames, len(ALPHABET)))
    return (logits - np.logaddexp.reduce(logits, axis=1, keepdims=True)).astype(np.float32)


line_texts = st.lists(st.text(alphabet=list("acehmnost,."), min_size=1, max_size=6), max_size=5).map(" ".join)


@settings(max_examples=100, **SETTINGS)
@given(text=line_texts, data=st.data())
def test_greedy_of_a_one_hot_path_returns_that_string(decoders, text, data):
    repeats = data.draw(st.lists(st.integers(1, 3), min_size=len(text), max_size=len(text)))
    assert decoders["greedy"].decode(one_hot(text, repeats)).text == text


@settings(max_examples=40, **SETTINGS)
@given(seed=st.integers(0, 10_000), frames=st.integers(1, 40), scale=st.sampled_from([0.5, 3.0, 10.0]))
def test_strict_lexicon_decoder_only_outputs_lexicon_words(decoders, seed, frames, scale):
    hypothesis = decoders["lexicon"].decode(random_logprobs(seed, frames, scale))
    assert set(hypothesis.text.split()) <= set(WORDS)
    assert math.isfinite(hypothesis.score)


@pytest.mark.parametrize("name", DECODERS)
@settings(max_examples=8, **SETTINGS)
@given(seed=st.integers(0, 10_000), frames=st.integers(1, 30))
def test_scores_are_finite(decoders, name, seed, frames):
    hypothesis = decoders[name].decode(random_logprobs(seed, frames, 3.0))
    assert math.isfinite(hypothesis.score)
    assert all(0.0 <= c <= 1.0 for _, c in hypothesis.words)


@pytest.mark.parametrize("name", DECODERS)
def test_empty_and_all_blank_inputs_give_empty_text(decoders, name):
    empty = np.zeros((0, len(ALPHABET)), dtype=np.float32)
    blank = np.full((12, len(ALPHABET)), -30.0, dtype=np.float32)
    blank[:, 0] = 0.0
    assert decoders[name].decode(empty).text == ""
    assert decoders[name].decode(blank).text == ""


@pytest.mark.parametrize("text", ["the cat sat on the mat.", "a hat", "the cat, the mat."])
def test_decoders_agree_on_peaky_inputs(decoders, text):
    logprobs = one_hot(text, noise=1.0, seed=len(text))
    assert {name: decoders[name].decode(logprobs).text for name in DECODERS} == {name: text for name in DECODERS}


def test_lexicon_decoder_corrects_towards_the_lexicon(decoders):
    logprobs = one_hot("the cat sat on the mat.")
    wrong = INDEX["c"]  # turn "mat." into a confident "cat." (not a word) with "m" a close second
    frames = np.flatnonzero(logprobs.argmax(axis=1) == INDEX["m"])
    logprobs[frames] = -20.0
    logprobs[frames, wrong], logprobs[frames, INDEX["m"]] = -0.3, -1.4
    assert decoders["greedy"].decode(logprobs).text == "the cat sat on the cat."
    assert decoders["lexicon"].decode(logprobs).text == "the cat sat on the mat."


def test_slow_lines_are_redone_with_a_narrow_beam(lm_dir):
    config = DecodeConfig(decoder="beam-lm", beam=64, line_seconds=1e-4, token_min_logp=-50.0, beam_token=13)
    decoder = make_decoder(config, ALPHABET, 0, lm_dir)
    hypothesis = decoder.decode(random_logprobs(1, 300, 0.1))  # flat: the slow path
    assert hypothesis.fallback and math.isfinite(hypothesis.score)


def test_parallel_decoding_keeps_order_and_results(lm_dir):
    arrays = [one_hot(text, noise=1.0, seed=i) for i, text in enumerate(["the cat", "a hat", "on the mat."] * 4)]
    config = DecodeConfig(decoder="lexicon", beam=8)
    serial = decode_all(arrays, ALPHABET, 0, config, lm_dir, jobs=1, progress=False, batch=2)
    parallel = decode_all(arrays, ALPHABET, 0, config, lm_dir, jobs=2, progress=False, batch=2)
    assert [h.text for h in parallel] == [h.text for h in serial] == ["the cat", "a hat", "on the mat."] * 4


def test_logit_cache_round_trip_and_errors(tmp_path):
    arrays = [one_hot("the cat"), np.zeros((0, len(ALPHABET)), np.float32)]
    path = tmp_path / "dev.npz"
    save_logits(path, ["l1", "l2"], arrays, ALPHABET)
    cache = load_logits(path)
    assert cache.ids == ["l1", "l2"] and cache.alphabet == ALPHABET and cache.blank == 0
    assert np.array_equal(cache.logprobs[0], arrays[0]) and cache.logprobs[1].shape == (0, len(ALPHABET))
    with pytest.raises(ValueError, match="blank"):
        save_logits(tmp_path / "bad.npz", ["l1"], arrays[:1], ["x"] + ALPHABET[1:])
    (tmp_path / "junk.npz").write_bytes(b"not a zip file")
    with pytest.raises(ValueError, match="junk.npz"):
        load_logits(tmp_path / "junk.npz")


def test_synthetic_posteriors_are_log_probabilities():
    rng = np.random.default_rng(0)
    logprobs = synthetic_logprobs("the cat", ALPHABET, rng, SyntheticNoise(confusion=0.0, flat=0.0))
    assert np.allclose(np.exp(logprobs).sum(axis=1), 1.0, atol=1e-4)
    assert make_decoder(DecodeConfig(), ALPHABET, 0, None).decode(logprobs).text == "the cat"


def test_decode_and_tune_commands(lm_dir, tmp_path, capsys):
    texts = ["the cat sat", "a hat", "on the mat."]
    logits = tmp_path / "dev.npz"
    save_logits(logits, ["a", "b", "c"], [one_hot(t, noise=1.0, seed=i) for i, t in enumerate(texts)], ALPHABET)
    refs = tmp_path / "refs.tsv"
    refs.write_text("".join(f"{i}\t{t}\n" for i, t in zip("abc", texts)), encoding="utf-8")
    for name in DECODERS:
        out = tmp_path / f"{name}.tsv"
        assert main(["decode", "--logits", str(logits), "--decoder", name, "--lm", str(lm_dir), "--out", str(out),
                     "--beam", "8", "--confidences"]) == 0
        assert out.read_text(encoding="utf-8").splitlines() == [f"{i}\t{t}" for i, t in zip("abc", texts)]
        rows = [json.loads(line) for line in (tmp_path / f"{name}.conf.jsonl").read_text().splitlines()]
        assert [r["id"] for r in rows] == list("abc") and all(0 < r["confidence"] <= 1 for r in rows)
    tuned_file = tmp_path / "tuned.json"
    assert main(["tune", "--logits", str(logits), "--refs", str(refs), "--lm", str(lm_dir), "--decoder", "lexicon",
                 "--weights", "0.5,2", "--bonuses", "0,1", "--blank-penalties", "0,1", "--beam", "8",
                 "--out", str(tuned_file)]) == 0
    tuned = json.loads(tuned_file.read_text())["lexicon"]
    assert tuned["wer"] == 0.0 and tuned["lm_weight"] in (0.5, 2.0) and tuned["blank_penalty"] in (0.0, 1.0)
    assert {t["blank_penalty"] for t in tuned["tried"]} == {0.0, 1.0}
    assert not (lm_dir / "tuned.json").exists()  # the LM folder is left as htr lm wrote it
    assert main(["tune", "--logits", str(logits), "--refs", str(refs), "--lm", str(lm_dir), "--decoder", "char-lm",
                 "beam-lm", "--weights", "0.5", "--bonuses", "0", "--beam", "8", "--out", str(tuned_file)]) == 0
    assert set(json.loads(tuned_file.read_text())) == {"lexicon", "char-lm", "beam-lm"}  # one entry each, kept
    args = type("Args", (), {"decoder": "lexicon", **{k: None for k in DecodeConfig.__dataclass_fields__ if k != "decoder"}})
    resolved = resolve_config(args, lm_dir, tuned_file)
    assert (resolved.lm_weight, resolved.blank_penalty) == (tuned["lm_weight"], tuned["blank_penalty"])


def test_decode_reads_the_tuned_file_else_an_old_lm_folders_tuned_json(lm_dir, tmp_path, capsys):
    logits = tmp_path / "dev.npz"
    save_logits(logits, ["a"], [one_hot("a hat")], ALPHABET)
    old = tmp_path / "old-lm"  # an LM folder from before tuned weights had their own file
    old.mkdir()
    for item in lm_dir.iterdir():
        (old / item.name).symlink_to(item)
    (old / "tuned.json").write_text(json.dumps({"lexicon": {"lm_weight": 1.75, "word_bonus": -0.5}}))
    tuned = tmp_path / "tuned.json"
    tuned.write_text(json.dumps({"lexicon": {"lm_weight": 0.25, "word_bonus": 2.0}}))
    decode = ["decode", "--logits", str(logits), "--decoder", "lexicon", "--beam", "8", "--out", str(tmp_path / "h.tsv")]
    assert main([*decode, "--lm", str(old)]) == 0
    assert f"lm_weight 1.75, word_bonus -0.5, blank_penalty 0.0; tuned weights {old / 'tuned.json'}" in capsys.readouterr().out
    assert main([*decode, "--lm", str(old), "--tuned", str(tuned)]) == 0
    assert "lm_weight 0.25, word_bonus 2.0, blank_penalty 0.0" in capsys.readouterr().out
    assert main([*decode, "--lm", str(lm_dir), "--tuned", str(tmp_path / "none.json")]) == 1
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "none.json: tuned weights not found" in err and "htr tune" in err


@pytest.mark.parametrize("name", ["greedy", "beam", "char-lm"])
def test_a_blank_penalty_restores_a_character_the_blank_outweighs(lm_dir, name):
    """The 'a' of "cat" has one frame where the blank is more likely (0.6 against 0.4): every
    search drops it; with the blank's log-probability lowered by 1 it is read.  The word
    confidences still come from the network's posteriors, not from the penalised ones."""
    logprobs = one_hot("the cat", repeats=[2, 2, 2, 2, 2, 1, 2])
    weak = int(np.flatnonzero(logprobs.argmax(axis=1) == INDEX["a"])[0])
    logprobs[weak] = np.log(1e-6)
    logprobs[weak, 0], logprobs[weak, INDEX["a"]] = np.log(0.6), np.log(0.4)

    def read(penalty: float):
        config = DecodeConfig(decoder=name, beam=16, lm_weight=0.0, blank_penalty=penalty)
        return make_decoder(config, ALPHABET, 0, lm_dir).decode(logprobs)

    assert read(0.0).text == "the ct"
    restored = read(1.0)
    assert restored.text == "the cat"
    if name != "beam":  # pyctcdecode gives its own word spans
        cat = dict(restored.words)["cat"]
        assert cat == pytest.approx((2 + 1 + 0.6 + 1 + 2) / 7, abs=1e-3)  # c c _ a _ t t: 0.6 is the blank's


def test_decode_explains_a_missing_lm(tmp_path, capsys):
    logits = tmp_path / "dev.npz"
    save_logits(logits, ["a"], [one_hot("a hat")], ALPHABET)
    assert main(["decode", "--logits", str(logits), "--decoder", "lexicon", "--out", str(tmp_path / "h.tsv")]) == 1
    assert "--lm" in capsys.readouterr().err
    assert main(["decode", "--logits", str(logits), "--decoder", "lexicon", "--lm", str(tmp_path),
                 "--out", str(tmp_path / "h.tsv")]) == 1
    assert "htr lm" in capsys.readouterr().err


def test_the_default_decoder_follows_what_the_lm_folder_holds(lm_dir, tmp_path):
    assert default_decoder(None) == "greedy"
    assert default_decoder(lm_dir) == "char-lm"  # it has a character n-gram (char.arpa)
    word_only = tmp_path / "word-only"
    word_only.mkdir()
    for name in ("lm.arpa", "lexicon.txt", "words.txt", "lm.json"):
        (word_only / name).write_bytes((lm_dir / name).read_bytes())
    assert default_decoder(word_only) == "lexicon"


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(seed=st.integers(0, 10_000), frames=st.integers(1, 30))
def test_char_lm_nbest_is_distinct_texts_best_first_led_by_the_decoded_text(decoders, seed, frames):
    logprobs = random_logprobs(seed, frames, 2.0)
    nbest = decoders["char-lm"].nbest(logprobs)
    texts, scores = [t for t, _ in nbest], [s for _, s in nbest]
    assert len(set(texts)) == len(texts) and scores == sorted(scores, reverse=True)
    assert texts[0] == decoders["char-lm"].decode(logprobs).text


@pytest.mark.parametrize("decoder, model", [("lexicon", "lm.arpa"), ("beam-lm", "lm.arpa"), ("char-lm", "char.arpa")])
def test_an_unreadable_model_file_is_one_message_naming_it(lm_dir, tmp_path, capsys, decoder, model):
    broken = tmp_path / "lm"
    broken.mkdir()
    for name in ("lm.arpa", "char.arpa", "lexicon.txt", "words.txt", "lm.json"):
        (broken / name).write_bytes((lm_dir / name).read_bytes())
    (broken / model).write_text("not an ARPA file\n")
    logits = tmp_path / "dev.npz"
    save_logits(logits, ["a", "b"], [one_hot("a hat"), one_hot("the cat")], ALPHABET)
    for jobs in ("1", "2"):
        assert main(["decode", "--logits", str(logits), "--decoder", decoder, "--lm", str(broken),
                     "--out", str(tmp_path / "h.tsv"), "--jobs", jobs]) == 1
        err = capsys.readouterr().err
        assert f"{broken / model}: cannot be read as a KenLM model" in err and "htr lm" in err
        assert "Traceback" not in err and not (tmp_path / "h.tsv").exists()
