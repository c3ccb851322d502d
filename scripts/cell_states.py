"""How large the 2D-LSTM cell states get on real lines, layer by layer.

    .venv/bin/python scripts/cell_states.py --manifest work/copiste/dev/manifest.jsonl --model models/copiste/dropout-all
    .venv/bin/python scripts/cell_states.py --manifest work/copiste/dev/manifest.jsonl -- --mdlstm-forget-bias -1

With ``--model`` it measures a trained model folder; without, a freshly initialised network
built from the ``htr train`` model flags after ``--`` (seed 0).  For each MDLSTM layer it
prints the median / 95th / 99th percentile of |c| over every cell, direction and pixel of
the first ``--lines`` lines of the manifest, the share of saturated cells (|tanh c| >
0.99: no gradient flows through the cell output there) and the mean forget-gate bias.
Needs the C++ layer (it reads the cell states that the C++ forward keeps for backward).
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from common.skips import SkipLog  # noqa: E402
from data_prep.records import read_manifest  # noqa: E402
from pipeline.data import LineDataset, build_alphabet, collate, load_lines  # noqa: E402
from pipeline.mdlstm import to_lanes  # noqa: E402
from pipeline.mdlstm_ext import load_extension  # noqa: E402
from pipeline.model import ModelConfig, build_model, pad_to_multiple  # noqa: E402
from pipeline.model_folder import load_model_folder  # noqa: E402


def network(args: argparse.Namespace, flags: list[str]):
    if args.model is not None:
        model, _, alphabet = load_model_folder(args.model)
        return model, alphabet
    parser = argparse.ArgumentParser()
    ModelConfig.add_arguments(parser)
    config = ModelConfig.from_args(parser.parse_args(flags))
    alphabet = build_alphabet([record.text for record in read_manifest(args.manifest)])
    torch.manual_seed(0)
    return build_model(config, len(alphabet)), alphabet


@torch.no_grad()
def layer_stats(model, images: torch.Tensor) -> list[dict]:
    x = model.blocks(pad_to_multiple(images, model.reduce_h, model.reduce_w))
    t, rows = to_lanes(x), []
    for k, lstm in enumerate(model.lstms):
        weights = torch.cat([lstm.weight_ih, lstm.weight_hh], 2).contiguous()
        # no padding mask (an empty one): the states of every cell of the batch, as measured before the mask
        h, c, _ = load_extension().forward(t.contiguous(), weights, lstm.bias.contiguous(), t.new_empty(0))
        size = c.abs().flatten()
        sample = size[torch.randperm(size.numel(), generator=torch.Generator().manual_seed(0))[:1_000_000]]
        p50, p95, p99 = torch.quantile(sample, torch.tensor([0.5, 0.95, 0.99])).tolist()
        forget = lstm.bias[:, lstm.hidden:3 * lstm.hidden]
        rows.append({"layer": k, "cells": lstm.hidden, "p50": p50, "p95": p95, "p99": p99,
                     "saturated": float((c.tanh().abs() > 0.99).float().mean()), "forget_bias": float(forget.mean())})
        t = h
        if k < len(model.convs):
            t = torch.tanh(model.lanes_convs[k](t))
    return rows


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    flags = argv[argv.index("--") + 1:] if "--" in argv else []
    own = argv[:argv.index("--")] if "--" in argv else argv
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     epilog="Everything after -- is a model flag of htr train (fresh network only).")
    parser.add_argument("--manifest", type=Path, required=True, help="line manifest (JSONL) to run the network on")
    parser.add_argument("--model", type=Path, help="a trained model folder (default: a fresh network)")
    parser.add_argument("--lines", type=int, default=24, help="how many lines of the manifest (one batch)")
    args = parser.parse_args(own)
    if not args.manifest.is_file():
        print(f"cell_states: {args.manifest} not found (make copiste-data writes the Copiste manifests)", file=sys.stderr)
        return 1
    torch.set_num_threads(1)
    model, alphabet = network(args, flags)
    model.eval()
    config = model.config
    lines = load_lines(args.manifest, alphabet, config.height, config.max_width, None, SkipLog(stream=None))[:args.lines]
    if not lines:
        print(f"cell_states: no readable line in {args.manifest}", file=sys.stderr)
        return 1
    data = LineDataset(lines, config.height, config.max_width, norm=config.line_norm)
    batch = collate([data[i] for i in range(len(lines))])
    print(f"{args.model or 'fresh network ' + ' '.join(flags)}: {len(lines)} lines of {args.manifest}")
    print("layer  cells  |c| p50  |c| p95  |c| p99  |tanh c|>0.99  forget bias")
    for row in layer_stats(model, batch.images):
        print(f"{row['layer']:>5}  {row['cells']:>5}  {row['p50']:7.3g}  {row['p95']:7.3g}  {row['p99']:7.3g}"
              f"  {row['saturated']:13.3f}  {row['forget_bias']:11.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
