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

Slow-path guard: pyctcdecode expands every label above ``token_min_logp`` in every frame,
which on flat (uncertain) posteriors costs seconds per line.  Here only the ``--beam-token``
best labels of a frame are kept, and a line that still runs past ``--line-seconds`` is
decoded again with a narrow beam (counted in the summary).
"""
from __future__ import annotations

import argparse
import json
import math
import signal
import sys
import threading
from collections import Counter
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Sequence

import numpy as np
from tqdm import tqdm

from data_prep.cliconfig import CliConfig
from data_prep.outlock import OutputError, claim_output
from data_prep.records import atomic_write_text
from lm.text import tokenize

DECODERS = ("greedy", "beam", "beam-lm", "lexicon", "char-lm")
LM_DECODERS = ("beam-lm", "lexicon", "char-lm")
LN10 = math.log(10.0)
# measured on synthetic posteriors: 15 costs the lexicon decoder WER, and buys char-lm 2.5x speed at no WER cost
DEFAULT_THRESHOLD = {"lexicon": 25.0, "char-lm": 15.0}
NEG = -1e4  # "impossible" log-probability that stays finite inside the decoders


@dataclass
class DecodeConfig(CliConfig):
    decoder: str = field(default="greedy", metadata={"help": "decoder", "choices": DECODERS})
    beam: int = field(default=64, metadata={"help": "beam size (hypotheses kept per frame)"})
    # beam_token and token_min_logp: on real Copiste outputs (greedy CER 77%) 16 -> 8 labels made
    # lexicon 1.4x faster and -5 -> -2 made beam-lm 8x faster, WER unchanged (README, Stage 4)
    beam_token: int = field(default=8, metadata={"help": "labels considered per frame (slow-path guard)"})
    beam_threshold: float = field(default=0.0, metadata={
        "help": "lexicon/char-lm: drop hypotheses this far below the best (log); 0: 25 for lexicon, 15 for char-lm"})
    beam_prune_logp: float = field(default=-10.0, metadata={"help": "beam/beam-lm: drop beams this far below the best (log)"})
    token_min_logp: float = field(default=-2.0, metadata={"help": "beam/beam-lm: skip labels below this log-prob (except the frame's best)"})
    lm_weight: float = field(default=0.5, metadata={"help": "language model weight (tuned.json overrides the default)"})
    word_bonus: float = field(default=0.0, metadata={"help": "score added per word (tuned.json overrides the default)"})
    unk_penalty: float = field(default=-10.0, metadata={"help": "beam-lm: log10 penalty per out-of-vocabulary token"})
    extra_lexicon: bool = field(default=True, metadata={"help": "lexicon: also spell the LM directory's extra words (htr lm --extra-words), if it has them"})
    line_seconds: float = field(default=5.0, metadata={"help": "beam/beam-lm: redo a line slower than this with beam 8"})


@dataclass
class Hypothesis:
    text: str
    words: list[tuple[str, float]] = field(default_factory=list)  # (word, confidence)
    score: float = 0.0  # the decoder's own score of the hypothesis (log domain)
    fallback: bool = False

    @property
    def confidence(self) -> float:
        return float(np.mean([c for _, c in self.words])) if self.words else 0.0


# ----------------------------------------------------------------------------------------
# The LM directory written by ``htr lm``

@dataclass
class LmDir:
    path: Path
    lowercase: bool
    tokens: dict[str, int]  # lexicon.txt
    words: dict[str, int]  # words.txt (surface words)

    @property
    def model(self) -> Path:
        """The word n-gram: binary if there is one, else the ARPA file."""
        binary = self.path / "lm.bin"
        return binary if binary.is_file() else self.path / "lm.arpa"

    @property
    def char_model(self) -> Path:
        binary = self.path / "char.bin"
        return binary if binary.is_file() else self.path / "char.arpa"

    @classmethod
    def load(cls, path: Path) -> "LmDir":
        from lm.build import read_counts
        path = Path(path)
        for name in ("lm.json", "lexicon.txt", "words.txt"):
            if not (path / name).is_file():
                raise FileNotFoundError(f"{path / name}: missing; build the LM directory with 'htr lm'")
        if not (path / "lm.bin").is_file() and not (path / "lm.arpa").is_file():
            raise FileNotFoundError(f"{path / 'lm.bin'}: missing; build the LM directory with 'htr lm'")
        info = json.loads((path / "lm.json").read_text(encoding="utf-8"))
        return cls(path, bool(info["config"].get("lowercase")), read_counts(path / "lexicon.txt"),
                   read_counts(path / "words.txt"))

    def extension(self) -> tuple[dict[str, tuple[str, ...]], dict[str, float]]:
        """The lexicon extension of ``htr lm --extra-words`` (see lm.extend): the surface
        words it adds with their LM tokens, and ln p(token | unknown to the n-gram) of its
        class model."""
        from lm.extend import load_extension
        extension = load_extension(self.path, Counter(self.words), set(self.tokens))
        if extension is None:
            return {}, {}
        words, counts = extension.words, extension.tokens
        if self.lowercase:  # the n-gram sees lower-cased tokens
            words = {w: tuple(t.lower() for t in tokens) for w, tokens in words.items()}
            counts = Counter()
            for token, count in extension.tokens.items():
                counts[token.lower()] += count
        total = sum(counts.values())
        return words, {t: math.log(c / total) for t, c in counts.items()}


def read_tuned(lm_path: Path, decoder: str) -> dict:
    """The values ``htr tune`` stored for ``decoder`` in ``LM_DIR/tuned.json`` ({} if none)."""
    tuned = Path(lm_path) / "tuned.json"
    if not tuned.is_file():
        return {}
    return json.loads(tuned.read_text(encoding="utf-8")).get(decoder, {})


# ----------------------------------------------------------------------------------------
# Shared helpers

def clean_text(text: str) -> str:
    return " ".join(text.split())


def word_confidences(path: Sequence[int], logprobs: np.ndarray, alphabet: Sequence[str],
                     blank: int) -> Hypothesis:
    """Text of a frame-level label path; a word's confidence is the mean best-label
    posterior over the frames from its first to its last character."""
    best = np.exp(logprobs.max(axis=1)) if len(logprobs) else np.zeros(0)
    words: list[tuple[str, float]] = []
    chars: list[str] = []
    start, previous = -1, blank

    def close(end: int) -> None:
        if chars:
            words.append(("".join(chars), float(best[start:end + 1].mean())))
        chars.clear()

    last = -1
    for t, label in enumerate(path):
        if label != blank and label != previous:
            char = alphabet[label]
            if char == " ":
                close(last)
            else:
                if not chars:
                    start = t
                chars.append(char)
        if label != blank and alphabet[label] != " ":
            last = t
        previous = label
    close(last)
    return Hypothesis(" ".join(w for w, _ in words), words)


def greedy_path(logprobs: np.ndarray) -> np.ndarray:
    return logprobs.argmax(axis=1) if len(logprobs) else np.zeros(0, dtype=np.int64)


def top_k_frames(logprobs: np.ndarray, k: int) -> np.ndarray:
    """Keep the k best labels of each frame, the rest become impossible."""
    if k >= logprobs.shape[1]:
        return logprobs
    pruned = np.full_like(logprobs, NEG)
    keep = np.argpartition(-logprobs, k - 1, axis=1)[:, :k]
    rows = np.arange(len(logprobs))[:, None]
    pruned[rows, keep] = logprobs[rows, keep]
    return pruned


def squeeze_blanks(logprobs: np.ndarray, blank: int, min_logp: float = math.log(0.999)) -> np.ndarray:
    """Indices of the frames to keep: a run of confident blank frames becomes one frame.
    One blank still separates doubled letters, so the label sequences a beam search can
    reach are unchanged, and prefix beam search runs on far fewer frames."""
    confident = logprobs[:, blank] >= min_logp
    repeat = np.zeros(len(logprobs), dtype=bool)
    repeat[1:] = confident[1:] & confident[:-1]
    return np.flatnonzero(~repeat)


def lm_tokens(word: str, lowercase: bool) -> tuple[str, ...]:
    """The LM tokens of a surface word (letters only: the word itself, the common case)."""
    if word.isalpha():
        return (word.lower() if lowercase else word,)
    return _lm_tokens(word, lowercase)


@lru_cache(maxsize=500_000)
def _lm_tokens(word: str, lowercase: bool) -> tuple[str, ...]:
    return tuple(tokenize(word, lowercase))


class _Timeout(Exception):
    pass


def _alarm(signum, frame):  # noqa: ARG001 - signal handler signature
    raise _Timeout()


# ----------------------------------------------------------------------------------------
# Decoders: each has decode(logprobs (T, N)) -> Hypothesis

class GreedyDecoder:
    def __init__(self, alphabet: Sequence[str], blank: int) -> None:
        self.alphabet, self.blank = list(alphabet), blank

    def decode(self, logprobs: np.ndarray) -> Hypothesis:
        hypothesis = word_confidences(greedy_path(logprobs), logprobs, self.alphabet, self.blank)
        hypothesis.score = float(logprobs.max(axis=1).sum()) if len(logprobs) else 0.0
        return hypothesis


def token_language_model(lm: LmDir, config: DecodeConfig):
    """pyctcdecode LanguageModel whose words are scored as :mod:`lm.text` tokens."""
    import kenlm
    from pyctcdecode.language_model import AVG_TOKEN_LEN, LanguageModel

    class TokenLanguageModel(LanguageModel):
        unigram_cache: dict[str, float] = {}
        partial_cache: dict[str, float] = {}

        def unigram(self, token: str) -> float:
            if token not in self.unigram_cache:
                self.unigram_cache[token] = self._kenlm_model.score(token, bos=False, eos=False)
            return self.unigram_cache[token]

        def score_partial_token(self, partial_token: str) -> float:
            """OOV penalty for the word being spelled, plus the context-free LM cost of its
            finished tokens: without it, gluing words with punctuation ("that,we") would
            postpone every LM cost to the next space and win the beam."""
            if partial_token in self.partial_cache:
                return self.partial_cache[partial_token]
            if len(self.partial_cache) > 200_000:
                self.partial_cache.clear()
            tokens = lm_tokens(partial_token, lm.lowercase)
            if not tokens:
                return 0.0
            oov = sum(t not in self._unigram_set for t in tokens[:-1])
            oov += tokens[-1] not in self.prefixes
            scale = max(1.0, len(partial_token) / AVG_TOKEN_LEN)
            finished = sum(self.unigram(t) for t in tokens[:-1])
            score = self.unk_score_offset * min(oov, 1) * scale + self.alpha * finished * LN10
            self.partial_cache[partial_token] = score
            return score

        def score(self, prev_state, word: str, is_last_word: bool = False):
            state, total = prev_state, 0.0
            for token in lm_tokens(word, lm.lowercase):
                out = kenlm.State()
                total += self._kenlm_model.BaseScore(state, token, out)
                if token not in self._unigram_set:
                    total += self.unk_score_offset
                state = out
            if is_last_word:
                total += self._get_raw_end_score(state)
            return self.alpha * total * LN10 + self.beta, state

    model = kenlm.Model(str(lm.model))
    language_model = TokenLanguageModel(model, list(lm.tokens), alpha=config.lm_weight, beta=config.word_bonus,
                                        unk_score_offset=config.unk_penalty, score_boundary=True)
    # a set of every unigram prefix answers "can this still become a word?" faster than pygtrie
    language_model.prefixes = {w[:i] for w in language_model._unigram_set for i in range(1, len(w) + 1)}
    return language_model


class PyctcDecoder:
    """pyctcdecode beam search, with or without the word LM."""

    def __init__(self, alphabet: Sequence[str], blank: int, config: DecodeConfig, lm: LmDir | None) -> None:
        from pyctcdecode.alphabet import Alphabet
        from pyctcdecode.decoder import BeamSearchDecoderCTC
        labels = list(alphabet)
        labels[blank] = ""  # pyctcdecode otherwise guesses the blank from label names
        language_model = token_language_model(lm, config) if lm is not None else None
        self.decoder = BeamSearchDecoderCTC(Alphabet(labels, False), language_model)
        self.config, self.alphabet, self.blank = config, labels, blank

    def _decode(self, logprobs: np.ndarray, beam: int):
        return self.decoder.decode_beams(logprobs, beam_width=beam, beam_prune_logp=self.config.beam_prune_logp,
                                         token_min_logp=self.config.token_min_logp, prune_history=True)

    def decode(self, logprobs: np.ndarray) -> Hypothesis:
        if len(logprobs) == 0:
            return Hypothesis("")
        keep = squeeze_blanks(logprobs, self.blank)
        logprobs = logprobs[keep]
        pruned = top_k_frames(logprobs, self.config.beam_token)
        fallback = False
        if threading.current_thread() is not threading.main_thread():  # signals need the main thread
            beams = self._decode(pruned, self.config.beam)
        else:
            previous = signal.signal(signal.SIGALRM, _alarm)
            try:
                try:
                    signal.setitimer(signal.ITIMER_REAL, self.config.line_seconds)
                    beams = self._decode(pruned, self.config.beam)
                finally:  # an alarm landing here is caught below too
                    signal.setitimer(signal.ITIMER_REAL, 0)
            except _Timeout:
                fallback = True
            finally:
                signal.signal(signal.SIGALRM, previous)
        if fallback:
            beams = self._decode(top_k_frames(logprobs, 4), 8)
        best = np.exp(logprobs.max(axis=1))
        text, _, frames, _, score = beams[0]
        words = [(word, float(best[start:max(start + 1, end)].mean())) for word, (start, end) in frames]
        return Hypothesis(clean_text(text), words, float(score), fallback)


class TokenLM:
    """flashlight ``LM`` over surface words, each scored as its KenLM token sequence.

    flashlight's own KenLM wrapper maps one word to one KenLM entry; this one lets the
    lexicon hold surface words ("homme,") while the n-gram sees tokens ("homme" ",").
    A token the n-gram does not know scores KenLM's ``<unk>`` plus its ``unknown`` class
    log-probability (the lexicon extension's class model; the floor is the least likely
    class member).  Scores are natural logs."""

    def __init__(self, path: Path, entries: Sequence[tuple[str, ...]], unknown: dict[str, float] | None = None) -> None:
        import kenlm
        from flashlight.lib.text.decoder import LM
        self._kenlm = kenlm

        class _LM(LM):
            def __init__(inner) -> None:
                LM.__init__(inner)
                inner.model = kenlm.Model(str(path))
                inner.entries = list(entries)
                inner.offsets = _class_offsets(inner.model, inner.entries, unknown or {})
                inner.states: dict = {}

            def start(inner, start_with_nothing: bool):
                from flashlight.lib.text.decoder import LMState
                state = LMState()
                begin = kenlm.State()
                inner.model.BeginSentenceWrite(begin)
                inner.states = {state: (begin, 0.0)}  # new line: forget the previous one's states
                return state

            def score(inner, state, index: int):
                child = state.child(index)
                if child not in inner.states:
                    current, total = inner.states[state][0], 0.0
                    for token in inner.entries[index]:
                        out = kenlm.State()
                        total += inner.model.BaseScore(current, token, out)
                        current = out
                    inner.states[child] = (current, total * LN10 + inner.offsets[index])
                return child, inner.states[child][1]

            def finish(inner, state):
                out = kenlm.State()
                score = inner.model.BaseScore(inner.states[state][0], "</s>", out)
                return state.child(-1), score * LN10

        self.lm = _LM()


def _class_offsets(model, entries: Sequence[tuple[str, ...]], unknown: dict[str, float]) -> list[float]:
    """Per lexicon entry: the class log-probabilities of its tokens that ``model`` lacks."""
    if not unknown:
        return [0.0] * len(entries)
    floor = min(unknown.values())
    return [sum(unknown.get(t, floor) for t in tokens if t not in model) for tokens in entries]


@dataclass
class SpelledLexicon:
    """The strict lexicon as flashlight needs it: spellable words (+ ``<unk>``), their
    token LM and the spelling trie.  Building it costs seconds for a large (extended)
    lexicon, so it is cached per process and shared by decoders that differ only in
    weights (tuning) and inherited by forked worker processes."""

    words: list[str]
    unk: int
    token_lm: TokenLM
    trie: object


def spelled_lexicon(lm: LmDir, alphabet: Sequence[str], blank: int, extra: bool) -> SpelledLexicon:
    """The cached :class:`SpelledLexicon` of ``lm`` (rebuilt when its files change)."""
    stamp = tuple(p.stat().st_mtime_ns if p.is_file() else 0
                  for p in (lm.path / "words.txt", lm.path / "extension.json", lm.model))
    return _spelled_lexicon(lm.path.resolve(), stamp, tuple(alphabet), blank, extra)


@lru_cache(maxsize=4)
def _spelled_lexicon(path: Path, stamp: tuple, alphabet: tuple[str, ...], blank: int, extra: bool) -> SpelledLexicon:
    from flashlight.lib.text.decoder import SmearingMode, Trie
    lm = LmDir.load(path)
    index = {c: i for i, c in enumerate(alphabet) if i != blank}
    space = index[" "]
    added, unknown = lm.extension() if extra else ({}, {})
    tokens = {w: lm_tokens(w, lm.lowercase) for w in lm.words}
    tokens.update((w, t) for w, t in added.items() if w not in tokens)
    letters = set(index) - {" "}
    spellable = [w for w in tokens if w and set(w) <= letters]
    if not spellable:
        raise ValueError(f"{lm.path / 'words.txt'}: no word can be spelled with this alphabet")
    token_lm = TokenLM(lm.model, [tokens[w] for w in spellable] + [()], unknown)
    model = token_lm.lm
    trie = Trie(len(alphabet), space)
    start = model.start(False)
    for i, word in enumerate(spellable):
        # every spelling ends with the space: words cannot be glued into OOV strings
        trie.insert([*map(index.__getitem__, word), space], i, model.score(start, i)[1])
    trie.smear(SmearingMode.MAX)
    return SpelledLexicon(spellable + ["<unk>"], len(spellable), token_lm, trie)


class LexiconDecoder:
    """Strict lexicon + word n-gram (flashlight-text); the lexicon is the training text's
    surface words plus, with ``extra_lexicon``, the LM directory's extension."""

    def __init__(self, alphabet: Sequence[str], blank: int, config: DecodeConfig, lm: LmDir) -> None:
        from flashlight.lib.text.decoder import CriterionType, LexiconDecoder as Decoder, LexiconDecoderOptions
        self.alphabet, self.blank = list(alphabet), blank
        if " " not in self.alphabet or self.alphabet.index(" ") == blank:
            raise ValueError("the lexicon decoder needs a space label in the alphabet")
        self.space = self.alphabet.index(" ")
        self.lexicon = spelled_lexicon(lm, self.alphabet, blank, config.extra_lexicon)
        self.words, self.unk = self.lexicon.words, self.lexicon.unk
        options = LexiconDecoderOptions(
            beam_size=config.beam, beam_size_token=min(config.beam_token, len(self.alphabet)),
            beam_threshold=config.beam_threshold or DEFAULT_THRESHOLD["lexicon"],
            lm_weight=config.lm_weight, word_score=config.word_bonus,
            unk_score=float("-inf"), sil_score=0.0, log_add=False, criterion_type=CriterionType.CTC)
        self.decoder = Decoder(options, self.lexicon.trie, self.lexicon.token_lm.lm, self.space, blank,
                               self.unk, [], False)

    def decode(self, logprobs: np.ndarray) -> Hypothesis:
        if len(logprobs) == 0:
            return Hypothesis("")
        logprobs = logprobs[squeeze_blanks(logprobs, self.blank)]
        end = np.full((1, logprobs.shape[1]), NEG, dtype=np.float32)
        end[0, self.space] = 0.0  # a forced space frame closes the last word
        emissions = np.ascontiguousarray(np.concatenate([logprobs, end]), dtype=np.float32)
        results = self.decoder.decode(emissions.ctypes.data, emissions.shape[0], emissions.shape[1])
        if not results:
            return Hypothesis("")
        path = list(results[0].tokens)[1:1 + len(logprobs)]
        hypothesis = word_confidences([t if t >= 0 else self.blank for t in path], logprobs, self.alphabet, self.blank)
        words = [self.words[w] for w in results[0].words if 0 <= w < self.unk]
        if words != [w for w, _ in hypothesis.words]:  # path and words disagree: trust words
            hypothesis = Hypothesis(" ".join(words), [(w, hypothesis.confidence) for w in words])
        hypothesis.score = float(results[0].score)
        return hypothesis


class CharLmDecoder:
    """Open vocabulary: lexicon-free beam search with the character n-gram (flashlight-text)."""

    def __init__(self, alphabet: Sequence[str], blank: int, config: DecodeConfig, lm: LmDir) -> None:
        from flashlight.lib.text.decoder import (CriterionType, LexiconFreeDecoder, LexiconFreeDecoderOptions)
        from flashlight.lib.text.decoder.kenlm import KenLM
        from flashlight.lib.text.dictionary import Dictionary
        from lm.build import SPACE
        self.alphabet, self.blank = list(alphabet), blank
        if " " not in self.alphabet:
            raise ValueError("the char-lm decoder needs a space label in the alphabet")
        self.space = self.alphabet.index(" ")
        labels = Dictionary()
        for i, char in enumerate(self.alphabet):
            labels.add_entry(SPACE if char == " " else ("<blank>" if i == blank else char))
        self.lm = KenLM(str(lm.char_model), labels)
        options = LexiconFreeDecoderOptions(
            beam_size=config.beam, beam_size_token=min(config.beam_token, len(self.alphabet)),
            beam_threshold=config.beam_threshold or DEFAULT_THRESHOLD["char-lm"],
            lm_weight=config.lm_weight, sil_score=config.word_bonus,
            log_add=False, criterion_type=CriterionType.CTC)
        self.decoder = LexiconFreeDecoder(options, self.lm, self.space, blank, [])

    def decode(self, logprobs: np.ndarray) -> Hypothesis:
        if len(logprobs) == 0:
            return Hypothesis("")
        logprobs = logprobs[squeeze_blanks(logprobs, self.blank)]
        emissions = np.ascontiguousarray(logprobs, dtype=np.float32)
        results = self.decoder.decode(emissions.ctypes.data, emissions.shape[0], emissions.shape[1])
        if not results:
            return Hypothesis("")
        path = [t if t >= 0 else self.blank for t in list(results[0].tokens)[1:1 + len(logprobs)]]
        hypothesis = word_confidences(path, logprobs, self.alphabet, self.blank)
        hypothesis.score = float(results[0].score)
        return hypothesis


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
        from pipeline.logits import check_spellable
        check_spellable(lm.words, alphabet, lm.path)
    return lm


def make_decoder(config: DecodeConfig, alphabet: Sequence[str], blank: int, lm_path: Path | None):
    lm = check_lm(config, lm_path)
    if config.decoder == "greedy":
        return GreedyDecoder(alphabet, blank)
    if config.decoder in ("beam", "beam-lm"):
        return PyctcDecoder(alphabet, blank, config, lm)
    if config.decoder == "lexicon":
        return LexiconDecoder(alphabet, blank, config, lm)
    return CharLmDecoder(alphabet, blank, config, lm)


# ----------------------------------------------------------------------------------------
# Batch decoding over processes

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
    if jobs <= 1 or len(chunks) <= 1:
        decoder = make_decoder(config, alphabet, blank, lm_path)
        for chunk in chunks:
            results.extend(decoder.decode(a) for a in chunk)
            bar.update(len(chunk))
    else:
        if config.decoder == "lexicon":  # build the lexicon once here; forked workers inherit it
            make_decoder(config, alphabet, blank, lm_path)
        with ProcessPoolExecutor(jobs, initializer=_init_worker,
                                 initargs=(config, list(alphabet), blank, lm_path)) as pool:
            for chunk, done in zip(chunks, pool.map(_decode_batch, chunks)):
                results.extend(done)
                bar.update(len(chunk))
    bar.close()
    return results


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
    from pipeline.confidence import evidence
    words = evidence(hypothesis.text, logprobs, alphabet, blank)
    mean = float(np.mean([w.confidence for w in words])) if words else 0.0
    return {"id": line_id, "confidence": round(mean, 4), "words": [[w.text, round(w.confidence, 4), w.chars] for w in words]}


def confidence_path(out: Path) -> Path:
    return Path(out).with_name(Path(out).stem + ".conf.jsonl")


def resolve_config(args: argparse.Namespace, lm_path: Path | None) -> DecodeConfig:
    """Defaults < the LM directory's tuned.json (for this decoder) < command-line flags."""
    decoder = args.decoder or DecodeConfig.decoder
    base = DecodeConfig(decoder=decoder)
    if lm_path is not None and decoder in LM_DECODERS:
        tuned = read_tuned(lm_path, decoder)
        base = DecodeConfig(decoder=decoder, **{k: tuned[k] for k in ("lm_weight", "word_bonus") if k in tuned})
    return DecodeConfig.from_args(args, base)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="htr decode",
        description="Decode a log-probability cache (written by 'htr recognize') into text lines. "
                    "Output: one 'id<TAB>text' line per input line.  LM decoders take their "
                    "--lm-weight/--word-bonus defaults from DIR/tuned.json when 'htr tune' wrote one.")
    parser.add_argument("--logits", type=Path, required=True, help="log-probability cache (.npz)")
    parser.add_argument("--lm", type=Path, help="LM directory built by 'htr lm' (beam-lm, lexicon, char-lm)")
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
            config = resolve_config(args, args.lm)
            cache = load_logits(args.logits)
            if not cache.ids:  # before any language model is loaded
                raise ValueError(f"{args.logits}: the cache holds no line; nothing to decode, nothing written")
            hypotheses = decode_all(cache.logprobs, cache.alphabet, cache.blank, config, args.lm, args.jobs)
            write_hypotheses(args.out, cache.ids, hypotheses, args.confidences, cache.logprobs, cache.alphabet, cache.blank)
    except (FileNotFoundError, ValueError, OutputError) as error:
        print(f"htr decode: {error}", file=sys.stderr)
        return 1
    fallbacks = sum(h.fallback for h in hypotheses)
    print(f"{args.out}: {len(hypotheses)} lines decoded with {config.decoder} "
          f"(lm_weight {config.lm_weight}, word_bonus {config.word_bonus})"
          + (f"; {fallbacks} lines hit --line-seconds and were redone with beam 8" if fallbacks else ""))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
