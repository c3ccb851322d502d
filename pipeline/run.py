"""``htr run CONFIG``: one experiment, every stage, resumable.

A TOML config names the data, the model variants, the LM and the decoders (see
``configs/synthetic.toml``).  The runner turns it into a list of steps, each an
``htr`` command with its input and output files, and runs the steps whose outputs
are missing or older than their inputs, so a killed run continues where it
stopped (training itself resumes from its ``last.pt``).  Everything is written in
one experiment folder; step durations go to ``timings.json`` for the report.

Experiment folder::

    segment/pred/        predicted lines (ALTO) of the test pages; segment/eval.json
    segment/lines/       line crops of the predicted lines (no text)
    models/VARIANT/      model.json + weights.pt, metrics.json, last.pt
    lm/                  lexicon, KenLM binary; lm/VARIANT/tuned.json (per-variant LM weights)
    logits/VARIANT/SPLIT.npz, hyp/VARIANT/SPLIT.SYSTEM.tsv, eval/VARIANT/SPLIT.SYSTEM.json
    timings.json, config.toml, report/
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from data_prep.records import atomic_write_bytes, atomic_write_text
from pipeline.folders import CONFIG_FILE, EXPORTED_FILES, LAST, WEIGHTS, can_resume, can_warm_start, read_metrics


@dataclass
class System:
    """A decoding set-up shown as one column pair (CER, WER) of the report table."""

    name: str
    decoder: str
    options: dict[str, Any] = field(default_factory=dict)  # extra htr decode flags
    tune: bool = False  # use the LM weight and word bonus tuned on dev


@dataclass
class Experiment:
    folder: Path
    train: Path
    dev: Path
    test: Path
    lm_text: list[Path]
    test_pages: Path | None
    variants: dict[str, dict[str, Any]]
    train_options: dict[str, Any]
    lm_options: dict[str, Any]
    systems: list[System]
    tune_decoder: str
    jobs: int
    prepare: list[list[str]]  # htr prepare commands that create the data when it is missing
    title: str
    train_until: str = "minutes"  # "minutes": one run of max_minutes is the whole training; "epochs": see below
    train_jobs: int = 1  # variants trained at the same time, the cores split between them
    resume_from: Path | None = None  # exported model folders (models/NAME/VARIANT) that unstarted trainings continue


def _require(table: dict, key: str, where: str) -> Any:
    if key not in table:
        raise ValueError(f"config: missing '{key}' in [{where}]")
    return table[key]


def load_experiment(path: Path, folder: Path | None = None) -> Experiment:
    """Read and check a TOML experiment config; relative paths are relative to the current folder."""
    try:
        data = tomllib.loads(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ValueError(f"{path}: config file not found") from None
    except tomllib.TOMLDecodeError as error:
        raise ValueError(f"{path}: not valid TOML ({error})") from None
    dataset = _require(data, "data", "top level")
    variants = {v["name"]: {k: x for k, x in v.items() if k != "name"} for v in _require(data, "variants", "top level")}
    if not variants:
        raise ValueError(f"{path}: at least one [[variants]] is needed")
    decode = data.get("decode", {})
    systems = [System(name=s["name"], decoder=s["decoder"], options=s.get("options", {}), tune=s.get("tune", False))
               for s in decode.get("systems", [{"name": "RNN alone", "decoder": "greedy"}])]
    pages = dataset.get("test_pages")
    return Experiment(
        folder=Path(folder or data.get("folder") or f"work/experiments/{Path(path).stem}"),
        train=Path(_require(dataset, "train", "data")), dev=Path(_require(dataset, "dev", "data")),
        test=Path(_require(dataset, "test", "data")),
        lm_text=[Path(p) for p in dataset.get("lm_text", [])],
        test_pages=Path(pages) if pages else None,
        variants=variants, train_options=data.get("train", {}), lm_options=data.get("lm", {}),
        systems=systems, tune_decoder=decode.get("tune_decoder", "lexicon"),
        jobs=int(data.get("jobs", 2)), prepare=_commands(dataset.get("prepare", [])),
        title=data.get("title", Path(path).stem), train_until=data.get("train_until", "minutes"),
        train_jobs=max(1, int(data.get("train_jobs", 1))),
        resume_from=Path(data["resume_from"]) if data.get("resume_from") else None)


def _commands(value: list) -> list[list[str]]:
    """``prepare`` is one htr argv (a list of strings) or a list of them."""
    if value and all(isinstance(item, str) for item in value):
        return [list(value)]
    return [list(item) for item in value]


def flags(options: dict[str, Any]) -> list[str]:
    """``{"max_minutes": 4, "augment": True}`` -> ``["--max-minutes", "4", "--augment"]``."""
    argv: list[str] = []
    for key, value in options.items():
        flag = "--" + key.replace("_", "-")
        if isinstance(value, bool):
            argv.append(flag if value else "--no-" + key.replace("_", "-"))
        elif isinstance(value, list):
            argv += [flag, ",".join(str(v) for v in value)]
        else:
            argv += [flag, str(value)]
    return argv


@dataclass
class Step:
    name: str
    argv: list[str]  # arguments of ``htr``
    inputs: list[Path]
    outputs: list[Path]  # the step is done when all exist and are newer than the inputs

    def up_to_date(self) -> bool:
        if not all(p.exists() for p in self.outputs):
            return False
        newest_input = max((p.stat().st_mtime for p in self.inputs if p.exists()), default=0.0)
        return min(p.stat().st_mtime for p in self.outputs) >= newest_input


def plan(exp: Experiment) -> list[Step]:
    """Every step of the experiment, in an order that respects their inputs."""
    f = exp.folder
    steps: list[Step] = []
    splits = {"dev": exp.dev, "test": exp.test}
    if exp.test_pages is not None:
        pages = sorted(p for p in exp.test_pages.iterdir() if p.suffix.lower() in (".jpg", ".jpeg", ".png", ".tif"))
        pred = f / "segment" / "pred"
        steps.append(Step("segment test pages", ["segment", *map(str, pages), "--out", str(pred), "--jobs", str(exp.jobs)],
                          pages, [pred / f"{p.stem}.xml" for p in pages]))
        steps.append(Step("score segmentation", ["segment-eval", "--pred", str(pred), "--gt", str(exp.test_pages),
                                                 "--out", str(f / "segment" / "eval.json")],
                          [pred / f"{p.stem}.xml" for p in pages], [f / "segment" / "eval.json"]))
        seg_manifest = f / "segment" / "lines" / "manifest.jsonl"
        steps.append(Step("crop predicted lines", ["prepare", f"alto:{pred}", "--out", str(seg_manifest.parent),
                                                   "--keep-empty", "--no-progress"],
                          [pred / f"{p.stem}.xml" for p in pages], [seg_manifest]))
        splits["test-seg"] = seg_manifest
    lm = f / "lm"
    lm_argv = ["lm", "--text", *map(str, exp.lm_text), "--out", str(lm), "--dev", str(exp.dev), *flags(exp.lm_options)]
    steps.append(Step("build the language model", lm_argv, exp.lm_text, [lm / "lexicon.txt"]))
    for variant, options in exp.variants.items():
        model = f / "models" / variant
        train_argv = ["train", "--train", str(exp.train), "--dev", str(exp.dev), "--out", str(model),
                      *flags({**exp.train_options, **options})]
        steps.append(Step(f"train {variant}", train_argv, [exp.train, exp.dev], [model / "DONE"]))
        tuned = lm / variant
        for split, manifest in splits.items():
            logits = f / "logits" / variant / f"{split}.npz"
            steps.append(Step(f"recognise {split} with {variant}",
                              ["recognize", "--model", str(model), "--manifest", str(manifest), "--out", str(logits)],
                              [model / "weights.pt", manifest], [logits]))
        if any(system.tune for system in exp.systems):
            steps.append(Step(f"tune LM weight for {variant}",
                              ["tune", "--logits", str(f / "logits" / variant / "dev.npz"), "--refs", str(exp.dev),
                               "--lm", str(tuned), "--decoder", exp.tune_decoder, "--jobs", str(exp.jobs)],
                              [f / "logits" / variant / "dev.npz", lm / "lexicon.txt"], [tuned / "tuned.json"]))
        for split in (s for s in splits if s != "dev"):  # dev only serves tuning
            logits = f / "logits" / variant / f"{split}.npz"
            for system in exp.systems:
                slug = system_slug(system)
                hyp = f / "hyp" / variant / f"{split}.{slug}.tsv"
                lm_dir = tuned if system.tune else lm
                argv = ["decode", "--logits", str(logits), "--decoder", system.decoder, "--out", str(hyp),
                        "--jobs", str(exp.jobs), *flags(system.options)]
                if system.decoder != "greedy" and system.decoder != "beam":
                    argv += ["--lm", str(lm_dir)]
                inputs = [logits] + ([tuned / "tuned.json"] if system.tune else [])
                steps.append(Step(f"decode {split} {variant} {system.name}", argv, inputs, [hyp]))
                if split != "test-seg":
                    out = f / "eval" / variant / f"{split}.{slug}.json"
                    steps.append(Step(f"score {split} {variant} {system.name}",
                                      ["evaluate", "--ref", str(splits[split]), "--hyp", str(hyp), "--out", str(out)],
                                      [hyp], [out]))
    return steps


def system_slug(system: System) -> str:
    """'+ lexicon + LM' -> 'lexicon-lm': a file-name part."""
    return "-".join("".join(c if c.isalnum() else " " for c in system.name.lower()).split())


def _prepare_tuned_dir(lm: Path, tuned: Path) -> None:
    """A per-variant LM folder: links to the shared LM files, its own tuned.json."""
    tuned.mkdir(parents=True, exist_ok=True)
    for item in lm.iterdir():
        target = tuned / item.name
        if item.is_file() and item.name != "tuned.json" and not target.exists():
            os.symlink(item.resolve(), target)


def run_step(step: Step, exp: Experiment) -> float:
    start = time.perf_counter()
    if step.argv[0] == "tune":
        _prepare_tuned_dir(exp.folder / "lm", Path(step.argv[step.argv.index("--lm") + 1]))
    if step.argv[0] == "train":  # its own process: threads, torchrun-style state, memory
        code = subprocess.run([sys.executable, "-m", "pipeline.cli", *train_argv(step)]).returncode
    else:  # the short steps run in this process, saving an interpreter start and imports each
        from pipeline.cli import main as htr
        try:
            code = htr(step.argv)
        except SystemExit as error:
            code = error.code if isinstance(error.code, int) else 1
    if code != 0:
        raise RuntimeError(f"step '{step.name}' failed (exit {code}): htr {' '.join(step.argv)}")
    if step.argv[0] == "train":
        finish_training(step, exp)
    return time.perf_counter() - start


def _model_folder(step: Step) -> Path:
    return Path(step.argv[step.argv.index("--out") + 1])


def train_argv(step: Step) -> list[str]:
    """The step's ``htr train`` arguments, plus ``--resume`` when its folder has a checkpoint
    (or, without one, the best weights and metrics of an exported model folder).  The
    config's flags go along, so a raised ``max_epochs`` applies to a resumed training and
    a changed layout is refused by name."""
    model = _model_folder(step)
    return [*step.argv, "--resume"] if can_resume(model) else list(step.argv)


def seed_from_exported(exp: Experiment) -> None:
    """Copy ``resume_from/VARIANT`` into each model folder that has no training yet, so an
    experiment continues from the models committed to git (checkpoints are not)."""
    if exp.resume_from is None:
        return
    for variant in exp.variants:
        source, model = exp.resume_from / variant, exp.folder / "models" / variant
        if (model / WEIGHTS).exists() or (model / LAST).exists():
            continue
        if not can_warm_start(source):
            print(f"    {variant}: nothing to continue in {source}; training starts from scratch", flush=True)
            continue
        for name in EXPORTED_FILES:
            if (source / name).is_file():
                atomic_write_bytes(model / name, (source / name).read_bytes())
        print(f"    {variant}: continues from {source} (epoch {len(read_metrics(source))})",
              flush=True)


def finish_training(step: Step, exp: Experiment) -> None:
    """Mark a finished training DONE; raise TrainingPaused when it only ran one chunk."""
    model = _model_folder(step)
    if exp.train_until == "epochs" and not _training_finished(model):
        raise TrainingPaused(f"training of {model.name} paused after this session's max_minutes; "
                             "rerun the same command to continue it")
    atomic_write_text(model / "DONE", "training finished\n")


def train_concurrently(steps: list[Step], exp: Experiment, timings: dict, poll_seconds: float = 20.0) -> None:
    """Run up to ``exp.train_jobs`` trainings at once, each with its share of the cores.

    Each process writes its output to ``MODEL/train.log``; the newest epoch line of each
    is echoed here as it appears.  Raises RuntimeError if one fails, TrainingPaused if
    one only ran a chunk (after all of them have stopped)."""
    jobs = min(exp.train_jobs, len(steps))
    threads = max(1, (os.cpu_count() or 1) // jobs)
    print(f"==> training {len(steps)} variants, {jobs} at a time x {threads} thread(s); "
          f"logs in {', '.join(str(_model_folder(s) / 'train.log') for s in steps)}", flush=True)
    waiting, running, failed, paused = list(steps), [], [], []
    last_seen: dict[str, str] = {}
    while waiting or running:
        while waiting and len(running) < jobs:
            step = waiting.pop(0)
            model = _model_folder(step)
            model.mkdir(parents=True, exist_ok=True)
            log = open(model / "train.log", "a", encoding="utf-8")
            argv = [*train_argv(step), "--threads", str(threads), "--no-progress"]
            process = subprocess.Popen([sys.executable, "-m", "pipeline.cli", *argv], stdout=log, stderr=log)
            running.append((step, process, log, time.perf_counter()))
        time.sleep(poll_seconds if running else 0)
        for entry in list(running):
            step, process, log, started = entry
            _echo_newest_epoch(step, last_seen)
            if process.poll() is None:
                continue
            running.remove(entry)
            log.close()
            _echo_newest_epoch(step, last_seen)
            timings[step.name] = {"seconds": round(time.perf_counter() - started, 2),
                                  "command": "htr " + " ".join(step.argv)}
            if process.returncode != 0:
                failed.append(f"{step.name} (exit {process.returncode}, see {_model_folder(step) / 'train.log'})")
                continue
            try:
                finish_training(step, exp)
            except TrainingPaused as pause:
                paused.append(str(pause))
    if failed:
        raise RuntimeError("training failed: " + "; ".join(failed))
    if paused:
        raise TrainingPaused("; ".join(paused))


def _echo_newest_epoch(step: Step, last_seen: dict[str, str]) -> None:
    log = _model_folder(step) / "train.log"
    lines = [line for line in log.read_text(encoding="utf-8", errors="replace").splitlines()
             if line.startswith(("epoch ", "htr train:"))] if log.exists() else []
    if lines and last_seen.get(step.name) != lines[-1]:
        last_seen[step.name] = lines[-1]
        print(f"    {_model_folder(step).name}: {lines[-1]}", flush=True)


class TrainingPaused(RuntimeError):
    """A long training stopped at its per-run time limit and will continue on the next run."""


def _training_finished(model: Path) -> bool:
    """With train_until = "epochs": max_epochs reached, or early stopping triggered."""
    config = json.loads((model / CONFIG_FILE).read_text())
    metrics = read_metrics(model)
    if len(metrics) >= config["max_epochs"]:
        return True
    patience = config.get("patience", 0)
    if not patience or not metrics:
        return False
    best = min(range(len(metrics)), key=lambda i: metrics[i]["dev_cer"])
    return len(metrics) - 1 - best >= patience


def run(exp: Experiment, config_path: Path, only: str | None = None, interim: bool = False) -> list[str]:
    """Run the steps that are not up to date; returns the unfinished trainings.

    With ``interim`` nothing is trained: the later steps use each variant's best weights
    so far (an interim report of a long experiment; a later run goes on training and
    redoes whatever depends on the weights)."""
    exp.folder.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(config_path, exp.folder / "config.toml")
    if exp.prepare and not all(p.exists() for p in (exp.train, exp.dev, exp.test)):
        for command in exp.prepare:
            print(f"==> preparing the data: htr {' '.join(command)}", flush=True)
            subprocess.run([sys.executable, "-m", "pipeline.cli", *command], check=True)
    timings_path = exp.folder / "timings.json"
    timings = json.loads(timings_path.read_text()) if timings_path.exists() else {}
    wanted = set(only.split(",")) if only else None
    steps = [s for s in plan(exp) if wanted is None or s.argv[0] in wanted]
    trainings = [s for s in steps if s.argv[0] == "train" and not s.up_to_date()]
    if trainings and not interim:
        seed_from_exported(exp)
    if interim:
        for step in trainings:
            if not (_model_folder(step) / "weights.pt").is_file():
                raise RuntimeError(f"--interim: {_model_folder(step)} has no trained weights yet; train first")
        steps = [s for s in steps if s not in trainings]
    elif exp.train_jobs > 1 and len(trainings) > 1:
        try:
            train_concurrently(trainings, exp, timings)
        finally:
            atomic_write_text(timings_path, json.dumps(timings, indent=1) + "\n")
    for number, step in enumerate(steps, start=1):
        prefix = f"[{number}/{len(steps)}] {step.name}"
        if step.up_to_date():
            print(f"{prefix}: up to date", flush=True)
            continue
        print(f"==> {prefix}", flush=True)
        seconds = run_step(step, exp)
        timings[step.name] = {"seconds": round(seconds, 2), "command": "htr " + " ".join(step.argv)}
        atomic_write_text(timings_path, json.dumps(timings, indent=1) + "\n")
        print(f"    {step.name}: {seconds:.1f} s", flush=True)
    return [s.name for s in trainings] if interim else []


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="htr run",
        description="Run every stage of an experiment (segmentation, training of each variant, LM, "
                    "recognition, decoding, scoring), skipping steps whose outputs are up to date. "
                    "Rerun the same command after an interruption to continue.")
    parser.add_argument("config", type=Path, help="experiment config (TOML), e.g. configs/synthetic.toml")
    parser.add_argument("--folder", type=Path, help="experiment folder (default: the config's 'folder')")
    parser.add_argument("--only", help="run only the steps of these htr commands, comma-separated "
                             "(segment,segment-eval,prepare,lm,train,recognize,tune,decode,evaluate)")
    parser.add_argument("--report", action="store_true", help="write the report when all steps are done")
    parser.add_argument("--list", action="store_true", help="list the steps and whether each is up to date")
    parser.add_argument("--interim", action="store_true",
                        help="train nothing: recognise, decode, score (and --report) with each variant's best "
                             "weights so far, e.g. between the chunks of a long training; a later run goes on "
                             "training and redoes what depends on the weights")
    args = parser.parse_args(argv)
    try:
        exp = load_experiment(args.config, args.folder)
    except ValueError as error:
        print(f"htr run: {error}", file=sys.stderr)
        return 2
    if args.list:
        for step in plan(exp):
            print(f"{'done' if step.up_to_date() else 'todo'}  {step.name}: htr {' '.join(step.argv)}")
        return 0
    try:
        paused = run(exp, args.config, args.only, interim=args.interim)
    except TrainingPaused as error:
        print(f"htr run: {error}\n(--interim scores and reports the models as they are now)")
        return 0
    except (RuntimeError, subprocess.CalledProcessError) as error:
        print(f"htr run: {error}\nFix the problem, then rerun the same command to continue.", file=sys.stderr)
        return 1
    for name in paused:
        print(f"htr run: interim: '{name}' is not finished; its best weights so far were used")
    if args.report:
        from pipeline.report import write_report
        paths = write_report(exp.folder)
        print(f"report: {paths['markdown']}\n        {paths['html']}")
    return 0
