"""The state of a training run: what ``last.pt`` holds, how a run starts, and its random seeds.

A run starts in one of four ways, decided and applied in one place (:func:`start_run`):

* ``resume``: ``--resume`` with ``last.pt``: model, optimiser, scheduler, this rank's RNG state
  and the :class:`TrainState` come back as they were, so the run goes on exactly;
* ``warm``: ``--resume`` without ``last.pt`` but with a model folder and its ``metrics.json``
  (an exported model, e.g. ``models/copiste/dropout-all``): the best weights, the epoch count
  and the early-stopping counters rebuilt from the metrics, a fresh optimiser at the last
  learning rate;
* ``init``: ``--init MODEL_DIR`` (fine-tuning, :mod:`pipeline.finetune`): that folder's layout
  and weights, everything else afresh;
* ``fresh``: a new network.

Torch-side only; the training loop is :mod:`pipeline.train`.
"""
from __future__ import annotations

import io
import json
import math
import random
import sys
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch
from torch import nn

from common.files import atomic_write_bytes
from pipeline.data import build_alphabet
from pipeline.finetune import InitialModel, initial_model, take_layout
from pipeline.folders import LAST, MODEL_JSON, WEIGHTS, can_warm_start, read_metrics
from pipeline.metrics import best_epoch_row
from pipeline.model import ModelConfig, model_config_of, with_legacy_defaults

RANK_STRIDE = 7919  # a prime larger than any process count: ranks of one seed never share a stream
EPOCH_STRIDE = 104_729  # a larger prime: a warm start at epoch e draws a stream no other epoch starts


def process_seed(seed: int, rank: int, epoch: int = 0) -> int:
    """The seed of process ``rank``'s own random streams (dropout masks; the key of its
    augmentation draws) for a run that starts after ``epoch`` epochs.

    The initial weights are not drawn from it: every rank builds the network from ``seed``
    itself, so data-parallel replicas start equal.  A full resume restores the saved RNG
    states instead, so only fresh, fine-tuning and warm starts take a seed from here."""
    return seed * RANK_STRIDE + rank + EPOCH_STRIDE * epoch


def seed_process(seed: int, rank: int, epoch: int = 0) -> None:
    """Seed torch, numpy and Python's generators with :func:`process_seed`."""
    value = process_seed(seed, rank, epoch)
    torch.manual_seed(value)
    random.seed(value)
    np.random.seed(value % 2 ** 32)


def rng_state() -> dict:
    state = {"torch": torch.get_rng_state(), "numpy": np.random.get_state(), "python": random.getstate()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict) -> None:
    torch.set_rng_state(state["torch"])
    np.random.set_state(state["numpy"])
    random.setstate(state["python"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


@dataclass
class TrainState:
    """Epochs done and early-stopping bookkeeping (``progress`` in ``last.pt``)."""

    epoch: int = 0
    best_cer: float = math.inf  # best dev CER so far (inf without a dev set)
    best_epoch: int = 0
    bad_epochs: int = 0  # epochs since the best one, counted once the dev CER is below 100%
    metrics: list[dict] = field(default_factory=list)  # the rows of metrics.json

    def to_checkpoint(self) -> dict:
        return asdict(self)

    @classmethod
    def from_checkpoint(cls, progress: dict) -> "TrainState":
        return cls(**{name: progress[name] for name in ("epoch", "best_cer", "best_epoch", "bad_epochs", "metrics")})

    @classmethod
    def from_metrics(cls, metrics: list[dict]) -> "TrainState":
        """The state a model folder's ``metrics.json`` implies (a warm start)."""
        epoch = metrics[-1]["epoch"] if metrics else 0
        best = best_epoch_row(metrics)
        if best is None:
            return cls(epoch=epoch, metrics=metrics)
        bad = epoch - best["epoch"] if best["dev_cer"] < 100.0 else 0
        return cls(epoch, best["dev_cer"], best["epoch"], bad, metrics)

    @property
    def past_blank_phase(self) -> bool:
        """The dev CER has left 100% (CTC's all-blank phase): patience and plateaus count."""
        return self.best_cer < 100.0

    def end_epoch(self, epoch: int, cer: float, has_dev: bool) -> bool:
        """Record a finished epoch; whether it is the new best (always, without a dev set)."""
        improved = not has_dev or cer < self.best_cer
        self.epoch = epoch
        if improved:
            self.best_cer, self.best_epoch, self.bad_epochs = (cer if has_dev else math.inf), epoch, 0
        elif self.past_blank_phase:
            self.bad_epochs += 1
        return improved


@dataclass
class Run:
    """What a training works on, built and restored by :func:`start_run`."""

    how: str  # "fresh", "resume", "warm" or "init"
    alphabet: list[str]
    model: nn.Module
    optimizer: torch.optim.Optimizer
    scheduler: Any  # a learning-rate scheduler, or None
    state: TrainState
    average_state: dict | None = None  # --average-from: the weight average saved in last.pt

    def checkpoint(self, rngs: list[dict], model_config: ModelConfig, average: dict | None = None) -> dict:
        """The contents of ``last.pt`` (``rngs``: every rank's RNG state; ``average``: the
        state of the weight average, :mod:`pipeline.averaging`)."""
        return {"model": self.model.state_dict(), "optimizer": self.optimizer.state_dict(),
                "scheduler": self.scheduler.state_dict() if self.scheduler is not None else None,
                "progress": self.state.to_checkpoint(), "rng": rngs, "alphabet": self.alphabet,
                "model_config": model_config_of(model_config).to_dict(), "average": average}


def save_checkpoint(path: Path, checkpoint: dict) -> None:
    buffer = io.BytesIO()
    torch.save(checkpoint, buffer)
    atomic_write_bytes(path, buffer.getvalue())


@dataclass
class Saved:
    """What ``--resume`` found in the output folder."""

    how: str  # "resume" (last.pt) or "warm" (a model folder with its metrics)
    alphabet: list[str]
    model_config: dict
    weights: dict
    state: TrainState
    checkpoint: dict | None = None  # last.pt: optimiser, scheduler, RNG states


# classes -> (model, optimiser, scheduler), all on the training device
Build = Callable[[int], tuple[nn.Module, torch.optim.Optimizer, Any]]


def start_run(config, resume: bool, texts: Callable[[], list[str]], build: Build, rank: int = 0,
              main: bool = True, given: frozenset[str] = frozenset()) -> Run:
    """Decide how the run of ``config`` (a :class:`pipeline.train.TrainConfig`) starts, build
    its network with ``build`` and apply the start: restored from ``--out`` with ``resume``,
    else from ``config.init`` (whose layout ``config`` takes), else fresh.  ``texts()``: the
    training transcriptions, read when the alphabet is not saved; ``given``: the flags set on
    the command line (a fine-tuning run keeps its dropout flags, :func:`take_layout`)."""
    saved = load_saved(Path(config.out), config) if resume else None
    init = None
    if saved is None and config.init is not None:
        init = initial_model(config.init, texts(), config.seed)
        take_layout(config, init.config, given)
        config.check()
    alphabet = saved.alphabet if saved else init.alphabet if init else build_alphabet(texts())
    torch.manual_seed(config.seed)  # the initial weights: the same on every rank
    model, optimizer, scheduler = build(len(alphabet))
    how = saved.how if saved else "init" if init else "fresh"
    run = Run(how, alphabet, model, optimizer, scheduler, saved.state if saved else TrainState())
    if saved is not None:
        _restore(run, saved, config.seed, rank)
    else:
        if init is not None:
            model.load_state_dict(init.state)
        seed_process(config.seed, rank)
    if main:
        _announce(run, config, init)
    return run


def _restore(run: Run, saved: Saved, seed: int, rank: int) -> None:
    run.model.load_state_dict(saved.weights)
    if saved.checkpoint is None:  # warm: a fresh optimiser at the last learning rate
        last_lr = saved.state.metrics[-1]["lr"] if saved.state.metrics else None
        for group in run.optimizer.param_groups:
            group["lr"] = last_lr or group["lr"]
        if isinstance(run.scheduler, torch.optim.lr_scheduler.CosineAnnealingLR):
            run.scheduler = _cosine_from_here(run.optimizer, run.scheduler.T_max - saved.state.epoch)
        seed_process(seed, rank, saved.state.epoch)
        return
    run.optimizer.load_state_dict(saved.checkpoint["optimizer"])
    if run.scheduler is not None and saved.checkpoint.get("scheduler"):
        run.scheduler.load_state_dict(saved.checkpoint["scheduler"])
    rngs = saved.checkpoint["rng"]
    set_rng_state(rngs[min(rank, len(rngs) - 1)])
    run.average_state = saved.checkpoint.get("average")


def _cosine_from_here(optimizer, epochs_left: int):
    """A warm start's cosine schedule: from the rate it continues at down to 0 over the epochs
    still allowed (``--max-epochs`` counts the epochs already trained), so a model trained with
    a constant or plateau rate can be annealed in a fixed number of further epochs."""
    for group in optimizer.param_groups:
        group.pop("initial_lr", None)  # the scheduler's base rate: this run's starting rate
    return torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=max(1, epochs_left))


def _announce(run: Run, config, init: InitialModel | None) -> None:
    if run.how == "init":
        new = f", {len(init.added)} new: {''.join(init.added)!r}" if init.added else ""
        print(f"htr train: fine-tuning {config.init} ({len(run.alphabet) - 1 - len(init.added)} symbols{new})",
              file=sys.stderr)
    elif run.how == "warm":
        print(f"htr train: no {Path(config.out) / LAST}: continuing from the best weights (epoch "
              f"{run.state.best_epoch}) after epoch {run.state.epoch}, with a fresh optimiser at lr "
              f"{run.optimizer.param_groups[0]['lr']:g}", file=sys.stderr)


def load_saved(out: Path, config: ModelConfig) -> Saved:
    """The last checkpoint of the run in ``out``, else a model folder with its metrics (a
    warm start); its model layout must match ``config``."""
    if (out / LAST).is_file():
        checkpoint = torch.load(out / LAST, map_location="cpu", weights_only=False)
        saved = Saved("resume", checkpoint["alphabet"], checkpoint["model_config"], checkpoint["model"],
                      TrainState.from_checkpoint(checkpoint["progress"]), checkpoint)
    elif can_warm_start(out):
        description = json.loads((out / MODEL_JSON).read_text(encoding="utf-8"))
        saved = Saved("warm", description["alphabet"], description["config"],
                      torch.load(out / WEIGHTS, map_location="cpu", weights_only=True),
                      TrainState.from_metrics(read_metrics(out)))
    else:
        raise FileNotFoundError(f"{out / LAST}: no checkpoint to resume from (nor a model folder with metrics.json)")
    # layout flags added since: as the saved run ran (LEGACY_DEFAULTS), else their defaults
    layout = {**ModelConfig().to_dict(), **with_legacy_defaults(saved.model_config)}
    if layout != {**model_config_of(config).to_dict(), "mdlstm_impl": layout["mdlstm_impl"]}:
        raise ValueError(f"{out / LAST}: the model flags differ from the saved run's; resume without them")
    return saved
