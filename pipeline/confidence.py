"""Optical confidences of a decoded line: per character and per word, for the text actually output.

Whatever decoder produced the text (greedy, beam, lexicon, LM), its characters are aligned to
the line's CTC posteriors by a forced (Viterbi) alignment of that text, and each character gets
the posterior of its own label at its best frame on that alignment.  A word's confidence is the
product of its characters' (the chance that every character is right, if they were independent).
So a word that a language model or lexicon replaced ("1802" -> "1902") carries the optical
evidence for the *new* spelling: the network saw an 8, and the 9 gets a low posterior.

``htr decode --confidences`` writes them beside its output ``OUT`` in the side file
:func:`confidence_path` (``OUT_STEM.conf.jsonl``), one JSON object per line:
``{"id", "confidence" (the mean of its words'), "words": [[word, confidence, [per character]], ...]}``;
``htr calibration`` reads it back (:func:`read_word_confidences`).
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np


@dataclass
class WordEvidence:
    text: str
    confidence: float  # 0..1
    chars: list[float]  # one per character of ``text``
    start: int  # first and last frame of the word on the alignment
    end: int


def align(labels: Sequence[int], logprobs: np.ndarray, blank: int) -> list[int] | None:
    """Viterbi CTC alignment: per frame the index of the label it emits (-1 for a blank),
    or None when the line has too few frames for ``labels``."""
    states = [blank]
    for label in labels:
        states += [label, blank]
    states = np.asarray(states)
    frames, size = len(logprobs), len(states)
    if frames == 0 or not labels:
        return None
    skip = np.zeros(size, dtype=bool)  # state s may be reached from s - 2 (a label, not a repeat)
    skip[3::2] = states[3::2] != states[1:-2:2]
    score = np.full(size, -np.inf)
    score[:2] = logprobs[0, states[:2]]
    back = np.zeros((frames, size), dtype=np.int8)  # 0: stay, 1: from s-1, 2: from s-2
    for t in range(1, frames):
        options = np.stack([score, np.r_[-np.inf, score[:-1]], np.where(skip, np.r_[-np.inf, -np.inf, score[:-2]], -np.inf)])
        back[t] = options.argmax(axis=0)
        score = options.max(axis=0) + logprobs[t, states]
    end = size - 1 if score[-1] >= score[-2] else size - 2
    if not np.isfinite(score[end]):
        return None
    path = [end]
    for t in range(frames - 1, 0, -1):
        path.append(path[-1] - int(back[t, path[-1]]))
    return [(s - 1) // 2 if s % 2 else -1 for s in reversed(path)]


def evidence(text: str, logprobs: np.ndarray, alphabet: Sequence[str], blank: int = 0) -> list[WordEvidence]:
    """The words of ``text`` with their optical confidences (all 0 when ``text`` cannot be
    aligned: a character outside the alphabet, or too few frames)."""
    index = {char: i for i, char in enumerate(alphabet) if i != blank}
    words = text.split(" ")
    labels = [index.get(char, -1) for char in text]
    path = align(labels, logprobs, blank) if text and -1 not in labels else None
    best = np.zeros(len(text))
    first = np.full(len(text), -1)
    last = np.full(len(text), -1)
    if path is not None:
        for t, position in enumerate(path):
            if position >= 0:
                best[position] = max(best[position], float(np.exp(logprobs[t, labels[position]])))
                first[position] = t if first[position] < 0 else first[position]
                last[position] = t
    found, offset = [], 0
    for word in words:
        span = slice(offset, offset + len(word))
        offset += len(word) + 1
        if word:
            chars = [round(float(c), 4) for c in best[span]]
            found.append(WordEvidence(word, float(np.prod(chars)), chars, max(0, int(first[span.start])),
                                      max(0, int(last[span.stop - 1]))))
    return found


def confidence_path(out: Path) -> Path:
    """The confidence side file of the hypothesis file ``out``."""
    return Path(out).with_name(Path(out).stem + ".conf.jsonl")


def read_word_confidences(path: Path) -> dict[str, list[tuple[str, float]]]:
    """Line id -> its output words with their confidences, from a side file of :func:`confidence_path`."""
    if not Path(path).is_file():
        raise FileNotFoundError(f"{path}: not found; write it with 'htr decode ... --confidences'")
    lines = {}
    for number, row in enumerate(Path(path).read_text(encoding="utf-8").splitlines(), start=1):
        if not row.strip():
            continue
        try:
            data = json.loads(row)
            lines[data["id"]] = [(str(word[0]), float(word[1])) for word in data["words"]]
        except (ValueError, KeyError, TypeError, IndexError) as error:
            raise ValueError(f"{path}:{number}: not a confidence line ({error}); rewrite it with "
                             "'htr decode ... --confidences'") from None
    return lines
