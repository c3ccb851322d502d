"""Weight averaging over epochs (stochastic weight averaging, Izmailov et al. 2018) for
``htr train --average-from E``.

From epoch ``E`` on, the weights at the end of every epoch join an equal-weight running
average (``torch.optim.swa_utils.AveragedModel``).  The averaged network is what the run
evaluates on dev and keeps as its model folder: the dev CER of single epochs wobbles by a few
tenths of a point at a constant rate; their average sits in a flatter, wider minimum.  Batch
normalisation statistics do not average (they belong to the averaged weights, not to any
epoch's), so they are re-estimated after each update with ``swa_utils.update_bn`` on a fixed
sample of training lines, without augmentation.

Torch-side only; the loop that calls it is :mod:`pipeline.train`.
"""
from __future__ import annotations

from typing import Iterator

import torch
from torch import nn
from torch.optim.swa_utils import AveragedModel, update_bn

from pipeline.data import LineDataset, collate, sorted_batches

BN_SAMPLE_LINES = 1024  # enough lines for batch-norm means and variances; ~20 s per epoch (CRNN, one thread)


class _PairInput(nn.Module):
    """Adapts a line network (``forward(images, widths)``) to ``update_bn``'s one-input call."""

    def __init__(self, net: nn.Module):
        super().__init__()
        self.net = net

    def forward(self, pair: tuple[torch.Tensor, torch.Tensor]):
        return self.net(*pair)


class WeightAverage:
    """The running average of a network's weights at the ends of epochs."""

    def __init__(self, model: nn.Module, state: dict | None = None):
        self.averaged = AveragedModel(model)
        if state is not None:
            self.averaged.load_state_dict(state)

    @property
    def count(self) -> int:
        """How many epochs' weights the average holds."""
        return int(self.averaged.n_averaged)

    @property
    def model(self) -> nn.Module:
        """The averaged network (the same layout as the trained one)."""
        return self.averaged.module

    def state_dict(self) -> dict:
        return self.averaged.state_dict()

    def update(self, model: nn.Module, lines: LineDataset, batch_size: int, device: torch.device) -> None:
        """Add ``model``'s current weights, then re-estimate batch-norm statistics on ``lines``
        (their images as they are, augmentation or not: :meth:`LineDataset.plain`)."""
        self.averaged.update_parameters(model)
        update_bn(_bn_batches(lines, batch_size, device), _PairInput(self.model))


def bn_sample(count: int, limit: int = BN_SAMPLE_LINES) -> list[int]:
    """A fixed, evenly spread sample of ``limit`` line indices out of ``count``."""
    if count <= limit:
        return list(range(count))
    return [k * count // limit for k in range(limit)]


def _bn_batches(lines: LineDataset, batch_size: int, device: torch.device) -> Iterator[tuple]:
    sample = bn_sample(len(lines))
    widths = [lines.lines[i].width for i in sample]
    for positions in sorted_batches(widths, batch_size):
        batch = collate([lines.plain(sample[p]) for p in positions])
        yield ((batch.images.to(device), batch.widths.to(device)),)
