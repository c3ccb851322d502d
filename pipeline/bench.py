"""``htr bench``: training and inference speed of the optical models on a fixed batch.

Measures lines/s of one training step (forward, CTC loss, backward, Adam step) and of
inference (eval mode, no gradients) for the Pham MDLSTM network with each 2D-LSTM
implementation (naive, wavefront, C++) and for the CNN + BLSTM model, all on the same
synthetic batches (default: 8 lines of 64x800 px and 8 of 64x1600 px), after one
untimed warm-up step (which also compiles the C++ scan); each batch counts with
its fastest of ``--repeats`` runs.  ``--quick`` times the naive
loop on small lines (8 of 64x``naive-width``) and scales by pixel area, marking it
``"scaled_from"``.  Output JSON::

    {"mdlstm": {"naive": {"train_lines_per_s": x, "infer_lines_per_s": y}, "wavefront": {...},
                "cpp": {...}}, "crnn": {...}, "params": {"mdlstm": n, "crnn": m}, ...}
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import nn

from common.cliconfig import CliConfig
from common.files import atomic_write_text
from pipeline.bench_layers import sync_device, gemm_gflops, layer_report, network_multiply_adds
from pipeline.model import ModelConfig, build_model, count_parameters, int_list

IMPLS = ("naive", "wavefront", "cpp")


@dataclass
class BenchConfig(CliConfig):
    out: Path | None = field(default=None, metadata={"help": "JSON file to write (printed too)"})
    quick: bool = field(default=False, metadata={"help": "under a minute: naive loop on small lines, scaled"})
    widths: str = field(default="800,1600", metadata={"help": "line widths of the batches (px)"})
    lines: int = field(default=8, metadata={"help": "lines per batch"})
    height: int = field(default=64, metadata={"help": "line height (px)"})
    naive_width: int = field(default=64, metadata={"help": "--quick: width of the naive loop's lines"})
    impls: str = field(default="naive,wavefront,cpp", metadata={"help": "2D-LSTM implementations to time"})
    classes: int = field(default=80, metadata={"help": "output classes (alphabet + blank)"})
    threads: int = field(default=0, metadata={"help": "torch CPU threads (0: torch's default)"})
    seed: int = field(default=0, metadata={"help": "seed of the synthetic batch and weights"})
    repeats: int = field(default=3, metadata={"help": "timed runs per batch, the fastest counts (--quick: 1)"})
    device: str = field(default="cpu", metadata={"help": "torch device (cuda: the wavefront and the CRNN; the C++ scan and the naive loop are CPU only)"})
    mdlstm_hidden: str = field(default="2,10,50", metadata={"help": "MDLSTM layer sizes of the timed network (as htr train's flag: e.g. 2,10,100 or 4,20,100, to cost a wider layout before training it)"})
    mdlstm_conv: str = field(default="6,20", metadata={"help": "features of its subsampling convs (one fewer than the layers)"})
    layers: bool = field(default=True, metadata={"help": "also time each layer's forward and backward (the fastest 2D-LSTM implementation)"})


def synthetic_batch(lines: int, height: int, width: int, classes: int, generator: torch.Generator):
    """Sparse random 'ink' and random labels about one per 24 px (3 frames per label)."""
    images = (torch.rand(lines, 1, height, width, generator=generator) < 0.1).float()
    widths = torch.full((lines,), width, dtype=torch.long)
    label_length = max(1, width // 24)
    targets = torch.randint(1, classes, (lines * label_length,), generator=generator)
    return images, widths, targets, torch.full((lines,), label_length, dtype=torch.long)


def training_step(model: nn.Module):
    """One training step (forward, CTC, backward, Adam) on a batch, as a function."""
    ctc = nn.CTCLoss(zero_infinity=True)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-4)

    def train_step(batch) -> None:
        images, widths, targets, lengths = batch
        model.train()
        optimizer.zero_grad()
        logprobs, frames = model(images, widths)
        ctc(logprobs, targets, frames.to(logprobs.device), lengths).backward()
        optimizer.step()
    return train_step


def time_model(model: nn.Module, batches: list, repeats: int = 1, device: str = "cpu") -> dict:
    """Lines/s of training steps and of inference over ``batches`` (one warm-up each);
    each batch counts with its fastest of ``repeats`` runs (robust on a shared machine)."""
    train_step = training_step(model)

    def infer_step(batch) -> None:
        model.eval()
        with torch.no_grad():
            model(batch[0], batch[1])

    result = {}
    for name, step in (("train", train_step), ("infer", infer_step)):
        step(batches[0])  # warm-up (and C++ compilation), not timed
        seconds = 0.0
        for batch in batches:
            times = []
            for _ in range(repeats):
                sync_device(device)
                start = time.perf_counter()
                step(batch)
                sync_device(device)
                times.append(time.perf_counter() - start)
            seconds += min(times)
        result[f"{name}_lines_per_s"] = round(sum(len(b[0]) for b in batches) / seconds, 3)
    return result


def add_flop_shares(timing: dict, macs_per_line: float, gemm: float) -> dict:
    """GFLOP/s of the network (2 per multiply-add; training = 3x the forward) and its share
    of the same-run GEMM rate."""
    for phase, factor in (("train", 3), ("infer", 1)):
        rate = timing[f"{phase}_lines_per_s"] * factor * 2 * macs_per_line / 1e9
        timing[f"{phase}_gflops"] = float(f"{rate:.4g}")
        timing[f"{phase}_share_of_gemm"] = float(f"{rate / gemm:.3g}")
    return timing


def set_impl(model: nn.Module, impl: str) -> None:
    for module in model.modules():
        if hasattr(module, "impl"):
            module.impl = impl


def _on(batch: tuple, device: str) -> tuple:
    return tuple(t.to(device) for t in batch)


def check_device(device: str) -> None:
    """A clear message instead of a CUDA traceback when the device is not there."""
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise ValueError(f"--device {device}: no CUDA device is available to this torch build")
    torch.device(device)  # raises on a malformed name


def run_bench(config: BenchConfig, say=print) -> dict:
    check_device(config.device)
    if config.threads > 0:
        torch.set_num_threads(config.threads)
    generator = torch.Generator().manual_seed(config.seed)
    widths = int_list(config.widths)
    batches = [_on(synthetic_batch(config.lines, config.height, w, config.classes, generator), config.device)
               for w in widths]
    torch.manual_seed(config.seed)
    layout = ModelConfig(arch="mdlstm", height=config.height, mdlstm_hidden=config.mdlstm_hidden, mdlstm_conv=config.mdlstm_conv)
    layout.check()  # a bad layout is one line (ValueError), not a traceback
    mdlstm = build_model(layout, config.classes).to(config.device)
    crnn = build_model(ModelConfig(arch="crnn", height=config.height), config.classes).to(config.device)
    repeats = 1 if config.quick else max(1, config.repeats)
    gemm = gemm_gflops(windows=2 if config.quick else 5, device=config.device)
    say(f"float32 GEMM 512x512: {gemm:.1f} GFLOP/s")
    lines = sum(len(b[0]) for b in batches)
    macs = {"mdlstm": network_multiply_adds(mdlstm, batches) / lines, "crnn": network_multiply_adds(crnn, batches) / lines}
    report: dict = {"repeats": repeats, "batch": {"lines": config.lines, "height": config.height, "widths": widths},
                    "mdlstm_layout": {"hidden": config.mdlstm_hidden, "conv": config.mdlstm_conv},
                    "threads": torch.get_num_threads(), "quick": config.quick, "device": config.device,
                    "gemm_gflops": round(gemm, 1),
                    "mmacs_per_line": {name: round(value / 1e6, 2) for name, value in macs.items()},
                    "params": {"mdlstm": count_parameters(mdlstm), "crnn": count_parameters(crnn)},
                    "mdlstm": {}}
    timed = []
    for impl in int_list_names(config.impls):
        set_impl(mdlstm, impl)
        if impl in ("cpp", "naive") and config.device != "cpu":
            report["mdlstm"][impl] = {"error": f"the {impl} 2D-LSTM runs on the CPU only"}
            continue
        if impl == "cpp" and not _cpp_ok():
            report["mdlstm"][impl] = {"error": "C++ scan unavailable (no compiler?)"}
            continue
        if impl == "naive" and config.quick:
            small = [_on(synthetic_batch(config.lines, config.height, config.naive_width, config.classes, generator),
                         config.device)]
            timing = time_model(mdlstm, small, repeats, config.device)
            scale = config.naive_width * len(widths) / sum(widths)  # cost grows with the pixels
            timing = {k: round(v * scale, 4) for k, v in timing.items()}
            timing["scaled_from"] = f"{config.lines}x{config.height}x{config.naive_width}"
        else:  # naive: minutes per run
            timing = time_model(mdlstm, batches, 1 if impl == "naive" else repeats, config.device)
            timed.append(impl)
        report["mdlstm"][impl] = add_flop_shares(timing, macs["mdlstm"], gemm)
        say(f"mdlstm {impl}: {timing}")
    report["crnn"] = add_flop_shares(time_model(crnn, batches, repeats, config.device), macs["crnn"], gemm)
    say(f"crnn: {report['crnn']}")
    if config.layers and timed:
        fastest = max(timed, key=lambda impl: report["mdlstm"][impl]["train_lines_per_s"])
        set_impl(mdlstm, fastest)
        report["layers"] = {"impl": fastest, "note": "one training step per batch, summed over the batches",
                            "mdlstm": layer_report(mdlstm, training_step(mdlstm), batches, config.device)}
        say(f"layers ({fastest}): {report['layers']['mdlstm']}")
    return report


def int_list_names(text: str) -> list[str]:
    names = [name.strip() for name in text.split(",") if name.strip()]
    unknown = set(names) - set(IMPLS)
    if unknown:
        raise ValueError(f"unknown 2D-LSTM implementations {sorted(unknown)} (known: {IMPLS})")
    return names


def _cpp_ok() -> bool:
    from pipeline.mdlstm import cpp_available
    return cpp_available()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="htr bench",
        description="Training and inference lines/s of the MDLSTM network with each 2D-LSTM "
                    "implementation and of the CNN+BLSTM model, on fixed synthetic batches.")
    BenchConfig.add_arguments(parser)
    args = parser.parse_args(argv)
    config = BenchConfig.from_args(args)
    try:
        report = run_bench(config, say=lambda text: print(text, file=sys.stderr))
    except ValueError as error:
        print(f"htr bench: {error}", file=sys.stderr)
        return 1
    text = json.dumps(report, indent=2) + "\n"
    if config.out is not None:
        atomic_write_text(config.out, text)
    print(text, end="")
    return 0
