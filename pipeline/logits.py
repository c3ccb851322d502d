"""The log-probability cache: what ``htr recognize`` writes and every decoder reads.

Format (one ``.npz`` file, no pickles, written atomically through a temp file + rename):

===============  =====================  ==============================================
key              dtype / shape          meaning
===============  =====================  ==============================================
``logprobs``     float32 (sum T_i, N)   all lines' CTC log-posteriors, concatenated
``offsets``      int64 (L + 1,)         line i is rows ``offsets[i]:offsets[i+1]``
``ids``          0-d unicode str        JSON list of the L line ids
``alphabet``     0-d unicode str        JSON list of the N labels; ``alphabet[blank]`` is ``""``
``blank``        int64 0-d              index of the CTC blank (0 by convention)
``version``      int64 0-d              format version, 1
===============  =====================  ==============================================

Rows are natural-log probabilities over the N labels (log-softmax outputs); the space
character ``" "`` is an ordinary label and separates words.

``python -m pipeline.logits --synthetic MANIFEST --out FILE`` makes noisy synthetic
posteriors from reference texts (peaked paths, random confusions, flat stretches), to
develop and benchmark decoders before a trained model exists.
"""
from __future__ import annotations

import argparse
import json
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np

FORMAT_VERSION = 1


@dataclass
class LogitCache:
    """Per-line CTC log-probabilities with their ids and label alphabet."""

    ids: list[str]
    alphabet: list[str]
    blank: int
    logprobs: list[np.ndarray]  # each (T_i, N) float32

    def __len__(self) -> int:
        return len(self.ids)

    def subset(self, indices: Sequence[int]) -> "LogitCache":
        return LogitCache([self.ids[i] for i in indices], self.alphabet, self.blank,
                          [self.logprobs[i] for i in indices])


def save_logits(path: Path, ids: Sequence[str], logprobs_list: Sequence[np.ndarray],
                alphabet: Sequence[str], blank: int = 0) -> None:
    """Write the cache atomically; checks shapes and that ``alphabet[blank] == ""``."""
    path = Path(path)
    alphabet = list(alphabet)
    if len(ids) != len(logprobs_list):
        raise ValueError(f"{path}: {len(ids)} ids but {len(logprobs_list)} arrays")
    if alphabet[blank] != "":
        raise ValueError(f"{path}: alphabet[{blank}] must be the blank \"\", got {alphabet[blank]!r}")
    arrays = [np.asarray(a, dtype=np.float32).reshape(-1, len(alphabet)) for a in logprobs_list]
    offsets = np.zeros(len(arrays) + 1, dtype=np.int64)
    offsets[1:] = np.cumsum([a.shape[0] for a in arrays])
    stacked = np.concatenate(arrays) if arrays else np.zeros((0, len(alphabet)), np.float32)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as handle:
            np.savez(handle, logprobs=stacked, offsets=offsets,
                     ids=np.array(json.dumps(list(ids), ensure_ascii=False)),
                     alphabet=np.array(json.dumps(alphabet, ensure_ascii=False)),
                     blank=np.int64(blank), version=np.int64(FORMAT_VERSION))
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def load_logits(path: Path) -> LogitCache:
    """Read a cache written by :func:`save_logits`; a bad file raises ``ValueError`` naming it."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: log-probability cache not found (write one with 'htr recognize')")
    try:
        with np.load(path, allow_pickle=False) as data:
            stacked, offsets = data["logprobs"], data["offsets"]
            ids = json.loads(str(data["ids"]))
            alphabet = json.loads(str(data["alphabet"]))
            blank = int(data["blank"])
    except (OSError, KeyError, ValueError) as error:
        raise ValueError(f"{path}: not a log-probability cache ({error})") from error
    if len(offsets) != len(ids) + 1 or stacked.shape[1:] != (len(alphabet),) or offsets[-1] != len(stacked):
        raise ValueError(f"{path}: inconsistent cache ({len(ids)} ids, {len(offsets)} offsets, "
                         f"array {stacked.shape}, {len(alphabet)} labels)")
    arrays = [stacked[offsets[i]:offsets[i + 1]] for i in range(len(ids))]
    return LogitCache(ids, alphabet, blank, arrays)


def label_order(alphabet: Sequence[str], reference: Sequence[str]) -> list[int]:
    """Column indices that put outputs over ``alphabet`` in ``reference``'s order; the two must hold
    the same symbols (in any order), else ``ValueError`` names those in only one of them."""
    if sorted(alphabet) != sorted(reference):
        extra = sorted(set(alphabet) ^ set(reference))
        raise ValueError(f"{len(extra)} symbols in one only: {''.join(extra)[:40]!r}")
    return [list(alphabet).index(symbol) for symbol in reference]


def check_spellable(words: dict[str, int], alphabet: Sequence[str], lm_path: Path, least: float = 0.5) -> None:
    """Refuse (one line, before any n-gram is loaded) an LM whose training ``words`` mostly
    cannot be spelled with the labels of a cache: the log-probabilities of one model decoded
    with the LM of another data set give empty or nonsense lines, silently."""
    letters = set(alphabet) - {"", " "}
    total = sum(words.values())
    spellable = sum(count for word, count in words.items() if set(word) <= letters)
    if " " in alphabet and (not total or spellable >= least * total):
        return
    share = f"{spellable / total:.0%}" if total else "none"
    raise ValueError(f"{lm_path}: {share} of its training words can be spelled with the {len(letters)} "
                     f"labels of the log-probabilities{'' if ' ' in alphabet else ', which have no space'}; "
                     "the LM and the model come from different text: rebuild the LM with "
                     "'htr lm --text TRAIN_MANIFEST' of this model")


# ----------------------------------------------------------------------------------------
# Synthetic posteriors (development and benchmarks only)

@dataclass
class SyntheticNoise:
    """How far synthetic posteriors are from a perfect recogniser."""

    peak: float = 12.0  # logit margin of the true label on a clean frame
    noise: float = 1.5  # std of Gaussian logit noise on every frame
    confusion: float = 0.08  # chance that a character's frames favour another label
    flat: float = 0.04  # chance that a character's frames are nearly flat (illegible)
    frames_per_char: tuple[int, int] = (1, 3)


def synthetic_logprobs(text: str, alphabet: Sequence[str], rng: np.random.Generator,
                       noise: SyntheticNoise = SyntheticNoise()) -> np.ndarray:
    """A (T, N) log-posterior whose best path mostly spells ``text``."""
    index = {label: i for i, label in enumerate(alphabet)}
    size = len(alphabet)
    rows: list[np.ndarray] = []

    def frame(target: int, peak: float) -> None:
        logits = rng.normal(0.0, noise.noise, size)
        logits[target] += peak
        rows.append(logits)

    frame(0, noise.peak)
    for char in text:
        true = index.get(char, 0)
        shown, peak = true, noise.peak
        draw = rng.random()
        if draw < noise.confusion:
            shown = int(rng.integers(1, size))
        elif draw < noise.confusion + noise.flat:
            peak = 0.5
        for _ in range(int(rng.integers(noise.frames_per_char[0], noise.frames_per_char[1] + 1))):
            frame(shown, peak)
            if shown != true:
                rows[-1][true] += peak * 0.7  # the true label is a close second
        frame(0, noise.peak)  # a blank between characters keeps doubled letters apart
    logits = np.stack(rows)
    logits -= np.logaddexp.reduce(logits, axis=1, keepdims=True)
    return logits.astype(np.float32)


def alphabet_of(texts: Sequence[str]) -> list[str]:
    """Blank first, then the sorted set of characters (space included)."""
    return [""] + sorted(set("".join(texts)) | {" "})


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m pipeline.logits",
        description="Write synthetic CTC log-probabilities for the lines of a manifest "
                    "(decoder development before a model exists).")
    parser.add_argument("--synthetic", type=Path, required=True, help="line manifest (JSONL) with reference texts")
    parser.add_argument("--out", type=Path, required=True, help="output .npz cache")
    parser.add_argument("--alphabet-from", type=Path, nargs="*", default=[],
                        help="more manifests whose characters join the alphabet (e.g. the train split)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--confusion", type=float, default=SyntheticNoise.confusion)
    parser.add_argument("--flat", type=float, default=SyntheticNoise.flat)
    parser.add_argument("--noise", type=float, default=SyntheticNoise.noise)
    parser.add_argument("--peak", type=float, default=SyntheticNoise.peak)
    args = parser.parse_args(argv)
    from data_prep.records import read_manifest
    records = read_manifest(args.synthetic)
    texts = [r.text for r in records] + [r.text for m in args.alphabet_from for r in read_manifest(m)]
    alphabet = alphabet_of(texts)
    rng = np.random.default_rng(args.seed)
    noise = SyntheticNoise(peak=args.peak, noise=args.noise, confusion=args.confusion, flat=args.flat)
    arrays = [synthetic_logprobs(r.text, alphabet, rng, noise) for r in records]
    save_logits(args.out, [r.id for r in records], arrays, alphabet)
    print(f"{args.out}: {len(arrays)} lines, {len(alphabet)} labels")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
