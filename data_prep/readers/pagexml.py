"""PAGE XML (PRImA 2013-07-15 and 2019-07-15; Transkribus, eScriptorium, OCR-D).

Lines are taken region by region in the file's ReadingOrder when it has one,
otherwise in document order.  Line text is the line's own TextEquiv; when a line
has none, its Words' TextEquivs are joined with spaces.
"""
from __future__ import annotations

from pathlib import Path
from typing import Iterator

import math

from lxml import etree

from common import skips
from data_prep.layout import IMAGE_PATH_KEY
from data_prep.geometry import GeometryError, Polygon, parse_number, parse_points
from data_prep.readers.base import (LineSpec, PageSpec, clean_text, find_page_image, local_name,
                                    parse_xml, safe_id, skip_geometry, unique_ids, xml_files)
from common.skips import SkipLog


def read_pagexml(path: Path, log: SkipLog) -> Iterator[PageSpec]:
    """Yield one :class:`PageSpec` per PAGE file in ``path`` (a file or a folder)."""
    for xml_path in xml_files(path):
        root = parse_xml(xml_path, log)
        if root is None:
            continue
        page = next(root.iter("{*}Page"), None)
        if local_name(root) != "PcGts" or page is None:
            log.skip_file(xml_path, skips.NOT_A_LAYOUT, f"root element is <{local_name(root)}>, expected <PcGts> with a <Page>")
            continue
        image = find_page_image(xml_path, page.get("imageFilename"), *_image_paths(root))
        yield PageSpec(source=xml_path, image=image, lines=_lines(xml_path, page, log))


def _image_paths(root: etree._Element) -> list[str]:
    """Image paths relative to the XML that ``htr segment``/``transcribe`` record (a MetadataItem)."""
    return [item.get("value", "") for item in root.iterfind("{*}Metadata/{*}MetadataItem")
            if item.get("name") == IMAGE_PATH_KEY]


def _index(value: str | None, default: int) -> float:
    """A ReadingOrder index; a malformed one keeps the document position."""
    try:
        number = float(value) if value is not None else default
    except ValueError:
        return default
    return number if math.isfinite(number) else default


def _ordered_regions(page: etree._Element) -> list[etree._Element]:
    regions = [r for r in page.iter("{*}TextRegion") if local_name(r.getparent()) != "TextRegion"]
    order = {ref.get("regionRef"): _index(ref.get("index"), i)
             for i, ref in enumerate(page.iterfind("{*}ReadingOrder//{*}RegionRefIndexed"))}
    if not order:
        order = {ref.get("regionRef"): i for i, ref in enumerate(page.iterfind("{*}ReadingOrder//{*}RegionRef"))}
    rank = {id(r): (order.get(r.get("id"), len(order)), n) for n, r in enumerate(regions)}
    return sorted(regions, key=lambda r: rank[id(r)])


def _lines(xml_path: Path, page: etree._Element, log: SkipLog) -> list[LineSpec]:
    specs = []
    for region in _ordered_regions(page):
        for number, line in enumerate(region.iter("{*}TextLine")):
            where = f"{xml_path} line {line.get('id', number)}"
            try:
                polygon = _points(line.find("{*}Coords"))
                if not polygon:
                    raise GeometryError(skips.NO_COORDINATES, "no Coords points")
                baseline = _points(line.find("{*}Baseline"))
            except ValueError as error:
                skip_geometry(log, where, error)
                continue
            line_id = safe_id(f"{xml_path.stem}_{line.get('id') or f'l{len(specs):04d}'}")
            specs.append(LineSpec(id=line_id, text=_text(line), polygon=polygon, baseline=baseline))
    unique_ids(specs)
    return specs


def _points(element: etree._Element | None) -> Polygon:
    if element is None:
        return []
    if element.get("points") is not None:
        return parse_points(element.get("points"))
    # PAGE 2010 wrote <Point x= y=/> children
    return [[parse_number(p.get("x")), parse_number(p.get("y"))] for p in element.iterfind("{*}Point")]


def _unicode_of(element: etree._Element) -> str | None:
    equivs = element.findall("{*}TextEquiv")
    if not equivs:
        return None
    best = min(equivs, key=_rank)
    unicode = best.find("{*}Unicode")
    return unicode.text if unicode is not None else None


def _rank(equiv: etree._Element) -> int:
    """A TextEquiv's index (lowest first); a malformed one ranks as 0."""
    try:
        return int(equiv.get("index", 0))
    except ValueError:
        return 0


def _text(line: etree._Element) -> str:
    own = _unicode_of(line)
    if own is not None:
        return clean_text(own)
    words = [_unicode_of(word) or "" for word in line.iterfind("{*}Word")]
    return clean_text(" ".join(words))
