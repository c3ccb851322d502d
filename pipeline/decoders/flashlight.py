"""flashlight-text decoders: ``lexicon`` (strict lexicon + word n-gram, the paper's
closed-vocabulary system: it only ever outputs words of ``words.txt`` and, with
``extra_lexicon``, of the LM folder's extension) and ``char-lm`` (lexicon-free beam
search with the character n-gram: open vocabulary)."""
from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Sequence

import kenlm
import numpy as np
from flashlight.lib.text.decoder import (LM, CriterionType, LexiconDecoderOptions, LexiconFreeDecoder,
                                         LexiconFreeDecoderOptions, LMState, SmearingMode, Trie)
from flashlight.lib.text.decoder import LexiconDecoder as FlashlightLexiconDecoder
from flashlight.lib.text.decoder.kenlm import KenLM
from flashlight.lib.text.dictionary import Dictionary

from lm.folder import SPACE, LmDir
from pipeline.decoders.base import NEG, Hypothesis, lm_tokens, penalize_blank, squeeze_blanks, word_confidences
from pipeline.decoders.config import DEFAULT_THRESHOLD, DecodeConfig

LN10 = math.log(10.0)


class TokenLM(LM):
    """flashlight ``LM`` over surface words, each scored as its KenLM token sequence.

    flashlight's own KenLM wrapper maps one word to one KenLM entry; this one lets the
    lexicon hold surface words ("homme,") while the n-gram sees tokens ("homme" ",").
    ``entries[i]`` are the tokens of lexicon word ``i``.  A token the n-gram does not know
    scores KenLM's ``<unk>`` plus its ``unknown`` class log-probability (the lexicon
    extension's class model; the floor is the least likely class member).  Scores are
    natural logs."""

    def __init__(self, path: Path, entries: Sequence[tuple[str, ...]], unknown: dict[str, float] | None = None) -> None:
        LM.__init__(self)
        self.model = kenlm.Model(str(path))
        self.entries = list(entries)
        self.offsets = _class_offsets(self.model, self.entries, unknown or {})
        self.states: dict = {}  # flashlight state -> (KenLM state, score of its last word)

    def start(self, start_with_nothing: bool):
        state = LMState()
        begin = kenlm.State()
        self.model.BeginSentenceWrite(begin)
        self.states = {state: (begin, 0.0)}  # new line: forget the previous one's states
        return state

    def score(self, state, index: int):
        child = state.child(index)
        if child not in self.states:
            current, total = self.states[state][0], 0.0
            for token in self.entries[index]:
                out = kenlm.State()
                total += self.model.BaseScore(current, token, out)
                current = out
            self.states[child] = (current, total * LN10 + self.offsets[index])
        return child, self.states[child][1]

    def finish(self, state):
        out = kenlm.State()
        score = self.model.BaseScore(self.states[state][0], "</s>", out)
        return state.child(-1), score * LN10


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
    trie = Trie(len(alphabet), space)
    start = token_lm.start(False)
    for i, word in enumerate(spellable):
        # every spelling ends with the space: words cannot be glued into OOV strings
        trie.insert([*map(index.__getitem__, word), space], i, token_lm.score(start, i)[1])
    trie.smear(SmearingMode.MAX)
    return SpelledLexicon(spellable + ["<unk>"], len(spellable), token_lm, trie)


class LexiconDecoder:
    """Strict lexicon + word n-gram (flashlight-text); the lexicon is the training text's
    surface words plus, with ``extra_lexicon``, the LM directory's extension."""

    def __init__(self, alphabet: Sequence[str], blank: int, config: DecodeConfig, lm: LmDir) -> None:
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
        self.decoder = FlashlightLexiconDecoder(options, self.lexicon.trie, self.lexicon.token_lm, self.space, blank,
                               self.unk, [], False)
        self.blank_penalty = config.blank_penalty

    def decode(self, logprobs: np.ndarray) -> Hypothesis:
        if len(logprobs) == 0:
            return Hypothesis("")
        logprobs = logprobs[squeeze_blanks(logprobs, self.blank)]
        end = np.full((1, logprobs.shape[1]), NEG, dtype=np.float32)
        end[0, self.space] = 0.0  # a forced space frame closes the last word
        searched = penalize_blank(logprobs, self.blank, self.blank_penalty)
        emissions = np.ascontiguousarray(np.concatenate([searched, end]), dtype=np.float32)
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
        self.blank_penalty = config.blank_penalty

    def _search(self, logprobs: np.ndarray) -> tuple[np.ndarray, list]:
        logprobs = logprobs[squeeze_blanks(logprobs, self.blank)]
        emissions = np.ascontiguousarray(penalize_blank(logprobs, self.blank, self.blank_penalty), dtype=np.float32)
        return logprobs, self.decoder.decode(emissions.ctypes.data, emissions.shape[0], emissions.shape[1])

    def _path(self, result, frames: int) -> list[int]:
        return [t if t >= 0 else self.blank for t in list(result.tokens)[1:1 + frames]]

    def decode(self, logprobs: np.ndarray) -> Hypothesis:
        if len(logprobs) == 0:
            return Hypothesis("")
        logprobs, results = self._search(logprobs)
        if not results:
            return Hypothesis("")
        hypothesis = word_confidences(self._path(results[0], len(logprobs)), logprobs, self.alphabet, self.blank)
        hypothesis.score = float(results[0].score)
        return hypothesis

    def nbest(self, logprobs: np.ndarray) -> list[tuple[str, float]]:
        """Every distinct text left in the final beam with its best score, best first."""
        if len(logprobs) == 0:
            return [("", 0.0)]
        logprobs, results = self._search(logprobs)
        found: dict[str, float] = {}
        for result in results:
            text = word_confidences(self._path(result, len(logprobs)), logprobs, self.alphabet, self.blank).text
            found[text] = max(found.get(text, -math.inf), float(result.score))
        return sorted(found.items(), key=lambda item: -item[1])
