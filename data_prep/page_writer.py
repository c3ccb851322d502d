"""Writing PAGE XML 2019-07-15 (what Transkribus and the OCR-D tools exchange; our PAGE
reader reads it back).

Layout: ``Metadata`` (Creator = software and version, Created/LastChange, a
``processingStep`` MetadataItem per stage with its settings as Labels, and an
``imagePath`` item with the image relative to the XML when it is not beside it), then
``Page`` (``imageFilename`` = the image's base name) > ``ReadingOrder`` (one OrderedGroup of
the regions) > one ``TextRegion`` per region (``type`` when known: ``marginalia`` for a margin
note) > ``TextLine`` (``Coords``, ``Baseline``, the ``Word``\\ s when their boxes are known,
and ``TextEquiv`` with the line text; ``conf`` when known).  PAGE points are non-negative
integers, so coordinates are rounded and clipped at 0.
"""
from __future__ import annotations

from lxml import etree

from data_prep.layout import (IMAGE_PATH_KEY, SOFTWARE, IdMaker, LayoutLine, PageLayout, Word, box_points,
                              region_polygon, software_version)

PAGE_NS = "http://schema.primaresearch.org/PAGE/gts/pagecontent/2019-07-15"
XSI_NS = "http://www.w3.org/2001/XMLSchema-instance"
SCHEMA = f"{PAGE_NS}/pagecontent.xsd"


def _el(parent: etree._Element, tag: str, **attrs: str) -> etree._Element:
    return etree.SubElement(parent, f"{{{PAGE_NS}}}{tag}", **attrs)


def _points(points) -> str:
    """PAGE ``points``: ``x,y`` pairs of non-negative integers, at least two of them."""
    pairs = [(max(0, round(x)), max(0, round(y))) for x, y in points]
    if len(pairs) == 1:
        pairs.append(pairs[0])
    return " ".join(f"{x},{y}" for x, y in pairs)


def _conf(value: float) -> str:
    return f"{min(1.0, max(0.0, value)):.3f}"


def page_bytes(page: PageLayout) -> bytes:
    """PAGE 2019-07-15 bytes of ``page``."""
    ids = IdMaker()
    root = etree.Element(f"{{{PAGE_NS}}}PcGts", nsmap={None: PAGE_NS, "xsi": XSI_NS})
    root.set(f"{{{XSI_NS}}}schemaLocation", f"{PAGE_NS} {SCHEMA}")
    _metadata(root, page)
    sheet = _el(root, "Page", imageFilename=page.image_name, imageWidth=str(page.width),
                imageHeight=str(page.height))
    region_ids = [ids(region.id) for region in page.regions]
    if region_ids:
        group = _el(_el(sheet, "ReadingOrder"), "OrderedGroup", id=ids("ro_1"), caption="Regions reading order")
        for index, region_id in enumerate(region_ids):
            _el(group, "RegionRefIndexed", index=str(index), regionRef=region_id)
    for region, region_id in zip(page.regions, region_ids):
        element = _el(sheet, "TextRegion", id=region_id, **({"type": region.type} if region.type else {}))
        _el(element, "Coords", points=_points(region_polygon(region)))
        for line in region.lines:
            _line(element, line, ids)
    return etree.tostring(root, xml_declaration=True, encoding="UTF-8", pretty_print=True)


def _metadata(root: etree._Element, page: PageLayout) -> None:
    metadata = _el(root, "Metadata")
    version = software_version()
    _el(metadata, "Creator").text = f"{SOFTWARE} {version}"
    _el(metadata, "Created").text = page.timestamp()
    _el(metadata, "LastChange").text = page.timestamp()
    for step in page.steps:
        item = _el(metadata, "MetadataItem", type="processingStep", name=step.description,
                   value=f"{SOFTWARE} {version}")
        if step.settings:
            labels = _el(item, "Labels", externalModel=SOFTWARE, externalId="settings")
            for key, value in step.settings.items():
                _el(labels, "Label", type=key, value=str(value))
    if page.image_path and page.image_path != page.image_name:
        _el(metadata, "MetadataItem", type="imageProperties", name=IMAGE_PATH_KEY, value=page.image_path)


def _line(region: etree._Element, line: LayoutLine, ids: IdMaker) -> None:
    element = _el(region, "TextLine", id=ids(line.id))
    _el(element, "Coords", points=_points(line.polygon))
    if line.baseline:
        _el(element, "Baseline", points=_points(line.baseline))
    for number, word in enumerate(line.words or [], start=1):
        if word.box is not None:
            _word(element, word, ids(f"{element.get('id')}_w{number:02d}"))
    _text_equiv(element, line.text, line.confidence)


def _word(line: etree._Element, word: Word, word_id: str) -> None:
    element = _el(line, "Word", id=word_id)
    _el(element, "Coords", points=_points(box_points(word.box)))
    _text_equiv(element, word.text, word.confidence)


def _text_equiv(parent: etree._Element, text: str, confidence: float | None) -> None:
    attrs = {"conf": _conf(confidence)} if confidence is not None else {}
    _el(_el(parent, "TextEquiv", **attrs), "Unicode").text = text
