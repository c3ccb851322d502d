"""Rimes line XML (ICDAR 2011 line task): DocumentList > SinglePage > Paragraph > Line,
each Line a box (Left, Top, Right, Bottom) with its text in ``Value``."""
from __future__ import annotations

from pathlib import Path
from typing import Iterator

from common import skips
from data_prep.geometry import GeometryError, box_polygon, parse_number
from data_prep.readers.base import (LineSpec, PageSpec, clean_text, find_page_image,
                                    parse_xml, safe_id, skip_geometry, unique_ids, xml_files)
from common.skips import SkipLog


def read_rimes(path: Path, log: SkipLog) -> Iterator[PageSpec]:
    """Yield one :class:`PageSpec` per SinglePage of the Rimes XML file(s) in ``path``."""
    for xml_path in xml_files(path):
        root = parse_xml(xml_path, log)
        if root is None:
            continue
        pages = list(root.iter("SinglePage"))
        if not pages:
            log.skip_file(xml_path, skips.NOT_A_LAYOUT, "no <SinglePage> element (expected Rimes line XML)")
            continue
        for page in pages:
            name = page.get("FileName", "")
            image = find_page_image(xml_path, name) if name else None
            stem = Path(name).stem or f"{xml_path.stem}_page"
            yield PageSpec(source=xml_path, image=image, lines=_lines(xml_path, stem, page, log))


def _lines(xml_path: Path, stem: str, page, log: SkipLog) -> list[LineSpec]:
    specs = []
    for number, line in enumerate(page.iter("Line")):
        try:
            left, top, right, bottom = (_number(line, key) for key in ("Left", "Top", "Right", "Bottom"))
        except ValueError as error:
            skip_geometry(log, f"{xml_path} page {stem} line {number}", error)
            continue
        polygon = box_polygon(left, top, right - left, bottom - top)
        specs.append(LineSpec(id=safe_id(f"{stem}_l{number:03d}"), text=clean_text(line.get("Value")),
                              polygon=polygon, baseline=[]))
    unique_ids(specs)
    return specs


def _number(line, key: str) -> float:
    try:
        return parse_number(line.get(key))
    except GeometryError as error:
        raise GeometryError(error.reason, f"{key}: {error.detail}") from None
