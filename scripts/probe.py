"""Probe protocol: train one recipe on Copiste train for a fixed number of epochs and compare.

    .venv/bin/python scripts/probe.py NAME --epochs 10 [--threads 1] -- [htr train flags]
    .venv/bin/python scripts/probe.py --summary          # table + plot from what is there
    .venv/bin/python scripts/probe.py NAME --record MODEL_DIR -- [its flags]   # a training run elsewhere
    .venv/bin/python scripts/probe.py --compare A B [...] --plot reports/probes/A-vs-B.png
    .venv/bin/python scripts/probe.py NAME --keep        # best weights -> models/copiste-next/NAME (commit)
    .venv/bin/python scripts/probe.py NAME --from-kept --epochs 80   # a fresh checkout continues from there

Each probe trains with ``htr train`` into ``work/probes/NAME`` (checkpoints stay there, out
of git; rerun the same command to continue an interrupted probe) on the Copiste line manifests
(``make copiste-data``), on one thread by default so that two probes can run side by side.
Results go to ``reports/probes/`` (committed):

- ``NAME.csv``: per epoch the dev CER, training loss, lines/s and the cumulative training
  CPU-minutes (training seconds x threads; the dev evaluation is not counted), and for
  trainings that logged them the median gradient norm before clipping and the share of
  updates ``--clip`` scaled down (``grad_norm``, ``clipped``);
- ``NAME.json``: the flags and the command, so any probe can be rerun;
- ``summary.md``: one row per probe: its flags, dev CER at epochs 5 / 10 / 20, CPU-minutes;
- ``probes.png``: dev CER against epoch and against CPU-minutes, every probe overlaid, a row
  of panels per family of probes (``PROBE_FAMILIES``: the start of the name);
- ``--compare``: a plot of a few named probes only, dev CER and training loss per epoch (does
  one fit its training lines better yet read dev worse?).

A probe's flags must not change once it has started (``htr train --resume`` refuses model
flags that differ); give a changed recipe a new name.  A probe whose epochs are recorded in
``reports/probes`` but whose checkpoint is gone (a fresh checkout has no ``work/``) is not
started over under the same name unless ``--restart`` says to replace its record; a long probe
that must outlive its checkout is saved with ``--keep`` at the end of a session (its model folder,
no checkpoint) and continued with ``--from-kept``: from its best weights, with its epoch count,
metrics and flags, and a new optimiser (a warm continuation, not an exact resume).
"""
from __future__ import annotations

import argparse
import csv
import fcntl
import io
import json
import signal
import subprocess
import sys
from contextlib import contextmanager
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from common.files import atomic_write_bytes, atomic_write_text  # noqa: E402
from pipeline.folders import (CONFIG_FILE, LAST, METRICS_JSON, WARM_START, WEIGHTS, copy_model_folder,  # noqa: E402
                              read_metrics)
from pipeline.metrics import cpu_time  # noqa: E402

WORK = ROOT / "work" / "probes"
REPORTS = ROOT / "reports" / "probes"
TRAIN = ROOT / "work" / "copiste" / "train" / "manifest.jsonl"
DEV = ROOT / "work" / "copiste" / "dev" / "manifest.jsonl"
MARK_EPOCHS = (5, 10, 20)
LINE_STYLES = ("-", "--", ":", "-.")
LEGEND_ROWS = 14  # names per legend column beside a row of panels
# probes.png draws a row of panels per family, told by the start of a probe's name (the names of
# reports/probes/README.md): dozens of curves in one panel tell no probe from another
PROBE_FAMILIES = (
    ("MDLSTM, all training lines", ("copiste-", "paper-")),
    ("MDLSTM, an eighth of the training lines", ("eighth-",)),
    ("CNN + BLSTM (and synthetic pretraining)", ("crnn-", "synth-")),
    ("averaging and snapshot stages", ("swa-", "snap-", "ps-direct-")),
)
OTHER_FAMILY = "first probes of the recipe"


def train_command(name: str, epochs: int, threads: int, flags: list[str]) -> list[str]:
    out = WORK / name
    command = [str(ROOT / ".venv" / "bin" / "htr"), "train", "--out", str(out), "--max-epochs", str(epochs),
               "--threads", str(threads), "--no-progress"]
    if continues(name):
        return command + ["--resume"]
    return command + ["--train", str(TRAIN), "--dev", str(DEV), "--patience", "0", *flags]


def kept_files_missing(folder: Path) -> list[str]:
    """What ``htr train --resume`` needs in ``folder`` to continue without ``last.pt``, and is not there."""
    return [name for name in KEPT_FILES if not (folder / name).is_file()]


def continues(name: str) -> bool:
    """Whether ``work/probes/NAME`` holds a training to continue: its checkpoint (exact), or only its
    model folder as ``--keep`` saved it (htr train goes on from the best weights with a new optimiser)."""
    out = WORK / name
    return (out / LAST).is_file() or not kept_files_missing(out)


def keep(name: str) -> str:
    """Copy the probe's best weights and metrics to ``models/copiste-next/NAME`` (committed: a fresh
    checkout continues it with ``--from-kept``); returns what was done, or raises OSError."""
    source, target = WORK / name, KEPT / name
    missing = kept_files_missing(source)
    if missing:
        raise FileNotFoundError(f"{source} has no {', '.join(missing)}: nothing to keep yet")
    copy_model_folder(source, target)
    return f"probe: {name}: its best weights after {len(read_metrics(target))} epochs -> {target}"


def from_kept(name: str) -> str:
    """Put the folder ``--keep`` saved back into ``work/probes/NAME`` so the probe continues from it."""
    source, target = KEPT / name, WORK / name
    if (target / LAST).is_file():
        raise FileExistsError(f"{target / LAST} exists: the probe continues from it without --from-kept")
    if kept_files_missing(source):
        raise FileNotFoundError(f"{source} is not a kept probe (scripts/probe.py {name} --keep saves one)")
    copy_model_folder(source, target)
    return f"probe: {name}: continuing from {source} (its best weights, a new optimiser)"


GRADIENT_COLUMNS = ("grad_norm", "clipped")
KEPT = ROOT / "models" / "copiste-next"
KEPT_FILES = (*WARM_START, CONFIG_FILE)  # the model folder and the flags --resume reloads


def probe_rows(folder: Path, threads: int) -> list[dict]:
    """The metrics of the training in ``folder`` with cumulative training CPU-minutes."""
    metrics = read_metrics(folder)
    # the gradient's median norm and the share of clipped updates, where every epoch logged them
    # (trainings started before ``htr train`` logged them have neither)
    extra = [key for key in GRADIENT_COLUMNS if all(row.get(key) is not None for row in metrics)]
    return [{"epoch": row["epoch"], "dev_cer": row["dev_cer"], "train_loss": row["train_loss"],
             "lines_per_s": row["lines_per_s"], "cpu_minutes": round(minutes, 2), **{key: row[key] for key in extra}}
            for row, minutes in zip(metrics, cpu_time(metrics, threads, unit_seconds=60))]


def recorded_epochs(name: str) -> int:
    """How many epochs ``reports/probes/NAME.csv`` records (0 when there is none)."""
    path = REPORTS / f"{name}.csv"
    if not path.is_file():
        return 0
    with path.open(encoding="utf-8") as handle:
        return sum(1 for _ in csv.DictReader(handle))


def lost_checkpoint_message(name: str) -> str | None:
    """Why ``NAME`` must not be trained now, or None: its record would be replaced by a run that
    starts over, because the checkpoint it continued from is not in this checkout."""
    epochs = recorded_epochs(name)
    if not epochs or continues(name):
        return None
    kept = (f"; {KEPT / name} holds its best weights: --from-kept continues from them"
            if (KEPT / name / WEIGHTS).is_file() else "")
    return (f"probe: {name}: {epochs} epochs are recorded in {REPORTS / f'{name}.csv'}, but its checkpoint "
            f"{WORK / name / LAST} is missing (a fresh checkout has no work/), so this would train it "
            f"from the start and replace that record; give the new run another name, or pass --restart "
            f"to replace the record{kept}")


def write_probe(name: str, threads: int, flags: list[str], command: list[str], folder: Path | None = None) -> None:
    rows = probe_rows(folder or WORK / name, threads)
    REPORTS.mkdir(parents=True, exist_ok=True)
    lines = [",".join(rows[0])] + [",".join(str(row[key]) for key in rows[0]) for row in rows]
    atomic_write_text(REPORTS / f"{name}.csv", "\n".join(lines) + "\n")
    described = {"name": name, "flags": flags, "threads": threads,
                 "command": " ".join(["scripts/probe.py", name, "--epochs", str(rows[-1]["epoch"]),
                                      "--threads", str(threads), "--", *flags])}
    if folder is not None:  # recorded, not trained, by this script
        described["command"] = " ".join(["scripts/probe.py", name, "--record", str(folder), "--threads", str(threads), "--", *flags])
    atomic_write_text(REPORTS / f"{name}.json", json.dumps(described, indent=1) + "\n")
    print(f"probe {name}: {len(rows)} epochs, dev CER {rows[-1]['dev_cer']}% at {rows[-1]['cpu_minutes']} CPU-min; "
          + (f"recorded from {folder}" if folder is not None else f"trained by {' '.join(command[1:3])}"), file=sys.stderr)


def read_probes() -> dict[str, tuple[dict, list[dict]]]:
    probes = {}
    for path in sorted(REPORTS.glob("*.csv")):
        with path.open(encoding="utf-8") as handle:
            rows = [{key: float(value) for key, value in row.items()} for row in csv.DictReader(handle)]
        described = json.loads(path.with_suffix(".json").read_text(encoding="utf-8"))
        probes[path.stem] = (described, rows)
    return probes


def summary_table(probes: dict) -> str:
    head = ["probe", "flags"] + [f"CER @{e}" for e in MARK_EPOCHS] + ["epochs", "best CER", "CPU-min"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for name, (described, rows) in probes.items():
        at = {int(row["epoch"]): row for row in rows}
        marks = [f"{at[e]['dev_cer']:.1f}" if e in at else "" for e in MARK_EPOCHS]
        best = min(row["dev_cer"] for row in rows)
        lines.append("| " + " | ".join([name, "`" + " ".join(described["flags"]) + "`" if described["flags"] else "(defaults)",
                                         *marks, str(int(rows[-1]["epoch"])), f"{best:.1f}",
                                         f"{rows[-1]['cpu_minutes']:.0f}"]) + " |")
    return "\n".join(lines) + "\n"


def save_png(fig, path: Path) -> None:
    """Write ``fig`` to ``path`` atomically and close it."""
    import matplotlib.pyplot as plt

    buffer = io.BytesIO()  # a unique temp file per writer: two probes may record at the same moment
    fig.savefig(buffer, format="png", dpi=110)
    plt.close(fig)
    atomic_write_bytes(path, buffer.getvalue())


def probe_family(name: str) -> str:
    return next((title for title, prefixes in PROBE_FAMILIES if name.startswith(prefixes)), OTHER_FAMILY)


def by_family(probes: dict) -> dict[str, dict]:
    """``probes`` split into families, in the order of PROBE_FAMILIES (the first probes first);
    a family without probes is left out."""
    order = [OTHER_FAMILY] + [title for title, _ in PROBE_FAMILIES]
    grouped = {title: {} for title in order}
    for name, probe in probes.items():
        grouped[probe_family(name)][name] = probe
    return {title: members for title, members in grouped.items() if members}


def plot(probes: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    families = by_family(probes)
    fig, axes = plt.subplots(len(families), 2, figsize=(14, 3.4 * len(families)), squeeze=False,
                             layout="constrained")
    colours = plt.get_cmap("tab10").colors
    for (title, members), (by_epoch, by_cpu) in zip(families.items(), axes):
        for number, (name, (_, rows)) in enumerate(members.items()):
            style = {"color": colours[number % len(colours)], "marker": ".", "markersize": 3, "label": name,
                     "linestyle": LINE_STYLES[number // len(colours) % len(LINE_STYLES)]}
            cer = [row["dev_cer"] for row in rows]
            by_epoch.plot([row["epoch"] for row in rows], cer, **style)
            by_cpu.plot([row["cpu_minutes"] for row in rows], cer, **style)
        by_epoch.set(xlabel="epoch", ylabel="Copiste dev CER (%), greedy", title=f"{title}: per epoch")
        by_cpu.set(xlabel="training CPU-minutes", title="per CPU-minute")
        by_cpu.sharey(by_epoch)
        for axis in (by_epoch, by_cpu):
            axis.grid(alpha=0.3)
        by_cpu.legend(loc="upper left", bbox_to_anchor=(1.01, 1), fontsize=7, frameon=False,
                      ncol=-(-len(members) // LEGEND_ROWS))
    save_png(fig, path)


def plot_comparison(names: list[str], path: Path) -> str | None:
    """Dev CER and training loss per epoch of the probes ``names``, side by side; returns an
    error message naming a probe that has no record, else None."""
    probes = read_probes()
    missing = [name for name in names if name not in probes]
    if missing:
        return f"probe: no record of {', '.join(missing)} in {REPORTS} (known: {', '.join(probes) or 'none'})"
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (cer_axis, loss_axis) = plt.subplots(1, 2, figsize=(11, 4.2))
    for name in names:
        rows = probes[name][1]
        epochs = [row["epoch"] for row in rows]
        best = min(rows, key=lambda row: row["dev_cer"])
        line, = cer_axis.plot(epochs, [row["dev_cer"] for row in rows], label=f"{name} (best {best['dev_cer']:.1f} @ {int(best['epoch'])})")
        cer_axis.plot([best["epoch"]], [best["dev_cer"]], "o", color=line.get_color())
        loss_axis.plot(epochs, [row["train_loss"] for row in rows], color=line.get_color(), label=name)
    cer_axis.set(xlabel="epoch", ylabel="dev CER (%), greedy", title="dev CER per epoch")
    loss_axis.set(xlabel="epoch", ylabel="training CTC loss per target character\n(as trained: dropout on)", title="training loss per epoch")
    for axis in (cer_axis, loss_axis):
        axis.grid(alpha=0.3)
        axis.legend(fontsize=8)
    fig.tight_layout()
    save_png(fig, path)
    return None


@contextmanager
def _one_summary_at_a_time():
    """Two probes that finish at the same moment each rebuild the table from the files they
    read; unserialised, the later write could be the one that read before the other's files
    existed, and a probe went missing from summary.md.  The second waits for the first."""
    WORK.mkdir(parents=True, exist_ok=True)
    with open(WORK / ".summary.lock", "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        yield


def write_summary() -> None:
    with _one_summary_at_a_time():
        probes = read_probes()
        if not probes:
            print(f"no probe results in {REPORTS}", file=sys.stderr)
            return
        atomic_write_text(REPORTS / "summary.md", "# Probes (scripts/probe.py)\n\n" + summary_table(probes))
        plot(probes, REPORTS / "probes.png")
    print(f"{len(probes)} probes -> {REPORTS / 'summary.md'}, {REPORTS / 'probes.png'}", file=sys.stderr)


def _interrupt(signum, frame) -> None:
    raise KeyboardInterrupt


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    flags = argv[argv.index("--") + 1:] if "--" in argv else []
    own = argv[:argv.index("--")] if "--" in argv else argv
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     epilog="Everything after -- goes to htr train.")
    parser.add_argument("name", nargs="?", help="probe name (folder work/probes/NAME, reports/probes/NAME.*)")
    parser.add_argument("--epochs", type=int, default=10, help="train up to this many epochs")
    parser.add_argument("--threads", type=int, default=1, help="torch threads of the training")
    parser.add_argument("--summary", action="store_true", help="only rebuild summary.md and probes.png")
    parser.add_argument("--record", type=Path, metavar="MODEL_DIR",
                        help="train nothing: record the epochs that a training elsewhere (e.g. an experiment's "
                             "model folder) has done so far as probe NAME; the flags after -- name its recipe")
    parser.add_argument("--restart", action="store_true",
                        help="train NAME from the start although reports/probes records epochs of it whose "
                             "checkpoint is gone (its record is replaced)")
    parser.add_argument("--keep", action="store_true",
                        help="train nothing: copy NAME's best weights and metrics to models/copiste-next/NAME, "
                             "so that a fresh checkout (no work/) can continue it with --from-kept")
    parser.add_argument("--from-kept", action="store_true",
                        help="continue NAME from models/copiste-next/NAME (what --keep saved) when its checkpoint "
                             "is gone: the best weights, epoch count and metrics, with a new optimiser")
    parser.add_argument("--compare", nargs="+", metavar="PROBE",
                        help="train nothing: plot these probes' dev CER and training loss per epoch into --plot")
    parser.add_argument("--plot", type=Path, help="the PNG that --compare writes")
    args = parser.parse_args(own)
    if args.compare:
        if args.plot is None:
            parser.error("--compare needs --plot FILE.png")
        try:
            error = plot_comparison(args.compare, args.plot)
        except OSError as failure:
            error = f"probe: cannot write {args.plot}: {failure.strerror or failure}"
        print(error or f"{', '.join(args.compare)} -> {args.plot}", file=sys.stderr)
        return 1 if error else 0
    if args.summary or not args.name:
        write_summary()
        return 0
    if args.keep or args.from_kept:
        try:
            print(keep(args.name) if args.keep else from_kept(args.name), file=sys.stderr)
        except OSError as failure:
            print(f"probe: {failure}", file=sys.stderr)
            return 1
        if args.keep:
            return 0
    if args.record is not None:
        if not (args.record / METRICS_JSON).is_file():
            print(f"probe: {args.record / METRICS_JSON} is missing: nothing to record", file=sys.stderr)
            return 1
        write_probe(args.name, args.threads, flags, ["htr", "train", "(recorded)"], args.record)
        write_summary()
        return 0
    for manifest in (TRAIN, DEV):
        if not manifest.is_file():
            print(f"probe: {manifest} is missing: run `make copiste-data` first", file=sys.stderr)
            return 1
    lost = lost_checkpoint_message(args.name)
    if lost and not args.restart:
        print(lost, file=sys.stderr)
        return 1
    saved = REPORTS / f"{args.name}.json"
    if saved.is_file() and continues(args.name):
        flags = json.loads(saved.read_text(encoding="utf-8"))["flags"]  # a resumed probe keeps its recipe
    command = train_command(args.name, args.epochs, args.threads, flags)
    REPORTS.mkdir(parents=True, exist_ok=True)
    # while it runs, the record names the command that continues it (a killed run keeps it)
    running = " ".join(["scripts/probe.py", args.name, "--epochs", str(args.epochs), "--threads", str(args.threads),
                        "--", *flags])
    atomic_write_text(saved, json.dumps({"name": args.name, "flags": flags, "threads": args.threads,
                                         "command": running, "state": "running"}, indent=1) + "\n")
    # Ctrl-C, SIGINT or SIGTERM stops the training (its last.pt stays) and records what it did; a
    # probe started in the background has SIGINT ignored by the shell, so both are set here
    previous = {sig: signal.signal(sig, _interrupt) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        code = subprocess.call(command)
    except KeyboardInterrupt:
        print(f"probe: {args.name} interrupted; what it trained is recorded, the same command continues it",
              file=sys.stderr)
        code = 130
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    if (WORK / args.name / METRICS_JSON).is_file():
        write_probe(args.name, args.threads, flags, command)
        write_summary()
    return code


if __name__ == "__main__":
    raise SystemExit(main())
