"""The ALTO v4 and PAGE 2019 files that ``htr segment`` and ``htr transcribe`` write: valid
(PAGE against the official schema, ALTO against a strict subset of 4.2), importable
(image base name, valid IDs, processing step, regions and reading order) and read back by
the project's own readers with the same lines, geometry and text."""
from __future__ import annotations

import re

import numpy as np
import pytest
from lxml import etree
from PIL import Image

from data_prep.layout import MARGINALIA, IdMaker, LayoutLine, PageLayout, Region, Step, Word, relative_image, xml_id
from data_prep.layout_formats import layout_bytes
from data_prep.readers import read_alto, read_pagexml
from common.skips import SkipLog
from pipeline import segment
from pipeline.segment_types import SegmentConfig
from test_segment import make_page
from xmlcheck import check

NCNAME = re.compile(r"[A-Za-z_][A-Za-z0-9._-]*\Z")
READ = {"alto": read_alto, "page": read_pagexml}


def test_xml_ids_are_ncnames_and_unique():
    assert xml_id("0001 (copy)_l001") == "_0001_copy_l001"
    nasty = ["0001 (copy)_l001", "", "  ", "é", "-x", ".x", "a b", "a:b", "l001", "l001"]
    make = IdMaker()
    ids = [make(text) for text in nasty]
    assert all(NCNAME.match(i) for i in ids), ids
    assert len(set(ids)) == len(ids)


def _layout(tmp_path) -> tuple[PageLayout, list[LayoutLine]]:
    image = tmp_path / "scans" / "0001 (copy).png"
    image.parent.mkdir()
    Image.fromarray(np.full((300, 400), 230, np.uint8)).save(image)
    lines = [LayoutLine("0001 (copy)_l001", [[-0.4, 10], [380, 10], [380, 60], [-0.4, 60]], [[0, 50], [380, 52]],
                        "Première ligne, 1802",
                        words=[Word("Première", (0, 10, 150, 60), 0.9, [0.9] * 8),
                               Word("ligne,", (160, 10, 260, 60), 0.25, [0.5, 0.1, 1.0, 0.0, 0.3, 0.99]),
                               Word("1802", (270, 10, 380, 60), 1.0, [1.0] * 4)], confidence=0.7),
             LayoutLine("0001 (copy)_l001", [[10, 80], [380, 80], [380, 130], [10, 130]], [], ""),
             LayoutLine("2", [[10.6, 180.2], [300, 180], [300, 230], [10, 230]], [[10, 220], [300, 221]], "in margin")]
    regions = [Region("0001 (copy)_r1", lines[:2]), Region("r 2", lines[2:], [[5, 170], [320, 170], [320, 240], [5, 240]])]
    out = tmp_path / "out"
    page = PageLayout(image.name, 400, 300, regions, image_path=relative_image(image, out),
                      steps=[Step("line segmentation", {"work_height": "850"}), Step("text recognition", {"model": "m"})])
    return page, lines


@pytest.mark.parametrize("fmt", ["alto", "page"])
def test_written_file_is_valid_and_reads_back(tmp_path, fmt):
    page, lines = _layout(tmp_path)
    path = tmp_path / "out" / "0001 (copy).xml"
    path.parent.mkdir()
    path.write_bytes(layout_bytes(page, fmt))
    root = check(path, fmt)
    assert _image_name(root, fmt) == "0001 (copy).png"
    assert all(NCNAME.match(value) for value in _ids(root))
    spec = next(READ[fmt](path, SkipLog(stream=None)))
    assert spec.image.resolve() == (tmp_path / "scans" / "0001 (copy).png").resolve()
    assert [line.text for line in spec.lines] == [line.text for line in lines]
    clip = 0 if fmt == "page" else -1e9  # PAGE points are non-negative
    for read, written in zip(spec.lines, lines):
        assert read.polygon == [[max(clip, round(x)), max(clip, round(y))] for x, y in written.polygon]
        assert read.baseline == [[round(x), round(y)] for x, y in written.baseline]


def _image_name(root: etree._Element, fmt: str) -> str:
    if fmt == "alto":
        return root.findtext("{*}Description/{*}sourceImageInformation/{*}fileName")
    return root.find("{*}Page").get("imageFilename")


def _ids(root: etree._Element) -> list[str]:
    return [e.get(key) for e in root.iter() for key in ("ID", "id") if e.get(key) is not None]


def test_alto_has_words_confidences_processing_and_block_order(tmp_path):
    page, _ = _layout(tmp_path)
    root = check(layout_bytes(page, "alto"), "alto")
    first = root.find(".//{*}TextLine")
    strings = first.findall("{*}String")
    assert [s.get("CONTENT") for s in strings] == ["Première", "ligne,", "1802"]
    assert len(first.findall("{*}SP")) == 2
    assert strings[1].get("WC") == "0.250" and strings[1].get("CC") == "4 8 0 9 6 0"
    assert strings[0].get("HPOS") == "0" and strings[0].get("WIDTH") == "150"
    blocks = root.findall(".//{*}TextBlock")
    assert blocks[0].get("IDNEXT") == blocks[1].get("ID") and blocks[1].get("IDNEXT") is None
    steps = root.findall("{*}Description/{*}Processing")
    assert [s.findtext("{*}processingStepDescription") for s in steps] == ["line segmentation", "text recognition"]
    assert steps[0].findtext("{*}processingSoftware/{*}softwareName") == "dropout-htr"
    assert steps[0].findtext("{*}processingSoftware/{*}softwareVersion")


def test_page_has_reading_order_regions_words_and_confidences(tmp_path):
    page, _ = _layout(tmp_path)
    root = check(layout_bytes(page, "page"), "page")
    regions = [r.get("id") for r in root.iter("{*}TextRegion")]
    refs = sorted(root.iter("{*}RegionRefIndexed"), key=lambda r: int(r.get("index")))
    assert [r.get("regionRef") for r in refs] == regions and len(regions) == 2
    line = next(root.iter("{*}TextLine"))
    assert [w.findtext("{*}TextEquiv/{*}Unicode") for w in line.findall("{*}Word")] == ["Première", "ligne,", "1802"]
    assert line.find("{*}TextEquiv").get("conf") == "0.700"
    items = root.findall("{*}Metadata/{*}MetadataItem[@type='processingStep']")
    assert [i.get("name") for i in items] == ["line segmentation", "text recognition"]
    assert root.findtext("{*}Metadata/{*}Creator").startswith("dropout-htr ")


@pytest.mark.parametrize("fmt", ["alto", "page"])
def test_schema_check_rejects_an_invalid_id_and_a_misplaced_element(tmp_path, fmt):
    page, _ = _layout(tmp_path)
    root = etree.fromstring(layout_bytes(page, fmt))
    line = next(root.iter("{*}TextLine"))
    line.set("ID" if fmt == "alto" else "id", "0001 (copy)_l001")
    with pytest.raises(AssertionError, match="not valid"):
        check(etree.tostring(root), fmt)
    root = etree.fromstring(layout_bytes(page, fmt))
    line = next(root.iter("{*}TextLine"))
    line.append(line[0])  # the polygon (ALTO Shape, PAGE Coords) moved to the end
    with pytest.raises(AssertionError, match="not valid"):
        check(etree.tostring(root), fmt)


@pytest.mark.parametrize("fmt", ["alto", "page"])
def test_segment_writes_either_format_read_back_with_its_lines(tmp_path, fmt):
    truth = make_page(tmp_path / "scans" / "0001 (copy).png", 3, seed=2)
    out = tmp_path / "seg"
    assert segment.main([str(truth.path), "--out", str(out), "--format", fmt]) == 0
    root = check(out / "0001 (copy).xml", fmt)
    assert _image_name(root, fmt) == "0001 (copy).png"
    result = segment.segment_page(truth.path, SegmentConfig())
    spec = next(READ[fmt](out / "0001 (copy).xml", SkipLog(stream=None)))
    assert spec.image.resolve() == truth.path.resolve()
    assert len(spec.lines) == len(result.lines) == 3
    for read, line in zip(spec.lines, result.lines):
        assert read.polygon == [[round(x), round(y)] for x, y in line.polygon]
        assert read.text == ""


@pytest.mark.parametrize("fmt", ["alto", "page"])
def test_regions_of_a_two_column_page_are_written_in_reading_order_and_read_back(tmp_path, fmt):
    from test_segment_regions import make_columns
    truth = make_columns(tmp_path / "scans" / "two.png", lines=6, note="right", seed=1)
    out = tmp_path / "seg"
    assert segment.main([str(truth.path), "--out", str(out), "--format", fmt]) == 0
    root = check(out / "two.xml", fmt)
    result = segment.segment_page(truth.path, SegmentConfig())
    assert [region.margin for region in result.regions] == [False, False, True]
    region_tag, line_id = ("TextBlock", "ID") if fmt == "alto" else ("TextRegion", "id")
    written = list(root.iter(f"{{*}}{region_tag}"))
    assert [len(region.findall("{*}TextLine")) for region in written] == [len(r.lines) for r in result.regions]
    if fmt == "page":  # the ReadingOrder lists the regions as they are written
        refs = sorted(root.iter("{*}RegionRefIndexed"), key=lambda r: int(r.get("index")))
        assert [r.get("regionRef") for r in refs] == [region.get("id") for region in written]
        assert all(len(region.find("{*}Coords").get("points").split()) >= 3 for region in written)
    else:  # ALTO: the blocks in reading order, each with its polygon, IDNEXT to the next
        assert [b.get("IDNEXT") for b in written] == [b.get("ID") for b in written[1:]] + [None]
        assert all(b.find("{*}Shape/{*}Polygon") is not None for b in written)
    assert [line.get(line_id) for line in root.iter("{*}TextLine")] == [f"l{n:03d}" for n in range(1, 16)]
    spec = next(READ[fmt](out / "two.xml", SkipLog(stream=None)))
    assert [read.polygon for read in spec.lines] == [[[round(x), round(y)] for x, y in line.polygon] for line in result.lines]


@pytest.mark.parametrize("fmt", ["alto", "page"])
def test_a_page_of_regions_with_text_reads_back_with_the_same_lines_and_text(tmp_path, fmt):
    from test_segment_regions import make_columns
    truth = make_columns(tmp_path / "two.png", lines=4, note="left", seed=2)
    result = segment.segment_page(truth.path, SegmentConfig())
    page = segment.page_layout(result, tmp_path, SegmentConfig())
    for number, line in enumerate(page.lines, start=1):
        line.text = f"line {number} of region {next(r.id for r in page.regions if line in r.lines)}"
    path = tmp_path / f"two.{fmt}.xml"
    path.write_bytes(layout_bytes(page, fmt))
    check(path, fmt)
    spec = next(READ[fmt](path, SkipLog(stream=None)))
    assert [(read.text, read.polygon) for read in spec.lines] == \
        [(line.text, [[round(x), round(y)] for x, y in line.polygon]) for line in page.lines]
    assert len(page.regions) == 3 and page.lines[-1].text.endswith("region r3")


@pytest.mark.parametrize("fmt", ["alto", "page"])
def test_a_margin_note_region_is_typed_and_the_file_stays_valid(tmp_path, fmt):
    """PAGE ``TextRegion@type="marginalia"``; ALTO a block-type ``OtherTag`` (as eScriptorium
    exports it) referenced by the block's ``TAGREFS``; the lines and text read back unchanged."""
    page, lines = _layout(tmp_path)
    page.regions[1].type = MARGINALIA
    page.regions.append(Region("r3", [LayoutLine("l9", [[10, 250], [90, 250], [90, 290], [10, 290]], [], "note")],
                               type=MARGINALIA))
    path = tmp_path / "out" / f"typed.{fmt}.xml"
    path.parent.mkdir()
    path.write_bytes(layout_bytes(page, fmt))
    root = check(path, fmt)
    if fmt == "page":
        assert [r.get("type") for r in root.iter("{*}TextRegion")] == [None, "marginalia", "marginalia"]
    else:
        tags = root.findall("{*}Tags/{*}OtherTag")  # one tag per type, however many regions have it
        assert [(t.get("LABEL"), t.get("DESCRIPTION")) for t in tags] == [("MarginTextZone", "block type MarginTextZone")]
        assert [b.get("TAGREFS") for b in root.iter("{*}TextBlock")] == [None, tags[0].get("ID"), tags[0].get("ID")]
        assert root.index(root.find("{*}Tags")) == 1  # between Description and Layout
        misplaced = etree.fromstring(layout_bytes(page, fmt))
        misplaced.append(misplaced.find("{*}Tags"))  # after Layout: not where ALTO 4.2 has it
        with pytest.raises(AssertionError, match="not valid"):
            check(etree.tostring(misplaced), fmt)
    spec = next(READ[fmt](path, SkipLog(stream=None)))
    assert [line.text for line in spec.lines] == [line.text for line in lines] + ["note"]
    (tmp_path / "again").mkdir()
    untyped = layout_bytes(_layout(tmp_path / "again")[0], fmt)  # no typed region: no Tags, no type
    assert b"Tags" not in untyped and b"type=\"marginalia\"" not in untyped
