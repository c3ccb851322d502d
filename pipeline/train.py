"""``htr train``: train an optical model with CTC on a line manifest.

Writes into ``--out``:

* ``model.json`` + ``weights.pt``: the best model so far (lowest dev CER), the folder
  ``htr recognize --model`` reads;
* ``last.pt``: the full training state after the last epoch (model, optimiser,
  scheduler, RNG states of every rank, epoch, early-stopping counters, metrics), so
  ``htr train --resume --out DIR`` continues exactly where a killed run stopped;
* ``train_config.json``: this run's config (also the CLI flags);
* ``metrics.json`` / ``metrics.csv``: one row per epoch (loss, dev CER, lines/s, ...).

Every file is written atomically.  Data-parallel training: launch with
``torchrun --nproc_per_node K -m pipeline.cli train ...`` (gloo on CPU, nccl on GPU);
each process takes every K-th batch of the same epoch order.
"""
from __future__ import annotations

import argparse
import csv
import io
import json
import math
import os
import statistics
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import torch
import torch.distributed as dist
from torch import nn
from tqdm import tqdm

from common.files import atomic_write_text

from common.skips import SkipLog
from data_prep.records import read_manifest
from pipeline.augment import RECIPES
from pipeline.averaging import WeightAverage
from pipeline.data import LineDataset, collate, epoch_batches, load_lines, rank_share, sorted_batches
from pipeline.decoders.greedy import greedy_decode
from pipeline.finetune import freeze_lower_layers, hold_frozen_statistics
from pipeline.folders import CONFIG_FILE, LAST, METRICS_CSV, METRICS_JSON
from pipeline.metrics import char_edits
from pipeline.model import LEGACY_DEFAULTS, ModelConfig, build_model, count_parameters
from pipeline.model_folder import save_model_folder
from pipeline.optimise import (OPTIMIZERS, SCHEDULERS, make_optimizer, make_scheduler, scaled_rate, step_scheduler,
                               warmup_factor)
from pipeline.train_state import Run, process_seed, rng_state, save_checkpoint, start_run

AUGMENTATIONS = RECIPES


@dataclass
class TrainConfig(ModelConfig):
    """Training run: the model layout (inherited) plus data, optimiser and stopping rules."""

    train: Path | None = field(default=None, metadata={"help": "training line manifest (JSONL)"})
    dev: Path | None = field(default=None, metadata={"help": "dev line manifest for CER each epoch and model selection"})
    out: Path = field(default=Path("work/model"), metadata={"help": "output folder (model, checkpoints, metrics)"})
    optimizer: str = field(default="adam", metadata={"help": "optimiser (the paper used sgd with momentum)", "choices": OPTIMIZERS})
    lr: float = field(default=1e-3, metadata={"help": "learning rate"})
    momentum: float = field(default=0.9, metadata={"help": "momentum (sgd, rmsprop)"})
    weight_decay: float = field(default=0.0, metadata={"help": "L2 weight decay"})
    scheduler: str = field(default="none", metadata={"help": "learning-rate schedule: none; plateau (x lr-factor when dev CER stalls); cosine (a half cosine from --lr down to 0 over --max-epochs, as set when the training started; for runs of a fixed number of epochs; a warm start from a model folder anneals from its last rate over the epochs left)", "choices": SCHEDULERS})
    lr_factor: float = field(default=0.5, metadata={"help": "plateau: learning-rate factor"})
    lr_patience: int = field(default=3, metadata={"help": "plateau: epochs without dev improvement before reducing"})
    lr_warmup: int = field(default=0, metadata={"help": "warm-up: the first N updates of the run take the scheduled learning rate times (k+1)/N, a linear ramp (0: off)"})
    batch_size: int = field(default=12, metadata={"help": "lines per batch (per process)"})
    max_epochs: int = field(default=1000, metadata={"help": "stop after this many epochs"})
    max_minutes: float = field(default=0.0, metadata={"help": "time budget of this run in minutes: no epoch is started that would end past it at the run's mean epoch time (at least one epoch runs; 0: no limit)"})
    patience: int = field(default=30, metadata={"help": "early stopping: epochs without dev CER improvement, counted once the dev CER is below 100%% (0: never)"})
    clip: float = field(default=10.0, metadata={"help": "gradient-norm clipping (0: none)"})
    augment: bool = field(default=False, metadata={"help": "augment the training lines (recipe: --augmentation)"})
    augmentation: str = field(default="light", metadata={"help": "augmentation recipe: light (width scale, slant, ink gain) or full (also affine, grid distortion, erosion/dilation, contrast, noise; albumentations)", "choices": AUGMENTATIONS})
    ctc_reduction: str = field(default="char", metadata={"help": "CTC loss of a batch: char (each line's loss divided by its label length, then the mean: torch's 'mean') or line (each line's whole loss, the mean over the batch: long lines weigh more); the reported loss is per character either way", "choices": ("char", "line")})
    curriculum_epochs: int = field(default=0, metadata={"help": "the first N epochs take the training lines shortest first (SortaGrad: CTC aligns short lines sooner), later epochs in shuffled batches of similar widths (0: off)"})
    seed: int = field(default=1, metadata={"help": "random seed (weights, data order, dropout, augmentation)"})
    threads: int = field(default=0, metadata={"help": "torch CPU threads per process (0: cores / processes)"})
    device: str = field(default="auto", metadata={"help": "auto, cpu or cuda"})
    progress: bool = field(default=True, metadata={"help": "show a progress bar"})
    init: Path | None = field(default=None, metadata={"help": "fine-tune: start from this model folder's layout and weights (new characters extend its output layer; epochs, optimiser and best CER start afresh)"})
    average_from: int = field(default=0, metadata={"help": "stochastic weight averaging: from this epoch on, the model kept and evaluated on dev is the equal-weight average of the weights at the end of every epoch (batch-norm statistics re-estimated on training lines); best with a constant --lr, e.g. after --init from a trained model (0: off)"})
    freeze: int = field(default=0, metadata={"help": "fine-tune (--init) only the upper layers: the lowest N layers keep the base model's weights (no gradient, left out of the optimiser). Layers from the input up: mdlstm lstms.0, convs.0, lstms.1, convs.1, ..., output (default layout: 6); crnn each conv block, each BLSTM, output (0: train everything)"})


@dataclass
class Dist:
    rank: int = 0
    world: int = 1
    device: torch.device = torch.device("cpu")

    @property
    def main(self) -> bool:
        return self.rank == 0


def setup_distributed(config: TrainConfig) -> Dist:
    """Join the torchrun process group when launched by torchrun, else one process."""
    cuda = torch.cuda.is_available() and config.device in ("auto", "cuda")
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world == 1:
        return Dist(0, 1, torch.device("cuda" if cuda else "cpu"))
    if not dist.is_initialized():
        dist.init_process_group(backend="nccl" if cuda else "gloo")
    local = int(os.environ.get("LOCAL_RANK", "0"))
    device = torch.device(f"cuda:{local}" if cuda else "cpu")
    if cuda:
        torch.cuda.set_device(device)
    return Dist(dist.get_rank(), dist.get_world_size(), device)


def all_sum(values: list[float], d: Dist) -> list[float]:
    if d.world == 1:
        return values
    tensor = torch.tensor(values, dtype=torch.float64, device=d.device)
    dist.all_reduce(tensor)
    return tensor.tolist()


def gather_rng(d: Dist) -> list[dict]:
    """Every rank's RNG state (rank 0 stores them all so each rank resumes its own)."""
    if d.world == 1:
        return [rng_state()]
    states: list = [None] * d.world
    dist.all_gather_object(states, rng_state())
    return states


@dataclass
class EpochStats:
    loss: float
    lines: int
    seconds: float
    bad_batches: int
    grad_norm: float | None = None  # median over the epoch's updates, before clipping (None: no update)
    clipped: float = 0.0  # share of the updates whose gradient --clip scaled down


def prefetched(batches: list[list[int]], dataset: LineDataset):
    """(indices, collated batch) for each batch; the next batch is read, normalised (first
    epoch) or augmented in a background thread while the caller trains on this one, so the
    network never waits on image loading (PIL and numpy release the GIL)."""
    load = lambda indices: collate([dataset[i] for i in indices])  # noqa: E731
    with ThreadPoolExecutor(max_workers=1) as pool:
        pending = pool.submit(load, batches[0]) if batches else None
        for k, indices in enumerate(batches):
            batch = pending.result()
            pending = pool.submit(load, batches[k + 1]) if k + 1 < len(batches) else None
            yield indices, batch


def train_epoch(model: nn.Module, ctc: nn.CTCLoss, optimizer, dataset: LineDataset, batches: list[list[int]],
                config: TrainConfig, d: Dist, epoch: int) -> EpochStats:
    """One pass; batches whose loss or gradient is NaN/inf are skipped (same on all ranks).
    Under ``--lr-warmup`` the k-th batch is update ``(epoch - 1) * len(batches) + k``: a function
    of the epoch and the batch's place alone (every rank has as many batches), so a resumed run
    needs no state for it."""
    model.train()
    hold_frozen_statistics(model)  # --freeze: frozen batch norms keep the base model's statistics
    dataset.set_epoch(process_seed(config.seed, d.rank), epoch)  # per-rank augmentation
    total_loss, lines, bad = 0.0, 0, 0
    norms: list[float] = []  # every rank sees the same (all-reduced) gradients, so the same norms
    start = time.perf_counter()
    bar = tqdm(prefetched(batches, dataset), total=len(batches), desc=f"epoch {epoch}", unit="batch",
               disable=not (config.progress and d.main), leave=False)
    first_update = (epoch - 1) * len(batches)
    for k, (indices, batch) in enumerate(bar):
        optimizer.zero_grad(set_to_none=True)
        logprobs, lengths = model(batch.images.to(d.device), batch.widths.to(d.device))
        loss = ctc(logprobs, batch.targets.to(d.device), lengths, batch.target_lengths.to(d.device))
        per_char = loss.detach()
        if loss.dim():  # --ctc-reduction line: a loss per line
            per_char = (per_char / batch.target_lengths.to(d.device).clamp_min(1)).mean()
            loss = loss.mean()
        if all_sum([float(not torch.isfinite(loss.detach()))], d)[0] > 0:
            bad += 1
            continue
        loss.backward()
        norm = nn.utils.clip_grad_norm_(model.parameters(), config.clip if config.clip > 0 else math.inf)
        if not torch.isfinite(norm):  # gradients are already all-reduced: every rank agrees
            bad += 1
            optimizer.zero_grad(set_to_none=True)
            continue
        with scaled_rate(optimizer, warmup_factor(first_update + k, config.lr_warmup)):
            optimizer.step()
        norms.append(float(norm))
        total_loss += per_char.item() * len(indices)
        lines += len(indices)
        elapsed = time.perf_counter() - start
        bar.set_postfix(loss=f"{total_loss / lines:.3f}", lines_s=f"{lines * d.world / elapsed:.1f}")
    seconds = time.perf_counter() - start
    loss_sum, line_sum = all_sum([total_loss, float(lines)], d)
    clipped = sum(n > config.clip for n in norms) / len(norms) if norms and config.clip > 0 else 0.0
    return EpochStats(loss_sum / max(1.0, line_sum), int(line_sum), seconds, bad,
                      statistics.median(norms) if norms else None, clipped)


def evaluate(model: nn.Module, dataset: LineDataset, alphabet: list[str], d: Dist, batch_size: int) -> float:
    """Greedy-decoding CER (%) on the dev set, the set split across ranks; the CER of
    :mod:`pipeline.metrics`, so it is the number ``htr evaluate`` gives the same output."""
    model.eval()
    errors = chars = 0
    mine = list(range(d.rank, len(dataset), d.world))
    widths = [dataset.lines[i].width for i in mine]
    with torch.no_grad():
        for positions in sorted_batches(widths, batch_size):
            indices = [mine[p] for p in positions]
            batch = collate([dataset[i] for i in indices])
            logprobs, lengths = model(batch.images.to(d.device), batch.widths.to(d.device))
            logprobs = logprobs.cpu()
            for k, i in enumerate(indices):
                edits = char_edits(dataset.lines[i].text, greedy_decode(logprobs[: int(lengths[k]), k], alphabet))
                errors += edits.errors
                chars += edits.ref
    errors, chars = all_sum([float(errors), float(chars)], d)
    return 100.0 * errors / max(1.0, chars)


def write_metrics(out: Path, metrics: list[dict]) -> None:
    atomic_write_text(out / METRICS_JSON, json.dumps(metrics, indent=1) + "\n")
    if metrics:
        buffer = io.StringIO()
        columns = list(dict.fromkeys(key for row in metrics for key in row))  # a resumed run may add one
        writer = csv.DictWriter(buffer, fieldnames=columns)
        writer.writeheader()
        writer.writerows(metrics)
        atomic_write_text(out / METRICS_CSV, buffer.getvalue())


def broadcast_flag(flag: bool, d: Dist) -> bool:
    """Rank 0's decision (e.g. a wall-clock limit) for every rank."""
    if d.world == 1:
        return flag
    tensor = torch.tensor([float(flag)], device=d.device)
    dist.broadcast(tensor, 0)
    return bool(tensor.item())


def train(config: TrainConfig, resume: bool = False, given: frozenset[str] = frozenset()) -> nn.Module:
    """Run (or continue) a training; returns the trained model (last epoch).  ``given``: the
    flags set on the command line (``--init`` keeps their dropout, refuses other layouts)."""
    if config.train is None:
        raise ValueError("--train is required")
    config.check()
    if config.average_from < 0:
        raise ValueError(f"--average-from {config.average_from}: give the first epoch to average (1 or more), or 0 for none")
    if config.lr_warmup < 0:
        raise ValueError(f"--lr-warmup {config.lr_warmup}: give a number of updates (0: no warm-up)")
    if config.freeze and config.init is None:
        raise ValueError(f"--freeze {config.freeze} needs --init MODEL_DIR: the frozen layers of a new network would stay random")
    d = setup_distributed(config)
    threads = config.threads or max(1, (os.cpu_count() or 1) // d.world)
    torch.set_num_threads(threads)
    out = Path(config.out)
    texts = lambda: [record.text for record in read_manifest(config.train)]  # noqa: E731
    run = start_run(config, resume, texts, lambda classes: build(config, classes, d), d.rank, d.main, given)
    log = SkipLog(stream=sys.stderr if d.main else None)
    frames = run.model.frames
    train_lines = load_lines(config.train, run.alphabet, config.height, config.max_width, frames, log)
    dev_lines = load_lines(config.dev, run.alphabet, config.height, config.max_width, None, log) if config.dev else []
    if not train_lines:
        raise ValueError(f"{config.train}: no usable training line")
    recipe = config.augmentation if config.augment else None
    train_set = LineDataset(train_lines, config.height, config.max_width, augment=recipe, norm=config.line_norm)
    dev_set = LineDataset(dev_lines, config.height, config.max_width, norm=config.line_norm)
    if d.main:
        out.mkdir(parents=True, exist_ok=True)
        config.save(out / CONFIG_FILE)
        skipped = log.summary()
        if skipped["lines_skipped"]:
            print(f"htr train: {skipped['lines_skipped']} lines skipped {skipped['line_skip_reasons']}", file=sys.stderr)
        print(f"htr train: {len(train_lines)} train / {len(dev_lines)} dev lines, {len(run.alphabet) - 1} symbols, "
              f"{config.arch} {count_parameters(run.model)} parameters{frozen_note(run.model, config.freeze)}, "
              f"{d.world} process(es) x {threads} threads",
              file=sys.stderr)
    net = run.model
    if d.world > 1:
        net = nn.parallel.DistributedDataParallel(run.model, device_ids=[d.device.index] if d.device.type == "cuda" else None)
    ctc = nn.CTCLoss(blank=0, reduction="mean" if config.ctc_reduction == "char" else "none", zero_infinity=True)
    average = WeightAverage(run.model, run.average_state) if config.average_from else None
    widths = [line.width for line in train_lines]
    started = time.perf_counter()
    state = run.state
    run_start_epoch = state.epoch
    while state.epoch < config.max_epochs:
        if config.patience and state.bad_epochs >= config.patience:
            if d.main:
                print(f"htr train: early stop, {state.bad_epochs} epochs without a better dev CER "
                      "(--patience 0 to go on)", file=sys.stderr)
            break
        epoch = state.epoch + 1
        batches = rank_share(epoch_batches(widths, config.batch_size, config.seed, epoch, config.curriculum_epochs),
                             d.rank, d.world)
        stats = train_epoch(net, ctc, run.optimizer, train_set, batches, config, d, epoch)
        if average is not None and epoch >= config.average_from:
            average.update(run.model, train_set, config.batch_size * 2, d.device)
        judged = average.model if average is not None and average.count else run.model
        cer = evaluate(judged, dev_set, run.alphabet, d, config.batch_size * 2) if dev_lines else math.nan
        improved = state.end_epoch(epoch, cer, bool(dev_lines))
        step_scheduler(run.scheduler, cer, bool(dev_lines), state.past_blank_phase)
        row = epoch_row(epoch, stats, cer if dev_lines else None, run, started, average, cores=threads * d.world)
        state.metrics.append(row)
        rngs = gather_rng(d)
        if d.main:
            save_epoch(out, config, run, rngs, improved, judged, average)
            print(epoch_message(epoch, stats, cer if dev_lines else None, row), file=sys.stderr)
        if broadcast_flag(out_of_time(config.max_minutes, time.perf_counter() - started, epoch - run_start_epoch), d):
            break
    if d.main:
        kept = (f"best dev CER {state.best_cer:.2f}% at epoch {state.best_epoch}" if dev_lines
                else f"no dev set: the last epoch ({state.epoch}) is the model")
        print(f"htr train: {kept} -> {out}", file=sys.stderr)
    if d.world > 1:
        dist.barrier()  # rank 0 has written its files: leave together, so no rank tears gloo down early
    return run.model


def out_of_time(max_minutes: float, elapsed_seconds: float, epochs_run: int) -> bool:
    """Whether the run must stop rather than start another epoch under ``--max-minutes``.

    The budget is a ceiling: the next epoch is started only if it is expected (at this run's
    mean epoch time, evaluation included) to end within it.  A run always does at least one
    epoch, so a chunked training never stalls."""
    if max_minutes <= 0 or epochs_run < 1:
        return False
    per_epoch = elapsed_seconds / epochs_run
    return elapsed_seconds + per_epoch > 60 * max_minutes


def build(config: TrainConfig, classes: int, d: Dist):
    """The network, its optimiser and scheduler (what :func:`start_run` restores into)."""
    model = build_model(config, classes).to(d.device)
    freeze_lower_layers(model, config.freeze, config.arch)
    optimizer = make_optimizer(config, [parameter for parameter in model.parameters() if parameter.requires_grad])
    return model, optimizer, make_scheduler(config, optimizer)


def frozen_note(model: nn.Module, freeze: int) -> str:
    if not freeze:
        return ""
    trainable = sum(parameter.numel() for parameter in model.parameters() if parameter.requires_grad)
    return f" ({trainable} trained, the lowest {freeze} layers frozen)"


def epoch_row(epoch: int, stats: EpochStats, cer: float | None, run: Run, started: float,
              average: WeightAverage | None = None, cores: int = 1) -> dict:
    """One row of metrics.json / metrics.csv (``dev_cer``: of the averaged weights once
    ``--average-from`` has started, ``averaged`` saying over how many epochs; ``cores``: the
    threads of all processes, so a training resumed with other ``--threads`` costs each epoch
    at the threads it ran on)."""
    row = {"epoch": epoch, "train_loss": round(stats.loss, 5), "dev_cer": round(cer, 3) if cer is not None else None,
           "lines_per_s": round(stats.lines / max(stats.seconds, 1e-9), 2), "epoch_seconds": round(stats.seconds, 1),
           "lr": run.optimizer.param_groups[0]["lr"], "bad_batches": stats.bad_batches,
           "grad_norm": None if stats.grad_norm is None else float(f"{stats.grad_norm:.4g}"), "clipped": round(stats.clipped, 4),
           "minutes": round((time.perf_counter() - started) / 60, 2), "cores": cores}
    if average is not None:
        row["averaged"] = average.count
    return row


def save_epoch(out: Path, config: TrainConfig, run: Run, rngs: list[dict], improved: bool, kept: nn.Module,
               average: WeightAverage | None) -> None:
    """Rank 0's files after an epoch: the model folder (``kept``: the trained or the averaged
    network) when it improved, last.pt, metrics."""
    if improved:
        save_model_folder(out, config, run.alphabet, kept)
    save_checkpoint(out / LAST, run.checkpoint(rngs, config, average.state_dict() if average is not None else None))
    write_metrics(out, run.state.metrics)


def epoch_message(epoch: int, stats: EpochStats, cer: float | None, row: dict) -> str:
    dev_text = f"dev CER {cer:.2f}%" if cer is not None else "no dev set"
    return (f"epoch {epoch}: loss {stats.loss:.4f}, {dev_text}, {row['lines_per_s']} lines/s"
            + (f", {stats.bad_batches} NaN/inf batches skipped" if stats.bad_batches else ""))


def load_saved_config(path: Path) -> TrainConfig:
    """A run's train_config.json; a flag it predates takes the value the run trained with."""
    config = TrainConfig.load(path)
    written = json.loads(path.read_text(encoding="utf-8"))
    for name, value in LEGACY_DEFAULTS.items():
        if name not in written:
            setattr(config, name, value)
    return config


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="htr train",
        description="Train an MDLSTM (Graves/Pham) or CNN+BLSTM optical model with CTC. "
                    "Writes the best model (model.json + weights.pt), last.pt, metrics.json/csv "
                    "and train_config.json to --out.  Multi-process: torchrun --nproc_per_node K "
                    "-m pipeline.cli train ...")
    TrainConfig.add_arguments(parser)
    parser.add_argument("--config", type=Path, help="start from a saved train_config.json (flags override it)")
    parser.add_argument("--resume", action="store_true",
                        help="continue the run in --out exactly from its last.pt (its saved config; "
                             "flags such as --max-epochs override it)")
    args = parser.parse_args(argv)
    try:
        base = None
        if args.resume:
            saved = Path(args.out or TrainConfig.out) / CONFIG_FILE
            if not saved.is_file():
                raise FileNotFoundError(f"{saved}: no saved run to resume")
            base = load_saved_config(saved)
            if args.freeze is not None and args.freeze != base.freeze:
                raise ValueError(f"--freeze {args.freeze}: the run in {saved.parent} froze {base.freeze} layers; "
                                 "its optimiser holds those trainable parameters, resume without --freeze")
            if args.scheduler is not None and args.scheduler != base.scheduler and (saved.parent / LAST).is_file():
                raise ValueError(f"--scheduler {args.scheduler}: {saved.parent / LAST} holds the state of its "
                                 f"{base.scheduler} schedule; resume without --scheduler")
        elif args.config:
            base = TrainConfig.load(args.config)
        config = TrainConfig.from_args(args, base)
        train(config, resume=args.resume, given=frozenset(k for k, v in vars(args).items() if v is not None))
    except (FileNotFoundError, ValueError) as error:
        print(f"htr train: {error}", file=sys.stderr)
        return 1
    finally:
        if dist.is_initialized():
            dist.destroy_process_group()
    return 0
