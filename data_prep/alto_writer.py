"""Writing ALTO v4 (the form eScriptorium exports, which our ALTO reader reads back).

Used for the synthetic ground truth, by ``htr segment`` and by ``htr transcribe``.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from lxml import etree

from data_prep.geometry import Polygon, format_points

ALTO_NS = "http://www.loc.gov/standards/alto/ns-v4#"
XSI_NS = "http://www.w3.org/2001/XMLSchema-instance"
SCHEMA = "http://www.loc.gov/standards/alto/v4/alto-4-2.xsd"


@dataclass
class AltoLine:
    id: str
    polygon: Polygon
    baseline: Polygon = field(default_factory=list)
    text: str = ""


def _box(points: Polygon) -> dict[str, str]:
    array = np.asarray(points, dtype=float)
    left, top = np.floor(array.min(axis=0))
    right, bottom = np.ceil(array.max(axis=0))
    return {"HPOS": str(int(left)), "VPOS": str(int(top)),
            "WIDTH": str(int(right - left)), "HEIGHT": str(int(bottom - top))}


def alto_document(image_name: str, width: int, height: int, lines: list[AltoLine]) -> bytes:
    """ALTO v4 bytes: one TextBlock holding ``lines`` in reading order."""
    E = lambda tag, **attrs: etree.Element(f"{{{ALTO_NS}}}{tag}", **attrs)  # noqa: E731
    root = etree.Element(f"{{{ALTO_NS}}}alto", nsmap={None: ALTO_NS, "xsi": XSI_NS})
    root.set(f"{{{XSI_NS}}}schemaLocation", f"{ALTO_NS} {SCHEMA}")
    description = etree.SubElement(root, f"{{{ALTO_NS}}}Description")
    etree.SubElement(description, f"{{{ALTO_NS}}}MeasurementUnit").text = "pixel"
    source = etree.SubElement(description, f"{{{ALTO_NS}}}sourceImageInformation")
    etree.SubElement(source, f"{{{ALTO_NS}}}fileName").text = image_name
    layout = etree.SubElement(root, f"{{{ALTO_NS}}}Layout")
    page = E("Page", WIDTH=str(width), HEIGHT=str(height), PHYSICAL_IMG_NR="1", ID="page_1")
    layout.append(page)
    space = E("PrintSpace", HPOS="0", VPOS="0", WIDTH=str(width), HEIGHT=str(height))
    page.append(space)
    if lines:
        block = E("TextBlock", ID="block_1", **_box([p for line in lines for p in line.polygon]))
        space.append(block)
        for line in lines:
            element = E("TextLine", ID=line.id, **_box(line.polygon))
            if line.baseline:
                element.set("BASELINE", format_points(line.baseline))
            shape = etree.SubElement(element, f"{{{ALTO_NS}}}Shape")
            etree.SubElement(shape, f"{{{ALTO_NS}}}Polygon", POINTS=format_points(line.polygon))
            if line.text:
                element.append(E("String", CONTENT=line.text, **_box(line.polygon)))
            block.append(element)
    return etree.tostring(root, xml_declaration=True, encoding="UTF-8", pretty_print=True)
