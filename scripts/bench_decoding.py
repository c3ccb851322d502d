"""Decoder benchmark: lines/s and CER/WER of each decoder on one log-probability cache.

    .venv/bin/python scripts/bench_decoding.py --logits L.npz --refs MANIFEST --lm DIR \
        --out reports/decoding/NAME.json [--beam 64] [--decoders greedy beam ...]

Speed is measured in one process (``--jobs 1``), decoder construction excluded; the LM
weights are those of ``--tuned FILE`` (``htr tune --out``), else of the LM directory's own
tuned.json when it has one, else the defaults.
"""
from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from dataclasses import replace  # noqa: E402

from common.files import atomic_write_text  # noqa: E402
from pipeline.decoders.config import DECODERS, LM_DECODERS, DecodeConfig, tuned_config  # noqa: E402
from pipeline.decoders.pool import make_decoder  # noqa: E402
from pipeline.logits import load_logits  # noqa: E402
from pipeline.metrics import error_rates, read_texts  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--logits", type=Path, required=True)
    parser.add_argument("--refs", type=Path, required=True, help="manifest or id<TAB>text references")
    parser.add_argument("--lm", type=Path, required=True)
    parser.add_argument("--tuned", type=Path, help="tuned LM weights (htr tune --out)")
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--beam", type=int, default=64)
    parser.add_argument("--decoders", nargs="+", default=list(DECODERS), choices=DECODERS)
    parser.add_argument("--beam-token", type=int, default=DecodeConfig.beam_token, help="labels per frame")
    parser.add_argument("--line-seconds", type=float, default=DecodeConfig.line_seconds, help="beam/beam-lm time bound")
    parser.add_argument("--token-min-logp", type=float, default=DecodeConfig.token_min_logp, help="beam/beam-lm label cut")
    parser.add_argument("--beam-threshold", type=float, default=DecodeConfig.beam_threshold, help="lexicon/char-lm beam cut")
    parser.add_argument("--beam-prune-logp", type=float, default=DecodeConfig.beam_prune_logp, help="beam/beam-lm beam cut")
    parser.add_argument("--note", default="", help="free text stored in the JSON (what the logits are)")
    args = parser.parse_args()
    try:
        cache = load_logits(args.logits)
        refs = read_texts(args.refs)
    except (OSError, ValueError) as error:
        print(f"bench_decoding: {error}", file=sys.stderr)
        return 1
    frames = sum(len(a) for a in cache.logprobs)
    results = {}
    for name in args.decoders:
        config = replace(tuned_config(name, args.tuned, args.lm), beam=args.beam, beam_token=args.beam_token,
                         line_seconds=args.line_seconds, token_min_logp=args.token_min_logp,
                         beam_prune_logp=args.beam_prune_logp, beam_threshold=args.beam_threshold)
        start = time.perf_counter()
        decoder = make_decoder(config, cache.alphabet, cache.blank, args.lm)
        built = time.perf_counter() - start
        start = time.perf_counter()
        hypotheses = [decoder.decode(a) for a in cache.logprobs]
        seconds = time.perf_counter() - start
        rates = error_rates((refs.get(i, ""), h.text) for i, h in zip(cache.ids, hypotheses))
        results[name] = {"lines_per_s": round(len(hypotheses) / seconds, 2), "decode_s": round(seconds, 3),
                         "build_s": round(built, 3), "cer": round(rates.cer, 5), "wer": round(rates.wer, 5),
                         "fallback_lines": sum(h.fallback for h in hypotheses),
                         "lm_weight": config.lm_weight if name in LM_DECODERS else None,
                         "word_bonus": config.word_bonus if name in LM_DECODERS else None,
                         "blank_penalty": config.blank_penalty}
        print(name, json.dumps(results[name]), flush=True)
    if "greedy" in results:
        base = results["greedy"]["wer"]
        for row in results.values():
            row["wer_reduction_vs_greedy"] = round(1 - row["wer"] / base, 4) if base else None
    report = {"logits": str(args.logits), "refs": str(args.refs), "lm": str(args.lm), "note": args.note,
              "lines": len(cache), "frames": frames, "labels": len(cache.alphabet), "beam": args.beam,
              "beam_token": args.beam_token, "line_seconds": args.line_seconds,
              "token_min_logp": args.token_min_logp, "beam_prune_logp": args.beam_prune_logp,
              "beam_threshold": args.beam_threshold,
              "machine": f"{platform.machine()}, {platform.python_version()}, 2 shared CPU cores, jobs 1",
              "decoders": results}
    atomic_write_text(args.out, json.dumps(report, indent=2, ensure_ascii=False) + "\n")
    print(f"{args.out} written")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
