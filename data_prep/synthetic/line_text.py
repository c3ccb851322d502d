"""Text of the synthetic lines (``htr prepare synthetic-lines:MANIFEST``).

Two kinds of line, drawn per line with the share ``wordfreq_share``:

* **manifest**: the transcriptions of the manifest given (for Copiste, the training
  lines), whitespace normalised; they are used in turn, through a new shuffle of all of
  them each time round, so 20,000 lines from 4,512 transcriptions use each 3 times or so.
  Only that manifest is read, and one holding ``dev`` or ``test`` records is refused: dev
  text must never be rendered for pretraining.
* **wordfreq**: French words from the ``wordfreq`` package (the ``wordfreq_words`` most
  frequent, drawn with probability ``frequency ** wordfreq_smoothing``), as many as make
  a line as long as a manifest line drawn at random.  Words with characters the
  manifest never uses are left out of the vocabulary, so the synthetic lines add no
  character to the training alphabet.  Capitals, commas, full stops and the apostrophe
  of elisions ("l'homme": wordfreq splits it into "l" and "homme") come as often as they
  do in the manifest's lines.

A text is rendered only in a font that covers every character of it
(:func:`data_prep.synthetic.fonts.coverage`); a transcription no font covers is
skipped and counted.  Every line has its own generator seeded by (seed, line number), so
the first N lines are the same whatever the total, and whatever ``--jobs``.
"""
from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from data_prep.records import read_manifest
from data_prep.synthetic.fonts import coverage

ELIDED = frozenset({"c", "d", "j", "l", "m", "n", "s", "t", "qu"})  # wordfreq's halves of "l'homme", "qu'il"
APOSTROPHES = ("'", "\u2019")
VOWELS = frozenset("aeiouyhàâäéèêëîïôöùûüœæAEIOUYHÀÂÉÈÊÎÔÙÛŒ")
HELD_OUT_SPLITS = ("dev", "test")
NO_FONT = "characters no font covers"
EMPTY = "empty transcription"


@dataclass
class ManifestTexts:
    """The usable transcriptions of a manifest and what was left out."""

    texts: list[str]  # whitespace normalised, in manifest order (duplicates kept)
    fonts: list[tuple[int, ...]]  # per text: indices of the fonts that cover it
    records: int  # records read
    skipped: Counter = field(default_factory=Counter)  # reason -> records
    uncovered: str = ""  # the characters no font covers

    @property
    def alphabet(self) -> frozenset[str]:
        return frozenset("".join(self.texts))


def covers(font: Path, text: str) -> bool:
    return set(text) - {" "} <= coverage(font)


def read_texts(manifest: Path, fonts: list[Path]) -> ManifestTexts:
    """The transcriptions of ``manifest`` that some font covers; raises FileNotFoundError
    (no manifest), ValueError (bad line, dev/test records, nothing usable)."""
    records = read_manifest(manifest)
    held_out = Counter(record.split for record in records if record.split in HELD_OUT_SPLITS)
    if held_out:
        found = ", ".join(f"{n} of split {split!r}" for split, n in sorted(held_out.items()))
        raise ValueError(f"{manifest}: holds held-out records ({found}); synthetic lines are rendered from "
                         "training text only: pass the training manifest")
    result = ManifestTexts(texts=[], fonts=[], records=len(records))
    uncovered: set[str] = set()
    for record in records:
        text = " ".join(record.text.split())
        if not text:
            result.skipped[EMPTY] += 1
            continue
        usable = tuple(i for i, font in enumerate(fonts) if covers(font, text))
        if not usable:
            result.skipped[NO_FONT] += 1
            uncovered |= set(text) - {" "} - set().union(*(coverage(font) for font in fonts))
            continue
        result.texts.append(text)
        result.fonts.append(usable)
    result.uncovered = "".join(sorted(uncovered))
    if not result.texts:
        raise ValueError(f"{manifest}: none of its {len(records)} records has a transcription the fonts "
                         f"can render ({dict(result.skipped) or 'no records'})")
    return result


@dataclass
class Punctuation:
    """How often the manifest's lines have each mark; the wordfreq lines copy it."""

    capital: float  # share of lines starting with a capital
    full_stop: float  # share of lines ending with "."
    comma: float  # commas per word
    apostrophes: tuple[tuple[str, float], ...]  # (mark, share among apostrophes)

    @classmethod
    def of(cls, texts: list[str]) -> "Punctuation":
        words = sum(len(text.split()) for text in texts)
        marks = Counter(c for text in texts for c in text if c in APOSTROPHES)
        total = sum(marks.values())
        return cls(capital=sum(t[0].isupper() for t in texts) / len(texts),
                   full_stop=sum(t.endswith(".") for t in texts) / len(texts),
                   comma=sum(t.count(",") for t in texts) / max(1, words),
                   apostrophes=tuple((m, n / total) for m, n in sorted(marks.items())))


@dataclass
class Vocabulary:
    """French words to draw from, with cumulative weights per font (0 where it lacks a glyph)."""

    words: list[str]
    cumulative: list[np.ndarray]  # per font
    offered: int  # words wordfreq gave
    dropped: int  # of those, left out: a character the manifest never uses, or no letter
    alphabet: frozenset[str]  # the manifest's characters: a capital outside it is not made

    def draw(self, rng: np.random.Generator, font: int) -> str:
        weights = self.cumulative[font]
        return self.words[min(len(self.words) - 1, int(np.searchsorted(weights, rng.random() * weights[-1], side="right")))]


def french_vocabulary(size: int, smoothing: float, alphabet: frozenset[str], fonts: list[Path]) -> Vocabulary:
    """The ``size`` most frequent French words of wordfreq that use only ``alphabet``."""
    try:
        import wordfreq
    except ImportError:
        raise ValueError("the wordfreq package is not installed (pip install wordfreq), "
                         "or pass --wordfreq-share 0") from None
    offered = wordfreq.top_n_list("fr", size)
    frequency = wordfreq.get_frequency_dict("fr")
    apostrophe = any(mark in alphabet for mark in APOSTROPHES)
    words = [w for w in offered if set(w) <= alphabet and any(c.isalpha() for c in w) and (apostrophe or w not in ELIDED)]
    weights = np.array([frequency.get(w, 0.0) for w in words], dtype=np.float64) ** smoothing
    cumulative = []
    for font in fonts:
        have = coverage(font)
        mask = np.array([set(w) <= have for w in words], dtype=np.float64)
        cumulative.append(np.cumsum(weights * mask))
    if not words or all(c[-1] <= 0 for c in cumulative):
        raise ValueError(f"wordfreq: none of its {len(offered)} French words uses only the manifest's characters")
    return Vocabulary(words, cumulative, offered=len(offered), dropped=len(offered) - len(words), alphabet=alphabet)


def wordfreq_line(rng: np.random.Generator, vocabulary: Vocabulary, font: int, length: int,
                  punctuation: Punctuation) -> str:
    """Words of ``vocabulary`` the ``font`` covers, until the line is ``length`` characters long."""
    marks = [m for m, _ in punctuation.apostrophes]
    mark = str(rng.choice(marks, p=[p for _, p in punctuation.apostrophes])) if marks else "'"
    words: list[str] = []
    while len(" ".join(words)) < length:
        word = vocabulary.draw(rng, font)
        if word in ELIDED:  # "l" + a word starting with a vowel or h -> "l'homme"
            follower = next((w for w in (vocabulary.draw(rng, font) for _ in range(20))
                             if w[0] in VOWELS and w not in ELIDED), None)
            if follower is None:
                continue
            word = f"{word}{mark}{follower}"
        if words and rng.random() < punctuation.comma:
            words[-1] += ","
        words.append(word)
    if rng.random() < punctuation.capital and words[0][:1].upper() in vocabulary.alphabet:
        words[0] = words[0][:1].upper() + words[0][1:]
    if rng.random() < punctuation.full_stop:
        words[-1] += "."
    return " ".join(words)


@dataclass(frozen=True)
class LinePlan:
    """What one synthetic line shows: its text, font and size."""

    index: int
    text: str
    font: Path
    size: int
    source: str  # "manifest" or "wordfreq"


def plan_lines(count: int, seed: int, share: float, size_range: tuple[int, int], texts: ManifestTexts,
               vocabulary: Vocabulary | None, fonts: list[Path]) -> list[LinePlan]:
    """The first ``count`` lines; line i depends only on the inputs and (seed, i)."""
    punctuation = Punctuation.of(texts.texts)
    orders: dict[int, np.ndarray] = {}
    used = 0  # manifest lines so far
    plans = []
    for index in range(count):
        rng = np.random.default_rng([seed, 0, index])
        size = int(rng.integers(size_range[0], size_range[1] + 1))
        from_wordfreq = rng.random() < share and vocabulary is not None
        if from_wordfreq:
            font = int(rng.integers(len(fonts)))
            length = len(texts.texts[int(rng.integers(len(texts.texts)))])
            text = wordfreq_line(rng, vocabulary, font, length, punctuation)
            if not covers(fonts[font], text):  # a capital or mark the font lacks: another font
                font = next((i for i in range(len(fonts)) if covers(fonts[i], text)), font)
        else:
            turn, position = divmod(used, len(texts.texts))
            if turn not in orders:
                orders = {turn: np.random.default_rng([seed, 1, turn]).permutation(len(texts.texts))}
            number = int(orders[turn][position])
            used += 1
            text = texts.texts[number]
            font = texts.fonts[number][int(rng.integers(len(texts.fonts[number])))]
        plans.append(LinePlan(index, text, fonts[font], size, "wordfreq" if from_wordfreq else "manifest"))
    return plans
