"""What a step of ``htr run`` read, recorded so that a copied or re-extracted input is not
taken for a changed one.

``htr run`` redoes a step when an input is newer than its outputs.  File times alone
mislead when the data are copied or unpacked again with new times but the same bytes
(a shared data folder refreshed for each session, a ``cp`` without ``-p``): every page
would be segmented again and every later step redone.  After a step succeeds, the size
and SHA-256 of each of its inputs go into a small JSON stamp; a step whose inputs look
newer is still up to date when each input's content matches its stamp.  Hashing happens
only for those steps, so a plain ``--list`` stays fast.
"""
from __future__ import annotations

import hashlib
import json
from pathlib import Path

from common.files import atomic_write_text

_CHUNK = 1 << 20


def fingerprint(path: Path) -> str | None:
    """``SIZE:SHA256`` of a file's content; None for a missing file or a folder."""
    path = Path(path)
    if not path.is_file():
        return None
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(_CHUNK):
            digest.update(chunk)
    return f"{path.stat().st_size}:{digest.hexdigest()}"


def record(stamp: Path, inputs: list[Path]) -> None:
    """Write the fingerprints of ``inputs`` (as they are now, after the step ran) to ``stamp``."""
    prints = {str(p): fingerprint(p) for p in inputs}
    atomic_write_text(stamp, json.dumps(prints, indent=1, ensure_ascii=False) + "\n")


def unchanged(stamp: Path, inputs: list[Path]) -> bool:
    """Whether every input has the content recorded in ``stamp`` (False without a readable
    stamp, or when the inputs are not the ones it lists)."""
    try:
        prints = json.loads(Path(stamp).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    if not isinstance(prints, dict) or set(prints) != {str(p) for p in inputs}:
        return False
    return all(prints[str(p)] is not None and prints[str(p)] == fingerprint(p) for p in inputs)
