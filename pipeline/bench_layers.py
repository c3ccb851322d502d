"""Per-layer time and FLOP rate of a network, beside a float32 GEMM timed in the same run.

Used by ``htr bench``: each MDLSTM2d, Conv2d and Linear layer of the model gets forward and
backward timers (module hooks; CPU work is synchronous, CUDA is synchronised at each hook),
and its multiply-adds are counted from the shapes it saw:

- MDLSTM2d: H * W * 4 directions * 5h gates * (C + 2h) inputs per image (input projection and
  recurrence; the gate nonlinearities are not counted);
- Conv2d: H' * W' * C' * (C * kh * kw);  Linear: rows * in * out.

A training step costs three times the forward multiply-adds (forward, and two products in the
backward).  The network's FLOP rate as a share of the GEMM rate says how far it is from what
the machine's best-tuned kernel does with the same cores.
"""
from __future__ import annotations

import time
from collections import defaultdict

import torch
from torch import nn

from pipeline.mdlstm import MDLSTM2d
from pipeline.model import LanesConv, LanesLinear


def gemm_gflops(size: int = 512, windows: int = 5, window_s: float = 0.4, device: str = "cpu") -> float:
    """Best of ``windows`` windows of ``window_s`` seconds of float32 size x size matmuls."""
    a = torch.randn(size, size, device=device)
    b = torch.randn(size, size, device=device)
    torch.mm(a, b)
    best = 0.0
    for _ in range(windows):
        sync_device(device)
        start, count = time.perf_counter(), 0
        while time.perf_counter() - start < window_s:
            torch.mm(a, b)
            count += 1
        sync_device(device)
        best = max(best, 2 * size ** 3 * count / (time.perf_counter() - start))
    return best / 1e9


def sync_device(device) -> None:
    """Wait for queued GPU work, so that a timer reads the time the work took."""
    if str(device).startswith("cuda"):
        torch.cuda.synchronize()


def multiply_adds(module: nn.Module, x: torch.Tensor, out: torch.Tensor) -> int:
    """Multiply-adds of one forward of ``module`` from its input and output shapes."""
    if isinstance(module, MDLSTM2d):
        if x.dim() == 5:  # lanes layout (C, groups, H, W, lanes): padded lanes are work done
            channels, groups, height, width, lanes = x.shape
            batch = groups * lanes
        else:
            batch, channels, height, width = x.shape
        return batch * height * width * 4 * 5 * module.hidden * (channels + 2 * module.hidden)
    if isinstance(module, LanesConv):
        kh, kw = module.conv.kernel_size
        return out.numel() * module.conv.in_channels * kh * kw
    if isinstance(module, LanesLinear):
        return out.numel() * module.linear.in_features
    if isinstance(module, nn.Conv2d):
        kh, kw = module.kernel_size
        return out.numel() * module.in_channels * kh * kw // module.groups
    if isinstance(module, nn.Linear):
        return out.numel() * module.in_features
    return 0


class LayerTimer:
    """Forward/backward seconds and multiply-adds per named layer, while installed."""

    KINDS = (MDLSTM2d, nn.Conv2d, nn.Linear, LanesConv, LanesLinear)

    def __init__(self, model: nn.Module, device: str = "cpu"):
        self.device = device
        self.seconds: dict[str, dict[str, float]] = defaultdict(lambda: {"forward": 0.0, "backward": 0.0})
        self.macs: dict[str, int] = defaultdict(int)
        self._start: dict[tuple[str, str], float] = {}
        self._handles = []
        for name, module in model.named_modules():
            if isinstance(module, self.KINDS):
                self._handles += [
                    module.register_forward_pre_hook(self._begin(name, "forward")),
                    module.register_forward_hook(self._end_forward(name)),
                    module.register_full_backward_pre_hook(self._begin(name, "backward")),
                    module.register_full_backward_hook(self._end(name, "backward"))]

    def _now(self) -> float:
        sync_device(self.device)
        return time.perf_counter()

    def _begin(self, name, phase):
        def hook(*_):
            self._start[name, phase] = self._now()
        return hook

    def _end(self, name, phase):
        def hook(*_):
            self.seconds[name][phase] += self._now() - self._start.pop((name, phase))
        return hook

    def _end_forward(self, name):
        def hook(module, inputs, out):
            self.seconds[name]["forward"] += self._now() - self._start.pop((name, "forward"))
            if torch.is_grad_enabled():  # count training forwards only: one per timed step
                self.macs[name] += multiply_adds(module, inputs[0], out)
        return hook

    def remove(self) -> None:
        for handle in self._handles:
            handle.remove()


def layer_report(model: nn.Module, step, batches: list, device: str = "cpu") -> dict:
    """Run ``step(batch)`` (a training step) once per batch under a LayerTimer: per layer
    forward/backward milliseconds and multiply-adds, summed over the batches, and the rest
    of the steps' time (``"other"``: loss, optimiser, dropout, and the layers that ran
    without their module, e.g. the convs of the lanes-layout network).  Hooks add a little
    time of their own."""
    timer = LayerTimer(model, device)
    total = 0.0
    try:
        for images, *rest in batches:
            # an input that needs a gradient, so the first layer's backward hooks bracket its
            # backward (the C++ layer computes the input gradient either way)
            sync_device(device)
            start = time.perf_counter()
            step((images.detach().requires_grad_(True), *rest))
            sync_device(device)
            total += time.perf_counter() - start
    finally:
        timer.remove()
    report = {name: {"forward_ms": round(1e3 * t["forward"], 2), "backward_ms": round(1e3 * t["backward"], 2),
                     "forward_mmacs": round(timer.macs[name] / 1e6, 3)}
              for name, t in timer.seconds.items()}
    layers = sum(t["forward"] + t["backward"] for t in timer.seconds.values())
    report["other"] = {"ms": round(1e3 * (total - layers), 2)}
    report["step_ms"] = round(1e3 * total, 2)
    return report


def network_multiply_adds(model: nn.Module, batches: list) -> int:
    """Forward multiply-adds of the model over ``batches`` (no gradients, nothing timed), as
    the (B, C, H, W) network does them: the useful work, without the lanes layout's padding."""
    total = 0
    impls = {module: module.impl for module in model.modules() if isinstance(module, MDLSTM2d)}
    for module in impls:
        module.impl = "wavefront"

    def count(module, inputs, out):
        nonlocal total
        total += multiply_adds(module, inputs[0], out)

    handles = [m.register_forward_hook(count) for m in model.modules() if isinstance(m, LayerTimer.KINDS)]
    try:
        with torch.no_grad():
            for images, widths, *_ in batches:
                model(images, widths)
    finally:
        for handle in handles:
            handle.remove()
        for module, impl in impls.items():
            module.impl = impl
    return total
