"""``htr run CONFIG``: one experiment, every stage, resumable.

A TOML config names the data, the model variants, the LM and the decoders (see
``configs/synthetic.toml``).  The runner turns it into a list of steps, each an
``htr`` command with its input and output files, and runs the steps whose outputs
are missing or older than their inputs (unless those inputs still have the content
they had when the step last ran: :mod:`pipeline.stamps`), so a killed run continues
where it stopped (training itself resumes from its ``last.pt``).  Everything is written in
one experiment folder; step durations go to ``timings.json`` for the report.

The folder's layout is :mod:`pipeline.experiment`'s; every path here is asked of it.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from common.files import atomic_write_bytes, atomic_write_text
from lm.folder import read_tuned
from pipeline.experiment import Experiment, System, flags, load_experiment
from pipeline import stamps
from pipeline.folders import (CONFIG_FILE, DONE, EXPORTED_FILES, LAST, TRAIN_LOG, WEIGHTS, can_resume, can_warm_start,
                              read_metrics)


@dataclass
class Step:
    name: str
    argv: list[str]  # arguments of ``htr``
    inputs: list[Path]
    outputs: list[Path]  # the step is done when all exist and are newer than the inputs
    model: Path | None = None  # train: the model folder it writes
    entries: tuple[str, ...] = ()  # tune: the decoders its output file must hold an entry for
    stamp: Path | None = None  # the fingerprints of the inputs it last ran on (pipeline.stamps)

    @property
    def kind(self) -> str:
        """The ``htr`` command the step runs (``train``, ``decode``, ...)."""
        return self.argv[0]

    def up_to_date(self) -> bool:
        return self.outputs_fresh() and not missing_entries(self.outputs[0], self.entries)

    def outputs_fresh(self) -> bool:
        if not all(p.exists() for p in self.outputs):
            return False
        newest_input = max((p.stat().st_mtime for p in self.inputs if p.exists()), default=0.0)
        if min(p.stat().st_mtime for p in self.outputs) >= newest_input:
            return True
        return self.stamp is not None and stamps.unchanged(self.stamp, self.inputs)

    def record_inputs(self) -> None:
        """After a successful run: remember what the inputs held."""
        if self.stamp is not None:
            stamps.record(self.stamp, self.inputs)


def missing_entries(tuned: Path, decoders: tuple[str, ...]) -> list[str]:
    """The decoders among ``decoders`` that the tuned-weights file ``tuned`` holds no entry for
    (all of them when it is missing or unreadable: tuning rewrites it)."""
    try:
        return [d for d in decoders if not read_tuned(tuned, d)]
    except (FileNotFoundError, ValueError):
        return list(decoders)


def plan(exp: Experiment) -> list[Step]:
    """Every step of the experiment, in an order that respects their inputs."""
    splits = {"dev": exp.dev, "test": exp.test}
    steps = segmentation_steps(exp)
    if steps:
        splits["test-seg"] = exp.paths.segment_manifest
    steps.append(lm_step(exp))
    for variant, options in exp.variants.items():
        steps += variant_steps(exp, variant, options, splits)
    for step in steps:
        step.stamp = exp.paths.stamp(step.name)
    return steps


def segmentation_steps(exp: Experiment) -> list[Step]:
    """Segment the test pages, score the segmentation, crop the predicted lines."""
    if exp.test_pages is None:
        return []
    f, pages = exp.paths, exp.page_images()
    predicted = [f.predicted_xml(page) for page in pages]
    return [
        Step("segment test pages", ["segment", *map(str, pages), "--out", str(f.segment_pred), "--jobs", str(exp.jobs)],
             pages, predicted),
        Step("score segmentation", ["segment-eval", "--pred", str(f.segment_pred), "--gt", str(exp.test_pages),
                                    "--out", str(f.segment_eval)], predicted, [f.segment_eval]),
        Step("crop predicted lines", ["prepare", f"alto:{f.segment_pred}", "--out", str(f.segment_manifest.parent),
                                      "--keep-empty", "--no-progress"], predicted, [f.segment_manifest])]


def lm_step(exp: Experiment) -> Step:
    f = exp.paths
    argv = ["lm", "--text", *map(str, exp.lm_text), "--out", str(f.lm), "--dev", str(exp.dev), *flags(exp.lm_options)]
    return Step("build the language model", argv, exp.lm_text, [f.lexicon])


def variant_steps(exp: Experiment, variant: str, options: dict[str, Any], splits: dict[str, Path]) -> list[Step]:
    """Train one variant, recognise every split, tune its LM weights, decode and score."""
    f = exp.paths
    model = f.model(variant)
    train_argv = ["train", "--train", str(exp.train), "--dev", str(exp.dev), "--out", str(model),
                  *flags({**exp.train_options, **options})]
    steps = [Step(f"train {variant}", train_argv, [exp.train, exp.dev], [f.done(variant)], model=model)]
    for split, manifest in splits.items():
        logits = f.logits(variant, split)
        steps.append(Step(f"recognise {split} with {variant}",
                          ["recognize", "--model", str(model), "--manifest", str(manifest), "--out", str(logits)],
                          [model / WEIGHTS, manifest], [logits]))
    if exp.tune_decoders:
        steps.append(tune_step(exp, variant))
    for split in (s for s in splits if s != "dev"):  # dev only serves tuning
        steps += decode_steps(exp, variant, split, splits[split])
    if "test-seg" in splits:
        steps += page_eval_steps(exp, variant)
    return steps


def tune_step(exp: Experiment, variant: str) -> Step:
    """Tune the LM weights of every tuned system's decoder on dev: all of them when the tuned
    file is missing or older than the dev outputs, else only the decoders it has no entry for
    (a system added to the config after the run)."""
    f, dev_logits = exp.paths, exp.paths.logits(variant, "dev")
    step = Step(f"tune LM weight for {variant}", [], [dev_logits, f.lexicon], [f.tuned(variant)],
                entries=tuple(exp.tune_decoders))
    decoders = missing_entries(f.tuned(variant), step.entries) if step.outputs_fresh() else step.entries
    step.argv = ["tune", "--logits", str(dev_logits), "--refs", str(exp.dev), "--lm", str(f.lm),
                 "--decoder", *(decoders or step.entries), "--jobs", str(exp.jobs), "--out", str(f.tuned(variant))]
    return step


def decode_steps(exp: Experiment, variant: str, split: str, references: Path) -> list[Step]:
    """Decode one split with every system; score it against its references and calibrate its
    word confidences (not test-seg: its lines are the segmenter's, scored page by page)."""
    f, steps = exp.paths, []
    logits = f.logits(variant, split)
    for system in exp.systems:
        hyp = f.hyp(variant, split, system)
        argv = ["decode", "--logits", str(logits), "--decoder", system.decoder, "--out", str(hyp),
                "--jobs", str(exp.jobs), *flags(system.options)]
        if system.needs_lm:
            argv += ["--lm", str(f.lm), *(["--tuned", str(f.tuned(variant))] if system.tune else [])]
        inputs = [logits] + ([f.tuned(variant)] if system.tune else [])
        steps.append(Step(f"decode {split} {variant} {system.name}", argv, inputs, [hyp]))
        if split != "test-seg":
            steps += score_steps(exp, variant, split, system, references)
    return steps


def score_steps(exp: Experiment, variant: str, split: str, system: System, references: Path) -> list[Step]:
    """CER/WER of one decoded split (htr evaluate) and the calibration of the optical confidences
    of its output words (htr calibration, from the hypotheses and the log-probabilities)."""
    f = exp.paths
    hyp, logits = f.hyp(variant, split, system), f.logits(variant, split)
    out, calibration = f.scores(variant, split, system), f.calibration(variant, split, system)
    return [Step(f"score {split} {variant} {system.name}",
                 ["evaluate", "--ref", str(references), "--hyp", str(hyp), "--out", str(out)], [hyp], [out]),
            Step(f"calibrate {split} {variant} {system.name}",
                 ["calibration", "--ref", str(references), "--hyp", str(hyp), "--logits", str(logits),
                  "--out", str(calibration)], [references, hyp, logits], [calibration])]


def page_eval_steps(exp: Experiment, variant: str) -> list[Step]:
    """Score each system's test pages on ground-truth and on predicted lines (htr page-eval)."""
    f, steps = exp.paths, []
    for system in exp.systems:
        gt_hyp, seg_hyp, out = f.hyp(variant, "test", system), f.hyp(variant, "test-seg", system), f.page_scores(variant, system)
        argv = ["page-eval", "--ref", str(exp.test), "--hyp", str(gt_hyp), "--seg-lines", str(f.segment_manifest),
                "--seg-hyp", str(seg_hyp), "--segment-eval", str(f.segment_eval), "--out", str(out)]
        steps.append(Step(f"score test pages {variant} {system.name}", argv,
                          [exp.test, gt_hyp, f.segment_manifest, seg_hyp, f.segment_eval], [out]))
    return steps


def run_step(step: Step, exp: Experiment) -> float:
    start = time.perf_counter()
    if step.kind == "train":  # its own process: threads, torchrun-style state, memory
        code = subprocess.run([sys.executable, "-m", "pipeline.cli", *train_argv(step)]).returncode
    else:  # the short steps run in this process, saving an interpreter start and imports each
        from pipeline.cli import main as htr
        try:
            code = htr(step.argv)
        except SystemExit as error:
            code = error.code if isinstance(error.code, int) else 1
    if code != 0:
        raise RuntimeError(f"step '{step.name}' failed (exit {code}): htr {' '.join(step.argv)}")
    if step.kind == "train":
        finish_training(step, exp)
    step.record_inputs()
    return time.perf_counter() - start


def train_argv(step: Step) -> list[str]:
    """The step's ``htr train`` arguments, plus ``--resume`` when its folder has a checkpoint
    (or, without one, the best weights and metrics of an exported model folder).  The
    config's flags go along, so a raised ``max_epochs`` applies to a resumed training and
    a changed layout is refused by name."""
    return [*step.argv, "--resume"] if can_resume(step.model) else list(step.argv)


def seed_from_exported(exp: Experiment) -> None:
    """Copy each variant's exported folder (``resume_from/VARIANT``, or the one the config's
    ``resume_from`` table names) into its model folder when that has no training yet, so an
    experiment continues from the models committed to git (checkpoints are not)."""
    for variant in exp.variants:
        source, model = exp.resume_source(variant), exp.paths.model(variant)
        if source is None or (model / WEIGHTS).exists() or (model / LAST).exists():
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
    model = step.model
    if exp.train_until == "epochs" and not _training_finished(model):
        raise TrainingPaused(f"training of {model.name} paused after this session's max_minutes; "
                             "rerun the same command to continue it")
    atomic_write_text(model / DONE, "training finished\n")


def train_concurrently(steps: list[Step], exp: Experiment, timings: dict, poll_seconds: float = 20.0) -> None:
    """Run up to ``exp.train_jobs`` trainings at once, each with its share of the cores.

    Each process writes its output to ``MODEL/train.log``; the newest epoch line of each
    is echoed here as it appears.  Raises RuntimeError if one fails, TrainingPaused if
    one only ran a chunk (after all of them have stopped)."""
    jobs = min(exp.train_jobs, len(steps))
    threads = max(1, (os.cpu_count() or 1) // jobs)
    print(f"==> training {len(steps)} variants, {jobs} at a time x {threads} thread(s); "
          f"logs in {', '.join(str(s.model / TRAIN_LOG) for s in steps)}", flush=True)
    waiting, running, failed, paused = list(steps), [], [], []
    last_seen: dict[str, str] = {}
    while waiting or running:
        while waiting and len(running) < jobs:
            step = waiting.pop(0)
            step.model.mkdir(parents=True, exist_ok=True)
            log = open(step.model / TRAIN_LOG, "a", encoding="utf-8")
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
                failed.append(f"{step.name} (exit {process.returncode}, see {step.model / TRAIN_LOG})")
                continue
            try:
                finish_training(step, exp)
                step.record_inputs()
            except TrainingPaused as pause:
                paused.append(str(pause))
    if failed:
        raise RuntimeError("training failed: " + "; ".join(failed))
    if paused:
        raise TrainingPaused("; ".join(paused))


def _echo_newest_epoch(step: Step, last_seen: dict[str, str]) -> None:
    log = step.model / TRAIN_LOG
    lines = [line for line in log.read_text(encoding="utf-8", errors="replace").splitlines()
             if line.startswith(("epoch ", "htr train:"))] if log.exists() else []
    if lines and last_seen.get(step.name) != lines[-1]:
        last_seen[step.name] = lines[-1]
        print(f"    {step.model.name}: {lines[-1]}", flush=True)


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
    shutil.copyfile(config_path, exp.paths.config)
    if exp.prepare and not exp.data_ready():
        for command in exp.prepare:
            print(f"==> preparing the data: htr {' '.join(command)}", flush=True)
            subprocess.run([sys.executable, "-m", "pipeline.cli", *command], check=True)
    timings_path = exp.paths.timings
    timings = json.loads(timings_path.read_text()) if timings_path.exists() else {}
    wanted = set(only.split(",")) if only else None
    steps = [s for s in plan(exp) if wanted is None or s.kind in wanted]
    trainings = [s for s in steps if s.kind == "train" and not s.up_to_date()]
    if trainings and not interim:
        seed_from_exported(exp)
    if interim:
        for step in trainings:
            if not (step.model / WEIGHTS).is_file():
                raise RuntimeError(f"--interim: {step.model} has no trained weights yet; train first")
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


def list_steps(exp: Experiment) -> int:
    """``htr run --list``: each step and whether it is up to date.  Before the data exists
    only its prepare commands are listed: the later steps depend on its pages and lines."""
    if exp.prepare and not exp.data_ready():
        for command in exp.prepare:
            print(f"todo  prepare the data: htr {' '.join(command)}")
        print("(the other steps are listed once the data exists)")
        return 0
    try:
        for step in plan(exp):
            print(f"{'done' if step.up_to_date() else 'todo'}  {step.name}: htr {' '.join(step.argv)}")
    except ValueError as error:
        print(f"htr run: {error}", file=sys.stderr)
        return 1
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="htr run",
        description="Run every stage of an experiment (segmentation, training of each variant, LM, "
                    "recognition, decoding, scoring), skipping steps whose outputs are up to date. "
                    "Rerun the same command after an interruption to continue.")
    parser.add_argument("config", type=Path, help="experiment config (TOML), e.g. configs/synthetic.toml")
    parser.add_argument("--folder", type=Path, help="experiment folder (default: the config's 'folder')")
    parser.add_argument("--only", help="run only the steps of these htr commands, comma-separated "
                             "(segment,segment-eval,prepare,lm,train,recognize,tune,decode,evaluate,page-eval,calibration)")
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
        return list_steps(exp)
    try:
        paused = run(exp, args.config, args.only, interim=args.interim)
    except TrainingPaused as error:
        print(f"htr run: {error}\n(--interim scores and reports the models as they are now)")
        return 0
    except (RuntimeError, ValueError, subprocess.CalledProcessError) as error:
        print(f"htr run: {error}\nFix the problem, then rerun the same command to continue.", file=sys.stderr)
        return 1
    for name in paused:
        print(f"htr run: interim: '{name}' is not finished; its best weights so far were used")
    if args.report:
        from pipeline.report import write_report  # matplotlib: only when a report is asked for
        paths = write_report(exp.folder)
        print(f"report: {paths['markdown']}\n        {paths['html']}")
    return 0
