"""The page layout that ``htr segment`` and ``htr transcribe`` write, whatever the format.

A :class:`PageLayout` (image, regions in reading order, lines with polygon, baseline and
text, optionally words) is written as ALTO v4 by :mod:`data_prep.alto_writer` or as PAGE
2019-07-15 by :mod:`data_prep.page_writer`; :func:`data_prep.layout_formats.layout_bytes`
picks the writer.  The
writers take every ID through :class:`IdMaker`, so each is a valid, unique ``xs:ID``
whatever the caller passed (a page called ``0001 (copy)`` gives ``_0001_copy_l001``).
"""
from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

from data_prep.geometry import Polygon

SOFTWARE = "dropout-htr"
# where a writer records the image path relative to the XML (the readers look there when
# the image is not beside the XML): ALTO fileIdentifier@fileIdentifierLocation, PAGE MetadataItem@name
IMAGE_PATH_KEY = "imagePath"


@dataclass
class Word:
    text: str
    box: tuple[float, float, float, float] | None = None  # left, top, right, bottom (page pixels)
    confidence: float | None = None  # 0..1
    char_confidences: list[float] | None = None  # 0..1, one per character of ``text``


@dataclass
class LayoutLine:
    id: str
    polygon: Polygon
    baseline: Polygon = field(default_factory=list)
    text: str = ""
    words: list[Word] | None = None  # None: the text's space-separated words, without positions
    confidence: float | None = None

    def word_list(self) -> list[Word]:
        return self.words if self.words is not None else [Word(w) for w in self.text.split()]


AltoLine = LayoutLine  # the name the synthetic data set and older callers use


# region types, in PAGE's vocabulary (TextRegion/@type); ALTO writes them as block-type tags
MARGINALIA = "marginalia"


@dataclass
class Region:
    id: str
    lines: list[LayoutLine]
    polygon: Polygon | None = None  # None: the bounding box of its lines
    type: str | None = None  # None: untyped text (a column, a header block); MARGINALIA: a margin note


@dataclass
class Step:
    """One processing step, for the files' processing metadata."""

    description: str  # e.g. "line segmentation"
    settings: dict[str, str] = field(default_factory=dict)


@dataclass
class PageLayout:
    image_name: str  # the image's base name: ALTO fileName, PAGE imageFilename
    width: int
    height: int
    regions: list[Region]
    image_path: str | None = None  # the image relative to the XML, when it is not beside it
    steps: list[Step] = field(default_factory=list)
    created: datetime | None = None  # None: no date in ALTO (deterministic files); now in PAGE

    @property
    def lines(self) -> list[LayoutLine]:
        return [line for region in self.regions for line in region.lines]

    def timestamp(self) -> str:
        moment = self.created or datetime.now(timezone.utc)
        return moment.astimezone(timezone.utc).replace(microsecond=0).strftime("%Y-%m-%dT%H:%M:%SZ")


def single_region(image_name: str, width: int, height: int, lines: list[LayoutLine], **extra) -> PageLayout:
    """A page whose lines form one text region (the segmenter's single column)."""
    regions = [Region("r1", lines)] if lines else []
    return PageLayout(image_name, width, height, regions, **extra)


def relative_image(image: Path, xml_dir: Path) -> str:
    """``image`` as the writers record it for the readers: relative to the XML's folder, with ``/``."""
    return Path(os.path.relpath(Path(image).resolve(), Path(xml_dir).resolve())).as_posix()


def software_version() -> str:
    from importlib.metadata import PackageNotFoundError, version
    try:
        return version(SOFTWARE)
    except PackageNotFoundError:
        return "unknown"


def xml_id(text: str) -> str:
    """``text`` as an ``xs:ID`` (an NCName): characters other than ASCII letters, digits,
    ``.``, ``-`` and ``_`` become ``_``; a leading digit, dot or hyphen gets a ``_`` prefix."""
    name = re.sub(r"_{2,}", "_", re.sub(r"[^A-Za-z0-9._-]", "_", text)).strip("_") or "id"
    return name if re.match(r"[A-Za-z_]", name) else f"_{name}"


class IdMaker:
    """Valid IDs, unique within one document (a repeat gets ``_2``, ``_3``, ...)."""

    def __init__(self) -> None:
        self.used: set[str] = set()

    def __call__(self, text: str) -> str:
        base = candidate = xml_id(text)
        number = 1
        while candidate in self.used:
            number += 1
            candidate = f"{base}_{number}"
        self.used.add(candidate)
        return candidate


def bounds(points: Polygon) -> tuple[int, int, int, int]:
    """Integer left, top, right, bottom enclosing ``points``."""
    array = np.asarray(points, dtype=float).reshape(-1, 2)
    left, top = np.floor(array.min(axis=0))
    right, bottom = np.ceil(array.max(axis=0))
    return int(left), int(top), int(right), int(bottom)


def box_points(box: tuple[float, float, float, float]) -> Polygon:
    left, top, right, bottom = box
    return [[left, top], [right, top], [right, bottom], [left, bottom]]


def region_polygon(region: Region) -> Polygon:
    if region.polygon:
        return region.polygon
    return box_points(bounds([p for line in region.lines for p in line.polygon]))
