"""``htr decode``: cached CTC log-probabilities -> text, with five decoders.

* ``greedy``   best path: argmax per frame, collapse repeats, drop blanks ("RNN alone");
* ``beam``     pyctcdecode prefix beam search, no language model;
* ``beam-lm``  pyctcdecode + the KenLM word-token n-gram + its unigrams (soft lexicon:
  out-of-vocabulary words pay a fixed penalty but can still be output);
* ``lexicon``  flashlight-text ``LexiconDecoder``: strict lexicon + word n-gram, the
  paper's closed-vocabulary system: it only ever outputs words of ``words.txt``;
* ``char-lm``  flashlight-text ``LexiconFreeDecoder`` + the character n-gram: open vocabulary.

Every decoder sees the same language model tokens as WER (:mod:`lm.text`): a surface word
such as ``l'homme,`` is scored as the LM tokens ``l'`` ``homme`` ``,``.

This module is the command; the decoders are the package :mod:`pipeline.decoders`
(one ``Decoder`` interface, a module per backend, the process pool), the LM folder's
reader is :mod:`lm.folder`.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Sequence

import numpy as np

from common.outlock import OutputError, claim_output
from common.files import atomic_write_text
from pipeline.confidence import confidence_path, evidence
from pipeline.decoders.base import Hypothesis
from pipeline.decoders.config import DECODERS, LM_DECODERS, DecodeConfig, tuned_config, tuned_source
from pipeline.decoders.pool import decode_all, make_decoder

__all__ = ["DECODERS", "LM_DECODERS", "DecodeConfig", "Hypothesis", "decode_all", "make_decoder", "main",
           "resolve_config", "write_hypotheses"]  # what the other stages and scripts take from here


def write_hypotheses(out: Path, ids: Sequence[str], hypotheses: Sequence[Hypothesis], confidences: bool,
                     logprobs: Sequence[np.ndarray] | None = None, alphabet: Sequence[str] = (), blank: int = 0) -> None:
    """``id<TAB>text`` lines; with ``confidences`` also ``<out stem>.conf.jsonl``: with the
    ``logprobs``, the optical evidence of the output text (:mod:`pipeline.confidence`: per word
    ``[word, confidence, [per-character]]``, the line's the mean of its words'), else the
    decoder's own word scores."""
    atomic_write_text(out, "".join(f"{i}\t{h.text}\n" for i, h in zip(ids, hypotheses)))
    if confidences:
        rows = [json.dumps(_confidence_row(i, h, None if logprobs is None else logprobs[k], alphabet, blank),
                           ensure_ascii=False) for k, (i, h) in enumerate(zip(ids, hypotheses))]
        atomic_write_text(confidence_path(out), "".join(r + "\n" for r in rows))


def _confidence_row(line_id: str, hypothesis: Hypothesis, logprobs: np.ndarray | None, alphabet, blank: int) -> dict:
    if logprobs is None:
        return {"id": line_id, "confidence": round(hypothesis.confidence, 4),
                "words": [[w, round(c, 4)] for w, c in hypothesis.words]}
    words = evidence(hypothesis.text, logprobs, alphabet, blank)
    mean = float(np.mean([w.confidence for w in words])) if words else 0.0
    return {"id": line_id, "confidence": round(mean, 4), "words": [[w.text, round(w.confidence, 4), w.chars] for w in words]}


def resolve_config(args: argparse.Namespace, lm_path: Path | None, tuned: Path | None = None) -> DecodeConfig:
    """Defaults < the tuned weights for this decoder (``tuned``, else the LM folder's own
    tuned.json: :func:`pipeline.decoders.config.tuned_source`) < command-line flags."""
    return DecodeConfig.from_args(args, tuned_config(args.decoder or DecodeConfig.decoder, tuned, lm_path))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="htr decode",
        description="Decode a log-probability cache (written by 'htr recognize') into text lines. "
                    "Output: one 'id<TAB>text' line per input line.  LM decoders take their "
                    "--lm-weight/--word-bonus/--blank-penalty defaults from --tuned FILE (written by 'htr tune --out FILE'), "
                    "else from the LM directory's own tuned.json when it has one (older or exported LM folders).")
    parser.add_argument("--logits", type=Path, required=True, help="log-probability cache (.npz)")
    parser.add_argument("--lm", type=Path, help="LM directory built by 'htr lm' (beam-lm, lexicon, char-lm)")
    parser.add_argument("--tuned", type=Path, help="tuned LM weight, word bonus and blank penalty (the file 'htr tune --out' wrote)")
    parser.add_argument("--out", type=Path, required=True, help="hypothesis file (id<TAB>text)")
    parser.add_argument("--jobs", type=int, default=1, help="worker processes")
    parser.add_argument("--confidences", action="store_true",
                        help="also write OUT_STEM.conf.jsonl: per-line, per-word and per-character optical "
                             "confidences of the output text (a word the LM changed gets its new spelling's)")
    DecodeConfig.add_arguments(parser)
    args = parser.parse_args(argv)
    from pipeline.logits import load_logits
    try:
        with claim_output(args.out, "htr decode"):
            config = resolve_config(args, args.lm, args.tuned)
            cache = load_logits(args.logits)
            if not cache.ids:  # before any language model is loaded
                raise ValueError(f"{args.logits}: the cache holds no line; nothing to decode, nothing written")
            hypotheses = decode_all(cache.logprobs, cache.alphabet, cache.blank, config, args.lm, args.jobs)
            write_hypotheses(args.out, cache.ids, hypotheses, args.confidences, cache.logprobs, cache.alphabet, cache.blank)
    except (FileNotFoundError, ValueError, OutputError) as error:
        print(f"htr decode: {error}", file=sys.stderr)
        return 1
    fallbacks = sum(h.fallback for h in hypotheses)
    print(f"{args.out}: {len(hypotheses)} lines decoded with {config.decoder}{_weights_said(config, args)}"
          + (f"; {fallbacks} lines hit --line-seconds and were redone with beam 8" if fallbacks else ""))
    return 0


def _weights_said(config: DecodeConfig, args) -> str:
    """The LM weights a decoder used and where they came from; none for decoders without LM."""
    if config.decoder not in LM_DECODERS:
        return ""
    source = tuned_source(args.tuned, args.lm)
    return (f" (lm_weight {config.lm_weight}, word_bonus {config.word_bonus}, blank_penalty {config.blank_penalty}"
            + (f"; tuned weights {source}" if source is not None else "") + ")")


if __name__ == "__main__":
    raise SystemExit(main())
