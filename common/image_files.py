"""Which files are page or line images: one list for the whole toolkit, so a folder that
``htr segment`` reads is read the same by ``htr run``, ``htr transcribe`` and the readers."""
from __future__ import annotations

from pathlib import Path

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".tif", ".tiff", ".bmp", ".webp")


def is_image(path: Path) -> bool:
    return Path(path).suffix.lower() in IMAGE_SUFFIXES


def images_in(folder: Path) -> list[Path]:
    """The images directly inside ``folder``, sorted by path."""
    return sorted(p for p in Path(folder).iterdir() if is_image(p))


def expand_images(inputs: list[Path]) -> list[Path]:
    """The images named on a command line, each folder replaced by the images it holds (a name
    that does not exist stays: the command counts it as an input it could not read)."""
    found: list[Path] = []
    for item in inputs:
        found += images_in(item) if Path(item).is_dir() else [Path(item)]
    return found
