"""N-best rescoring probe: can the word n-gram and the lexicon re-rank char-lm's final beam?

    .venv/bin/python scripts/rescore_probe.py --logits dev.npz --refs work/copiste/dev/manifest.jsonl \
        --lm models/copiste/lm --tuned reports/decoding/tuned-ensemble-2.json [--beam 64]

Decodes every line with ``char-lm`` (its tuned weights), keeps the distinct texts of the final
beam, and prints the CER/WER of the first text, of the best text in the beam (the oracle: what
any re-ranking could reach at most) and of the re-ranking ``decoder score + a * ln P_word(text)
+ b * (words outside the lexicon and its extension)`` for a grid of (a, b), all on the same refs.
A probe (reports/probes/README.md): the grid is chosen on the refs it is scored on.
"""
from __future__ import annotations

import argparse
import itertools
import math
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import kenlm  # noqa: E402

from lm.folder import LmDir  # noqa: E402
from pipeline.decoders.base import lm_tokens  # noqa: E402
from pipeline.decoders.config import tuned_config  # noqa: E402
from pipeline.decoders.flashlight import CharLmDecoder  # noqa: E402
from pipeline.logits import load_logits  # noqa: E402
from pipeline.metrics import ErrorRates, error_rates, read_texts  # noqa: E402

Candidate = tuple[str, float, float, int]  # text, decoder score, ln P_word, words outside the lexicon


def candidates(nbest: list[tuple[str, float]], model: "kenlm.Model", lm: LmDir, vocab: set[str]) -> list[Candidate]:
    rows = []
    for text, score in nbest:
        word_lm = model.score(" ".join(lm_tokens(text, lm.lowercase)), bos=True, eos=True) * math.log(10)
        rows.append((text, score, word_lm, sum(word not in vocab for word in text.split())))
    return rows


def rates(refs: dict[str, str], chosen: dict[str, str]) -> ErrorRates:
    return error_rates((refs[line], text) for line, text in chosen.items())


def row(name: str, found: ErrorRates) -> str:
    return f"| {name} | {100 * found.cer:.2f} | {100 * found.wer:.2f} |"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--logits", type=Path, required=True)
    parser.add_argument("--refs", type=Path, required=True, help="manifest or id<TAB>text references")
    parser.add_argument("--lm", type=Path, required=True, help="LM folder with a character n-gram")
    parser.add_argument("--tuned", type=Path, help="tuned weights (htr tune --out) with a char-lm entry")
    parser.add_argument("--beam", type=int, default=64)
    parser.add_argument("--weights", default="0.1,0.2,0.3,0.5,0.8", help="word-LM weights a")
    parser.add_argument("--oov", default="0,-1,-2,-4", help="per-word penalties b for words outside the lexicon")
    args = parser.parse_args(argv)
    cache, refs = load_logits(args.logits), read_texts(args.refs)
    config = tuned_config("char-lm", args.tuned, args.lm)
    config.beam = args.beam
    lm = LmDir.load(args.lm)
    decoder = CharLmDecoder(cache.alphabet, cache.blank, config, lm)
    model = kenlm.Model(str(lm.model))
    vocab = set(lm.words) | set(lm.extension()[0])
    lines = {line: candidates(decoder.nbest(logprobs), model, lm, vocab)
             for line, logprobs in zip(cache.ids, cache.logprobs) if line in refs}
    print(f"char-lm lm_weight {config.lm_weight}, word_bonus {config.word_bonus}, beam {config.beam}: "
          f"{sum(map(len, lines.values())) / len(lines):.1f} distinct texts per line\n")
    print("| choice | CER | WER |\n|---|---|---|")
    print(row("first of the beam", rates(refs, {k: rows[0][0] for k, rows in lines.items()})))
    oracle = {k: min(rows, key=lambda r: error_rates([(refs[k], r[0])]).word_errors)[0] for k, rows in lines.items()}
    print(row("oracle (fewest word errors)", rates(refs, oracle)))
    for a, b in itertools.product(map(float, args.weights.split(",")), map(float, args.oov.split(","))):
        chosen = {k: max(rows, key=lambda r: r[1] + a * r[2] + b * r[3])[0] for k, rows in lines.items()}
        print(row(f"re-ranked a={a:g} b={b:g}", rates(refs, chosen)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
