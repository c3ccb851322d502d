"""Test-time slants: log-probability caches of one model on line images sheared at recognition.

    .venv/bin/python scripts/slant_probe.py --model models/copiste/default \
        --manifest work/copiste/dev/manifest.jsonl --out work/slants --shears 0,-0.15,0.15
    .venv/bin/python scripts/ensemble_probe.py --refs work/copiste/dev/manifest.jsonl work/slants/*.npz

Writes ``OUT/shear{S}.npz`` per shear (the light augmentation's slant, ``pipeline.augment``, with
the width kept, so every cache has the same frames and ``scripts/ensemble_probe.py`` can average
them, as ``htr ensemble`` averages models). A probe: whether averaging slanted readings of a line
pays for its extra recognition time (reports/probes/README.md).
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from common.skips import SkipLog  # noqa: E402
from pipeline.augment import slant  # noqa: E402
from pipeline.data import LineDataset, load_lines  # noqa: E402
from pipeline.logits import save_logits  # noqa: E402
from pipeline.model_folder import load_model_folder  # noqa: E402
from pipeline.recognize import run_model  # noqa: E402


class SlantedLines(LineDataset):
    """The normalised lines, each sheared by ``shear`` (0: as they are)."""

    shear = 0.0

    def __getitem__(self, i: int):
        array = self.image(i)
        if self.shear:
            array = slant(array, self.shear)
        return torch.from_numpy(np.ascontiguousarray(array))[None], self.lines[i]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", type=Path, required=True, help="model or ensemble folder")
    parser.add_argument("--manifest", type=Path, required=True, help="line manifest (JSONL)")
    parser.add_argument("--out", type=Path, required=True, help="folder for the shear{S}.npz caches")
    parser.add_argument("--shears", default="0,-0.15,0.15", help="comma-separated shears (x shift per row)")
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    model, config, alphabet = load_model_folder(args.model)
    lines = load_lines(args.manifest, alphabet, config.height, config.max_width, None, SkipLog())
    dataset = SlantedLines(lines, config.height, config.max_width, cache=True, norm=config.line_norm)
    args.out.mkdir(parents=True, exist_ok=True)
    for shear in (float(s) for s in args.shears.split(",")):
        dataset.shear = shear
        logprobs = run_model(model, dataset, 16, torch.device("cpu"), progress=False)
        save_logits(args.out / f"shear{shear}.npz", [line.id for line in lines], logprobs, alphabet, 0)
        print(f"{args.out / f'shear{shear}.npz'} written", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
