"""Lexicon extension from a word list (lm/extend.py, htr lm --extra-words, the lexicon decoder)."""
from __future__ import annotations

import json
from collections import Counter

import numpy as np
import pytest

import lm.build
from lm.extend import Shape, extend_lexicon, learn_shapes, load_extension, read_word_list, save_extension
from pipeline.cli import main
from pipeline.decode import DecodeConfig, make_decoder
from test_decode import ALPHABET, BIGRAMS, INDEX, TOKENS, WORDS, one_hot, write_arpa

SURFACES = Counter({"homme": 10, "homme,": 3, "l'homme": 4, "l'arbre.": 1, "d'eau": 2, "Le": 5, "1993": 7})


def test_shapes_are_learned_from_the_training_words():
    shapes = {(s.prefix, s.suffix): s for s in learn_shapes(SURFACES, min_count=2)}
    assert set(shapes) == {("", ""), ("", ","), ("l'", ""), ("d'", "")}  # "l'arbre." seen once; numbers skipped
    assert shapes[("", "")].count == 15 and shapes[("", "")].initials is None
    assert shapes[("l'", "")].initials == frozenset("h") and shapes[("d'", "")].initials == frozenset("e")


def test_extension_applies_shapes_to_training_and_listed_words():
    shapes = [Shape("", "", 10), Shape("", ",", 3), Shape("l'", "", 4, frozenset("ha"))]
    vocabulary = {"homme", "l'", ",", "le"}
    extension = extend_lexicon(SURFACES, vocabulary, [("arbre", 50.0), ("chat", 80.0)], shapes)
    words = set(extension.words)
    assert {"arbre", "Arbre", "arbre,", "l'arbre", "L'arbre", "chat,", "Homme", "le,"} <= words
    assert "l'chat" not in words  # "l'" was only seen before h and a
    assert "homme" not in words and "l'homme" not in words  # already training surface words
    assert extension.tokens == {"arbre": 50, "Arbre": 50, "chat": 80, "Chat": 80, "Homme": 1, "Le": 1}


def test_word_lists_are_read_most_frequent_first(tmp_path):
    path = tmp_path / "list.tsv"
    path.write_text("rare\t2\ncommon\t90\n12345\t99\nmiddle\t10\n", encoding="utf-8")
    assert read_word_list(str(path), 2) == [("common", 90.0), ("middle", 10.0)]  # numbers are not words
    ranked = tmp_path / "ranked.txt"
    ranked.write_text("first\nsecond\n", encoding="utf-8")
    assert [w for w, _ in read_word_list(str(ranked), 10)] == ["first", "second"]


def test_word_list_errors_name_the_file_and_the_fix(tmp_path):
    with pytest.raises(FileNotFoundError, match="missing.tsv.*wordfreq:LANG"):
        read_word_list(str(tmp_path / "missing.tsv"), 10)
    bad = tmp_path / "bad.tsv"
    bad.write_text("word\tmany\n", encoding="utf-8")
    with pytest.raises(ValueError, match="bad.tsv: line 1"):
        read_word_list(str(bad), 10)


@pytest.fixture
def extended_lm(tmp_path):
    """A tiny LM directory (test_decode's) with an extension: 'ten' common, 'tan' rare."""
    def build(counts: dict[str, float]):
        out = tmp_path / "lm"
        out.mkdir(exist_ok=True)
        write_arpa(out / "lm.arpa", TOKENS, BIGRAMS)
        (out / "lexicon.txt").write_text("".join(f"{t}\t1\n" for t in TOKENS), encoding="utf-8")
        (out / "words.txt").write_text("".join(f"{w}\t1\n" for w in WORDS), encoding="utf-8")
        (out / "lm.json").write_text(json.dumps({"config": {"lowercase": False}}), encoding="utf-8")
        save_extension(out, "test", list(counts.items()), learn_shapes(Counter(WORDS), 1))
        return out
    return build


def ambiguous_ten_tan() -> np.ndarray:
    """'t', then 'e' or 'a' with equal probability, then 'n'."""
    logprobs = one_hot("ten")
    frames = np.flatnonzero(logprobs.argmax(axis=1) == INDEX["e"])
    logprobs[frames, INDEX["e"]] = logprobs[frames, INDEX["a"]] = np.log(0.5)
    return logprobs


@pytest.mark.parametrize("counts, expected", [({"ten": 1000, "tan": 1}, "ten"), ({"ten": 1, "tan": 1000}, "tan")])
def test_lexicon_decoder_spells_listed_words_and_prefers_frequent_ones(extended_lm, counts, expected):
    folder = extended_lm(counts)
    decoder = make_decoder(DecodeConfig(decoder="lexicon", beam=16, lm_weight=1.0), ALPHABET, 0, folder)
    assert decoder.decode(one_hot("the cat sat on ten")).text == "the cat sat on ten"
    assert decoder.decode(ambiguous_ten_tan()).text == expected
    strict = make_decoder(DecodeConfig(decoder="lexicon", beam=16, extra_lexicon=False), ALPHABET, 0, folder)
    assert strict.decode(one_hot("ten")).text.split()[0] in set(WORDS)


def test_saved_extension_round_trips(tmp_path):
    shapes = learn_shapes(SURFACES, 2)
    save_extension(tmp_path, "test", [("arbre", 50.0)], shapes)
    vocabulary = {"homme", "l'", "d'"}
    assert load_extension(tmp_path, SURFACES, vocabulary) == extend_lexicon(SURFACES, vocabulary, [("arbre", 50.0)], shapes)
    assert load_extension(tmp_path / "none", SURFACES, vocabulary) is None


def test_broken_extension_files_name_the_file_and_the_fix(tmp_path):
    save_extension(tmp_path, "test", [("arbre", 50.0)], learn_shapes(SURFACES, 2))
    (tmp_path / "extension.json").write_text("{not json", encoding="utf-8")
    with pytest.raises(ValueError, match="extension.json: not a lexicon extension.*--no-extra-lexicon"):
        load_extension(tmp_path, SURFACES, set())
    (tmp_path / "wordlist.txt").unlink()
    with pytest.raises(FileNotFoundError, match="wordlist.txt: missing.*htr lm"):
        load_extension(tmp_path, SURFACES, set())


@pytest.mark.skipif(not (lm.build.TOOLS / "lmplz").is_file(), reason="KenLM tools not built (make setup)")
def test_htr_lm_extra_words_lowers_the_dev_oov_rate(tmp_path):
    text, dev, words = tmp_path / "train.txt", tmp_path / "dev.txt", tmp_path / "list.tsv"
    text.write_text("le chat dort sur le lit.\nl'homme voit le chat.\nl'ami dort.\n" * 5, encoding="utf-8")
    dev.write_text("l'arbre voit le chien.\n", encoding="utf-8")
    words.write_text("chien\t500\narbre\t300\n", encoding="utf-8")
    out = tmp_path / "lm"
    assert main(["lm", "--text", str(text), "--out", str(out), "--dev", str(dev), "--extra-words", str(words),
                 "--shape-min-count", "1"]) == 0
    stats = json.loads((out / "lm.json").read_text())
    assert stats["dev"]["surface_oov_rate"] == pytest.approx(2 / 4)  # l'arbre, chien.
    assert stats["dev"]["extended_surface_oov_rate"] == 0.0
    assert stats["extension"]["listed_words"] == 2 and (out / "wordlist.txt").is_file()
    assert main(["lm", "--text", str(text), "--out", str(out)]) == 0  # rebuilt without: the extension goes
    assert not (out / "extension.json").exists() and not (out / "wordlist.txt").exists()
