"""Running text for the synthetic pages: sentences from the Debian fortune files.

Sentences are split into train/dev/test by a hash of the sentence itself, so the
split is stable whatever the seed, and a test sentence can never appear in the
training text or in the language-model corpus.
"""
from __future__ import annotations

import hashlib
import re
from pathlib import Path

# Characters every bundled font covers and that read naturally in prose.
ALPHABET = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789 .,;:!?'\"-()")
SKIPPED_FILES = {"ascii-art", "art", "translate-me", "debian", "linuxcookie", "perl", "computers", "zippy"}
_SENTENCE_END = re.compile(r"(?<=[.!?])[\"')]?\s+(?=[\"'(]?[A-Z])")
_ATTRIBUTION = re.compile(r"^\s*(--|~~)")


def read_entries(folder: Path) -> list[str]:
    """Fortune entries (the text between ``%`` lines) from every file in ``folder``."""
    if not folder.is_dir():
        raise FileNotFoundError(f"{folder}: text folder not found; run 'make setup' (it installs Debian's fortunes)")
    entries: list[str] = []
    for path in sorted(folder.iterdir()):
        if path.name in SKIPPED_FILES or path.name.startswith("COPYRIGHT") or not path.is_file():
            continue
        text = path.read_text(encoding="utf-8", errors="replace")
        for entry in text.split("\n%\n"):
            lines = [line for line in entry.splitlines() if not _ATTRIBUTION.match(line)]
            entries.append(" ".join(lines))
    return entries


def normalise(sentence: str) -> str:
    sentence = sentence.replace("``", '"').replace("''", '"').replace("`", "'")
    return re.sub(r"\s+", " ", sentence).strip()


def is_usable(sentence: str) -> bool:
    """Prose-like: known characters, 4-40 words, mostly letters, not shouting."""
    words = sentence.split()
    if not 4 <= len(words) <= 40 or not set(sentence) <= ALPHABET:
        return False
    letters = sum(c.isalpha() for c in sentence)
    upper = sum(c.isupper() for c in sentence)
    return letters >= 0.7 * len(sentence.replace(" ", "")) and upper <= 0.3 * letters


def sentence_key(sentence: str) -> str:
    """Two sentences are the same when they differ only in case, surrounding quotes and
    brackets or a trailing ' -- Author': else '"Go home."' and 'Go home.' could land in
    different splits, and a test sentence would be in the training text."""
    return re.sub(r"\s--\s.*$", "", sentence.lower()).strip(" \"'()")


def sentences(entries: list[str]) -> list[str]:
    """Unique usable sentences, in first-seen order."""
    seen: set[str] = set()
    result: list[str] = []
    for entry in entries:
        for sentence in _SENTENCE_END.split(normalise(entry)):
            sentence = normalise(sentence)
            if is_usable(sentence) and sentence_key(sentence) not in seen:
                seen.add(sentence_key(sentence))
                result.append(sentence)
    return result


def split_of(sentence: str, dev_fraction: float, test_fraction: float) -> str:
    bucket = int(hashlib.sha1(sentence.lower().encode("utf-8")).hexdigest()[:8], 16) / 0xFFFFFFFF
    if bucket < test_fraction:
        return "test"
    if bucket < test_fraction + dev_fraction:
        return "dev"
    return "train"


def split_sentences(all_sentences: list[str], dev_fraction: float, test_fraction: float) -> dict[str, list[str]]:
    splits: dict[str, list[str]] = {"train": [], "dev": [], "test": []}
    for sentence in all_sentences:
        splits[split_of(sentence, dev_fraction, test_fraction)].append(sentence)
    return splits
