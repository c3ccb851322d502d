"""``htr evaluate``: CER and WER of a hypothesis file against references.

The error rates are :mod:`pipeline.metrics`'s (the one definition: edits over
normalised characters and over :func:`lm.text.tokenize` tokens, summed over the set).
This module adds the per-line record, a bootstrap over lines for 95% confidence
intervals, and a paired bootstrap for the interval of a relative reduction between two
systems on the same lines.  With the writer of each line (``--by-writer``), it also gives
each writer's error rates and intervals from resampling whole writers: how the rates would
vary over another set of writers, which lines of the same hands cannot tell.
"""
from __future__ import annotations

import argparse
import json
import sys
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np

from common.files import atomic_write_text
from data_prep.records import line_writers
from pipeline.metrics import EditCounts, char_edits, edit_counts, error_rate, read_texts, word_edits


@dataclass
class LineResult:
    id: str
    ref: str
    hyp: str
    chars: EditCounts
    words: EditCounts
    missing: bool = False


@dataclass
class Evaluation:
    lines: list[LineResult] = field(default_factory=list)

    def totals(self) -> tuple[EditCounts, EditCounts]:
        chars, words = EditCounts(), EditCounts()
        for line in self.lines:
            chars.add(line.chars)
            words.add(line.words)
        return chars, words

    def arrays(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """Per-line (char errors, chars, word errors, words) for bootstrapping."""
        table = np.array([[l.chars.errors, l.chars.ref, l.words.errors, l.words.ref] for l in self.lines],
                         dtype=np.float64).reshape(-1, 4)
        return table[:, 0], table[:, 1], table[:, 2], table[:, 3]


def evaluate(refs: dict[str, str], hyps: dict[str, str], tokenize: Callable[[str], list[str]] | None = None,
             normalize: Callable[[str], str] | None = None) -> Evaluation:
    """Score every reference line; a line with no hypothesis counts as empty output.
    Edits are :func:`pipeline.metrics.char_edits`/``word_edits`` unless ``tokenize`` or
    ``normalize`` replaces how words or characters are read (tests use ``str.split``)."""
    result = Evaluation()
    for line_id, ref in refs.items():
        hyp = hyps.get(line_id)
        text = hyp or ""
        chars = char_edits(ref, text) if normalize is None else edit_counts(normalize(ref), normalize(text))
        words = word_edits(ref, text) if tokenize is None else edit_counts(tokenize(ref), tokenize(text))
        result.lines.append(LineResult(id=line_id, ref=ref, hyp=text, chars=chars, words=words, missing=hyp is None))
    return result


def bootstrap_rate(errors: np.ndarray, lengths: np.ndarray, samples: int = 1000,
                   seed: int = 0) -> tuple[float, float]:
    """95% interval of sum(errors)/sum(lengths) under resampling of lines."""
    if len(errors) == 0:
        return (float("nan"), float("nan"))
    rng = np.random.default_rng(seed)
    picks = rng.integers(0, len(errors), size=(samples, len(errors)))
    rates = errors[picks].sum(axis=1) / np.maximum(lengths[picks].sum(axis=1), 1)
    low, high = np.percentile(rates, [2.5, 97.5])
    return float(low), float(high)


def paired_reduction(errors_base: np.ndarray, errors_new: np.ndarray, lengths: np.ndarray,
                     samples: int = 1000, seed: int = 0) -> dict[str, float]:
    """Relative error reduction of ``new`` over ``base`` on the same lines, with a
    paired bootstrap 95% interval (positive = ``new`` is better)."""
    if len(lengths) == 0 or errors_base.sum() == 0:
        return {"reduction": float("nan"), "low": float("nan"), "high": float("nan")}
    rng = np.random.default_rng(seed)
    picks = rng.integers(0, len(lengths), size=(samples, len(lengths)))
    base = errors_base[picks].sum(axis=1)
    new = errors_new[picks].sum(axis=1)
    reductions = 1 - new / np.maximum(base, 1)
    low, high = np.percentile(reductions, [2.5, 97.5])
    return {"reduction": float(1 - errors_new.sum() / errors_base.sum()), "low": float(low), "high": float(high)}


def group_sums(values: np.ndarray, groups: list[str]) -> tuple[list[str], np.ndarray]:
    """The sorted distinct ``groups`` and the sum of ``values`` over each one's lines."""
    names, index = np.unique(np.asarray(groups), return_inverse=True)
    return [str(name) for name in names], np.bincount(index, weights=values, minlength=len(names))


def writer_arrays(result: Evaluation, writers: list[str]) -> tuple[np.ndarray, ...]:
    """:meth:`Evaluation.arrays` summed over each writer's lines (writers in sorted order)."""
    return tuple(group_sums(values, writers)[1] for values in result.arrays())


def by_writer(result: Evaluation, writers: list[str], samples: int = 1000) -> dict:
    """Each writer's CER and WER, and the 95% intervals of the set's rates when whole writers
    are resampled (a writer's lines stay together: the interval a new set of hands would see)."""
    char_errors, chars, word_errors, words = writer_arrays(result, writers)
    names, lines = group_sums(np.ones(len(writers)), writers)
    per_writer = [{"writer": name, "lines": int(lines[i]), "cer": error_rate(char_errors[i], chars[i]),
                   "wer": error_rate(word_errors[i], words[i])} for i, name in enumerate(names)]
    return {"writers": len(names), "cer_ci95": bootstrap_rate(char_errors, chars, samples),
            "wer_ci95": bootstrap_rate(word_errors, words, samples), "per_writer": per_writer}


def compare_by_writer(result: Evaluation, baseline: Evaluation, writers: list[str], samples: int = 1000) -> dict:
    """:func:`compare` with whole writers resampled instead of lines."""
    char_errors, chars, word_errors, words = writer_arrays(result, writers)
    base_char_errors, _, base_word_errors, _ = writer_arrays(baseline, writers)
    return {"cer": paired_reduction(base_char_errors, char_errors, chars, samples),
            "wer": paired_reduction(base_word_errors, word_errors, words, samples)}


def summary(result: Evaluation, samples: int = 1000) -> dict:
    chars, words = result.totals()
    char_errors, char_lengths, word_errors, word_lengths = result.arrays()
    return {
        "lines": len(result.lines),
        "missing": sum(line.missing for line in result.lines),
        "cer": chars.rate, "cer_ci95": bootstrap_rate(char_errors, char_lengths, samples),
        "wer": words.rate, "wer_ci95": bootstrap_rate(word_errors, word_lengths, samples),
        "chars": _counts_dict(chars), "words": _counts_dict(words),
    }


def _counts_dict(counts: EditCounts) -> dict[str, int]:
    data = asdict(counts)
    data["del"] = data.pop("dele")
    data["errors"] = counts.errors
    return data


def to_json(result: Evaluation, samples: int = 1000) -> dict:
    per_line = [{"id": l.id, "ref": l.ref, "hyp": l.hyp, "char_errors": l.chars.errors, "chars": l.chars.ref,
                 "word_errors": l.words.errors, "words": l.words.ref, **({"missing": True} if l.missing else {})}
                for l in result.lines]
    return {**summary(result, samples), "per_line": per_line}


def compare(result: Evaluation, baseline: Evaluation, samples: int = 1000) -> dict:
    """Relative CER and WER reductions of ``result`` over ``baseline`` (the same references),
    each with its paired-bootstrap 95% interval: positive means ``result`` makes fewer errors."""
    char_errors, char_lengths, word_errors, word_lengths = result.arrays()
    base_char_errors, _, base_word_errors, _ = baseline.arrays()
    return {"cer": paired_reduction(base_char_errors, char_errors, char_lengths, samples),
            "wer": paired_reduction(base_word_errors, word_errors, word_lengths, samples)}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="htr evaluate",
        description="CER and WER (edit operations summed over the set) with bootstrap 95%% intervals.")
    parser.add_argument("--ref", type=Path, required=True, help="references: id<TAB>text file or a manifest.jsonl")
    parser.add_argument("--hyp", type=Path, required=True, help="hypotheses: id<TAB>text (htr decode output)")
    parser.add_argument("--out", type=Path, help="write the full result (totals + per line) as JSON")
    parser.add_argument("--bootstrap", type=int, default=1000, help="bootstrap samples (default 1000)")
    parser.add_argument("--against", type=Path, metavar="BASELINE_HYP",
                        help="a second system's hypotheses on the same references: also report how many fewer "
                             "character and word errors --hyp makes, relative, with a paired-bootstrap 95%% "
                             "interval (an interval above 0: --hyp is better beyond the luck of the lines)")
    parser.add_argument("--by-writer", action="store_true",
                        help="--ref is a manifest naming each line's writer: also report each writer's CER and WER "
                             "and 95%% intervals from resampling whole writers (and, with --against, the paired "
                             "reduction resampled by writer): what another set of hands would likely give")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        refs, hyps = read_texts(args.ref), read_texts(args.hyp)
        baseline = read_texts(args.against) if args.against else None
    except (FileNotFoundError, ValueError) as error:
        print(f"htr evaluate: {error}", file=sys.stderr)
        return 2
    if not refs:  # a CER of 0% over nothing would read as a perfect score
        print(f"htr evaluate: {args.ref} holds no reference line; nothing to score", file=sys.stderr)
        return 1
    try:
        writers = line_writers(args.ref, refs, "--by-writer") if args.by_writer else None
    except (FileNotFoundError, ValueError) as error:
        print(f"htr evaluate: {error}", file=sys.stderr)
        return 2
    unknown = len(set(hyps) - set(refs))
    result = evaluate(refs, hyps)
    data = to_json(result, args.bootstrap)
    if baseline is not None:
        base_result = evaluate(refs, baseline)
        data["against"] = {"hyp": str(args.against), **compare(result, base_result, args.bootstrap)}
        if writers:
            data["against"]["by_writer"] = compare_by_writer(result, base_result, writers, args.bootstrap)
    if writers:
        data["by_writer"] = by_writer(result, writers, args.bootstrap)
    if args.out:
        atomic_write_text(args.out, json.dumps(data, indent=1, ensure_ascii=False) + "\n")
    print(f"lines {data['lines']} (missing hypotheses: {data['missing']}, hypotheses without reference: {unknown})")
    print(f"CER {100 * data['cer']:.2f}% [{100 * data['cer_ci95'][0]:.2f}, {100 * data['cer_ci95'][1]:.2f}]  "
          f"(S {data['chars']['sub']} I {data['chars']['ins']} D {data['chars']['del']} / {data['chars']['ref']} chars)")
    print(f"WER {100 * data['wer']:.2f}% [{100 * data['wer_ci95'][0]:.2f}, {100 * data['wer_ci95'][1]:.2f}]  "
          f"(S {data['words']['sub']} I {data['words']['ins']} D {data['words']['del']} / {data['words']['ref']} words)")
    if baseline is not None:
        for rate in ("cer", "wer"):
            r = data["against"][rate]
            print(f"{rate.upper()} {100 * r['reduction']:+.1f}% fewer errors than {args.against} "
                  f"(paired bootstrap [{100 * r['low']:+.1f}, {100 * r['high']:+.1f}])")
    if writers:
        print_by_writer(data)
    return 0


def print_by_writer(data: dict) -> None:
    """The writer-resampled intervals, and the spread of the writers' CERs."""
    writers = data["by_writer"]
    rates = sorted(100 * w["cer"] for w in writers["per_writer"])
    print(f"by writer ({writers['writers']} writers): CER [{100 * writers['cer_ci95'][0]:.2f}, "
          f"{100 * writers['cer_ci95'][1]:.2f}], WER [{100 * writers['wer_ci95'][0]:.2f}, "
          f"{100 * writers['wer_ci95'][1]:.2f}] resampling writers; a writer's CER from {rates[0]:.2f} "
          f"to {rates[-1]:.2f}, median {float(np.median(rates)):.2f}")
    if "by_writer" in data.get("against", {}):
        r = data["against"]["by_writer"]["cer"]
        print(f"CER {100 * r['reduction']:+.1f}% fewer errors than the baseline "
              f"(paired, resampling writers [{100 * r['low']:+.1f}, {100 * r['high']:+.1f}])")
