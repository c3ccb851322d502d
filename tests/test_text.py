"""Normalisation, tokenisation and error rates (lm/text.py, pipeline/metrics.py)."""
from __future__ import annotations

import pytest
from hypothesis import given, settings, strategies as st

from lm.text import normalize, surface_words, tokenize
from pipeline.metrics import error_rates, read_texts, score_files


def test_normalize_composes_unicode_folds_apostrophes_and_spaces():
    assert normalize("  e\u0301te\u0301\u2019s \t  pre\u0301  ") == "été's pré"
    assert normalize("Été À", lowercase=True) == "été à"


@pytest.mark.parametrize("text, tokens", [
    ("l'homme", ["l'", "homme"]),
    ("L\u2019homme qu'il voit jusqu'à", ["L'", "homme", "qu'", "il", "voit", "jusqu'", "à"]),
    ("aujourd'hui, peut-être.", ["aujourd'hui", ",", "peut-être", "."]),
    ("Don't fix it -- it's 3.5 o'clock!", ["Don't", "fix", "it", "--", "it's", "3.5", "o'clock", "!"]),
    ("« Oui... » (dit-il)", ["«", "Oui", "...", "»", "(", "dit-il", ")"]),
    ("well-known state-of-the-art", ["well-known", "state-of-the-art"]),
])
def test_tokenize_french_and_english(text, tokens):
    assert tokenize(text) == tokens


def test_tokenize_case_folding_is_optional():
    assert tokenize("The CAT", lowercase=True) == ["the", "cat"]
    assert tokenize("The CAT") == ["The", "CAT"]


def test_surface_words_keep_punctuation_attached():
    assert surface_words(" l'homme,  dit-il. ") == ["l'homme,", "dit-il."]
    assert surface_words("l\u2019e\u0301te\u0301") == ["l\u2019été"]  # NFC, apostrophe as written
    assert surface_words("   ") == []


@settings(max_examples=200, deadline=None)
@given(st.text(alphabet=st.sampled_from(list("abcé'-.,;:!? «»()0123456789\t")), max_size=40))
def test_tokens_cover_every_character_and_hold_no_space(text):
    tokens = tokenize(text)
    assert all(token and " " not in token for token in tokens)
    assert "".join(tokens) == normalize(text).replace(" ", "")


def test_error_rates_count_punctuation_as_words():
    rates = error_rates([("Hi, you", "Hi you"), ("the cat sat", "the bat sat")])
    assert (rates.char_errors, rates.chars) == (2, 7 + 11)
    assert (rates.word_errors, rates.words) == (2, 3 + 3)
    assert rates.wer == pytest.approx(2 / 6)
    assert error_rates([("a b", "a b")]).wer == 0.0


def test_score_files_reads_manifests_and_tsv(tmp_path):
    refs = tmp_path / "refs.jsonl"
    refs.write_text('{"id": "a", "image": "a.png", "text": "one two"}\n'
                    '{"id": "b", "image": "b.png", "text": "three"}\n', encoding="utf-8")
    hyps = tmp_path / "hyp.tsv"
    hyps.write_text("a\tone too\n", encoding="utf-8")
    assert read_texts(hyps) == {"a": "one too"}
    rates = score_files(refs, hyps)  # the missing line counts as an empty hypothesis
    assert (rates.word_errors, rates.words, rates.lines) == (2, 3, 2)
    with pytest.raises(FileNotFoundError, match="nothere"):
        read_texts(tmp_path / "nothere.tsv")
