"""Character and word error rates: the one definition training, tuning, evaluation and
the report all use.

CER: edit distance over the characters of :func:`lm.text.normalize` (NFC, one kind of
apostrophe, single spaces); WER: edit distance over the tokens of
:func:`lm.text.tokenize` (punctuation counts as words).  Errors are edit operations
(substitutions, insertions, deletions, from rapidfuzz) summed over a set of lines and
divided by the total reference length, the usual corpus-level definition for Rimes and
IAM (not a mean of line rates).
"""
from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Iterable, Sequence

from rapidfuzz.distance import Levenshtein

from data_prep.records import read_manifest
from lm.text import normalize, tokenize


def error_rate(errors: float, length: float) -> float:
    """Errors over reference length; 1 for any error on an empty reference, 0 for none."""
    return float(errors / length) if length else float(errors > 0)


@dataclass
class EditCounts:
    ref: int = 0
    sub: int = 0
    ins: int = 0
    dele: int = 0

    @property
    def errors(self) -> int:
        return self.sub + self.ins + self.dele

    @property
    def rate(self) -> float:
        return error_rate(self.errors, self.ref)

    def add(self, other: "EditCounts") -> None:
        self.ref += other.ref
        self.sub += other.sub
        self.ins += other.ins
        self.dele += other.dele


def edit_counts(ref: Sequence, hyp: Sequence) -> EditCounts:
    """Substitutions, insertions and deletions turning ``ref`` into ``hyp``."""
    counts = EditCounts(ref=len(ref))
    for op in Levenshtein.editops(ref, hyp):
        if op.tag == "replace":
            counts.sub += 1
        elif op.tag == "insert":
            counts.ins += 1
        else:
            counts.dele += 1
    return counts


def char_edits(ref: str, hyp: str, lowercase: bool = False) -> EditCounts:
    """The character edits of one line (what CER counts)."""
    return edit_counts(normalize(ref, lowercase), normalize(hyp, lowercase))


def word_edits(ref: str, hyp: str, lowercase: bool = False) -> EditCounts:
    """The word (token) edits of one line (what WER counts)."""
    return edit_counts(tokenize(ref, lowercase), tokenize(hyp, lowercase))


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


def error_rates(pairs: Iterable[tuple[str, str]], lowercase: bool = False) -> ErrorRates:
    """Corpus CER/WER of ``(reference, hypothesis)`` pairs."""
    chars, words, lines = EditCounts(), EditCounts(), 0
    for ref, hyp in pairs:
        chars.add(char_edits(ref, hyp, lowercase))
        words.add(word_edits(ref, hyp, lowercase))
        lines += 1
    return ErrorRates(chars.errors, chars.ref, words.errors, words.ref, lines)


def best_epoch_row(metrics: list[dict]) -> dict | None:
    """The row of a training's ``metrics.json`` with the lowest dev CER (None without dev)."""
    scored = [row for row in metrics if row.get("dev_cer") is not None]
    return min(scored, key=lambda row: row["dev_cer"]) if scored else None


def cpu_time(metrics: list[dict], threads: int, unit_seconds: float = 3600) -> list[float]:
    """Cumulative training CPU time after each epoch, in units of ``unit_seconds`` (3600: hours,
    60: minutes): the epoch's training seconds (the dev evaluation is not counted) times the
    threads it ran on: the row's ``cores`` where recorded, else ``threads`` (rows written
    before ``htr train`` recorded them)."""
    total, times = 0.0, []
    for row in metrics:
        total += row["epoch_seconds"] * row.get("cores", threads) / unit_seconds
        times.append(total)
    return times


def read_texts(path: Path) -> dict[str, str]:
    """``id<TAB>text`` lines, or a manifest (``.jsonl``) whose ``text`` is the reference."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: not found")
    if path.suffix == ".jsonl":
        return {record.id: record.text for record in read_manifest(path)}
    texts: dict[str, str] = {}
    for number, row in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not row.strip():
            continue
        line_id, sep, text = row.partition("\t")
        if not sep and " " in row:
            raise ValueError(f"{path}:{number}: expected 'id<TAB>text'")
        texts[line_id] = text
    return texts


def score_files(reference: Path, hypothesis: Path, lowercase: bool = False) -> ErrorRates:
    """Error rates of a hypothesis TSV against references; missing lines count as empty."""
    refs, hyps = read_texts(reference), read_texts(hypothesis)
    return error_rates(((text, hyps.get(key, "")) for key, text in refs.items()), lowercase)
