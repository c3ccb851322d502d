"""Fine-tuning benchmark: how much a few minutes of ``htr train --init`` on a writer's first
page lower the greedy CER on the same writer's second page.

    .venv/bin/python scripts/finetune_bench.py NAME [--base models/copiste/default]
        [--max-minutes 3] [--threads 2] [--dropout P] [--dev first|heldout|none] -- [htr train flags]
    .venv/bin/python scripts/finetune_bench.py --summary     # only rebuild reports/finetune/summary.md

The protocol (``make finetune-bench``):

1. From the Copiste dev manifest (``work/copiste/dev/manifest.jsonl``, ``make copiste-data``)
   take the documents that have two pages (page stems ``*_1`` and ``*_2`` in each record's
   ``page``; 7 documents) and write ``work/finetune-bench/first_pages.jsonl`` (the lines of
   their first pages) and ``second_pages.jsonl`` (of their second pages); image paths are
   rewritten relative to the new manifests.
2. Greedy CER of the base model folder on the second pages: ``htr recognize`` +
   ``htr decode --decoder greedy`` + ``htr evaluate`` (kept in ``work/finetune-bench/base/``,
   recomputed when the model is newer).
3. ``htr train --init BASE --train first_pages.jsonl --dev first_pages.jsonl --max-minutes M
   --threads T`` plus the flags after ``--``, into ``work/finetune-bench/runs/NAME`` (started
   afresh each time).  With ``--dev first`` (default) the epoch kept is the one with the
   lowest greedy CER on the training lines themselves (no second-page line is ever seen);
   ``--dev heldout`` trains on 80% of the first-page lines (``first_train.jsonl``) and keeps the
   epoch with the lowest CER on the other 20% (``first_heldout.jsonl``: every fifth line of
   each first page, so every hand is in both); ``--dev none`` keeps the last epoch.
4. The same measurement on the fine-tuned model; ``reports/finetune/NAME.json`` (base, flags,
   minutes, threads, epochs, lines/s, CER and WER before and after, relative change, the
   commands) and ``NAME.md`` (its table row); ``summary.md`` collects every run's row.

``htr train --init`` takes the layout of the base folder and, unless ``--dropout`` is given, its
dropout; ``--dropout P`` passes that flag to the training.
"""
from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from common.files import atomic_write_text  # noqa: E402
from pipeline.cli import run_htr  # noqa: E402
from pipeline.folders import trainable_model  # noqa: E402

DEV = ROOT / "work" / "copiste" / "dev" / "manifest.jsonl"
WORK = ROOT / "work" / "finetune-bench"
REPORTS = ROOT / "reports" / "finetune"
BASE = ROOT / "models" / "copiste" / "default"
TARGET = -0.20  # the target: -20% relative CER on the second pages ...
TARGET_MINUTES = 3.0  # ... in at most this many minutes of fine-tuning
IN_PROCESS = False  # run the htr commands in this process (the tests), not as subprocesses
PAGE = re.compile(r"^(?P<doc>.+)_(?P<number>[12])$")
ROW_HEAD = ["run", "base", "flags", "minutes", "threads", "epochs", "lines/s", "first-page CER", "CER before",
            "CER after", "relative", "WER before", "WER after"]


def rel(path: Path) -> str:
    """``path`` as written in reports and commands: relative to the repository when inside it."""
    path = Path(path).resolve()
    try:
        return path.relative_to(ROOT).as_posix()
    except ValueError:
        return str(path)


# ---------------------------------------------------------------- step 1: the two manifests

def page_stem(page: str) -> str:
    return Path(page.replace("\\", "/")).stem


def split_pages(dev: Path = DEV, out: Path | None = None) -> dict:
    """Write ``first_pages.jsonl`` and ``second_pages.jsonl`` of the two-page documents of
    ``dev``; returns the documents and line counts."""
    out = out or WORK
    records = [json.loads(line) for line in Path(dev).read_text(encoding="utf-8").splitlines() if line.strip()]
    pages: dict[str, dict[str, list[dict]]] = {}
    for record in records:
        match = PAGE.match(page_stem(record.get("page") or ""))
        if match:
            pages.setdefault(match["doc"], {}).setdefault(match["number"], []).append(record)
    documents = sorted(doc for doc, numbers in pages.items() if {"1", "2"} <= set(numbers))
    if not documents:
        raise SystemExit(f"{dev}: no document with pages *_1 and *_2")
    out.mkdir(parents=True, exist_ok=True)
    counts = {}
    for number, name in (("1", "first_pages"), ("2", "second_pages")):
        lines = []
        for doc in documents:
            for record in pages[doc][number]:
                image = Path(record["image"])
                image = image if image.is_absolute() else Path(dev).parent / image
                lines.append(json.dumps({**record, "image": os.path.relpath(image, out)}, ensure_ascii=False))
        atomic_write_text(out / f"{name}.jsonl", "\n".join(lines) + "\n")
        counts[name] = len(lines)
    return {"documents": documents, **counts}


HELD_OUT_EVERY = 5  # --dev heldout: every fifth line of each first page is held out (20%)


def hold_out(out: Path | None = None, every: int = HELD_OUT_EVERY) -> dict:
    """Split ``first_pages.jsonl`` into ``first_train.jsonl`` and ``first_heldout.jsonl``
    (line k of each page held out when k % every == every - 1); returns the line counts."""
    out = out or WORK
    kept: dict[str, list[str]] = {"first_train": [], "first_heldout": []}
    seen: dict[str, int] = {}
    for line in (out / "first_pages.jsonl").read_text(encoding="utf-8").splitlines():
        if line.strip():
            page = json.loads(line).get("page") or ""
            k = seen[page] = seen.get(page, -1) + 1
            kept["first_heldout" if k % every == every - 1 else "first_train"].append(line)
    for name, lines in kept.items():
        atomic_write_text(out / f"{name}.jsonl", "\n".join(lines) + "\n")
    return {name: len(lines) for name, lines in kept.items()}


# ---------------------------------------------------------------- running htr

def htr(args: list[str]) -> None:
    """Run ``htr ARGS`` (a subprocess from the repository root, or in this process)."""
    run_htr(args, IN_PROCESS, ROOT)


def measure(model: Path, folder: Path, second: Path, threads: int) -> dict:
    """Greedy CER/WER of ``model`` on ``second`` (files in ``folder``); reused while newer than the model."""
    result = folder / "second_pages.eval.json"
    newest = max((model / name).stat().st_mtime for name in ("model.json", "weights.pt"))
    newest = max(newest, second.stat().st_mtime)
    if not (result.is_file() and result.stat().st_mtime > newest):
        folder.mkdir(parents=True, exist_ok=True)
        logits, hyp = folder / "second_pages.npz", folder / "second_pages.greedy.txt"
        htr(["recognize", "--model", str(model), "--manifest", str(second), "--out", str(logits),
             "--threads", str(threads), "--quiet"])
        htr(["decode", "--logits", str(logits), "--decoder", "greedy", "--out", str(hyp)])
        htr(["evaluate", "--ref", str(second), "--hyp", str(hyp), "--out", str(result), "--bootstrap", "200"])
    data = json.loads(result.read_text(encoding="utf-8"))
    return {"cer": data["cer"], "wer": data["wer"], "char_errors": data["chars"]["errors"],
            "chars": data["chars"]["ref"], "lines": data["lines"]}


# ---------------------------------------------------------------- step 3: the fine-tuning

def train_args(init: Path | str, out: Path | str, first: Path | str, minutes: float, threads: int, dev: str,
               flags: list[str]) -> list[str]:
    """``htr train`` arguments; ``first``: the folder of the first-page manifests."""
    first = Path(first)
    train = first / ("first_train.jsonl" if dev == "heldout" else "first_pages.jsonl")
    args = ["train", "--init", str(init), "--train", str(train), "--out", str(out),
            "--max-minutes", f"{minutes:g}", "--threads", str(threads), "--no-progress"]
    selection = {"first": ["--dev", str(train)], "heldout": ["--dev", str(first / "first_heldout.jsonl")]}
    return args + selection.get(dev, []) + list(flags)


def training_summary(out: Path) -> dict:
    metrics = json.loads((out / "metrics.json").read_text(encoding="utf-8"))
    seconds = sum(row["epoch_seconds"] for row in metrics)
    lines = sum(row["lines_per_s"] * row["epoch_seconds"] for row in metrics)
    kept = min((row for row in metrics if row["dev_cer"] is not None), key=lambda row: row["dev_cer"],
               default=metrics[-1])
    return {"epochs": len(metrics), "minutes": metrics[-1]["minutes"],
            "lines_per_s": round(lines / seconds if seconds else sum(row["lines_per_s"] for row in metrics) / len(metrics), 2),
            "train_loss_last": metrics[-1]["train_loss"],
            "epoch_kept": kept["epoch"], "dev_cer_kept": kept["dev_cer"]}


# ---------------------------------------------------------------- reports

def pct(value: float) -> str:
    return f"{100 * value:.1f}%"


def table_row(report: dict) -> str:
    before, after, run = report["before"], report["after"], report["training"]
    flags = " ".join(report["train_flags"] + ([f"(dropout {report['dropout']:g})"] if report["dropout"] is not None else [])
                     + ([f"(dev {report['dev']})"] if report.get("dev", "first") != "first" else []))
    cells = [report["name"], f"`{report['base']}`", f"`{flags}`" if flags else "(none)",
             f"{run['minutes']:.2f}", str(report["threads"]), str(run["epochs"]), f"{run['lines_per_s']:.1f}",
             f"{run['dev_cer_kept']:.1f}% (epoch {run['epoch_kept']})" if run["dev_cer_kept"] is not None else "",
             f"{pct(before['cer'])} ({before['char_errors']}/{before['chars']})",
             f"{pct(after['cer'])} ({after['char_errors']}/{after['chars']})",
             f"{100 * report['relative_change']:+.1f}%", pct(before["wer"]), pct(after["wer"])]
    return "| " + " | ".join(cells) + " |"


def table_head() -> str:
    return "| " + " | ".join(ROW_HEAD) + " |\n|" + "---|" * len(ROW_HEAD)


def write_report(report: dict) -> None:
    REPORTS.mkdir(parents=True, exist_ok=True)
    atomic_write_text(REPORTS / f"{report['name']}.json", json.dumps(report, indent=1, ensure_ascii=False) + "\n")
    write_summary()


def write_summary() -> None:
    """Each run's ``NAME.md`` (its row) and ``summary.md`` (every run's row and command)."""
    reports = [json.loads(path.read_text(encoding="utf-8")) for path in sorted(REPORTS.glob("*.json"))]
    if not reports:
        print(f"no fine-tuning runs in {REPORTS}", file=sys.stderr)
        return
    for report in reports:
        atomic_write_text(REPORTS / f"{report['name']}.md", table_head() + "\n" + table_row(report) + "\n")
    lines = ["# Fine-tuning benchmark (scripts/finetune_bench.py)", "",
             "Greedy CER on the second pages of Copiste dev's two-page documents, before and after "
             f"fine-tuning on their first pages; target: {100 * TARGET:+.0f}% relative in <= {TARGET_MINUTES:g} minutes. "
             "First-page CER: the greedy CER of the epoch kept on the first-page lines it was selected on "
             "(--dev first: the training lines themselves; --dev heldout: the fifth of the lines held out of "
             "the training; --dev none: no selection, the last epoch).",
             "", table_head(), *[table_row(report) for report in reports], "", "Commands:", ""]
    lines += [f"- {report['name']}: `{report['command']}`" for report in reports]
    atomic_write_text(REPORTS / "summary.md", "\n".join(lines) + "\n")


# ---------------------------------------------------------------- the command

def bench(name: str, base: Path, minutes: float, threads: int, dev: str, dropout: float | None,
          flags: list[str], manifest: Path = DEV) -> dict:
    if not re.fullmatch(r"[A-Za-z0-9._-]+", name):
        raise SystemExit(f"run name {name!r}: use letters, digits, '.', '_' and '-'")
    split = split_pages(manifest, WORK)
    lines = hold_out(WORK) if dev == "heldout" else {"first_train": split["first_pages"], "first_heldout": 0}
    second = WORK / "second_pages.jsonl"
    base_slug = re.sub(r"[^A-Za-z0-9._-]+", "_", rel(base))
    before = measure(base, WORK / "base" / base_slug, second, threads)
    out = WORK / "runs" / name
    shutil.rmtree(out, ignore_errors=True)  # every run starts afresh
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else None
    started = time.perf_counter()
    train_flags = [*flags, *(["--dropout", f"{dropout:g}"] if dropout is not None else [])]
    htr(train_args(base, out, WORK, minutes, threads, dev, train_flags))
    wall = (time.perf_counter() - started) / 60
    after = measure(out, out / "eval", second, threads)
    command = " ".join(["scripts/finetune_bench.py", name, "--base", rel(base), "--max-minutes", f"{minutes:g}",
                        "--threads", str(threads), *(["--dev", dev] if dev != "first" else []),
                        *(["--dropout", f"{dropout:g}"] if dropout is not None else []), "--", *flags])
    relative = (after["cer"] - before["cer"]) / before["cer"] if before["cer"] else 0.0
    training = training_summary(out)
    report = {
        "name": name, "base": rel(base), "init": rel(base), "dropout": dropout, "train_flags": list(flags),
        "max_minutes": minutes, "threads": threads, "dev": dev, "documents": split["documents"],
        "first_page_lines": split["first_pages"], "second_page_lines": split["second_pages"],
        "train_lines": lines["first_train"], "heldout_lines": lines["first_heldout"],
        "training": {**training, "wall_minutes": round(wall, 2)}, "before": before, "after": after,
        "relative_change": round(relative, 4),
        "target_met": relative <= TARGET and training["minutes"] <= TARGET_MINUTES + 0.5,
        "load_average_at_start": load, "cpu_count": os.cpu_count(),
        "date": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"), "command": command,
        "train_command": "htr " + " ".join(train_args(rel(base), rel(out), rel(WORK), minutes, threads, dev, train_flags)),
    }
    write_report(report)
    print(f"finetune-bench {name}: greedy CER on the second pages {pct(before['cer'])} -> {pct(after['cer'])} "
          f"({100 * relative:+.1f}%), {training['epochs']} epochs in {training['minutes']:.2f} min, "
          f"{training['lines_per_s']:.1f} lines/s -> {rel(REPORTS / (name + '.json'))}", file=sys.stderr)
    return report


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    flags = argv[argv.index("--") + 1:] if "--" in argv else []
    own = argv[:argv.index("--")] if "--" in argv else argv
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     epilog="Everything after -- goes to htr train (e.g. --lr 0.001 --batch-size 4 "
                                            "--patience 0 --augment --augmentation full).")
    parser.add_argument("name", nargs="?", help="run name: work/finetune-bench/runs/NAME, reports/finetune/NAME.*")
    parser.add_argument("--base", type=Path, default=BASE, help=f"model folder to fine-tune (default: {rel(BASE)})")
    parser.add_argument("--max-minutes", type=float, default=3.0, help="fine-tuning wall-clock budget (default 3)")
    parser.add_argument("--threads", type=int, default=2, help="torch threads (default 2)")
    parser.add_argument("--dev", choices=("first", "heldout", "none"), default="first",
                        help="model selection on the first pages' lines (the training lines; default), on a fifth "
                             "of them held out of the training (heldout), or none (the last epoch)")
    parser.add_argument("--dropout", type=float, help="fine-tune with this dropout instead of the base model's own")
    parser.add_argument("--manifest", type=Path, default=DEV, help=f"dev manifest (default: {rel(DEV)})")
    parser.add_argument("--summary", action="store_true", help="only rebuild reports/finetune/summary.md")
    args = parser.parse_args(own)
    if args.summary or not args.name:
        write_summary()
        return 0
    for path, fix in ((args.manifest, "make copiste-data"), (args.base / "model.json", "a model folder written by htr train")):
        if not path.is_file():
            print(f"finetune_bench: {path}: not found ({fix})", file=sys.stderr)
            return 2
    base = trainable_model(args.base)  # an ensemble: its first member, the network htr train --init trains
    if base != args.base:
        print(f"finetune_bench: {args.base} is an ensemble; the base is its first member, {base}", file=sys.stderr)
    bench(args.name, base, args.max_minutes, args.threads, args.dev, args.dropout, flags, args.manifest)
    return 0


if __name__ == "__main__":
    sys.exit(main())
