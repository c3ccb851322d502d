"""The LM folder: what ``htr lm`` writes (:mod:`lm.build`) and every LM decoder reads, and
the tuned-weights file of ``htr tune``.  The reader sits here, beside the file names and the
counts format the writer uses, so the decoders never reach into the builder.

* ``lexicon.txt``, ``words.txt``: ``token<TAB>count`` lines (:func:`write_counts`);
* ``lm.bin`` (or ``lm.arpa``): the word-token n-gram; ``char.bin`` (or ``char.arpa``)
  the character n-gram, space written :data:`SPACE`;
* ``lm.json``: settings and statistics; ``wordlist.txt`` + ``extension.json``: the
  lexicon extension (:mod:`lm.extend`);
* ``tuned.json``: only in LM folders of earlier versions, where ``htr tune`` wrote its
  weights, and in exported ones (``scripts/export_models.py``): read by ``htr decode`` when
  it is given no ``--tuned`` file (:func:`folder_tuned`).

Tuned weights (``htr tune --out FILE``, read by ``htr decode --tuned FILE``) are a file of their
own, ``{decoder: {"lm_weight", "word_bonus", "wer", "cer", ..., "tried": [...]}}``, kept
apart from the LM folder, which ``htr lm`` rebuilds.
"""
from __future__ import annotations

import json
import math
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from common.files import atomic_write_text
from lm.extend import load_extension

SPACE = "<sp>"  # the space character in the character LM
TUNED = "tuned.json"


def write_counts(path: Path, counts: Counter) -> None:
    atomic_write_text(path, "".join(f"{w}\t{c}\n" for w, c in counts.most_common()))


def read_counts(path: Path) -> dict[str, int]:
    counts = {}
    for line in Path(path).read_text(encoding="utf-8").splitlines():
        word, _, count = line.rpartition("\t")
        if word:
            counts[word] = int(count)
    return counts


def char_model(folder: Path) -> Path:
    """The character n-gram of an LM folder: binary if there is one, else the ARPA file."""
    binary = Path(folder) / "char.bin"
    return binary if binary.is_file() else Path(folder) / "char.arpa"


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
        return char_model(self.path)

    @classmethod
    def load(cls, path: Path) -> "LmDir":
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


def _tuned_entries(path: Path) -> dict:
    try:
        tuned = json.loads(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise FileNotFoundError(f"{path}: tuned weights not found; write them with 'htr tune ... --out {path}'") from None
    except (ValueError, UnicodeDecodeError) as error:
        raise ValueError(f"{path}: not a tuned-weights file ({error}); rewrite it with 'htr tune ... --out {path}'") from None
    if not isinstance(tuned, dict):
        raise ValueError(f"{path}: not a tuned-weights file (not a JSON object); rewrite it with 'htr tune ... --out {path}'")
    return tuned


def read_tuned(path: Path, decoder: str) -> dict:
    """The values ``htr tune`` stored for ``decoder`` in the tuned-weights file ``path`` ({} if
    it holds none for that decoder)."""
    return _tuned_entries(path).get(decoder, {})


def write_tuned(path: Path, decoder: str, entry: dict) -> None:
    """Store ``entry`` for ``decoder`` in the tuned-weights file ``path``, keeping the other
    decoders' (a file that does not read as one is replaced)."""
    try:
        tuned = _tuned_entries(path)
    except (FileNotFoundError, ValueError):
        tuned = {}
    tuned[decoder] = entry
    atomic_write_text(Path(path), json.dumps(tuned, indent=2) + "\n")


def folder_tuned(lm_path: Path) -> Path | None:
    """``LM_DIR/tuned.json`` if the LM folder holds one (an older or an exported LM folder), else None."""
    path = Path(lm_path) / TUNED
    return path if path.is_file() else None
