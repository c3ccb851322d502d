"""The optimiser, the learning-rate schedule and the warm-up of ``htr train``.

* Optimisers: Adam (default), SGD or RMSprop with momentum (the paper trained with SGD).
* Schedules follow epochs: ``plateau`` cuts the rate when the dev CER stalls (never in
  CTC's all-blank phase), ``cosine`` anneals it to 0 over ``--max-epochs``.
* Warm-up (``--lr-warmup N``) follows updates: update ``k`` (counted from 0 since the run's
  first epoch) takes the scheduled rate times ``min(1, (k + 1) / N)``.  The factor is a
  function of the update's position alone, so a resumed run warms up exactly as an
  unbroken one; it is applied around each step and taken off again, so the schedules,
  which read and write the optimiser's rate, never see it.
"""
from __future__ import annotations

from contextlib import contextmanager
from typing import Any, Iterator

import torch

TrainConfig = Any  # pipeline.train.TrainConfig, which imports this module (no import circle)

OPTIMIZERS = ("adam", "sgd", "rmsprop")
SCHEDULERS = ("none", "plateau", "cosine")


def make_optimizer(config: TrainConfig, params) -> torch.optim.Optimizer:
    if config.optimizer == "sgd":
        return torch.optim.SGD(params, lr=config.lr, momentum=config.momentum, weight_decay=config.weight_decay)
    if config.optimizer == "rmsprop":
        return torch.optim.RMSprop(params, lr=config.lr, momentum=config.momentum, weight_decay=config.weight_decay)
    return torch.optim.Adam(params, lr=config.lr, weight_decay=config.weight_decay)


def make_scheduler(config: TrainConfig, optimizer):
    if config.scheduler == "plateau":
        return torch.optim.lr_scheduler.ReduceLROnPlateau(optimizer, mode="min", factor=config.lr_factor,
                                                          patience=config.lr_patience)
    if config.scheduler == "cosine":
        return torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=config.max_epochs)
    return None


def step_scheduler(scheduler, cer: float, has_dev: bool, past_blank_phase: bool) -> None:
    """After an epoch: a cosine schedule follows the epochs; a plateau schedule follows the dev
    CER, and makes no cuts in the all-blank phase (nor without a dev set)."""
    if isinstance(scheduler, torch.optim.lr_scheduler.CosineAnnealingLR):
        scheduler.step()
    elif scheduler is not None and has_dev and past_blank_phase:
        scheduler.step(cer)


def warmup_factor(update: int, warmup: int) -> float:
    """The share of the scheduled rate that update ``update`` (0-based) takes: a linear ramp
    from ``1 / warmup`` to 1 over the first ``warmup`` updates (``warmup`` 0: always 1)."""
    return 1.0 if warmup <= 0 else min(1.0, (update + 1) / warmup)


@contextmanager
def scaled_rate(optimizer: torch.optim.Optimizer, factor: float) -> Iterator[None]:
    """Every parameter group's rate times ``factor`` inside the block, the rate as it was after."""
    if factor == 1.0:
        yield
        return
    rates = [group["lr"] for group in optimizer.param_groups]
    for group, rate in zip(optimizer.param_groups, rates):
        group["lr"] = rate * factor
    try:
        yield
    finally:
        for group, rate in zip(optimizer.param_groups, rates):
            group["lr"] = rate
