"""The report's view over writers: how the test rates would vary over another set of hands.

Lines of the same writer are not independent draws: a bootstrap over lines gives intervals that
are too narrow when a new user's handwriting is what matters.  When the test manifest names each
line's writer (``htr prepare --writer-pattern``; the synthetic generator names the font), the
report adds a table with the intervals from resampling whole writers (as ``htr evaluate
--by-writer`` does), the spread of the writers' own CERs, and each variant's reduction over the
first with writers resampled in pairs; and a plot of every writer's CER under each variant.
Without writers (or with a test line the manifest does not name) the section says it is not
available, and nothing else in the report changes.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.figure import Figure

from data_prep.records import line_writers
from pipeline.evaluate import bootstrap_rate, group_sums, paired_reduction
from pipeline.experiment import Experiment
from pipeline.metrics import error_rate

WHAT_NEEDS_WRITERS = "the report's intervals over writers"


@dataclass(frozen=True)
class WriterSums:
    """One (variant, system)'s errors and reference lengths summed over each writer's lines,
    the writers in sorted order."""

    writers: list[str]
    char_errors: np.ndarray
    chars: np.ndarray
    word_errors: np.ndarray
    words: np.ndarray

    @property
    def cers(self) -> np.ndarray:
        return np.array([error_rate(e, n) for e, n in zip(self.char_errors, self.chars)])


def writer_sums(per_line: list[dict], test: Path) -> WriterSums | None:
    """Sum an evaluation's per-line rows over the writers ``test`` names; None when the manifest
    does not name a writer for every scored line."""
    try:
        writers = line_writers(test, [row["id"] for row in per_line], WHAT_NEEDS_WRITERS)
    except (ValueError, OSError):
        return None
    columns = [np.array([row[key] for row in per_line], dtype=float)
               for key in ("char_errors", "chars", "word_errors", "words")]
    names = group_sums(columns[0], writers)[0]
    return WriterSums(names, *(group_sums(values, writers)[1] for values in columns))


def _pct(value: float) -> str:
    return "n/a" if value != value else f"{100 * value:.1f}"


def _interval(pair: tuple[float, float]) -> str:
    return f"[{_pct(pair[0])}, {_pct(pair[1])}]"


def writer_table(exp: Experiment, scores: dict) -> list[list[str]]:
    """Per (variant, system): writers, CER and WER with 95% intervals over writers, the median
    and range of the writers' CERs, and the CER reduction over the first variant with writers
    resampled in pairs.  Empty when the test manifest names no writers."""
    sums = {key: found for key, score in scores.items()
            if (found := writer_sums(score.per_line, exp.test)) is not None}
    if not sums:
        return []
    base = list(exp.variants)[0]
    rows = [["model", "system", "writers", "CER % [95% over writers]", "WER % [95% over writers]",
             "writer CER % median (range)", f"CER reduction vs {base} [95% over writers]"]]
    for (variant, system), s in sums.items():
        cers = s.cers
        rows.append([variant, system, str(len(s.writers)),
                     f"{_pct(error_rate(s.char_errors.sum(), s.chars.sum()))} {_interval(bootstrap_rate(s.char_errors, s.chars))}",
                     f"{_pct(error_rate(s.word_errors.sum(), s.words.sum()))} {_interval(bootstrap_rate(s.word_errors, s.words))}",
                     f"{_pct(float(np.median(cers)))} ({_pct(cers.min())}-{_pct(cers.max())})",
                     _reduction(sums.get((base, system)), s) if variant != base else "-"])
    return rows


def _reduction(base: WriterSums | None, new: WriterSums) -> str:
    if base is None or base.writers != new.writers:
        return "-"
    r = paired_reduction(base.char_errors, new.char_errors, new.chars)
    return f"{_pct(r['reduction'])}% [{_pct(r['low'])}, {_pct(r['high'])}]"


def writer_plot(exp: Experiment, scores: dict, path: Path, save: Callable[[Figure, Path], None]) -> bool:
    """Each writer's CER under each variant, the first system (the RNN alone), writers sorted
    by the first variant's CER; ``save(fig, path)`` writes it.  False if there is nothing to
    draw."""
    system = exp.systems[0].name
    sums = {variant: found for variant in exp.variants if (variant, system) in scores
            and (found := writer_sums(scores[(variant, system)].per_line, exp.test)) is not None}
    if not sums:
        return False
    first = next(iter(sums.values()))
    order = np.argsort(first.cers)
    fig, ax = plt.subplots(figsize=(max(6.0, 0.28 * len(order) + 2), 3.6))
    for variant, s in sums.items():
        if s.writers == first.writers:
            ax.plot(np.arange(len(order)), 100 * s.cers[order], marker="o", linestyle="", label=variant)
    ax.set_xticks(np.arange(len(order)), [first.writers[i] for i in order], rotation=90, fontsize=6)
    ax.set(ylabel=f"test CER % ({system})", title="CER of each writer")
    ax.grid(axis="y", alpha=0.3)
    ax.legend(fontsize=8)
    save(fig, path)
    return True
