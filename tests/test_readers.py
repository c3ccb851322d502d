"""Readers (ALTO v2/v3/v4, PAGE 2013/2019, IAM, Rimes, folder) and their line crops.

Each fixture is written by the test: a small page image (dark blocks on light
paper, see conftest.draw_page) and the layout file as a string with the real
namespaces of its format.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from conftest import INK, PAPER
from data_prep.readers import read_alto, read_folder, read_iam, read_pagexml, read_rimes
from data_prep.readers.base import LineImageSpec, PageSpec
from common.skips import SkipLog

ALTO_NS = {2: "http://www.loc.gov/standards/alto/ns-v2#",
           3: "http://www.loc.gov/standards/alto/ns-v3#",
           4: "http://www.loc.gov/standards/alto/ns-v4#"}
PAGE_NS = {2013: "http://schema.primaresearch.org/PAGE/gts/pagecontent/2013-07-15",
           2019: "http://schema.primaresearch.org/PAGE/gts/pagecontent/2019-07-15"}


def alto_xml(version: int, lines: str, image: str = "scan.png", unit: str = "pixel") -> str:
    return f"""<?xml version="1.0" encoding="UTF-8"?>
<alto xmlns="{ALTO_NS[version]}" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance">
  <Description>
    <MeasurementUnit>{unit}</MeasurementUnit>
    <sourceImageInformation><fileName>{image}</fileName></sourceImageInformation>
  </Description>
  <Layout>
    <Page ID="p1" WIDTH="240" HEIGHT="160" PHYSICAL_IMG_NR="1">
      <PrintSpace HPOS="0" VPOS="0" WIDTH="240" HEIGHT="160">
        <TextBlock ID="b1" HPOS="0" VPOS="0" WIDTH="240" HEIGHT="160">
{lines}
        </TextBlock>
      </PrintSpace>
    </Page>
  </Layout>
</alto>
"""


def page_xml(year: int, body: str, image: str = "scan.png", reading_order: str = "") -> str:
    return f"""<?xml version="1.0" encoding="UTF-8"?>
<PcGts xmlns="{PAGE_NS[year]}">
  <Metadata><Creator>test</Creator><Created>2024-01-01T00:00:00</Created><LastChange>2024-01-01T00:00:00</LastChange></Metadata>
  <Page imageFilename="{image}" imageWidth="240" imageHeight="160">
    {reading_order}
{body}
  </Page>
</PcGts>
"""


def read_all(reader, path: Path) -> tuple[list, SkipLog]:
    log = SkipLog(stream=None)
    return list(reader(path, log)), log


def one_page(reader, path: Path) -> PageSpec:
    specs, log = read_all(reader, path)
    assert log.summary()["lines_skipped"] == 0 and log.summary()["files_skipped"] == 0, log.messages
    assert len(specs) == 1 and isinstance(specs[0], PageSpec)
    return specs[0]


# ---------------------------------------------------------------- ALTO

def test_alto_v2_box_lines_single_number_baseline_and_hyphenation(tmp_path, page_image):
    page_image(tmp_path / "scan.png")
    lines = """
          <TextLine ID="tl_1" HPOS="10" VPOS="20" WIDTH="100" HEIGHT="30" BASELINE="45">
            <String CONTENT="Hello" HPOS="10" VPOS="20" WIDTH="40" HEIGHT="30"/><SP/>
            <String CONTENT="wor" HPOS="60" VPOS="20" WIDTH="40" HEIGHT="30"/><HYP CONTENT="-"/>
          </TextLine>
          <TextLine ID="tl_2" HPOS="10" VPOS="60" WIDTH="120" HEIGHT="25">
            <String CONTENT="  two   words "/>
          </TextLine>"""
    (tmp_path / "doc.xml").write_text(alto_xml(2, lines))
    page = one_page(read_alto, tmp_path / "doc.xml")
    assert page.image == tmp_path / "scan.png"
    assert [line.id for line in page.lines] == ["doc_tl_1", "doc_tl_2"]
    assert [line.text for line in page.lines] == ["Hello wor-", "two words"]
    assert page.lines[0].polygon == [[10, 20], [110, 20], [110, 50], [10, 50]]
    assert page.lines[0].baseline == [[10, 45], [110, 45]]  # a horizontal line across the box
    assert page.lines[1].baseline == []


def test_alto_v3_space_separated_shape_polygon(tmp_path, page_image):
    page_image(tmp_path / "scan.png")
    lines = """
          <TextLine ID="a" HPOS="10" VPOS="20" WIDTH="100" HEIGHT="30" BASELINE="44">
            <Shape><Polygon POINTS="10 25 110 20 110 50 10 48"/></Shape>
            <String CONTENT="slanted"/>
          </TextLine>"""
    (tmp_path / "doc.xml").write_text(alto_xml(3, lines))
    line = one_page(read_alto, tmp_path / "doc.xml").lines[0]
    assert line.polygon == [[10, 25], [110, 20], [110, 50], [10, 48]]
    assert line.baseline == [[10, 44], [110, 44]]
    assert line.text == "slanted"


def test_alto_v4_comma_points_polyline_baseline_and_box_fallback(tmp_path, page_image):
    page_image(tmp_path / "scan.png")
    lines = """
          <TextLine ID="eSc_line_1" HPOS="10" VPOS="20" WIDTH="100" HEIGHT="30" BASELINE="10,45 60,47 110,44">
            <Shape><Polygon POINTS="10,20 110,20 110,50 10,50 5,35"/></Shape>
            <String CONTENT="Première ligne"/>
          </TextLine>
          <TextLine ID="eSc_line_2" HPOS="12" VPOS="70" WIDTH="90" HEIGHT="20" BASELINE="12 85 102 86">
            <Shape><Polygon POINTS=""/></Shape>
            <String CONTENT="boîte"/>
          </TextLine>"""
    (tmp_path / "doc.xml").write_text(alto_xml(4, lines))
    first, second = one_page(read_alto, tmp_path / "doc.xml").lines
    assert first.polygon == [[10, 20], [110, 20], [110, 50], [10, 50], [5, 35]]
    assert first.baseline == [[10, 45], [60, 47], [110, 44]]
    assert first.text == "Première ligne"
    assert second.polygon == [[12, 70], [102, 70], [102, 90], [12, 90]]  # empty Shape: the box
    assert second.baseline == [[12, 85], [102, 86]]


def test_alto_folder_finds_images_by_declared_name_or_stem(tmp_path, page_image):
    page_image(tmp_path / "images" / "declared.png")
    page_image(tmp_path / "pages" / "by_stem.jpg")
    line = '<TextLine ID="l" HPOS="1" VPOS="1" WIDTH="20" HEIGHT="10"><String CONTENT="x"/></TextLine>'
    (tmp_path / "pages").mkdir(exist_ok=True)
    (tmp_path / "pages" / "a.xml").write_text(alto_xml(4, line, image="../images/declared.png"))
    (tmp_path / "pages" / "by_stem.xml").write_text(alto_xml(4, line, image="C:\\export\\gone.png"))
    (tmp_path / "pages" / "lost.xml").write_text(alto_xml(4, line, image="nowhere.png"))
    specs, _ = read_all(read_alto, tmp_path / "pages")
    images = {spec.source.name: spec.image for spec in specs}
    assert images["a.xml"].resolve() == (tmp_path / "images" / "declared.png").resolve()
    assert images["by_stem.xml"] == tmp_path / "pages" / "by_stem.jpg"
    assert images["lost.xml"] is None  # prepare turns this into a counted "missing image"


def test_alto_duplicate_and_missing_line_ids_stay_unique(tmp_path, page_image):
    page_image(tmp_path / "scan.png")
    lines = "\n".join(f'<TextLine {ident} HPOS="1" VPOS="{10 * n + 1}" WIDTH="20" HEIGHT="8"><String CONTENT="t{n}"/></TextLine>'
                      for n, ident in enumerate(['ID="x"', 'ID="x"', '']))
    (tmp_path / "doc.xml").write_text(alto_xml(4, lines))
    ids = [line.id for line in one_page(read_alto, tmp_path / "doc.xml").lines]
    assert len(set(ids)) == 3 and ids[0] == "doc_x"


def test_alto_in_millimetres_is_a_counted_file_skip(tmp_path, page_image):
    page_image(tmp_path / "scan.png")
    line = '<TextLine ID="l" HPOS="1" VPOS="1" WIDTH="20" HEIGHT="10"><String CONTENT="x"/></TextLine>'
    (tmp_path / "doc.xml").write_text(alto_xml(2, line, unit="mm10"))
    specs, log = read_all(read_alto, tmp_path / "doc.xml")
    assert specs == []
    assert log.summary()["file_skip_reasons"] == {"unsupported measurement unit": 1}
    assert "doc.xml" in log.messages[0]


# ---------------------------------------------------------------- PAGE XML

@pytest.mark.parametrize("year", [2013, 2019])
def test_page_xml_reading_order_baselines_and_word_fallback(tmp_path, page_image, year):
    page_image(tmp_path / "scan.png")
    order = """<ReadingOrder><OrderedGroup id="ro1">
      <RegionRefIndexed index="1" regionRef="r_first_in_file"/>
      <RegionRefIndexed index="0" regionRef="r_second_in_file"/>
    </OrderedGroup></ReadingOrder>"""
    body = """
    <TextRegion id="r_first_in_file"><Coords points="0,80 240,80 240,160 0,160"/>
      <TextLine id="line_c"><Coords points="10,90 200,90 200,120 10,120"/>
        <Baseline points="10,115 200,117"/>
        <Word id="w1"><Coords points="10,90 60,90 60,120 10,120"/><TextEquiv><Unicode>from</Unicode></TextEquiv></Word>
        <Word id="w2"><Coords points="70,90 120,90 120,120 70,120"/><TextEquiv><Unicode>words</Unicode></TextEquiv></Word>
      </TextLine>
      <TextEquiv><Unicode>region text is not line text</Unicode></TextEquiv>
    </TextRegion>
    <TextRegion id="r_second_in_file"><Coords points="0,0 240,0 240,80 0,80"/>
      <TextLine id="line_a"><Coords points="10,10 200,12 200,40 10,38"/><Baseline points="10,35 105,36 200,37"/>
        <TextEquiv index="2"><Unicode>alternative</Unicode></TextEquiv>
        <TextEquiv index="1"><Unicode>first line</Unicode></TextEquiv>
      </TextLine>
      <TextLine id="line_b"><Coords points="10,45 200,45 200,75 10,75"/>
        <Word id="w3"><TextEquiv><Unicode>ignored</Unicode></TextEquiv></Word>
        <TextEquiv><Unicode>second line</Unicode></TextEquiv>
      </TextLine>
    </TextRegion>"""
    (tmp_path / "doc.xml").write_text(page_xml(year, body, reading_order=order))
    page = one_page(read_pagexml, tmp_path / "doc.xml")
    assert page.image == tmp_path / "scan.png"
    assert [line.id for line in page.lines] == ["doc_line_a", "doc_line_b", "doc_line_c"]
    assert [line.text for line in page.lines] == ["first line", "second line", "from words"]
    assert page.lines[0].polygon == [[10, 10], [200, 12], [200, 40], [10, 38]]
    assert page.lines[0].baseline == [[10, 35], [105, 36], [200, 37]]
    assert page.lines[1].baseline == []


def test_page_xml_without_reading_order_keeps_document_order(tmp_path, page_image):
    page_image(tmp_path / "scan.png")
    body = "\n".join(f"""<TextRegion id="r{n}"><TextLine id="l{n}"><Coords points="10,{10 + 30 * n} 100,{10 + 30 * n} 100,{30 + 30 * n} 10,{30 + 30 * n}"/>
      <TextEquiv><Unicode>line {n}</Unicode></TextEquiv></TextLine></TextRegion>""" for n in range(3))
    (tmp_path / "doc.xml").write_text(page_xml(2019, body))
    assert [line.text for line in one_page(read_pagexml, tmp_path / "doc.xml").lines] == ["line 0", "line 1", "line 2"]


def test_page_reader_rejects_an_alto_file_with_a_counted_skip(tmp_path, page_image):
    page_image(tmp_path / "scan.png")
    (tmp_path / "alto.xml").write_text(alto_xml(4, ""))
    specs, log = read_all(read_pagexml, tmp_path / "alto.xml")
    assert specs == [] and log.summary()["files_skipped"] == 1 and "alto.xml" in log.messages[0]


# ---------------------------------------------------------------- IAM

IAM_FORM = """<?xml version="1.0" encoding="ISO-8859-1"?>
<form created="true" height="160" id="a01-000u" prompter-id="1" width="240" writer-id="000">
<machine-printed-part><machine-print-line text="A MOVE to stop Mr. Gaitskell"/></machine-printed-part>
<handwritten-part>
<line asc="10" dsc="40" id="a01-000u-00" segmentation="ok" text="A MOVE to stop">
  <word id="a01-000u-00-00" tag="AT0" text="A"><cmp height="20" width="10" x="12" y="22"/></word>
  <word id="a01-000u-00-01" tag="NN1" text="MOVE"><cmp height="18" width="30" x="30" y="20"/><cmp height="25" width="20" x="62" y="21"/></word>
  <word id="a01-000u-00-02" tag="TO0" text="to"><cmp height="15" width="14" x="90" y="28"/></word>
</line>
<line asc="10" dsc="40" id="a01-000u-01" segmentation="ok" text="Mr. &amp; Mrs.">
  <word id="a01-000u-01-00" tag="NP0" text="Mr."><cmp height="20" width="40" x="15" y="70"/></word>
</line>
</handwritten-part>
</form>
"""


def test_iam_lines_txt_with_line_images_and_writers(tmp_path, page_image):
    (tmp_path / "ascii").mkdir()
    (tmp_path / "ascii" / "lines.txt").write_text(
        "#--- lines.txt ---\n#\n"
        "a01-000u-00 ok 154 19 408 746 1661 89 A|MOVE|to|stop|Mr.|Gaitskell\n"
        "a01-000u-01 err 156 19 395 932 1850 105 nominating|any|more|Labour\n"
        "b02-010-03 ok 176 3 375 1035 1764 93 &quot;Yes|,&quot;|he|said\n")
    for line_id in ("a01-000u-00", "a01-000u-01", "b02-010-03"):
        writer, form = line_id.split("-")[0], "-".join(line_id.split("-")[:2])
        page_image(tmp_path / "lines" / writer / form / f"{line_id}.png", 120, 30, ((5, 5, 100, 25),))
    (tmp_path / "xml").mkdir()
    (tmp_path / "xml" / "a01-000u.xml").write_text(IAM_FORM, encoding="iso-8859-1")
    specs, log = read_all(read_iam, tmp_path)
    assert log.messages == []
    assert all(isinstance(spec, LineImageSpec) for spec in specs)
    assert [spec.id for spec in specs] == ["a01-000u-00", "a01-000u-01", "b02-010-03"]
    assert [spec.text for spec in specs] == ["A MOVE to stop Mr. Gaitskell", "nominating any more Labour",
                                             '"Yes ," he said']
    assert specs[0].image == tmp_path / "lines" / "a01" / "a01-000u" / "a01-000u-00.png"
    assert [spec.writer for spec in specs] == ["000", "000", None]  # b02-010 has no form XML


def test_iam_forms_xml_gives_page_level_line_boxes(tmp_path, page_image):
    (tmp_path / "xml").mkdir()
    (tmp_path / "xml" / "a01-000u.xml").write_text(IAM_FORM, encoding="iso-8859-1")
    page_image(tmp_path / "formsA-D" / "a01-000u.png")
    page = one_page(read_iam, tmp_path)
    assert page.image == tmp_path / "formsA-D" / "a01-000u.png"
    assert page.writer == "000"
    assert [line.id for line in page.lines] == ["a01-000u-00", "a01-000u-01"]
    assert [line.text for line in page.lines] == ["A MOVE to stop", "Mr. & Mrs."]
    # the union of the word components: x 12..104, y 20..46
    assert page.lines[0].polygon == [[12, 20], [104, 20], [104, 46], [12, 46]]


def test_iam_without_lines_txt_or_xml_says_what_is_missing(tmp_path):
    with pytest.raises(FileNotFoundError, match="lines.txt"):
        read_all(read_iam, tmp_path)


# ---------------------------------------------------------------- Rimes

RIMES_XML = """<?xml version="1.0" encoding="utf-8"?>
<DocumentList>
  <SinglePage FileName="images/train2011-1.png">
    <Paragraph Left="5" Top="5" Right="230" Bottom="150">
      <Line Left="10" Top="20" Right="200" Bottom="50" Value="Madame, Monsieur,"/>
      <Line Left="10" Top="60" Right="180" Bottom="95" Value="Je vous prie   d'agréer"/>
    </Paragraph>
  </SinglePage>
  <SinglePage FileName="images/train2011-2.png">
    <Paragraph><Line Left="12" Top="30" Right="150" Bottom="60" Value="Cordialement"/></Paragraph>
  </SinglePage>
</DocumentList>
"""


def test_rimes_line_xml(tmp_path, page_image):
    page_image(tmp_path / "images" / "train2011-1.png")
    page_image(tmp_path / "images" / "train2011-2.png")
    (tmp_path / "training_2011.xml").write_text(RIMES_XML, encoding="utf-8")
    specs, log = read_all(read_rimes, tmp_path / "training_2011.xml")
    assert log.messages == []
    assert [spec.image for spec in specs] == [tmp_path / "images" / "train2011-1.png",
                                              tmp_path / "images" / "train2011-2.png"]
    lines = [line for spec in specs for line in spec.lines]
    assert [line.id for line in lines] == ["train2011-1_l000", "train2011-1_l001", "train2011-2_l000"]
    assert [line.text for line in lines] == ["Madame, Monsieur,", "Je vous prie d'agréer", "Cordialement"]
    assert lines[0].polygon == [[10, 20], [200, 20], [200, 50], [10, 50]]


# ---------------------------------------------------------------- folder

def test_folder_of_line_images_and_gt_txt(tmp_path, page_image):
    page_image(tmp_path / "b.png", 80, 20)
    (tmp_path / "b.gt.txt").write_text("second line\n")
    page_image(tmp_path / "sub" / "a.png", 80, 20)
    (tmp_path / "sub" / "a.gt.txt").write_text("  first\tline \n", encoding="utf-8-sig")  # with a BOM, as Notepad writes
    specs, log = read_all(read_folder, tmp_path)
    assert log.messages == []
    assert {spec.id: spec.text for spec in specs} == {"b": "second line", "sub_a": "first line"}
    assert {spec.id: spec.image for spec in specs}["sub_a"] == tmp_path / "sub" / "a.png"


# ---------------------------------------------------------------- crops through htr prepare

def test_prepare_alto_crops_the_polygon_and_masks_outside_it(tmp_path, page_image, run_prepare):
    page = page_image(tmp_path / "src" / "scan.png", 240, 160, ((10, 20, 200, 60), (10, 80, 200, 120)))
    # a parallelogram over the first block: its bounding box corners hold ink on the page
    lines = """
          <TextLine ID="l1" HPOS="10" VPOS="20" WIDTH="190" HEIGHT="40" BASELINE="10,55 200,55">
            <Shape><Polygon POINTS="40,20 200,20 170,60 10,60"/></Shape><String CONTENT="one"/>
          </TextLine>
          <TextLine ID="l2" HPOS="10" VPOS="80" WIDTH="190" HEIGHT="40">
            <String CONTENT="two"/>
          </TextLine>"""
    (tmp_path / "src" / "scan.xml").write_text(alto_xml(4, lines))
    run = run_prepare(f"alto:{tmp_path / 'src'}", tmp_path / "out", "--split", "dev")
    assert run.rc == 0
    assert run.summary["lines_loaded"] == 2 and run.summary["pages"] == 1 and run.summary["lines_skipped"] == 0
    assert "loaded 2 lines from 1 pages" in run.stdout
    records = run.by_id()
    assert set(records) == {"scan_l1", "scan_l2"}
    first = records["scan_l1"]
    assert first.image == "lines/scan_l1.png" and (run.out / first.image).is_file()
    assert first.polygon == [[40, 20], [200, 20], [170, 60], [10, 60]]
    assert first.baseline == [[10, 55], [200, 55]]
    assert Path(first.page) == (tmp_path / "src" / "scan.png").resolve()
    assert first.split == "dev" and first.text == "one"
    crop = run.crop("scan_l1")
    assert crop.shape == (41, 191)  # the polygon's bounding box, border included
    assert page[20, 10] == INK and crop[0, 0] == PAPER  # outside the polygon: background
    assert page[22, 190] == INK and crop[2, 180] == INK  # inside it: the page pixel
    assert page[59, 196] == INK and crop[39, 186] == PAPER
    assert (crop == page[20:61, 10:201]).sum() < crop.size  # masking changed something
    assert (run.crop("scan_l2") == page[80:121, 10:201]).all()  # a box line is the plain box


def test_prepare_page_xml_and_writer_pattern(tmp_path, page_image, run_prepare):
    page = page_image(tmp_path / "src" / "hand_w12_p3.png", 240, 160, ((10, 20, 200, 60),))
    body = """<TextRegion id="r"><TextLine id="tl"><Coords points="10,20 200,20 200,60 10,60"/>
      <Baseline points="10,55 200,55"/><TextEquiv><Unicode>text</Unicode></TextEquiv></TextLine></TextRegion>"""
    (tmp_path / "src" / "hand_w12_p3.xml").write_text(page_xml(2013, body, image="hand_w12_p3.png"))
    run = run_prepare(f"page:{tmp_path / 'src'}", tmp_path / "out", "--writer-pattern", r"_w(\d+)_")
    assert run.rc == 0
    record = run.records[0]
    assert (record.id, record.text, record.writer) == ("hand_w12_p3_tl", "text", "12")
    assert (run.crop(record.id) == page[20:61, 10:201]).all()


def test_prepare_iam_forms_and_lines(tmp_path, page_image, run_prepare):
    forms = tmp_path / "forms_root"
    (forms / "xml").mkdir(parents=True)
    (forms / "xml" / "a01-000u.xml").write_text(IAM_FORM, encoding="iso-8859-1")
    page = page_image(forms / "forms" / "a01-000u.png", 240, 160, ((12, 20, 104, 46),))
    run = run_prepare(f"iam:{forms}", tmp_path / "out_forms")
    assert run.rc == 0 and run.summary["lines_loaded"] == 2
    assert run.by_id()["a01-000u-00"].writer == "000"
    assert (run.crop("a01-000u-00") == page[20:47, 12:105]).all()

    lines_root = tmp_path / "lines_root"
    (lines_root / "lines.txt").parent.mkdir()
    (lines_root / "lines.txt").write_text("a01-000u-00 ok 154 19 408 746 1661 89 A|MOVE|to|stop\n")
    line_image = page_image(lines_root / "lines" / "a01" / "a01-000u" / "a01-000u-00.png", 90, 24, ((3, 3, 80, 20),))
    run = run_prepare(f"iam:{lines_root}", tmp_path / "out_lines")
    assert run.rc == 0
    record = run.records[0]
    assert (record.id, record.text, record.page) == ("a01-000u-00", "A MOVE to stop", "")
    assert record.polygon == [[0, 0], [90, 0], [90, 24], [0, 24]]
    assert (run.crop(record.id) == line_image).all()


def test_prepare_rimes_and_folder(tmp_path, page_image, run_prepare):
    page_image(tmp_path / "rimes" / "images" / "train2011-1.png", 240, 160, ((10, 20, 200, 50),))
    page_image(tmp_path / "rimes" / "images" / "train2011-2.png")
    (tmp_path / "rimes" / "lines.xml").write_text(RIMES_XML, encoding="utf-8")
    run = run_prepare(f"rimes:{tmp_path / 'rimes' / 'lines.xml'}", tmp_path / "out_rimes")
    assert run.rc == 0 and [r.id for r in run.records] == ["train2011-1_l000", "train2011-1_l001", "train2011-2_l000"]
    assert run.crop("train2011-1_l000").shape == (31, 191)

    rgb = Image.new("RGB", (60, 16), (250, 240, 230))
    (tmp_path / "folder").mkdir()
    rgb.save(tmp_path / "folder" / "x.jpg")
    (tmp_path / "folder" / "x.gt.txt").write_text("colour image")
    run = run_prepare(f"folder:{tmp_path / 'folder'}", tmp_path / "out_folder")
    assert run.rc == 0 and run.records[0].text == "colour image"
    crop = run.crop("x")
    assert crop.shape == (16, 60) and crop.dtype == np.uint8  # converted to grayscale


# ---------------------------------------------------------------- real data (../shared)

COPISTE_DEV = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "copiste" / "dev"


@pytest.mark.shared
@pytest.mark.skipif(not COPISTE_DEV.is_dir(), reason=f"{COPISTE_DEV} not available")
def test_prepare_loads_the_copiste_dev_split(tmp_path, run_prepare):
    run = run_prepare(f"alto:{COPISTE_DEV}", tmp_path / "copiste_dev", "--jobs", "2",
                      "--writer-pattern", r"wikitexte_(\d+)")
    assert run.rc == 0
    summary = run.summary
    assert summary["lines_loaded"] >= 600
    assert summary["files_skipped"] == 0 and summary["lines_skipped"] == 0, summary
    records = run.records
    assert len({r.id for r in records}) == len(records)
    assert all(r.text and r.writer and len(r.polygon) >= 3 for r in records)
    assert all((run.out / r.image).is_file() for r in records[:50])


def test_pages_with_the_same_name_in_different_folders_keep_their_own_lines(tmp_path, page_image, run_prepare):
    """Transkribus-style exports (doc1/0001.xml, doc2/0001.xml) must not share ids or crops."""
    pages = {}
    for doc, right in (("doc1", 200), ("doc2", 60)):
        pages[doc] = page_image(tmp_path / "src" / doc / "0001.png", 240, 160, ((10, 20, right, 50),))
        line = f'<TextLine ID="l1" HPOS="10" VPOS="20" WIDTH="190" HEIGHT="30"><String CONTENT="{doc}"/></TextLine>'
        (tmp_path / "src" / doc / "0001.xml").write_text(alto_xml(4, line, image="0001.png"))
    run = run_prepare(f"alto:{tmp_path / 'src'}", tmp_path / "out")
    records = run.records
    assert len({r.id for r in records}) == len({r.image for r in records}) == 2
    for record in records:
        assert Path(record.page).parent.name == record.text
        assert (run.crop(record.id) == pages[record.text][20:51, 10:201]).all()


def test_a_16_bit_page_is_scaled_not_clipped(tmp_path, run_prepare):
    src = tmp_path / "src"
    src.mkdir()
    page = np.full((160, 240), 230 * 257, dtype=np.uint16)  # light paper in 16-bit levels
    page[20:50, 10:200:6] = 20 * 257
    Image.fromarray(page).save(src / "scan.png")
    with Image.open(src / "scan.png") as check:
        assert check.mode.startswith("I;16")
    line = '<TextLine ID="l1" HPOS="10" VPOS="20" WIDTH="190" HEIGHT="30"><String CONTENT="x"/></TextLine>'
    (src / "scan.xml").write_text(alto_xml(4, line))
    run = run_prepare(f"alto:{src}", tmp_path / "out")
    crop = run.crop("scan_l1")
    assert abs(int(crop.max()) - 230) <= 1 and abs(int(crop.min()) - 20) <= 1
