"""ALTO XML (v2, v3, v4; eScriptorium, Transkribus, kraken): TextLine polygons and text.

Namespaces are ignored, so every ALTO version reads the same way.  A line's
outline is its ``Shape/Polygon`` when present, else its HPOS/VPOS/WIDTH/HEIGHT box.
"""
from __future__ import annotations

from pathlib import Path
from typing import Iterator

from lxml import etree

from data_prep import skips
from data_prep.geometry import Polygon, box_polygon, parse_points
from data_prep.readers.base import (LineSpec, PageSpec, clean_text, find_page_image,
                                    local_name, parse_xml, safe_id, unique_ids, xml_files)
from data_prep.skips import SkipLog


def read_alto(path: Path, log: SkipLog) -> Iterator[PageSpec]:
    """Yield one :class:`PageSpec` per ALTO file in ``path`` (a file or a folder)."""
    for xml_path in xml_files(path):
        root = parse_xml(xml_path, log)
        if root is None:
            continue
        if local_name(root) != "alto":
            log.skip_file(xml_path, skips.NOT_A_LAYOUT, f"root element is <{local_name(root)}>, expected <alto>")
            continue
        unit = _first_text(root, "MeasurementUnit") or "pixel"
        if unit.strip() != "pixel":
            log.skip_file(xml_path, skips.UNSUPPORTED_UNIT, f"'{unit}'; only pixel coordinates are read")
            continue
        image = find_page_image(xml_path, _first_text(root, "fileName"))
        yield PageSpec(source=xml_path, image=image, lines=list(_lines(xml_path, root, log)))


def _first_text(root: etree._Element, name: str) -> str | None:
    for element in root.iter(f"{{*}}{name}"):
        return (element.text or "").strip() or None
    return None


def _lines(xml_path: Path, root: etree._Element, log: SkipLog) -> Iterator[LineSpec]:
    specs = []
    for number, line in enumerate(root.iter("{*}TextLine")):
        line_id = f"{xml_path.stem}_{line.get('ID') or f'l{number:04d}'}"
        try:
            polygon = _polygon(line)
            baseline = _baseline(line)
        except (TypeError, ValueError) as error:
            log.skip_line(f"{xml_path} line {line.get('ID', number)}", skips.BAD_GEOMETRY, str(error))
            continue
        specs.append(LineSpec(id=safe_id(line_id), text=_text(line), polygon=polygon, baseline=baseline))
    unique_ids(specs)
    return specs


def _text(line: etree._Element) -> str:
    words = []
    for element in line:
        name = local_name(element)
        if name == "String":
            words.append(element.get("CONTENT", ""))
        elif name == "HYP":
            words[-1:] = [(words[-1] if words else "") + element.get("CONTENT", "-")]
    return clean_text(" ".join(words))


def _polygon(line: etree._Element) -> Polygon:
    for shape_polygon in line.iterfind("{*}Shape/{*}Polygon"):
        points = parse_points(shape_polygon.get("POINTS"))
        if points:
            return points
    return box_polygon(*(float(line.get(key)) for key in ("HPOS", "VPOS", "WIDTH", "HEIGHT")))


def _baseline(line: etree._Element) -> Polygon:
    value = line.get("BASELINE")
    if not value:
        return []
    points = value.replace(",", " ").split()
    if len(points) == 1:  # ALTO v2/v3: BASELINE is the y of a horizontal baseline
        y = float(points[0])
        left, width = float(line.get("HPOS", 0)), float(line.get("WIDTH", 0))
        return [[left, y], [left + width, y]]
    return parse_points(value)
