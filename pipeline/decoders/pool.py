"""The decoder a :class:`DecodeConfig` names, and decoding many lines over processes."""
from __future__ import annotations

from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Sequence

import numpy as np
from tqdm import tqdm

from lm.folder import LmDir
from pipeline.decoders.base import Decoder, Hypothesis
from pipeline.decoders.config import LM_DECODERS, DecodeConfig
from pipeline.decoders.greedy import GreedyDecoder
from pipeline.logits import check_spellable


def check_lm(config: DecodeConfig, lm_path: Path | None, alphabet: Sequence[str] | None = None) -> LmDir | None:
    """The LM directory the decoder needs (None for greedy/beam); clear errors if unusable,
    or (given the log-probabilities' ``alphabet``) built from other text than the model."""
    if config.decoder not in LM_DECODERS:
        return None
    if lm_path is None:
        raise ValueError(f"--decoder {config.decoder} needs --lm DIR (built with 'htr lm')")
    lm = LmDir.load(lm_path)
    if config.decoder == "char-lm" and not lm.char_model.is_file():
        raise FileNotFoundError(f"{lm.path / 'char.bin'}: missing; build it with 'htr lm ... --char'")
    if alphabet is not None:
        check_spellable(lm.words, alphabet, lm.path)
    return lm


def make_decoder(config: DecodeConfig, alphabet: Sequence[str], blank: int, lm_path: Path | None) -> Decoder:
    """The decoder ``config`` names; each backend (and its library) is imported only when asked for."""
    lm = check_lm(config, lm_path)
    try:
        return _build(config, alphabet, blank, lm)
    except FileNotFoundError:
        raise
    except (OSError, RuntimeError) as error:  # KenLM (or flashlight's copy of it) cannot read the model file
        model = lm.char_model if config.decoder == "char-lm" else lm.model
        raise ValueError(f"{model}: cannot be read as a KenLM model ({' '.join(str(error).split())[:300]}); "
                         "rebuild the LM folder with 'htr lm'") from None


def _build(config: DecodeConfig, alphabet: Sequence[str], blank: int, lm: LmDir | None) -> Decoder:
    if config.decoder == "greedy":
        return GreedyDecoder(alphabet, blank, config.blank_penalty)
    if config.decoder in ("beam", "beam-lm"):
        from pipeline.decoders.pyctc import PyctcDecoder
        return PyctcDecoder(alphabet, blank, config, lm)
    from pipeline.decoders.flashlight import CharLmDecoder, LexiconDecoder
    if config.decoder == "lexicon":
        return LexiconDecoder(alphabet, blank, config, lm)
    return CharLmDecoder(alphabet, blank, config, lm)


_WORKER = None


def _init_worker(config: DecodeConfig, alphabet: list[str], blank: int, lm_path: Path | None) -> None:
    global _WORKER
    _WORKER = make_decoder(config, alphabet, blank, lm_path)


def _decode_batch(arrays: list[np.ndarray]) -> list[Hypothesis]:
    return [_WORKER.decode(a) for a in arrays]


def decode_all(arrays: Sequence[np.ndarray], alphabet: Sequence[str], blank: int, config: DecodeConfig,
               lm_path: Path | None = None, jobs: int = 1, progress: bool = True,
               batch: int = 16) -> list[Hypothesis]:
    """Decode every line; ``jobs`` > 1 spreads batches over processes (order is kept)."""
    check_lm(config, lm_path, alphabet)  # fail here, before loading anything, not inside a worker
    chunks = [list(arrays[i:i + batch]) for i in range(0, len(arrays), batch)]
    bar = tqdm(total=len(arrays), desc=f"decode {config.decoder}", unit="line", disable=not progress)
    results: list[Hypothesis] = []
    # built here first: an unreadable LM fails before any worker starts, and the lexicon decoder's
    # spelled lexicon (cached per process) is built once and inherited by forked workers
    decoder = make_decoder(config, alphabet, blank, lm_path)
    if jobs <= 1 or len(chunks) <= 1:
        for chunk in chunks:
            results.extend(decoder.decode(a) for a in chunk)
            bar.update(len(chunk))
    else:
        with ProcessPoolExecutor(jobs, initializer=_init_worker,
                                 initargs=(config, list(alphabet), blank, lm_path)) as pool:
            for chunk, done in zip(chunks, pool.map(_decode_batch, chunks)):
                results.extend(done)
                bar.update(len(chunk))
    bar.close()
    return results
