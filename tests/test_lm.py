"""``htr lm``: lexicon, word and character KenLM models, dev perplexity (lm/build.py)."""
from __future__ import annotations

import json
import math

import pytest

import lm.build
from lm.folder import read_counts
from pipeline.cli import main

CORPUS = [
    "le chat dort sur le lit.",
    "l'homme voit le chat, et le chat voit l'homme.",
    "the cat sat on the mat.",
    "the dog sat on the cat.",
] * 5

needs_tools = pytest.mark.skipif(not (lm.build.TOOLS / "lmplz").is_file() or not (lm.build.TOOLS / "build_binary").is_file(),
                                 reason="KenLM tools not built (make setup)")


@pytest.fixture
def corpus(tmp_path):
    path = tmp_path / "train.txt"
    path.write_text("\n".join(CORPUS) + "\n", encoding="utf-8")
    dev = tmp_path / "dev.txt"
    dev.write_text("le chien dort.\nthe cat sat.\n", encoding="utf-8")
    return path, dev


@needs_tools
def test_lm_builds_lexicon_models_and_dev_statistics(corpus, tmp_path, capsys):
    text, dev = corpus
    out = tmp_path / "lm"
    out.mkdir()
    (out / "tuned.json").write_text("{}")  # an earlier htr tune's: htr lm removes only what it wrote
    assert main(["lm", "--text", str(text), "--order", "3", "--out", str(out), "--dev", str(dev), "--char",
                 "--char-order", "5"]) == 0
    for name in ("lexicon.txt", "words.txt", "lm.arpa", "lm.bin", "char.arpa", "char.bin", "lm.json"):
        assert (out / name).is_file(), name
    assert (out / "tuned.json").read_text() == "{}"
    lexicon = read_counts(out / "lexicon.txt")
    assert lexicon["the"] == 4 * 5 and lexicon["l'"] == 2 * 5 and lexicon["."] == 4 * 5
    assert "homme" in lexicon and "l'homme" not in lexicon  # elision split in the LM
    assert read_counts(out / "words.txt")["l'homme."] == 5  # surface word for the lexicon decoder
    stats = json.loads((out / "lm.json").read_text())
    assert stats["discount_fallback"] is True  # a 20-line corpus needs it
    assert math.isfinite(stats["dev"]["perplexity"]) and stats["dev"]["perplexity"] > 1
    assert stats["dev"]["oov_rate"] == pytest.approx(1 / 8)  # "chien" of "le chien dort . the cat sat ."
    assert math.isfinite(stats["dev"]["char_perplexity"])
    assert "perplexity" in capsys.readouterr().out


@needs_tools
def test_lm_vocabulary_cut_and_lowercase(corpus, tmp_path):
    text, _ = corpus
    out = tmp_path / "lm"
    assert main(["lm", "--text", str(text), "--order", "2", "--out", str(out), "--max-words", "5",
                 "--lowercase"]) == 0
    lexicon = read_counts(out / "lexicon.txt")
    assert len(lexicon) == 5 and "the" in lexicon
    kept = set(lexicon)
    words = read_counts(out / "words.txt")
    assert words and all(set(lm.build.tokenize(w, True)) <= kept for w in words)


def test_lm_rejects_orders_kenlm_cannot_query(corpus, tmp_path, capsys):
    text, _ = corpus
    assert main(["lm", "--text", str(text), "--order", "7", "--out", str(tmp_path / "x")]) == 1
    assert "orders 2-6" in capsys.readouterr().err


def test_lm_names_make_setup_when_tools_are_missing(corpus, tmp_path, monkeypatch, capsys):
    text, _ = corpus
    monkeypatch.setattr(lm.build, "TOOLS", tmp_path / "no-tools")
    assert main(["lm", "--text", str(text), "--out", str(tmp_path / "x")]) == 1
    assert "make setup" in capsys.readouterr().err


def test_lm_names_a_missing_text_file(tmp_path, capsys):
    assert main(["lm", "--text", str(tmp_path / "missing.txt"), "--out", str(tmp_path / "x")]) == 1
    assert "missing.txt" in capsys.readouterr().err
