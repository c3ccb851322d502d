"""Character and word error rates, summed over a set of lines.

CER: edit distance over the normalised characters; WER: edit distance over the tokens of
:func:`lm.text.tokenize` (punctuation counts as words).  Both are total edits divided by
total reference length, the usual corpus-level definition (not a mean of line rates).
"""
from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Iterable

from lm.text import normalize, tokenize
from pipeline.evaluate import evaluate, read_texts  # read_texts re-exported: tune and scripts read texts from here


@dataclass
class ErrorRates:
    char_errors: int = 0
    chars: int = 0
    word_errors: int = 0
    words: int = 0
    lines: int = 0

    @property
    def cer(self) -> float:
        return self.char_errors / max(1, self.chars)

    @property
    def wer(self) -> float:
        return self.word_errors / max(1, self.words)

    def to_dict(self) -> dict:
        return {**asdict(self), "cer": round(self.cer, 6), "wer": round(self.wer, 6)}


def best_epoch_row(metrics: list[dict]) -> dict | None:
    """The row of a training's ``metrics.json`` with the lowest dev CER (None without dev)."""
    scored = [row for row in metrics if row.get("dev_cer") is not None]
    return min(scored, key=lambda row: row["dev_cer"]) if scored else None


def error_rates(pairs: Iterable[tuple[str, str]], lowercase: bool = False) -> ErrorRates:
    """Corpus CER/WER of ``(reference, hypothesis)`` pairs (the totals of :func:`evaluate`)."""
    pairs = list(pairs)
    result = evaluate({str(k): ref for k, (ref, _) in enumerate(pairs)},
                      {str(k): hyp for k, (_, hyp) in enumerate(pairs)},
                      tokenize=lambda text: tokenize(text, lowercase), normalize=lambda text: normalize(text, lowercase))
    chars, words = result.totals()
    return ErrorRates(chars.errors, chars.ref, words.errors, words.ref, len(pairs))


def score_files(reference: Path, hypothesis: Path, lowercase: bool = False) -> ErrorRates:
    """Error rates of a hypothesis TSV against references; missing lines count as empty."""
    refs, hyps = read_texts(reference), read_texts(hypothesis)
    return error_rates(((text, hyps.get(key, "")) for key, text in refs.items()), lowercase)
