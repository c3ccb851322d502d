"""Text normalisation and tokenisation shared by the LM corpus, the lexicon and WER.

One definition of "word" for the whole toolkit, so the language model, the decoders'
lexicon and the word error rate never disagree:

* :func:`normalize`: Unicode NFC, typographic apostrophes folded to ``'``, runs of
  whitespace collapsed to one space, optional lower-casing.
* :func:`tokenize`: words, numbers and punctuation marks as separate tokens (WER counts
  punctuation as words, as is usual for IAM and Rimes).  Hyphens and apostrophes inside
  a word keep it whole ("peut-être", "don't", "aujourd'hui"), except the French elided
  articles and pronouns, which become their own token: "l'homme" -> "l'", "homme".

A *surface word* is what a CTC decoder sees between two spaces ("l’homme,"); its
LM tokens are ``tokenize(surface_word)`` ("l'", "homme", ",").
"""
from __future__ import annotations

import re
import unicodedata
from functools import lru_cache

# Apostrophe look-alikes that handwriting transcriptions use interchangeably.
_APOSTROPHES = str.maketrans({"\u2019": "'", "\u02bc": "'", "\u2032": "'", "\uff07": "'"})
_SPACES = re.compile(r"\s+")
# French elided clitics ("l'", "qu'", "jusqu'") are tokens of their own; then a number
# with separators, a word with inner apostrophes or hyphens, or a punctuation mark
# (repeated marks such as "..." stay one token).
_CLITIC = r"\b(?i:c|d|j|l|m|n|s|t|qu|jusqu|lorsqu|puisqu|quoiqu)'"
_TOKEN = re.compile(_CLITIC + r"|\d+(?:[.,]\d+)+|[^\W_]+(?:['\-][^\W_]+)*|(?P<p>[^\w\s]|_)(?P=p)*")


def normalize(text: str, lowercase: bool = False) -> str:
    """NFC, one kind of apostrophe, single spaces, no leading/trailing space."""
    text = unicodedata.normalize("NFC", text).translate(_APOSTROPHES)
    text = _SPACES.sub(" ", text).strip()
    return text.lower() if lowercase else text


@lru_cache(maxsize=200_000)
def _tokenize_normalized(text: str) -> tuple[str, ...]:
    return tuple(match.group(0) for match in _TOKEN.finditer(text))


def tokenize(text: str, lowercase: bool = False) -> list[str]:
    """Normalise then split into word and punctuation tokens."""
    return list(_tokenize_normalized(normalize(text, lowercase)))


def surface_words(text: str) -> list[str]:
    """Space-delimited words as a CTC decoder outputs them: NFC, punctuation attached,
    apostrophes as written (the recogniser's alphabet may hold both ' and ’)."""
    return unicodedata.normalize("NFC", text).split()
