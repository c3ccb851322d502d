"""Best-path decoding: argmax per frame, merge repeats, drop blanks ("RNN alone").

Training measures its dev CER with :func:`greedy_decode`, so the number it selects
models by is exactly what ``htr decode --decoder greedy`` outputs.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np

from pipeline.decoders.base import Hypothesis, penalize_blank, word_confidences


def greedy_path(logprobs: np.ndarray) -> np.ndarray:
    return logprobs.argmax(axis=1) if len(logprobs) else np.zeros(0, dtype=np.int64)


class GreedyDecoder:
    def __init__(self, alphabet: Sequence[str], blank: int, blank_penalty: float = 0.0) -> None:
        self.alphabet, self.blank, self.blank_penalty = list(alphabet), blank, blank_penalty

    def decode(self, logprobs: np.ndarray) -> Hypothesis:
        path = greedy_path(penalize_blank(logprobs, self.blank, self.blank_penalty))
        hypothesis = word_confidences(path, logprobs, self.alphabet, self.blank)
        hypothesis.score = float(logprobs.max(axis=1).sum()) if len(logprobs) else 0.0
        return hypothesis


def greedy_decode(logprobs, alphabet: list[str], blank: int = 0) -> str:
    """The greedy text of one line; ``logprobs`` (T, N) as a numpy array or a torch tensor
    (taken by duck typing, so decoding never imports torch)."""
    if hasattr(logprobs, "detach"):
        logprobs = logprobs.detach().cpu().numpy()
    return GreedyDecoder(alphabet, blank).decode(np.asarray(logprobs)).text
