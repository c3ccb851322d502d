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
from pipeline.report_pages import interval, percent, reduction_cell

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


def writer_sums(test: Path, scores: dict) -> dict[tuple[str, str], WriterSums]:
    """Each (variant, system)'s per-line rows summed over the writers ``test`` names, reading
    the manifest once for every set of scored lines; a set it does not name a writer for
    every line of is left out."""
    writers_of: dict[tuple[str, ...], list[str] | None] = {}
    sums = {}
    for key, score in scores.items():
        ids = tuple(row["id"] for row in score.per_line)
        if ids not in writers_of:
            try:
                writers_of[ids] = line_writers(test, ids, WHAT_NEEDS_WRITERS)
            except (ValueError, OSError):
                writers_of[ids] = None
        if writers_of[ids] is not None:
            sums[key] = _sum_over_writers(score.per_line, writers_of[ids])
    return sums


def _sum_over_writers(per_line: list[dict], writers: list[str]) -> WriterSums:
    columns = [np.array([row[key] for row in per_line], dtype=float)
               for key in ("char_errors", "chars", "word_errors", "words")]
    names = group_sums(columns[0], writers)[0]
    return WriterSums(names, *(group_sums(values, writers)[1] for values in columns))


def writer_table(exp: Experiment, sums: dict[tuple[str, str], WriterSums]) -> list[list[str]]:
    """Per (variant, system) of ``sums`` (:func:`writer_sums`): writers, CER and WER with 95%
    intervals over writers, the median and range of the writers' CERs, and the CER reduction
    over the first variant with writers resampled in pairs.  Empty without writers."""
    if not sums:
        return []
    base = list(exp.variants)[0]
    rows = [["model", "system", "writers", "CER % [95% over writers]", "WER % [95% over writers]",
             "writer CER % median (range)", f"CER reduction vs {base} [95% over writers]"]]
    for (variant, system), s in sums.items():
        cers = s.cers
        rows.append([variant, system, str(len(s.writers)),
                     f"{percent(error_rate(s.char_errors.sum(), s.chars.sum()))} {interval(bootstrap_rate(s.char_errors, s.chars))}",
                     f"{percent(error_rate(s.word_errors.sum(), s.words.sum()))} {interval(bootstrap_rate(s.word_errors, s.words))}",
                     f"{percent(float(np.median(cers)))} ({percent(cers.min())}-{percent(cers.max())})",
                     _reduction(sums.get((base, system)), s) if variant != base else "-"])
    return rows


def _reduction(base: WriterSums | None, new: WriterSums) -> str:
    if base is None or base.writers != new.writers:
        return "-"
    return reduction_cell(paired_reduction(base.char_errors, new.char_errors, new.chars))


def writer_plot(exp: Experiment, sums: dict[tuple[str, str], WriterSums], path: Path,
                save: Callable[[Figure, Path], None]) -> bool:
    """Each writer's CER under each variant, the first system (the RNN alone), writers sorted
    by the first variant's CER; ``save(fig, path)`` writes it.  False if there is nothing to
    draw."""
    system = exp.systems[0].name
    per_variant = {variant: sums[(variant, system)] for variant in exp.variants if (variant, system) in sums}
    if not per_variant:
        return False
    first = next(iter(per_variant.values()))
    order = np.argsort(first.cers)
    fig, ax = plt.subplots(figsize=(max(6.0, 0.28 * len(order) + 2), 3.6))
    for variant, s in per_variant.items():
        if s.writers == first.writers:
            ax.plot(np.arange(len(order)), 100 * s.cers[order], marker="o", linestyle="", label=variant)
    ax.set_xticks(np.arange(len(order)), [first.writers[i] for i in order], rotation=90, fontsize=6)
    ax.set(ylabel=f"test CER % ({system})", title="CER of each writer")
    ax.grid(axis="y", alpha=0.3)
    ax.legend(fontsize=8)
    save(fig, path)
    return True
