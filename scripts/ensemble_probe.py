"""Which models to put in an ensemble: greedy CER/WER of each member and of their combinations,
from log-probability caches already written by ``htr recognize`` (no network is run).

    .venv/bin/python scripts/ensemble_probe.py --refs work/copiste/dev/manifest.jsonl a.npz b.npz [c.npz ...]

Prints one row per cache, then, for every subset of two or more caches, the greedy scores of the
mean of their log-probabilities (what ``htr ensemble`` outputs) and of the mean of their
probabilities.  Caches must hold the same line ids and the same symbols (in any order).
"""
from __future__ import annotations

import argparse
import itertools
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from pipeline.decoders.greedy import greedy_decode  # noqa: E402
from pipeline.logits import LogitCache, label_order, load_logits  # noqa: E402
from pipeline.metrics import ErrorRates, error_rates, read_texts  # noqa: E402


def aligned(caches: list[LogitCache], names: list[str]) -> list[LogitCache]:
    """The caches with every one's columns in the first one's alphabet order."""
    first = caches[0]
    out = [first]
    for cache, name in zip(caches[1:], names[1:]):
        if cache.ids != first.ids:
            raise ValueError(f"{name}: other line ids than {names[0]}")
        try:
            order = label_order(cache.alphabet, first.alphabet)
        except ValueError as error:
            raise ValueError(f"{name}: other symbols than {names[0]} ({error})") from None
        out.append(LogitCache(cache.ids, first.alphabet, first.blank, [m[:, order] for m in cache.logprobs]))
    return out


def mean_logprobs(members: list[LogitCache], line: int) -> np.ndarray:
    return np.mean([m.logprobs[line] for m in members], axis=0)


def mean_probs(members: list[LogitCache], line: int) -> np.ndarray:
    return np.logaddexp.reduce([m.logprobs[line] for m in members], axis=0) - np.log(len(members))


def greedy_scores(refs: dict[str, str], ids: list[str], matrices, alphabet: list[str], blank: int) -> ErrorRates:
    return error_rates((refs.get(i, ""), greedy_decode(m, alphabet, blank)) for i, m in zip(ids, matrices))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("caches", nargs="+", type=Path, help="log-probability caches (htr recognize --out)")
    parser.add_argument("--refs", type=Path, required=True, help="references: a manifest or id<TAB>text")
    args = parser.parse_args(argv)
    names = [str(path) for path in args.caches]
    try:
        caches = aligned([load_logits(path) for path in args.caches], names)
        refs = read_texts(args.refs)
    except (FileNotFoundError, ValueError) as error:
        print(f"ensemble_probe: {error}", file=sys.stderr)
        return 1
    first = caches[0]
    print("| models | combination | greedy CER | greedy WER |\n|---|---|---|---|")
    for name, cache in zip(names, caches):
        rates = greedy_scores(refs, first.ids, cache.logprobs, first.alphabet, first.blank)
        print(f"| {name} | alone | {100 * rates.cer:.2f} | {100 * rates.wer:.2f} |")
    for size in range(2, len(caches) + 1):
        for subset in itertools.combinations(range(len(caches)), size):
            members = [caches[k] for k in subset]
            label = " + ".join(names[k] for k in subset)
            for how, combine in (("mean log-prob", mean_logprobs), ("mean prob", mean_probs)):
                matrices = (combine(members, line) for line in range(len(first.ids)))
                rates = greedy_scores(refs, first.ids, matrices, first.alphabet, first.blank)
                print(f"| {label} | {how} | {100 * rates.cer:.2f} | {100 * rates.wer:.2f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
