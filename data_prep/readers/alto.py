"""ALTO XML (v2, v3, v4; eScriptorium, Transkribus, kraken): TextLine polygons and text.

Namespaces are ignored, so every ALTO version reads the same way.  A line's
outline is its ``Shape/Polygon`` when present, else its HPOS/VPOS/WIDTH/HEIGHT box.
"""
from __future__ import annotations

from pathlib import Path
from typing import Iterator

from lxml import etree

from common import skips
from data_prep.layout import IMAGE_PATH_KEY
from data_prep.geometry import GeometryError, Polygon, box_polygon, parse_number, parse_points
from data_prep.readers.base import (LineSpec, PageSpec, clean_text, find_page_image, local_name,
                                    parse_xml, safe_id, skip_geometry, unique_ids, xml_files)
from common.skips import SkipLog


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
        image = find_page_image(xml_path, _first_text(root, "fileName"), *_image_paths(root))
        yield PageSpec(source=xml_path, image=image, lines=list(_lines(xml_path, root, log)))


def _image_paths(root: etree._Element) -> list[str]:
    """Image paths relative to the XML that ``htr segment``/``transcribe`` record (fileIdentifier)."""
    return [element.text or "" for element in root.iter("{*}fileIdentifier")
            if element.get("fileIdentifierLocation") == IMAGE_PATH_KEY]


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
        except ValueError as error:
            skip_geometry(log, f"{xml_path} line {line.get('ID', number)}", error)
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
    keys = ("HPOS", "VPOS", "WIDTH", "HEIGHT")
    if all(line.get(key) is None for key in keys):
        raise GeometryError(skips.NO_COORDINATES, "no Shape/Polygon POINTS and no HPOS/VPOS/WIDTH/HEIGHT")
    left, top, width, height = (_attribute(line, key) for key in keys)
    if width < 0 or height < 0:
        raise GeometryError(skips.BAD_GEOMETRY, f"negative WIDTH or HEIGHT ({width:g} x {height:g})")
    return box_polygon(left, top, width, height)


def _attribute(line: etree._Element, key: str, default: str | None = None) -> float:
    try:
        return parse_number(line.get(key, default))
    except GeometryError as error:
        raise GeometryError(error.reason, f"{key}: {error.detail}") from None


def _baseline(line: etree._Element) -> Polygon:
    value = line.get("BASELINE")
    if not value:
        return []
    points = value.replace(",", " ").split()
    if len(points) == 1:  # ALTO v2/v3: BASELINE is the y of a horizontal baseline
        y = parse_number(points[0])
        left, width = _attribute(line, "HPOS", "0"), _attribute(line, "WIDTH", "0")
        return [[left, y], [left + width, y]]
    return parse_points(value)
