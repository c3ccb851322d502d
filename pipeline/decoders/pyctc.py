"""pyctcdecode prefix beam search (``beam``), and with the word n-gram (``beam-lm``).

The n-gram goes in through pyctcdecode's public :class:`AbstractLanguageModel`: a
surface word such as ``l'homme,`` is scored as its :mod:`lm.text` tokens ``l'`` ``homme``
``,`` (the tokens WER counts), out-of-vocabulary tokens pay ``unk_penalty`` but can still
be output (a soft lexicon).

Slow-path guard: pyctcdecode expands every label above ``token_min_logp`` in every frame,
which on flat (uncertain) posteriors costs seconds per line.  Here only the ``--beam-token``
best labels of a frame are kept, and a line that still runs past ``--line-seconds`` is
decoded again with a narrow beam (counted in the summary).
"""
from __future__ import annotations

import math
import signal
import threading
from typing import Sequence

import kenlm
import numpy as np
from pyctcdecode.alphabet import Alphabet
from pyctcdecode.constants import AVG_TOKEN_LEN
from pyctcdecode.decoder import BeamSearchDecoderCTC
from pyctcdecode.language_model import AbstractLanguageModel

from lm.folder import LmDir
from pipeline.decoders.base import Hypothesis, clean_text, lm_tokens, penalize_blank, squeeze_blanks, top_k_frames
from pipeline.decoders.config import DecodeConfig

LN10 = math.log(10.0)
PARTIAL_CACHE_SIZE = 200_000  # cleared when full: the words being spelled change line by line


class TokenLanguageModel(AbstractLanguageModel):
    """A KenLM word-token n-gram whose words are scored as :mod:`lm.text` tokens.

    Scores as pyctcdecode's own ``LanguageModel`` with ``score_boundary=True`` does
    (``alpha`` x log10 -> ln, ``beta`` per word, ``unk_score_offset`` per unknown token),
    one word being several tokens; known tokens are those of ``tokens`` in the n-gram."""

    def __init__(self, model: "kenlm.Model", tokens: Sequence[str], lowercase: bool, alpha: float, beta: float,
                 unk_score_offset: float) -> None:
        self.model, self.lowercase = model, lowercase
        self.alpha, self.beta, self.unk_score_offset = alpha, beta, unk_score_offset
        self.unigrams = {t for t in tokens if t in model}
        # a set of every unigram prefix answers "can this still become a word?" faster than a trie
        self.prefixes = {w[:i] for w in self.unigrams for i in range(1, len(w) + 1)}
        self.unigram_cache: dict[str, float] = {}
        self.partial_cache: dict[str, float] = {}

    @property
    def order(self) -> int:
        return self.model.order

    def get_start_state(self) -> "kenlm.State":
        state = kenlm.State()
        self.model.BeginSentenceWrite(state)
        return state

    def unigram(self, token: str) -> float:
        if token not in self.unigram_cache:
            self.unigram_cache[token] = self.model.score(token, bos=False, eos=False)
        return self.unigram_cache[token]

    def score_partial_token(self, partial_token: str) -> float:
        """OOV penalty for the word being spelled, plus the context-free LM cost of its
        finished tokens: without it, gluing words with punctuation ("that,we") would
        postpone every LM cost to the next space and win the beam."""
        if partial_token in self.partial_cache:
            return self.partial_cache[partial_token]
        if len(self.partial_cache) > PARTIAL_CACHE_SIZE:
            self.partial_cache.clear()
        tokens = lm_tokens(partial_token, self.lowercase)
        if not tokens:
            return 0.0
        oov = sum(t not in self.unigrams for t in tokens[:-1])
        oov += tokens[-1] not in self.prefixes
        scale = max(1.0, len(partial_token) / AVG_TOKEN_LEN)
        finished = sum(self.unigram(t) for t in tokens[:-1])
        score = self.unk_score_offset * min(oov, 1) * scale + self.alpha * finished * LN10
        self.partial_cache[partial_token] = score
        return score

    def score(self, prev_state: "kenlm.State", word: str, is_last_word: bool = False):
        state, total = prev_state, 0.0
        for token in lm_tokens(word, self.lowercase):
            out = kenlm.State()
            total += self.model.BaseScore(state, token, out)
            if token not in self.unigrams:
                total += self.unk_score_offset
            state = out
        if is_last_word:
            total += self.model.BaseScore(state, "</s>", kenlm.State())
        return self.alpha * total * LN10 + self.beta, state


def token_language_model(lm: LmDir, config: DecodeConfig) -> TokenLanguageModel:
    return TokenLanguageModel(kenlm.Model(str(lm.model)), list(lm.tokens), lm.lowercase, alpha=config.lm_weight,
                              beta=config.word_bonus, unk_score_offset=config.unk_penalty)


class _Timeout(Exception):
    pass


def _alarm(signum, frame):  # noqa: ARG001 - signal handler signature
    raise _Timeout()


class PyctcDecoder:
    """pyctcdecode beam search, with or without the word LM."""

    def __init__(self, alphabet: Sequence[str], blank: int, config: DecodeConfig, lm: LmDir | None) -> None:
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
        searched = penalize_blank(logprobs, self.blank, self.config.blank_penalty)
        pruned = top_k_frames(searched, self.config.beam_token)
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
            beams = self._decode(top_k_frames(searched, 4), 8)
        best = np.exp(logprobs.max(axis=1))
        text, _, frames, _, score = beams[0]
        words = [(word, float(best[start:max(start + 1, end)].mean())) for word, (start, end) in frames]
        return Hypothesis(clean_text(text), words, float(score), fallback)
