"""Optical confidences of the output text (pipeline.confidence): a forced CTC alignment of the
text itself, so a word that the LM or lexicon changed gets the evidence of its new spelling."""
from __future__ import annotations

import json

import numpy as np
import pytest

from pipeline.confidence import align, evidence
from pipeline.decode import Hypothesis, write_hypotheses

ALPHABET = ["", " ", "0", "1", "2", "8", "9", "P", "T", "a", "b", "e", "l", "s"]
INDEX = {c: i for i, c in enumerate(ALPHABET)}


def spelled(text: str, p: float = 0.95) -> np.ndarray:
    """Log-posteriors that spell ``text``: each character for one frame with probability p, then a blank."""
    rows = []
    for char in text:
        for label in (char, ""):
            row = np.full(len(ALPHABET), (1 - p) / (len(ALPHABET) - 1))
            row[INDEX[label]] = p
            rows.append(row)
    return np.log(np.array(rows))


def test_the_decoded_spelling_gets_high_confidence_and_a_replaced_word_a_low_one():
    logprobs = spelled("1802 Peebles")
    seen = evidence("1802 Peebles", logprobs, ALPHABET)
    assert [w.text for w in seen] == ["1802", "Peebles"] and all(w.confidence > 0.6 for w in seen)
    assert seen[0].chars == [0.95] * 4
    changed = evidence("1902 Tables", logprobs, ALPHABET)  # what an LM might prefer
    assert changed[0].confidence < 0.05 and changed[0].chars[1] < 0.05 and changed[0].chars[0] == 0.95
    assert changed[1].confidence < 0.01


def test_word_frames_follow_the_alignment_and_repeats_need_a_blank():
    logprobs = spelled("ab ba")
    words = evidence("ab ba", logprobs, ALPHABET)
    assert [(w.start, w.end) for w in words] == [(0, 2), (6, 8)]
    path = align([INDEX["a"], INDEX["a"]], spelled("aa"), 0)
    assert path is not None and path.count(0) >= 1 and path.count(1) >= 1
    assert align([INDEX["a"]] * 5, spelled("a"), 0) is None  # 2 frames cannot hold 5 letters


@pytest.mark.parametrize("text", ["", "xyz"])
def test_text_that_cannot_be_aligned_has_zero_confidence(text):
    words = evidence(text, spelled("ab"), ALPHABET)
    assert [w.text for w in words] == text.split() and all(w.confidence == 0 for w in words)


def test_decode_side_file_has_per_character_confidences_of_the_output(tmp_path):
    logprobs = [spelled("1802"), spelled("ab")]
    hypotheses = [Hypothesis("1902", [("1902", 0.95)]), Hypothesis("ab", [("ab", 0.95)])]
    write_hypotheses(tmp_path / "hyp.tsv", ["l1", "l2"], hypotheses, True, logprobs, ALPHABET, 0)
    rows = [json.loads(line) for line in (tmp_path / "hyp.conf.jsonl").read_text().splitlines()]
    word, confidence, chars = rows[0]["words"][0]
    assert word == "1902" and confidence < 0.05 and len(chars) == 4 and chars[1] < 0.05
    assert rows[1]["confidence"] > 0.8
