"""``htr report EXP_DIR``: the paper-style report of an experiment, Markdown and HTML.

Reads only the files ``htr run`` wrote (eval JSON, page-level scores, hypotheses, metrics,
timings, segmentation scores, and the test manifest's writers), so it can be regenerated at any
time; it scores nothing itself but the paired reductions between the line scores it reads and
their intervals over writers (:mod:`pipeline.report_writers`).  The HTML page is
self-contained: plots and line images are embedded.
"""
from __future__ import annotations

import argparse
import io
import json
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from common.files import atomic_write_bytes, atomic_write_text  # noqa: E402

from data_prep.records import read_manifest, resolve_image  # noqa: E402
from lm.extend import surface_oov_summary  # noqa: E402
from pipeline.evaluate import paired_reduction  # noqa: E402
from pipeline.experiment import Experiment, ExperimentFolder, System, flags, load_experiment  # noqa: E402
from pipeline.folders import CONFIG_FILE, DONE, WEIGHTS, read_metrics  # noqa: E402
from pipeline.metrics import best_epoch_row, cpu_time  # noqa: E402
from pipeline.page_eval import GT_LINES, PREDICTED  # noqa: E402
from pipeline.report_pages import html_page, interval, markdown_page, percent, reduction_cell  # noqa: E402
from pipeline.report_writers import writer_plot, writer_sums, writer_table  # noqa: E402


@dataclass
class Scores:
    """Evaluation JSON of one (variant, split, system)."""

    data: dict

    @property
    def per_line(self) -> list[dict]:
        return self.data["per_line"]

    def arrays(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        rows = sorted(self.per_line, key=lambda r: r["id"])
        table = np.array([[r["char_errors"], r["chars"], r["word_errors"], r["words"]] for r in rows], dtype=float)
        return table[:, 0], table[:, 1], table[:, 2], table[:, 3]


def _read_each(exp: Experiment, path_of: Callable[[str, System], Path]) -> dict[tuple[str, str], dict]:
    """(variant, system name) -> the JSON file ``path_of(variant, system)``, for those that exist,
    variants then systems in the config's order."""
    return {(variant, system.name): json.loads(path.read_text(encoding="utf-8"))
            for variant in exp.variants for system in exp.systems if (path := path_of(variant, system)).is_file()}


def _load_scores(exp: Experiment, split: str) -> dict[tuple[str, str], Scores]:
    found = _read_each(exp, lambda variant, system: exp.paths.scores(variant, split, system))
    return {key: Scores(data) for key, data in found.items()}


def variant_rows(exp: Experiment) -> list[list[str]]:
    """What each variant is: the htr train flags they share, then each one's own (a name such as
    'dropout-all' alone does not say at which rates, or on which layers)."""
    def cell(options: dict) -> str:
        return " ".join(flags(options)) if options else "-"
    return [["variant", "htr train flags"], ["(every variant)", cell(exp.train_options)],
            *([variant, cell(options)] for variant, options in exp.variants.items())]


def paper_table(exp: Experiment, scores: dict) -> list[list[str]]:
    header = ["model"] + [f"{s.name} {m}" for s in exp.systems for m in ("CER %", "WER %")]
    rows = [header]
    for variant in exp.variants:
        row = [variant]
        for system in exp.systems:
            score = scores.get((variant, system.name))
            if score is None:
                row += ["-", "-"]
            else:
                d = score.data
                row += [f"{percent(d['cer'])} {interval(d['cer_ci95'])}", f"{percent(d['wer'])} {interval(d['wer_ci95'])}"]
        rows.append(row)
    return rows


def dropout_table(exp: Experiment, scores: dict) -> list[list[str]]:
    """Relative reduction of each variant over the first (the no-dropout baseline)."""
    variants = list(exp.variants)
    base = variants[0]
    rows = [["variant vs " + base] + [f"{s.name} {m}" for s in exp.systems for m in ("CER", "WER")]]
    for variant in variants[1:]:
        row = [variant]
        for system in exp.systems:
            a, b = scores.get((base, system.name)), scores.get((variant, system.name))
            row += _reductions(a, b)
        rows.append(row)
    return rows


def lm_table(exp: Experiment, scores: dict) -> list[list[str]]:
    """Relative reduction of each decoding system over the first (the RNN alone)."""
    first = exp.systems[0]
    rows = [["model"] + [f"{s.name} vs {first.name} {m}" for s in exp.systems[1:] for m in ("CER", "WER")]]
    for variant in exp.variants:
        row = [variant]
        for system in exp.systems[1:]:
            row += _reductions(scores.get((variant, first.name)), scores.get((variant, system.name)))
        rows.append(row)
    return rows


def _reductions(base: Scores | None, new: Scores | None) -> list[str]:
    if base is None or new is None:
        return ["-", "-"]
    be, bl, bw, bwl = base.arrays()
    ne, _, nw, _ = new.arrays()
    return [reduction_cell(paired_reduction(errors_base, errors_new, lengths))
            for errors_base, errors_new, lengths in ((be, ne, bl), (bw, nw, bwl))]


def calibration_rows(calibrations: dict[tuple[str, str], dict]) -> list[list[str]]:
    """Per (variant, system): words, their accuracy, mean confidence and the ECE."""
    if not calibrations:
        return []
    rows = [["model", "system", "words", "word accuracy %", "mean word confidence %", "ECE %"]]
    for (variant, system), data in calibrations.items():
        cells = [percent(data[key]) if data[key] is not None else "-" for key in ("accuracy", "mean_confidence", "ece")]
        rows.append([variant, system, str(data["words"]), *cells])
    return rows


def reliability_plot(exp: Experiment, calibrations: dict[tuple[str, str], dict], path: Path) -> bool:
    """Word accuracy against word confidence per bin, one panel per system; False if nothing to draw."""
    systems = [s.name for s in exp.systems if any((v, s.name) in calibrations for v in exp.variants)]
    if not systems:
        return False
    fig, axes = plt.subplots(1, len(systems), figsize=(3.6 * len(systems), 3.6), squeeze=False)
    for ax, system in zip(axes[0], systems):
        ax.plot([0, 1], [0, 1], "k--", linewidth=1, label="calibrated")
        for variant in exp.variants:
            bins = [b for b in calibrations.get((variant, system), {}).get("bins", []) if b["words"]]
            if bins:
                ax.plot([b["confidence"] for b in bins], [b["accuracy"] for b in bins], "o-", markersize=3,
                        label=f"{variant} (ECE {percent(calibrations[(variant, system)]['ece'])}%)")
        ax.set(xlim=(0, 1), ylim=(0, 1), xlabel="word confidence (bin mean)", ylabel="word accuracy", title=system)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    _save_figure(fig, path)
    return True


def _saved_flag(model: Path, key: str):
    """One flag of the training's saved config (``train_config.json``), None without it."""
    config_path = model / CONFIG_FILE
    return json.loads(config_path.read_text()).get(key) if config_path.is_file() else None


def learning_curves(exp: Experiment, path: Path) -> bool:
    """Training loss and dev CER per epoch, and dev CER against training CPU-hours (what an
    epoch costs differs between layouts, so the last panel is the fair comparison)."""
    fig, (loss_ax, cer_ax, cost_ax) = plt.subplots(1, 3, figsize=(14, 3.6))
    drawn = False
    for variant in exp.variants:
        model = exp.paths.model(variant)
        rows = read_metrics(model)
        if not rows:
            continue
        epochs, cer = [r["epoch"] for r in rows], [r["dev_cer"] for r in rows]
        loss_ax.plot(epochs, [r["train_loss"] for r in rows], "o-", markersize=3, label=variant)
        cer_ax.plot(epochs, cer, "o-", markersize=3, label=variant)
        if all("epoch_seconds" in r for r in rows):  # metrics written before it was recorded have no cost
            cost_ax.plot(cpu_time(rows, int(_saved_flag(model, "threads") or 1)), cer, "o-", markersize=3, label=variant)
        drawn = True
    loss_ax.set(xlabel="epoch", ylabel="train CTC loss", title="training loss")
    cer_ax.set(xlabel="epoch", ylabel="dev CER % (greedy)", title="dev CER")
    cost_ax.set(xlabel="training CPU-hours (epoch seconds x threads)", ylabel="dev CER % (greedy)",
                title="dev CER per CPU-hour of training")
    for ax in (loss_ax, cer_ax, cost_ax):
        ax.grid(alpha=0.3)
        ax.legend()
    _save_figure(fig, path)
    return drawn


def score_bars(exp: Experiment, scores: dict, path: Path) -> None:
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.6))
    width = 0.8 / max(1, len(exp.variants))
    for ax, key in zip(axes, ("cer", "wer")):
        x = np.arange(len(exp.systems))
        for i, variant in enumerate(exp.variants):
            values = [100 * scores[(variant, s.name)].data[key] if (variant, s.name) in scores else np.nan
                      for s in exp.systems]
            low = [100 * scores[(variant, s.name)].data[f"{key}_ci95"][0] if (variant, s.name) in scores else np.nan
                   for s in exp.systems]
            high = [100 * scores[(variant, s.name)].data[f"{key}_ci95"][1] if (variant, s.name) in scores else np.nan
                    for s in exp.systems]
            err = [np.subtract(values, low), np.subtract(high, values)]
            ax.bar(x + i * width, values, width, yerr=err, capsize=3, label=variant)
        ax.set_xticks(x + width * (len(exp.variants) - 1) / 2, [s.name for s in exp.systems], fontsize=8)
        ax.set(ylabel=f"test {key.upper()} %", title=f"{key.upper()} with 95% interval")
        ax.grid(axis="y", alpha=0.3)
        ax.legend(fontsize=8)
    _save_figure(fig, path)


def _save_figure(fig, path: Path) -> None:
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=110)
    plt.close(fig)
    atomic_write_bytes(path, buffer.getvalue())


def page_level(exp: Experiment) -> list[list[str]]:
    """Page-level CER/WER of each variant and system on ground-truth lines and on the lines
    found by ``htr segment``, as ``htr page-eval`` scored them (:mod:`pipeline.page_eval`:
    with a line map, two more CER columns split the difference into unannotated lines, order
    and the crops themselves)."""
    found = _read_each(exp, exp.paths.page_scores)
    if not found:
        return []
    predicted = [name for name in next(iter(found.values()))["scores"] if name != GT_LINES]
    rows = [["model", "system", f"{GT_LINES} CER %", *(f"{name} CER %" for name in predicted),
             f"{GT_LINES} WER %", f"{PREDICTED} WER %"]]
    for (variant, system), data in found.items():
        scores = data["scores"]
        rows.append([variant, system, percent(scores[GT_LINES]["cer"]), *(percent(scores[name]["cer"]) for name in predicted),
                     percent(scores[GT_LINES]["wer"]), percent(scores[PREDICTED]["wer"])])
    return rows


def segmentation_rows(exp: Experiment) -> list[list[str]]:
    path = exp.paths.segment_eval
    if not path.is_file():
        return []
    total = json.loads(path.read_text())["total"]
    rows = [["IoU", "precision", "recall", "F1"]]
    for key in ("iou>=0.5", "iou>=0.75"):
        if key in total:
            rows.append([key, f"{total[key]['precision']:.3f}", f"{total[key]['recall']:.3f}", f"{total[key]['f1']:.3f}"])
    rows.append(["pages / GT lines / predicted", str(total["pages"]), str(total["gt_lines"]), str(total["pred_lines"])])
    rows.append(["over- / under-segmented", str(total["over_segmented"]), str(total["under_segmented"]), ""])
    rows.append(["pages in GT reading order", f"{total['same_order_pages']}/{total['pages']}", "", ""])
    return rows


def lm_rows(exp: Experiment) -> list[list[str]]:
    """What the lexicon and n-gram were built from and how well they cover the dev text."""
    path = exp.paths.lm_info
    if not path.is_file():
        return []
    info = json.loads(path.read_text(encoding="utf-8"))
    dev, extension = info.get("dev", {}), info.get("extension")
    rows = [["what", "value"],
            ["word n-gram", f"order {info['config']['order']}, {info['corpus_tokens']} training tokens, "
                            f"{info['lexicon_size']} token types"],
            ["strict lexicon (training text)", f"{info['surface_words']} surface words"]]
    if extension:
        rows.append(["lexicon extension", f"{extension['surface_words_added']} surface words from the "
                                          f"{extension['listed_words']} most frequent words of {extension['source']}"])
    if dev:
        rows.append(["dev perplexity / token OOV", f"{dev['perplexity']} / {100 * dev['oov_rate']:.1f}%"])
    if surface_oov_summary(dev):
        rows.append(["dev surface-word OOV", surface_oov_summary(dev)])
    return rows


def cost_rows(exp: Experiment) -> list[list[str]]:
    timings_path = exp.paths.timings
    timings = json.loads(timings_path.read_text()) if timings_path.is_file() else {}
    test_lines = len(read_manifest(exp.test))
    rows = [["what", "value"]]
    for variant in exp.variants:
        model = exp.paths.model(variant)
        metrics = read_metrics(model)
        minutes = training_minutes(metrics) if metrics else float("nan")
        weights = model / WEIGHTS
        size = f"{weights.stat().st_size / 1024:.0f} KiB" if weights.is_file() else "-"
        speed = np.mean([r["lines_per_s"] for r in metrics]) if metrics else float("nan")
        best = best_epoch_row(metrics)
        rows.append([f"{variant}: training", f"{len(metrics)} epochs{_training_state(model)}, {minutes:.1f} min, "
                     f"{speed:.1f} lines/s" + (f"; best dev CER {best['dev_cer']:.1f}% at epoch {best['epoch']}" if best else "")])
        rows.append([f"{variant}: model file", size])
    for system in exp.systems:
        seconds = [t["seconds"] for name, t in timings.items() if name.startswith("decode test ") and name.endswith(system.name)]
        if seconds:
            rows.append([f"decode '{system.name}' (test lines, whole step)",
                         f"{test_lines * len(seconds) / sum(seconds):.1f} lines/s"])
    return rows


def training_minutes(metrics: list[dict]) -> float:
    """Wall-clock minutes over every run of a training: each run (a resume) restarts the
    ``minutes`` column from zero, so the last value of each run is added up."""
    total, previous = 0.0, 0.0
    for row in metrics:
        if row["minutes"] < previous:  # a new run started here
            total += previous
        previous = row["minutes"]
    return total + previous


def _training_state(model: Path) -> str:
    """' of 40 (finished)' / ' of 40 (unfinished: interim)' from the saved run config."""
    planned = _saved_flag(model, "max_epochs")
    state = "finished" if (model / DONE).is_file() else "unfinished: interim"
    return (f" of {planned}" if planned else "") + f" ({state})"


def unfinished_variants(exp: Experiment) -> list[str]:
    return [v for v in exp.variants if not exp.paths.done(v).is_file()]


def gallery(exp: Experiment, scores: dict, count: int = 4) -> list[dict]:
    """Best and worst test lines of the last variant by CER of the RNN alone."""
    variant = list(exp.variants)[-1]
    first = scores.get((variant, exp.systems[0].name))
    if first is None:
        return []
    records = {r.id: r for r in read_manifest(exp.test)}
    lines = sorted((r for r in first.per_line if r["chars"]), key=lambda r: r["char_errors"] / r["chars"])
    picked = [("best", r) for r in lines[:count]] + [("worst", r) for r in lines[::-1][:count]]
    outputs = {s.name: {r["id"]: r["hyp"] for r in scores[(variant, s.name)].per_line}
               for s in exp.systems if (variant, s.name) in scores}
    items = []
    for kind, row in picked:
        record = records.get(row["id"])
        image = resolve_image(exp.test, record) if record else None
        items.append({"kind": kind, "id": row["id"], "ref": row["ref"], "image": image,
                      "cer": row["char_errors"] / row["chars"],
                      "outputs": {name: hyps.get(row["id"], "") for name, hyps in outputs.items()}})
    return items


def write_report(folder: Path) -> dict[str, Path]:
    exp = load_experiment(ExperimentFolder(folder).config, folder, check_stages=False)
    out = exp.paths.report
    out.mkdir(parents=True, exist_ok=True)
    scores = _load_scores(exp, "test")
    calibrations = _read_each(exp, lambda variant, system: exp.paths.calibration(variant, "test", system))
    by_writer = writer_sums(exp.test, scores)
    tables = {"variants": variant_rows(exp), "paper": paper_table(exp, scores), "dropout": dropout_table(exp, scores), "lm": lm_table(exp, scores),
              "writers": writer_table(exp, by_writer),
              "lm_info": lm_rows(exp), "segmentation": segmentation_rows(exp), "pages": page_level(exp),
              "calibration": calibration_rows(calibrations), "cost": cost_rows(exp)}
    learning_curves(exp, out / "learning_curves.png")
    score_bars(exp, scores, out / "scores.png")
    figures = {"paper": "scores.png"}
    if writer_plot(exp, by_writer, out / "writers.png", _save_figure):
        figures["writers"] = "writers.png"
    if reliability_plot(exp, calibrations, out / "reliability.png"):
        figures["calibration"] = "reliability.png"
    items = gallery(exp, scores)
    data = {"title": exp.title, "tables": tables,
            "test": {f"{v}/{s}": {k: sc.data[k] for k in ("cer", "wer", "cer_ci95", "wer_ci95", "lines")}
                     for (v, s), sc in scores.items()}}
    atomic_write_text(out / "metrics.json", json.dumps(data, indent=1, ensure_ascii=False) + "\n")
    unfinished = unfinished_variants(exp)
    atomic_write_text(out / "report.md", markdown_page(exp, tables, items, unfinished, figures))
    atomic_write_text(out / "report.html", html_page(exp, tables, items, out, unfinished, figures))
    return {"markdown": out / "report.md", "html": out / "report.html", "metrics": out / "metrics.json"}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="htr report",
                                     description="Write EXP_DIR/report/report.md, report.html (self-contained), "
                                                 "metrics.json and plots from the outputs of 'htr run'.")
    parser.add_argument("folder", type=Path, metavar="EXP_DIR", help="experiment folder written by 'htr run'")
    args = parser.parse_args(argv)
    config = ExperimentFolder(args.folder).config
    if not config.is_file():
        print(f"htr report: {config} not found; is this a folder written by 'htr run'?", file=sys.stderr)
        return 2
    paths = write_report(args.folder)
    print(f"report: {paths['markdown']}\n        {paths['html']}")
    return 0
