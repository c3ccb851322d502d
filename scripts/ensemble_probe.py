"""Which models to put in an ensemble: greedy CER/WER of each member and of their combinations,
from log-probability caches already written by ``htr recognize`` (no network is run).

    .venv/bin/python scripts/ensemble_probe.py --refs work/copiste/dev/manifest.jsonl a.npz b.npz [c.npz ...]

Prints one row per cache, then, for every subset of two or more caches, the greedy scores of the
mean of their log-probabilities (what ``htr ensemble`` outputs) and of the mean of their
probabilities.  Caches must hold the same line ids and the same symbols (in any order).

With ``--first-weights 1,1.5,2`` (and a manifest naming each line's writer as ``--refs``) it instead
weighs the first cache's log-probabilities against the others' (each 1) and prints, per weight, the
greedy CER on every line, then the CER of leave-one-writer-out: each writer's lines read with the
weight that was best on all other writers' lines -- whether a weight chosen on dev would carry to
writers it was not chosen on.
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
from data_prep.records import line_writers  # noqa: E402
from pipeline.metrics import ErrorRates, char_edits, error_rates, read_texts  # noqa: E402


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


def mean_logprobs(members: list[LogitCache], line: int, weights: list[float] | None = None) -> np.ndarray:
    """The members' log-probabilities of one line averaged (equally, or with one weight per member)."""
    return np.average([m.logprobs[line] for m in members], axis=0, weights=weights)


def mean_probs(members: list[LogitCache], line: int) -> np.ndarray:
    return np.logaddexp.reduce([m.logprobs[line] for m in members], axis=0) - np.log(len(members))


def greedy_scores(refs: dict[str, str], ids: list[str], matrices, alphabet: list[str], blank: int) -> ErrorRates:
    return error_rates((refs.get(i, ""), greedy_decode(m, alphabet, blank)) for i, m in zip(ids, matrices))


def weighted_errors(refs: dict[str, str], caches: list[LogitCache], weights: list[float]) -> np.ndarray:
    """Character errors per (weight of the first cache, line) of the weighted mean log-probabilities."""
    first = caches[0]
    errors = np.zeros((len(weights), len(first.ids)))
    for row, weight in enumerate(weights):
        member_weights = [weight] + [1.0] * (len(caches) - 1)
        for line, line_id in enumerate(first.ids):
            matrix = mean_logprobs(caches, line, member_weights)
            errors[row, line] = char_edits(refs.get(line_id, ""), greedy_decode(matrix, first.alphabet, first.blank)).errors
    return errors


def leave_one_writer_out(errors: np.ndarray, line_writer: list[str]) -> tuple[float, list[int]]:
    """Total errors when each writer's lines take the weight (row) best on the other writers' lines
    (a tie goes to the row listed first), and the row chosen for each writer."""
    writer_of = np.array(line_writer)
    total, chosen = 0.0, []
    for writer in sorted(set(line_writer)):
        held_out = writer_of == writer
        best = int(np.argmin(errors[:, ~held_out].sum(axis=1)))
        total += errors[best, held_out].sum()
        chosen.append(best)
    return total, chosen


def print_first_weights(refs_path: Path, refs: dict[str, str], caches: list[LogitCache], names: list[str],
                        weights: list[float]) -> None:
    ids = caches[0].ids
    writers = line_writers(refs_path, ids, "--first-weights")
    chars = sum(char_edits(refs.get(line_id, ""), "").ref for line_id in ids)
    errors = weighted_errors(refs, caches, weights)
    print(f"weight of {names[0]} against {', '.join(names[1:])} (each 1), mean log-prob, greedy\n"
          "| weight | CER, every line |\n|---|---|")
    for weight, row in zip(weights, errors):
        print(f"| {weight:g} | {100 * row.sum() / chars:.2f} |")
    total, chosen = leave_one_writer_out(errors, writers)
    picked = sorted({weights[row] for row in chosen})
    print(f"leave-one-writer-out ({len(chosen)} writers, weights chosen: {', '.join(f'{w:g}' for w in picked)}): "
          f"CER {100 * total / chars:.2f}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("caches", nargs="+", type=Path, help="log-probability caches (htr recognize --out)")
    parser.add_argument("--refs", type=Path, required=True, help="references: a manifest or id<TAB>text")
    parser.add_argument("--first-weights", default="",
                        help="comma-separated weights of the first cache (the others weigh 1): CER per weight "
                             "and leave-one-writer-out (--refs must be a manifest naming writers)")
    args = parser.parse_args(argv)
    names = [str(path) for path in args.caches]
    try:
        caches = aligned([load_logits(path) for path in args.caches], names)
        refs = read_texts(args.refs)
        if args.first_weights:
            try:
                weights = [float(w) for w in args.first_weights.split(",")]
            except ValueError:
                raise ValueError(f"--first-weights {args.first_weights}: comma-separated numbers, e.g. 1,1.5,2") from None
            if len(caches) < 2 or min(weights) < 0:
                raise ValueError("--first-weights needs two caches or more and weights >= 0")
            print_first_weights(args.refs, refs, caches, names, weights)
            return 0
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
