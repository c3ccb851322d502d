"""What every decoder returns, the interface they share, and helpers on frame posteriors."""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Protocol, Sequence

import numpy as np

from lm.text import tokenize

NEG = -1e4  # "impossible" log-probability that stays finite inside the decoders


@dataclass
class Hypothesis:
    text: str
    words: list[tuple[str, float]] = field(default_factory=list)  # (word, confidence)
    score: float = 0.0  # the decoder's own score of the hypothesis (log domain)
    fallback: bool = False

    @property
    def confidence(self) -> float:
        return float(np.mean([c for _, c in self.words])) if self.words else 0.0


class Decoder(Protocol):
    """One line's CTC log-probabilities (T frames x N labels, natural log) -> text."""

    def decode(self, logprobs: np.ndarray) -> Hypothesis: ...


def clean_text(text: str) -> str:
    return " ".join(text.split())


def word_confidences(path: Sequence[int], logprobs: np.ndarray, alphabet: Sequence[str],
                     blank: int) -> Hypothesis:
    """Text of a frame-level label path; a word's confidence is the mean best-label
    posterior over the frames from its first to its last character."""
    best = np.exp(logprobs.max(axis=1)) if len(logprobs) else np.zeros(0)
    words: list[tuple[str, float]] = []
    chars: list[str] = []
    start, previous = -1, blank

    def close(end: int) -> None:
        if chars:
            words.append(("".join(chars), float(best[start:end + 1].mean())))
        chars.clear()

    last = -1
    for t, label in enumerate(path):
        if label != blank and label != previous:
            char = alphabet[label]
            if char == " ":
                close(last)
            else:
                if not chars:
                    start = t
                chars.append(char)
        if label != blank and alphabet[label] != " ":
            last = t
        previous = label
    close(last)
    return Hypothesis(" ".join(w for w, _ in words), words)


def top_k_frames(logprobs: np.ndarray, k: int) -> np.ndarray:
    """Keep the k best labels of each frame, the rest become impossible."""
    if k >= logprobs.shape[1]:
        return logprobs
    pruned = np.full_like(logprobs, NEG)
    keep = np.argpartition(-logprobs, k - 1, axis=1)[:, :k]
    rows = np.arange(len(logprobs))[:, None]
    pruned[rows, keep] = logprobs[rows, keep]
    return pruned


def penalize_blank(logprobs: np.ndarray, blank: int, penalty: float) -> np.ndarray:
    """``logprobs`` with ``penalty`` subtracted from the blank's log-probability in every frame
    (a copy; the array itself when the penalty is 0).  CTC networks put most frames on the
    blank, and a search that adds an LM's cost to every character it writes then drops
    characters: on the shipped Copiste model, char-lm's output had 1.6x the deletions of the
    greedy reading until a penalty of about 2 (tuned on dev, reports/probes/README.md) restored them.
    Only the search sees it: confidences are computed from the network's own posteriors."""
    if not penalty:
        return logprobs
    penalized = np.array(logprobs, dtype=np.float32, copy=True)
    penalized[:, blank] -= penalty
    return penalized


def squeeze_blanks(logprobs: np.ndarray, blank: int, min_logp: float = math.log(0.999)) -> np.ndarray:
    """Indices of the frames to keep: a run of confident blank frames becomes one frame.
    One blank still separates doubled letters, so the label sequences a beam search can
    reach are unchanged, and prefix beam search runs on far fewer frames."""
    confident = logprobs[:, blank] >= min_logp
    repeat = np.zeros(len(logprobs), dtype=bool)
    repeat[1:] = confident[1:] & confident[:-1]
    return np.flatnonzero(~repeat)


def lm_tokens(word: str, lowercase: bool) -> tuple[str, ...]:
    """The LM tokens of a surface word (letters only: the word itself, the common case)."""
    if word.isalpha():
        return (word.lower() if lowercase else word,)
    return _lm_tokens(word, lowercase)


@lru_cache(maxsize=500_000)
def _lm_tokens(word: str, lowercase: bool) -> tuple[str, ...]:
    return tuple(tokenize(word, lowercase))
