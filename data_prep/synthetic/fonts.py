"""Handwriting fonts installed by ``make setup`` (free licences, see each folder's COPYRIGHT)."""
from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from fontTools.ttLib import TTFont


@lru_cache(maxsize=None)
def coverage(path: Path) -> frozenset[str]:
    with TTFont(str(path), lazy=True) as font:
        return frozenset(chr(code) for code in font.getBestCmap())


def find_fonts(folder: Path, alphabet: frozenset[str]) -> list[Path]:
    """Every .ttf/.otf below ``folder`` whose glyphs cover ``alphabet`` (space aside)."""
    if not folder.is_dir():
        raise FileNotFoundError(f"{folder}: fonts folder not found; run 'make setup' (it installs the handwriting fonts)")
    fonts = sorted(p for p in folder.rglob("*") if p.suffix.lower() in (".ttf", ".otf"))
    needed = alphabet - {" "}
    usable = [p for p in fonts if needed <= coverage(p)]
    if not usable:
        raise FileNotFoundError(f"{folder}: no font covers the alphabet; run 'make setup' again")
    return usable
