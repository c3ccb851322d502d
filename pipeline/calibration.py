"""``htr calibration``: do the word confidences of a decoded set say how often the words are right?

The confidences are the optical ones of :mod:`pipeline.confidence`: read from the side file of
``htr decode --confidences`` (``--conf OUT_STEM.conf.jsonl``), or computed the same way from the
hypotheses and the log-probabilities they were decoded from (``--hyp`` + ``--logits``, what the
runner does).  An output word is right when an edit-distance alignment of the line's words with
the reference's words pairs it with the same word (surface words, compared after
:func:`lm.text.normalize`: the words the confidences belong to, not WER's tokens).  The words
are put in equal-width confidence bins; per bin the mean confidence and the share of right
words (the points of a reliability diagram), and over all bins the expected calibration error

    ECE = sum over bins of (words in the bin / all words) * |accuracy - mean confidence|,

0 for confidences that are right as often as they say.  ``htr report`` shows the ECE and the
reliability diagram.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from rapidfuzz.distance import Levenshtein

from common.files import atomic_write_text
from lm.text import normalize
from pipeline.confidence import evidence, read_word_confidences
from pipeline.logits import load_logits
from pipeline.metrics import read_texts

BINS = 10


def right_words(reference: str, words: list[str]) -> list[bool]:
    """Per output word, whether the alignment with the reference's words matches it."""
    ref = normalize(reference).split(" ") if normalize(reference) else []
    hyp = [normalize(word) for word in words]
    right = [False] * len(hyp)
    for tag, _, _, start, end in Levenshtein.opcodes(ref, hyp):
        if tag == "equal":
            right[start:end] = [True] * (end - start)
    return right


def reliability(pairs: list[tuple[float, bool]], bins: int = BINS) -> dict:
    """Bins of (confidence, right) pairs and the expected calibration error."""
    rows = [{"low": k / bins, "high": (k + 1) / bins, "words": 0, "confidence": None, "accuracy": None}
            for k in range(bins)]
    members: list[list[tuple[float, bool]]] = [[] for _ in range(bins)]
    for confidence, right in pairs:
        members[min(bins - 1, max(0, int(confidence * bins)))].append((confidence, right))
    ece = 0.0
    for row, found in zip(rows, members):
        if found:
            row["words"] = len(found)
            row["confidence"] = sum(c for c, _ in found) / len(found)
            row["accuracy"] = sum(r for _, r in found) / len(found)
            ece += len(found) / len(pairs) * abs(row["accuracy"] - row["confidence"])
    total = len(pairs)
    return {"words": total, "accuracy": sum(r for _, r in pairs) / total if total else None,
            "mean_confidence": sum(c for c, _ in pairs) / total if total else None,
            "ece": ece if total else None, "bins": rows}


def computed_confidences(hypotheses: Path, logits: Path) -> dict[str, list[tuple[str, float]]]:
    """Line id -> its output words with their optical confidences, as ``htr decode --confidences``
    writes them, for the lines of ``hypotheses`` decoded from the cache ``logits``."""
    texts, cache = read_texts(hypotheses), load_logits(logits)
    return {line_id: [(w.text, w.confidence) for w in evidence(texts[line_id], array, cache.alphabet, cache.blank)]
            for line_id, array in zip(cache.ids, cache.logprobs) if line_id in texts}


def calibration(references: Path, lines: dict[str, list[tuple[str, float]]], bins: int = BINS) -> dict:
    """The reliability of the confidences of the output words ``lines`` against ``references``."""
    refs = read_texts(references)
    scored = [line_id for line_id in lines if line_id in refs]
    pairs = []
    for line_id in scored:
        words = lines[line_id]
        pairs += zip((c for _, c in words), right_words(refs[line_id], [w for w, _ in words]))
    return {"lines": len(scored), "lines_without_reference": len(lines) - len(scored), **reliability(pairs, bins)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="htr calibration",
        description="Reliability of word confidences: the output words of 'htr decode --confidences' in "
                    "confidence bins against their accuracy (alignment with the references), and the expected "
                    "calibration error.")
    parser.add_argument("--ref", type=Path, required=True, help="references: manifest.jsonl or id<TAB>text")
    parser.add_argument("--conf", type=Path, help="confidence side file (OUT_STEM.conf.jsonl of htr decode --confidences)")
    parser.add_argument("--hyp", type=Path, help="instead of --conf: hypotheses (id<TAB>text) ...")
    parser.add_argument("--logits", type=Path, help="... and the log-probability cache they were decoded from")
    parser.add_argument("--out", type=Path, required=True, help="JSON file for the bins and the ECE")
    parser.add_argument("--bins", type=int, default=BINS, help=f"equal-width confidence bins (default {BINS})")
    args = parser.parse_args(argv)
    if (args.conf is None) == (args.hyp is None or args.logits is None):
        parser.error("give either --conf, or --hyp and --logits")
    try:
        lines = read_word_confidences(args.conf) if args.conf else computed_confidences(args.hyp, args.logits)
        data = calibration(args.ref, lines, max(1, args.bins))
    except (FileNotFoundError, ValueError) as error:
        print(f"htr calibration: {error}", file=sys.stderr)
        return 2
    atomic_write_text(args.out, json.dumps(data, indent=1) + "\n")
    if not data["words"]:  # e.g. a model still in CTC's all-blank phase: nothing to calibrate, not an error
        print(f"{args.out}: no output word with a reference line in {args.ref}; no ECE")
        return 0
    print(f"{args.out}: {data['words']} words of {data['lines']} lines: accuracy {100 * data['accuracy']:.1f}%, "
          f"mean confidence {100 * data['mean_confidence']:.1f}%, ECE {100 * data['ece']:.1f}%")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
