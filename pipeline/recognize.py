"""``htr recognize``: run an optical model over a line manifest once, keep its outputs.

The network's per-line CTC log-probabilities go to one cache file that every decoder
(greedy, lexicon, n-gram) reads, so decoding variants never rerun the network.  The
format is :mod:`pipeline.logits` (``.npz``: ``logprobs`` (sum T_i, N) float32 stacked,
``offsets``, ``ids``, ``alphabet`` with ``alphabet[blank] == ""``, ``blank`` = 0); read
it with :func:`pipeline.logits.load_logits`.  Lines whose image is missing or
unreadable are skipped, counted and named, and are absent from the cache.
"""
from __future__ import annotations

import argparse
import sys
from contextlib import nullcontext
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from common.cliconfig import CliConfig
from common.outlock import OutputError, claim_output
from data_prep.records import iter_manifest
from common.skips import SkipLog
from pipeline.data import LineDataset, collate, load_lines, sorted_batches
from pipeline.logits import LogitCache, save_logits
from pipeline.model_folder import load_model_folder


@dataclass
class RecognizeConfig(CliConfig):
    model: Path | None = field(default=None, metadata={"help": "model folder written by 'htr train' (model.json + weights.pt)"})
    manifest: Path | None = field(default=None, metadata={"help": "line manifest (JSONL) to recognise"})
    out: Path | None = field(default=None, metadata={"help": "cache file to write (.npz)"})
    batch_size: int = field(default=16, metadata={"help": "lines per batch (sorted by width)"})
    threads: int = field(default=0, metadata={"help": "CPU threads for torch (0: torch's default)"})
    device: str = field(default="auto", metadata={"help": "auto, cpu or cuda"})
    impl: str = field(default="", metadata={"help": "override the 2D-LSTM implementation (naive, wavefront, cpp)"})


def run_model(model: torch.nn.Module, dataset: LineDataset, batch_size: int, device: torch.device,
              progress: bool = True) -> list[np.ndarray]:
    """Log-probabilities (T_i x N) of every line of ``dataset``, in dataset order."""
    widths = [line.width for line in dataset.lines]
    outputs: list[np.ndarray | None] = [None] * len(dataset)
    batches = sorted_batches(widths, batch_size)
    model.eval()
    with torch.no_grad(), tqdm(total=len(dataset), unit="line", disable=not progress, desc="recognize") as bar:
        for indices in batches:
            batch = collate([dataset[i] for i in indices])
            logprobs, lengths = model(batch.images.to(device), batch.widths.to(device))
            logprobs = logprobs.float().cpu().numpy()
            for k, i in enumerate(indices):
                outputs[i] = logprobs[: int(lengths[k]), k]
            bar.update(len(indices))
    return outputs  # type: ignore[return-value]


def recognize(config: RecognizeConfig, progress: bool = True) -> tuple[LogitCache, SkipLog]:
    for name in ("model", "manifest", "out"):
        if getattr(config, name) is None:
            raise ValueError(f"--{name} is required")
    if next(iter_manifest(config.manifest), None) is None:  # before the model is loaded
        raise ValueError(f"{config.manifest}: no line in the manifest; nothing to recognise, no cache written")
    if config.threads > 0:
        torch.set_num_threads(config.threads)
    device = torch.device("cuda" if config.device == "auto" and torch.cuda.is_available()
                          else ("cpu" if config.device == "auto" else config.device))
    model, model_config, alphabet = load_model_folder(config.model, impl=config.impl or None)
    model.to(device)
    log = SkipLog()
    lines = load_lines(config.manifest, alphabet, model_config.height, model_config.max_width, None, log)
    if not lines:
        raise ValueError(f"{config.manifest}: none of its {sum(log.lines.values())} lines could be read "
                         "(see the messages above); no cache written")
    dataset = LineDataset(lines, model_config.height, model_config.max_width, cache=False, norm=model_config.line_norm)
    logprobs = run_model(model, dataset, config.batch_size, device, progress)
    cache = LogitCache([line.id for line in lines], alphabet, 0, logprobs)
    save_logits(config.out, cache.ids, cache.logprobs, alphabet, cache.blank)
    return cache, log


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="htr recognize",
        description="Run a trained model over a line manifest and write the per-line CTC "
                    "log-probabilities (+ alphabet and line ids) to one .npz cache "
                    "that the decoders read.")
    RecognizeConfig.add_arguments(parser)
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    args = parser.parse_args(argv)
    config = RecognizeConfig.from_args(args)
    try:
        with claim_output(config.out, "htr recognize") if config.out else nullcontext():
            cache, log = recognize(config, progress=not args.quiet)
    except (FileNotFoundError, ValueError, KeyError, OutputError) as error:
        print(f"htr recognize: {error}", file=sys.stderr)
        return 1
    frames = sum(len(m) for m in cache.logprobs)
    skipped = log.summary()["lines_skipped"]
    print(f"htr recognize: {len(cache.ids)} lines ({frames} frames) -> {config.out}"
          + (f"; {skipped} lines skipped" if skipped else ""))
    return 0
