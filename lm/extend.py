"""Lexicon extension: let the strict lexicon decoder spell words the training text lacks.

A strict lexicon can only output the surface words of its training text, and on small
corpora many test words are missing (17% of Copiste dev tokens).  This module adds
surface words built from a word-frequency list (a TSV file, or ``wordfreq:LANG`` from the
``wordfreq`` package) *without* touching the n-gram, which stays trained on the training
text only:

* **Shapes** are learned from the training surface words: a word is ``prefix + core +
  suffix`` (``l'`` + ``homme`` + ``,``), and every (prefix, suffix) pair seen at least
  ``min_count`` times becomes a shape.  A prefix ending in an apostrophe (an elided
  clitic) is only applied to cores whose first letter followed it in the training text,
  so ``l'`` goes before vowels without a rule written for French.
* **Cores** are the training tokens that are words, plus the ``limit`` most frequent
  words of the list; each core is used as listed and capitalised.
* **Scores**: the n-gram gives every unknown token KenLM's ``<unk>`` probability; the
  decoder multiplies it by the token's share of the word list (a class model:
  ``p(w | h) = p(<unk> | h) * p(w | unknown)``), so common unknown words beat rare ones.

``htr lm --extra-words`` stores the word list it took (``wordlist.txt``) and the shapes
(``extension.json``); decoders rebuild the extension from them with :func:`load_extension`,
so an LM directory stays small enough to commit.
"""
from __future__ import annotations

import json
import re
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from lm.text import tokenize

WORDLIST = "wordlist.txt"
EXTENSION = "extension.json"

# prefix (an elided clitic with its apostrophe), core (letters, inner hyphens/apostrophes),
# suffix (punctuation): "l'homme," -> ("l'", "homme", ",")
_SURFACE = re.compile(r"((?:[^\W\d_]+['’])?)([^\W\d_]+(?:[-'’][^\W\d_]+)*)([^\w\s]*)")
_CORE = re.compile(r"[^\W\d_]+(?:[-'’][^\W\d_]+)*")
FREQUENCY_SCALE = 1e9  # wordfreq frequencies become counts per billion words


@dataclass(frozen=True)
class Shape:
    """How training words wrap a core: ``prefix + core + suffix``; ``initials`` are the
    (lower-cased) first letters of the cores an apostrophe prefix was seen before."""

    prefix: str
    suffix: str
    count: int
    initials: frozenset[str] | None = None

    def fits(self, core: str) -> bool:
        return self.initials is None or core[:1].lower() in self.initials

    def to_dict(self) -> dict:
        return {"prefix": self.prefix, "suffix": self.suffix, "count": self.count,
                "initials": None if self.initials is None else "".join(sorted(self.initials))}

    @classmethod
    def from_dict(cls, data: dict) -> "Shape":
        initials = data.get("initials")
        return cls(data["prefix"], data["suffix"], int(data["count"]), None if initials is None else frozenset(initials))


def split_surface(word: str) -> tuple[str, str, str] | None:
    """``"l'homme,"`` -> ``("l'", "homme", ",")``; None for numbers, codes and the like."""
    match = _SURFACE.fullmatch(word)
    return (match.group(1), match.group(2), match.group(3)) if match else None


def learn_shapes(surfaces: Counter, min_count: int) -> list[Shape]:
    """The (prefix, suffix) pairs of at least ``min_count`` training surface words, the
    prefix lower-cased (capitalisation is a variant of its own), most frequent first."""
    counts: Counter = Counter()
    initials: dict[tuple[str, str], set[str]] = {}
    for word, count in surfaces.items():
        parts = split_surface(word)
        if parts is None:
            continue
        prefix, core, suffix = parts
        key = (prefix.lower(), suffix)
        counts[key] += count
        if prefix:
            initials.setdefault(key, set()).add(core[0].lower())
    return [Shape(prefix, suffix, count, frozenset(initials[(prefix, suffix)]) if prefix else None)
            for (prefix, suffix), count in counts.most_common() if count >= min_count]


def read_word_list(source: str, limit: int) -> list[tuple[str, float]]:
    """The ``limit`` most frequent words of ``source`` with their counts: a file of
    ``word<TAB>count`` lines (or one word per line, most frequent first), or
    ``wordfreq:LANG`` (the ``wordfreq`` package's large list for that language)."""
    if source.startswith("wordfreq:"):
        return _wordfreq_words(source.split(":", 1)[1], limit)
    path = Path(source)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: word list not found (give a word<TAB>count file or wordfreq:LANG)")
    words: list[tuple[str, float]] = []
    lines = path.read_text(encoding="utf-8").splitlines()
    for rank, line in enumerate(lines):
        word, _, count = line.strip().partition("\t")
        if not word:
            continue
        try:
            words.append((word, float(count) if count else float(len(lines) - rank)))
        except ValueError as error:
            raise ValueError(f"{path}: line {rank + 1}: expected word<TAB>count, got {line!r}") from error
    words.sort(key=lambda item: -item[1])
    return [(w, c) for w, c in words if _CORE.fullmatch(w)][:limit]


def _wordfreq_words(language: str, limit: int) -> list[tuple[str, float]]:
    try:
        import wordfreq
    except ImportError as error:
        raise ValueError("wordfreq:LANG needs the wordfreq package (pip install wordfreq; make setup installs it)") from error
    if language not in wordfreq.available_languages(wordlist="large"):
        raise ValueError(f"wordfreq has no large word list for {language!r}")
    words = []
    for word in wordfreq.iter_wordlist(language, wordlist="large"):
        if _CORE.fullmatch(word):
            words.append((word, wordfreq.word_frequency(word, language, wordlist="large") * FREQUENCY_SCALE))
            if len(words) >= limit:
                break
    return words


@dataclass
class Extension:
    words: dict[str, tuple[str, ...]]  # surface words to add to the strict lexicon -> their LM tokens
    tokens: Counter  # cores unknown to the n-gram, with their word-list counts (the class model)


def extend_lexicon(surfaces: Counter, vocabulary: set[str], extra: list[tuple[str, float]],
                   shapes: list[Shape]) -> Extension:
    """Surface words made of every shape around every core (training word tokens and the
    extra words, each as listed and capitalised), minus those already in ``surfaces``.
    Cores unknown to the n-gram get their list count (at least 1) in ``tokens``.
    A word's LM tokens are its prefix's, its core and its suffix's (what
    :func:`lm.text.tokenize` gives for the whole word, without running it a million times)."""
    listed: dict[str, float] = {}
    for word, count in extra:
        listed[word] = max(listed.get(word, 0.0), count)
    cores: dict[str, float] = {}
    for word in [t for t in sorted(vocabulary) if _CORE.fullmatch(t)] + list(listed):
        for form in (word, word[:1].upper() + word[1:]):
            cores[form] = max(cores.get(form, 0.0), listed.get(form, listed.get(form.lower(), 0.0)))
    words: dict[str, tuple[str, ...]] = {}
    for shape in shapes:
        prefixes = {p: tuple(tokenize(p)) for p in _cased_prefixes(shape.prefix)}
        suffix = tuple(tokenize(shape.suffix))
        for core in cores:
            if shape.fits(core):
                for prefix, prefix_tokens in prefixes.items():
                    surface = f"{prefix}{core}{shape.suffix}"
                    if surface not in surfaces:
                        words.setdefault(surface, (*prefix_tokens, core, *suffix))
    tokens = Counter({core: max(1, round(count)) for core, count in cores.items() if core not in vocabulary})
    return Extension(words, tokens)


def _cased_prefixes(prefix: str) -> list[str]:
    """A prefix as learned (lower case) and capitalised ("l'", "L'"); "" stays ""."""
    return [prefix, prefix[:1].upper() + prefix[1:]] if prefix else [prefix]


def surface_oov_summary(dev: dict) -> str:
    """lm.json's dev surface-word OOV rates as words: "24.5% with the training words, 12.3%
    with the extension" ("" when ``htr lm`` had no --dev)."""
    if "surface_oov_rate" not in dev:
        return ""
    summary = f"{100 * dev['surface_oov_rate']:.1f}% with the training words"
    if "extended_surface_oov_rate" in dev:
        summary += f", {100 * dev['extended_surface_oov_rate']:.1f}% with the extension"
    return summary


def surface_oov_rate(lines: list[str], known: set[str]) -> float:
    """Share of the space-separated words of ``lines`` that are not in ``known``."""
    words = [w for line in lines for w in line.split()]
    return sum(w not in known for w in words) / max(1, len(words))


def save_extension(out: Path, source: str, words: list[tuple[str, float]], shapes: list[Shape]) -> None:
    """``wordlist.txt`` (the words taken from the list) and ``extension.json`` (the shapes)."""
    from common.files import atomic_write_text
    atomic_write_text(out / WORDLIST, "".join(f"{w}\t{max(1, round(c))}\n" for w, c in words))
    atomic_write_text(out / EXTENSION, json.dumps({"source": source, "shapes": [s.to_dict() for s in shapes]},
                                                  ensure_ascii=False, indent=1) + "\n")


def load_extension(folder: Path, surfaces: Counter, vocabulary: set[str]) -> Extension | None:
    """The extension saved in an LM directory (None if it has none)."""
    if not (folder / EXTENSION).is_file():
        return None
    rebuild = "rebuild the LM directory with 'htr lm ... --extra-words', or decode with --no-extra-lexicon"
    if not (folder / WORDLIST).is_file():
        raise FileNotFoundError(f"{folder / WORDLIST}: missing beside {EXTENSION}; {rebuild}")
    try:
        info = json.loads((folder / EXTENSION).read_text(encoding="utf-8"))
        shapes = [Shape.from_dict(item) for item in info["shapes"]]
    except (ValueError, KeyError, TypeError) as error:
        raise ValueError(f"{folder / EXTENSION}: not a lexicon extension ({error}); {rebuild}") from error
    return extend_lexicon(surfaces, vocabulary, read_word_list(str(folder / WORDLIST), 10 ** 9), shapes)
