"""Writing ALTO v4 (4.2: the form eScriptorium imports and exports; our ALTO reader reads it back).

Used for the synthetic ground truth, by ``htr segment`` and by ``htr transcribe``.  Layout:
``Description`` (pixel unit; ``sourceImageInformation/fileName`` = the image's base name,
which eScriptorium matches against the uploaded image; a ``fileIdentifier`` with the path
relative to the XML when the image is elsewhere; one ``Processing`` step per stage with the
software name and version), then ``Page`` > ``PrintSpace`` > one ``TextBlock`` per region in
reading order (``IDNEXT`` links each to the next) > ``TextLine`` (box, ``BASELINE``,
``Shape/Polygon``) > one ``String`` per word with ``SP`` between them (``WC``/``CC`` when
confidences are known; an empty line has one empty ``String``, as the schema needs one).

Typed regions (a margin note) get a block-type tag the way eScriptorium exports and imports
them: one ``Tags/OtherTag`` per type (``LABEL`` = the SegmOnto zone name, e.g.
``MarginTextZone``, ``DESCRIPTION="block type MarginTextZone"``) between ``Description`` and
``Layout``, referenced by the block's ``TAGREFS`` (ALTO 4.2: ``TagsType``, ``BlockType/@TAGREFS``).
"""
from __future__ import annotations

from lxml import etree

from data_prep.geometry import format_points
from data_prep.layout import (IMAGE_PATH_KEY, MARGINALIA, SOFTWARE, AltoLine, IdMaker, LayoutLine, PageLayout,
                              Word, bounds, region_polygon, single_region, software_version)

ALTO_NS = "http://www.loc.gov/standards/alto/ns-v4#"
XSI_NS = "http://www.w3.org/2001/XMLSchema-instance"
SCHEMA = "http://www.loc.gov/standards/alto/v4/alto-4-2.xsd"
# region type (PAGE's word) -> the SegmOnto zone name eScriptorium shows as the block type
BLOCK_TYPES = {MARGINALIA: "MarginTextZone"}

__all__ = ["ALTO_NS", "AltoLine", "alto_bytes", "alto_document"]


def _el(parent: etree._Element, tag: str, **attrs: str) -> etree._Element:
    return etree.SubElement(parent, f"{{{ALTO_NS}}}{tag}", **attrs)


def _box(box: tuple[float, float, float, float]) -> dict[str, str]:
    left, top, right, bottom = (int(round(v)) for v in box)
    return {"HPOS": str(left), "VPOS": str(top), "WIDTH": str(max(0, right - left)), "HEIGHT": str(max(0, bottom - top))}


def alto_document(image_name: str, width: int, height: int, lines: list[LayoutLine]) -> bytes:
    """ALTO v4 bytes: one TextBlock holding ``lines`` in reading order, no processing step."""
    return alto_bytes(single_region(image_name, width, height, lines))


def alto_bytes(page: PageLayout) -> bytes:
    """ALTO v4 bytes of ``page``."""
    ids = IdMaker()
    root = etree.Element(f"{{{ALTO_NS}}}alto", nsmap={None: ALTO_NS, "xsi": XSI_NS})
    root.set(f"{{{XSI_NS}}}schemaLocation", f"{ALTO_NS} {SCHEMA}")
    processing = _description(root, page, ids)
    tags = _tags(root, page, ids)
    layout = _el(root, "Layout")
    attrs = {"PROCESSINGREFS": " ".join(processing)} if processing else {}
    sheet = _el(layout, "Page", ID=ids("page_1"), PHYSICAL_IMG_NR="1", WIDTH=str(page.width),
                HEIGHT=str(page.height), **attrs)
    space = _el(sheet, "PrintSpace", HPOS="0", VPOS="0", WIDTH=str(page.width), HEIGHT=str(page.height))
    blocks = []
    for region in page.regions:
        polygon = region_polygon(region)
        tag = {"TAGREFS": tags[region.type]} if region.type else {}
        block = _el(space, "TextBlock", ID=ids(region.id), **tag, **_box(bounds(polygon)))
        if region.polygon:
            _el(_el(block, "Shape"), "Polygon", POINTS=format_points(polygon))
        for line in region.lines:
            _line(block, line, ids)
        blocks.append(block)
    for block, following in zip(blocks, blocks[1:]):
        block.set("IDNEXT", following.get("ID"))
    return etree.tostring(root, xml_declaration=True, encoding="UTF-8", pretty_print=True)


def _description(root: etree._Element, page: PageLayout, ids: IdMaker) -> list[str]:
    """Description: unit, source image, processing steps; returns the steps' IDs."""
    description = _el(root, "Description")
    _el(description, "MeasurementUnit").text = "pixel"
    source = _el(description, "sourceImageInformation")
    _el(source, "fileName").text = page.image_name
    if page.image_path and page.image_path != page.image_name:
        _el(source, "fileIdentifier", fileIdentifierLocation=IMAGE_PATH_KEY).text = page.image_path
    refs = []
    for number, step in enumerate(page.steps, start=1):
        element = _el(description, "Processing", ID=ids(f"proc_{number}"))
        _el(element, "processingCategory").text = "contentGeneration"
        if page.created is not None:
            _el(element, "processingDateTime").text = page.timestamp()
        _el(element, "processingStepDescription").text = step.description
        if step.settings:
            _el(element, "processingStepSettings").text = "; ".join(f"{k}={v}" for k, v in step.settings.items())
        software = _el(element, "processingSoftware")
        _el(software, "softwareName").text = SOFTWARE
        _el(software, "softwareVersion").text = software_version()
        refs.append(element.get("ID"))
    return refs


def _tags(root: etree._Element, page: PageLayout, ids: IdMaker) -> dict[str, str]:
    """``Tags`` with one block-type ``OtherTag`` per region type of the page; type -> tag ID."""
    types = list(dict.fromkeys(region.type for region in page.regions if region.type))
    if not types:
        return {}
    tags, element = {}, _el(root, "Tags")
    for kind in types:
        label = BLOCK_TYPES.get(kind, kind)
        tags[kind] = ids(f"BT_{label}")
        _el(element, "OtherTag", ID=tags[kind], LABEL=label, DESCRIPTION=f"block type {label}")
    return tags


def _line(block: etree._Element, line: LayoutLine, ids: IdMaker) -> None:
    element = _el(block, "TextLine", ID=ids(line.id), **_box(bounds(line.polygon)))
    if line.baseline:
        element.set("BASELINE", format_points(line.baseline))
    _el(_el(element, "Shape"), "Polygon", POINTS=format_points(line.polygon))
    words = line.word_list() or [Word("")]
    for number, word in enumerate(words, start=1):
        if number > 1:
            _el(element, "SP")
        _string(element, word, ids(f"{element.get('ID')}_w{number:02d}") if word.text else None)


def _string(line: etree._Element, word: Word, string_id: str | None) -> None:
    attrs = {"ID": string_id} if string_id else {}
    if word.box is not None:
        attrs.update(_box(word.box))
    attrs["CONTENT"] = word.text
    if word.confidence is not None:
        attrs["WC"] = f"{min(1.0, max(0.0, word.confidence)):.3f}"
    if word.char_confidences:
        # ALTO CC: one digit per character, 0 sure .. 9 unsure
        attrs["CC"] = " ".join(str(min(9, max(0, int(round(9 * (1 - c)))))) for c in word.char_confidences)
    _el(line, "String", **attrs)
