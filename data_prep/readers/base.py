"""What readers produce, and helpers they share (XML parsing, finding page images)."""
from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable, Iterator, Union

from lxml import etree

from common import skips
from data_prep.geometry import GeometryError, Polygon
from common.image_files import IMAGE_SUFFIXES
from common.skips import SkipLog



@dataclass
class LineSpec:
    """A text line on a page, in page pixel coordinates."""

    id: str
    text: str
    polygon: Polygon
    baseline: Polygon = field(default_factory=list)


@dataclass
class PageSpec:
    """A page image and its lines; ``source`` is the file they were read from."""

    source: Path
    image: Path | None  # None when no image file could be found
    lines: list[LineSpec]
    writer: str | None = None


@dataclass
class LineImageSpec:
    """An already cropped line image with its transcription."""

    source: Path
    id: str
    image: Path
    text: str
    writer: str | None = None


Spec = Union[PageSpec, LineImageSpec]
Reader = Callable[[Path, SkipLog], Iterator[Spec]]


def clean_text(text: str | None) -> str:
    """NFC, whitespace runs collapsed to one space, stripped."""
    if not text:
        return ""
    return re.sub(r"\s+", " ", unicodedata.normalize("NFC", text)).strip()


def safe_id(text: str) -> str:
    """A string usable as a file name and manifest id."""
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", text).strip("_") or "line"


def local_name(element: etree._Element) -> str:
    return etree.QName(element).localname if isinstance(element.tag, str) else ""


def parse_xml(path: Path, log: SkipLog) -> etree._Element | None:
    """Parse an XML file; a missing or broken file is a counted skip, not an exception."""
    try:
        return etree.parse(str(path), etree.XMLParser(huge_tree=True)).getroot()
    except OSError as error:
        log.skip_file(path, skips.MISSING_FILE if not path.exists() else skips.BAD_XML, str(error))
    except etree.XMLSyntaxError as error:
        log.skip_file(path, skips.BAD_XML, f"{error}; fix or remove the file")
    return None


def xml_files(path: Path) -> list[Path]:
    """The XML files named by ``path``: the file itself, or every *.xml below a folder."""
    if path.is_file():
        return [path]
    if not path.is_dir():
        raise FileNotFoundError(f"{path}: no such file or folder")
    return sorted(p for p in path.rglob("*.xml") if p.is_file())


def find_page_image(xml_path: Path, declared: str | None, *also: str | None) -> Path | None:
    """Locate a page image: the declared name (relative to the XML, then its base
    name beside the XML), then the XML's own stem with any image suffix.  A declared
    name that cannot be a path (too long, a NUL byte) is passed over."""
    folder = xml_path.parent
    candidates: list[Path] = []
    # ``also`` first: exact paths relative to the XML that our writers record beside the base name
    candidates += [folder / hint.strip().replace("\\", "/") for hint in also if hint and hint.strip()]
    if declared:
        declared = declared.strip().replace("\\", "/")
        if declared.startswith("file://"):
            declared = declared[len("file://"):]
        candidates += [folder / declared, folder / Path(declared).name, Path(declared)]
    candidates += [xml_path.with_suffix(suffix) for suffix in IMAGE_SUFFIXES]
    candidates += [xml_path.with_suffix(suffix.upper()) for suffix in IMAGE_SUFFIXES]
    for candidate in candidates:
        try:
            if candidate.is_file():
                return candidate
        except (OSError, ValueError):  # ENAMETOOLONG, embedded NUL
            continue
    return None


def skip_geometry(log: SkipLog, where: str, error: ValueError) -> None:
    """Count a line whose coordinates could not be read, with the reason of the error."""
    if isinstance(error, GeometryError):
        log.skip_line(where, error.reason, error.detail)
    else:
        log.skip_line(where, skips.BAD_GEOMETRY, str(error))


def unique_ids(specs: Iterable[LineSpec]) -> None:
    """Make line ids unique within a page by suffixing repeats.  Ids that differ only in
    case count as repeats: their image files would be one file on macOS and Windows."""
    seen: set[str] = set()
    for spec in specs:
        candidate, count = spec.id, 0
        while candidate.casefold() in seen:
            count += 1
            candidate = f"{spec.id}_{count}"
        seen.add(candidate.casefold())
        spec.id = candidate
