"""``htr tune``: choose the LM weight, word insertion bonus and blank penalty on dev log-probabilities.

One decoder after the other when ``--decoder`` names several (``--decoder lexicon char-lm``).

Coordinate search (default: weight, then bonus, then blank penalty, twice over) or a full
grid over the given values; the score is corpus WER (ties broken by CER) of the decoded dev lines
against their references.  The best values (and every setting tried) go under the decoder's
name into ``--out FILE``, a file of its own beside the LM folder (which ``htr lm`` rebuilds);
``htr decode --tuned FILE`` takes them as defaults.
"""
from __future__ import annotations

import argparse
import sys
from dataclasses import replace
from pathlib import Path

from lm.folder import write_tuned
from pipeline.decoders.config import LM_DECODERS, DecodeConfig
from pipeline.decoders.pool import decode_all
from pipeline.logits import LogitCache, load_logits
from pipeline.metrics import ErrorRates, error_rates, read_texts

DEFAULT_WEIGHTS = "0.25,0.5,0.75,1,1.5,2,3,4"
DEFAULT_BONUSES = "-2,-1,0,1,2,4"
DEFAULT_PENALTIES = "0,1,2,3"  # Copiste, shipped ensemble, char-lm: 0 -> 2 took dev CER 11.0 -> 9.6 (README)
Setting = tuple[float, float, float]  # (lm_weight, word_bonus, blank_penalty)


def floats(text: str) -> list[float]:
    try:
        return [float(x) for x in text.split(",") if x.strip()]
    except ValueError as error:
        raise argparse.ArgumentTypeError(f"expected comma-separated numbers, got {text!r}") from error


class Scorer:
    """Decodes the dev set at given (weight, bonus, blank penalty) values, remembering every result."""

    def __init__(self, cache: LogitCache, refs: dict[str, str], config: DecodeConfig, lm: Path, jobs: int) -> None:
        self.cache, self.refs, self.config, self.lm, self.jobs = cache, refs, config, lm, jobs
        self.results: dict[Setting, ErrorRates] = {}

    def __call__(self, weight: float, bonus: float, penalty: float = 0.0) -> tuple[float, float]:
        key = (weight, bonus, penalty)
        if key not in self.results:
            config = replace(self.config, lm_weight=weight, word_bonus=bonus, blank_penalty=penalty)
            hypotheses = decode_all(self.cache.logprobs, self.cache.alphabet, self.cache.blank, config,
                                    self.lm, self.jobs, progress=False)
            pairs = ((self.refs[i], h.text) for i, h in zip(self.cache.ids, hypotheses))
            self.results[key] = error_rates(pairs)
            rates = self.results[key]
            print(f"  lm_weight {weight:g} word_bonus {bonus:g} blank_penalty {penalty:g}: "
                  f"WER {rates.wer:.4f} CER {rates.cer:.4f}", flush=True)
        rates = self.results[key]
        return rates.wer, rates.cer

    def best(self) -> Setting:
        return min(self.results, key=lambda key: (self.results[key].wer, self.results[key].cer))


def coordinate_search(score: Scorer, weights: list[float], bonuses: list[float], penalties: list[float],
                      rounds: int = 2) -> None:
    bonus = _start(bonuses)
    penalty = _start(penalties)
    weight = weights[len(weights) // 2]
    for _ in range(rounds):
        weight = min(weights, key=lambda w: score(w, bonus, penalty))
        bonus = min(bonuses, key=lambda b: score(weight, b, penalty))
        penalty = min(penalties, key=lambda p: score(weight, bonus, p))


def _start(values: list[float]) -> float:
    """0 (no bonus, no penalty) where it is among the values, else the middle one."""
    return 0.0 if 0.0 in values else values[len(values) // 2]


def grid_search(score: Scorer, weights: list[float], bonuses: list[float], penalties: list[float]) -> None:
    for weight in weights:
        for bonus in bonuses:
            for penalty in penalties:
                score(weight, bonus, penalty)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="htr tune",
        description="Search the LM weight, word insertion bonus and blank penalty of an LM decoder on dev "
                    "log-probabilities; the best setting is written to --out FILE, read by 'htr decode --tuned FILE'.")
    parser.add_argument("--logits", type=Path, required=True, help="dev log-probability cache (.npz)")
    parser.add_argument("--refs", type=Path, required=True, help="dev references: manifest (.jsonl) or id<TAB>text")
    parser.add_argument("--lm", type=Path, required=True, help="LM directory built by 'htr lm'")
    parser.add_argument("--out", type=Path, required=True,
                        help="tuned-weights file (JSON; the other decoders' entries in it are kept)")
    parser.add_argument("--decoder", nargs="+", choices=LM_DECODERS, default=["lexicon"],
                        help="LM decoder(s) to tune, each into its own entry of --out")
    parser.add_argument("--beam", type=int, default=32, help="beam size while tuning")
    parser.add_argument("--weights", type=floats, default=floats(DEFAULT_WEIGHTS), help="LM weights to try")
    parser.add_argument("--bonuses", type=floats, default=floats(DEFAULT_BONUSES), help="word bonuses to try")
    parser.add_argument("--blank-penalties", type=floats, default=floats(DEFAULT_PENALTIES),
                        help="blank penalties to try ('0': keep the network's blank probabilities)")
    parser.add_argument("--search", choices=("coordinate", "grid"), default="coordinate")
    parser.add_argument("--max-lines", type=int, default=0, help="tune on the first N lines only (0: all)")
    parser.add_argument("--jobs", type=int, default=1, help="worker processes")
    args = parser.parse_args(argv)
    try:
        cache = load_logits(args.logits)
        refs = read_texts(args.refs)
    except (FileNotFoundError, ValueError) as error:
        print(f"htr tune: {error}", file=sys.stderr)
        return 1
    known = [i for i, line_id in enumerate(cache.ids) if line_id in refs]
    if not known:
        print(f"htr tune: no line of {args.logits} has a reference in {args.refs}", file=sys.stderr)
        return 1
    cache = cache.subset(known[:args.max_lines] if args.max_lines > 0 else known)
    for decoder in dict.fromkeys(args.decoder):
        try:
            tune(decoder, cache, refs, args)
        except (FileNotFoundError, ValueError) as error:
            print(f"htr tune: {error}", file=sys.stderr)
            return 1
    return 0


def tune(decoder: str, cache: LogitCache, refs: dict[str, str], args: argparse.Namespace) -> None:
    """Search ``decoder``'s settings and store the best one under its name in ``args.out``."""
    score = Scorer(cache, refs, DecodeConfig(decoder=decoder, beam=args.beam), args.lm, args.jobs)
    print(f"tuning {decoder} on {len(cache)} lines ({args.search} search, beam {args.beam})")
    search = grid_search if args.search == "grid" else coordinate_search
    search(score, args.weights, args.bonuses, args.blank_penalties)
    weight, bonus, penalty = score.best()
    rates = score.results[(weight, bonus, penalty)]
    entry = {"lm_weight": weight, "word_bonus": bonus, "blank_penalty": penalty,
             "wer": round(rates.wer, 5), "cer": round(rates.cer, 5),
             "lines": len(cache), "beam": args.beam, "logits": str(args.logits),
             "tried": [{"lm_weight": w, "word_bonus": b, "blank_penalty": p, "wer": round(r.wer, 5), "cer": round(r.cer, 5)}
                       for (w, b, p), r in score.results.items()]}
    write_tuned(args.out, decoder, entry)
    print(f"{args.out}: {decoder} lm_weight {weight:g} word_bonus {bonus:g} blank_penalty {penalty:g} "
          f"(dev WER {rates.wer:.4f}, CER {rates.cer:.4f})")


if __name__ == "__main__":
    raise SystemExit(main())
