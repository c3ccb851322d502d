"""Bad input never stops ``htr prepare`` (issue 2, item 6).

Each problem -- a missing image, an unreadable, corrupt or empty image, XML that
does not parse, a polygon outside the page, an empty transcription, a zero-area
line, a line image without its .gt.txt -- gives a message naming the file, a
counted skip in summary.json, and every other file still loads.
"""
from __future__ import annotations

import io
from pathlib import Path

import pytest
from PIL import Image

from test_readers import RIMES_XML, alto_xml, page_xml

GOOD_LINE = '<TextLine ID="ok" HPOS="10" VPOS="20" WIDTH="100" HEIGHT="30"><String CONTENT="good"/></TextLine>'


def _png_bytes(width: int = 120, height: int = 80) -> bytes:
    buffer = io.BytesIO()
    Image.new("L", (width, height), 200).save(buffer, format="PNG")
    return buffer.getvalue()


def _alto_line(ident: str, box: tuple[int, int, int, int], text: str, points: str = "") -> str:
    shape = f'<Shape><Polygon POINTS="{points}"/></Shape>' if points else ""
    left, top, width, height = box
    return (f'<TextLine ID="{ident}" HPOS="{left}" VPOS="{top}" WIDTH="{width}" HEIGHT="{height}">'
            f'{shape}<String CONTENT="{text}"/></TextLine>')


def _mixed_alto_folder(root: Path, page_image) -> None:
    """Two good pages (3 good lines) among every kind of bad page and bad line."""
    page_image(root / "good.png")
    (root / "good.xml").write_text(alto_xml(4, GOOD_LINE, image="good.png"))
    # a page whose lines are partly bad: 1 good, 4 bad lines
    page_image(root / "lines.png")
    (root / "lines.xml").write_text(alto_xml(4, "\n".join([
        _alto_line("fine", (10, 10, 100, 30), "fine line"),
        _alto_line("outside", (500, 500, 100, 30), "off the page"),
        _alto_line("empty", (10, 50, 100, 30), "   "),
        _alto_line("flat", (10, 90, 100, 0), "no height"),
        _alto_line("odd", (10, 90, 100, 20), "odd", points="10 90 110 90 110"),
        _alto_line("clipped", (200, 100, 100, 30), "half on the page"),
    ]), image="lines.png"))
    (root / "missing.xml").write_text(alto_xml(4, GOOD_LINE, image="missing.png"))
    (root / "corrupt.png").write_bytes(b"\x89PNG\r\n\x1a\n this is not an image at all")
    (root / "corrupt.xml").write_text(alto_xml(4, GOOD_LINE, image="corrupt.png"))
    (root / "truncated.png").write_bytes(_png_bytes()[:60])
    (root / "truncated.xml").write_text(alto_xml(4, GOOD_LINE, image="truncated.png"))
    (root / "zero.png").write_bytes(b"")
    (root / "zero.xml").write_text(alto_xml(4, GOOD_LINE, image="zero.png"))
    (root / "broken.xml").write_text(alto_xml(4, GOOD_LINE)[:-40])


EXPECTED_ALTO_SUMMARY = {
    "lines_loaded": 3,  # good_ok, lines_fine, lines_clipped
    "pages": 6,  # every ALTO file that parsed; broken.xml did not
    "lines_skipped": 8,
    "line_skip_reasons": {"empty transcription": 1, "missing image": 1, "polygon outside the page": 1,
                          "odd number of coordinates": 1, "unreadable image": 3, "zero-area line": 1},
    "files_skipped": 5,
    "file_skip_reasons": {"XML does not parse": 1, "missing image": 1, "unreadable image": 3},
}


def test_mixed_alto_folder_loads_the_good_and_counts_the_bad(tmp_path, page_image, run_prepare):
    _mixed_alto_folder(tmp_path / "src", page_image)
    run = run_prepare(f"alto:{tmp_path / 'src'}", tmp_path / "out")
    assert run.rc == 0
    summary = run.summary
    assert {key: summary[key] for key in EXPECTED_ALTO_SUMMARY} == EXPECTED_ALTO_SUMMARY
    assert sorted(r.id for r in run.records) == ["good_ok", "lines_clipped", "lines_fine"]
    assert sorted(p.name for p in (run.out / "lines").iterdir()) == [
        "good_ok.png", "lines_clipped.png", "lines_fine.png"]
    messages = run.stderr.splitlines()
    for name, reason in [("missing.xml", "missing image"), ("corrupt.png", "unreadable image"),
                         ("truncated.png", "unreadable image"), ("zero.png", "unreadable image"),
                         ("broken.xml", "XML does not parse"), ("lines.xml line lines_outside", "polygon outside the page"),
                         ("lines.xml line lines_empty", "empty transcription"), ("lines.xml line lines_flat", "zero-area line"),
                         ("lines.xml line odd", "odd number of coordinates")]:
        assert any(name in m and reason in m for m in messages), f"no message for {name}: {messages}"
    assert any("zero.png" in m and "0 bytes" in m for m in messages)
    assert "Traceback" not in run.stderr
    assert "skipped 8 lines" in run.stdout and "skipped 5 files" in run.stdout


def test_jobs_2_writes_the_same_manifest_and_summary_as_jobs_1(tmp_path, page_image, run_prepare):
    _mixed_alto_folder(tmp_path / "src", page_image)
    for n in range(6):  # enough pages that both workers get some
        page_image(tmp_path / "src" / f"more{n}.png", 240, 160, ((10, 20, 200, 50),))
        (tmp_path / "src" / f"more{n}.xml").write_text(alto_xml(4, GOOD_LINE, image=f"more{n}.png"))
    one = run_prepare(f"alto:{tmp_path / 'src'}", tmp_path / "jobs1", "--jobs", "1")
    two = run_prepare(f"alto:{tmp_path / 'src'}", tmp_path / "jobs2", "--jobs", "2")
    assert one.rc == two.rc == 0
    assert (one.out / "manifest.jsonl").read_bytes() == (two.out / "manifest.jsonl").read_bytes()
    assert len(one.records) == 9
    assert one.summary == two.summary
    for record in one.records:
        assert (one.out / record.image).read_bytes() == (two.out / record.image).read_bytes()


def test_mixed_line_folder(tmp_path, page_image, run_prepare):
    src = tmp_path / "src"
    page_image(src / "good.png", 80, 20)
    (src / "good.gt.txt").write_text("good line")
    page_image(src / "no_text.png", 80, 20)  # no no_text.gt.txt
    (src / "orphan.gt.txt").write_text("text without an image")
    (src / "corrupt.png").write_bytes(b"GIF89a but not really")
    (src / "corrupt.gt.txt").write_text("corrupt")
    (src / "zero.png").write_bytes(b"")
    (src / "zero.gt.txt").write_text("zero bytes")
    page_image(src / "blank.png", 80, 20)
    (src / "blank.gt.txt").write_text(" \n")
    page_image(src / "thin.png", 80, 1)
    (src / "thin.gt.txt").write_text("one pixel high")
    run = run_prepare(f"folder:{src}", tmp_path / "out")
    assert run.rc == 0
    assert [r.id for r in run.records] == ["good"]
    summary = run.summary
    assert summary["lines_loaded"] == 1
    assert summary["line_skip_reasons"] == {"empty transcription": 1, "missing image": 1,
                                            "missing transcription file": 1, "unreadable image": 2,
                                            "zero-area line": 1}
    for name in ("no_text.png", "orphan.gt.txt", "corrupt.png", "zero.png", "blank.png", "thin.png"):
        assert name in run.stderr
    assert "no_text.gt.txt" in run.stderr  # the message says which file it expected


# ---------------------------------------------------------------- focused cases

@pytest.mark.parametrize("kind, document", [
    ("alto", alto_xml(4, GOOD_LINE)),
    ("page", page_xml(2019, "<TextRegion id='r'>")),
    ("rimes", RIMES_XML.replace("</DocumentList>", "")),
])
def test_xml_that_does_not_parse_is_a_counted_file_skip(tmp_path, page_image, run_prepare, kind, document):
    src = tmp_path / "src"
    page_image(src / "scan.png")
    (src / "a_broken.xml").write_text(document[:-30] if kind == "alto" else document)
    run = run_prepare(f"{kind}:{src}", tmp_path / "out")
    assert run.summary["file_skip_reasons"] == {"XML does not parse": 1}
    assert "a_broken.xml" in run.stderr and "XML does not parse" in run.stderr
    assert "Traceback" not in run.stderr


def test_a_missing_page_image_names_the_xml(tmp_path, run_prepare):
    src = tmp_path / "src"
    src.mkdir()
    (src / "page1.xml").write_text(alto_xml(4, GOOD_LINE + GOOD_LINE.replace('"ok"', '"ok2"'), image="gone.png"))
    run = run_prepare(f"alto:{src}", tmp_path / "out")
    assert run.rc == 1  # nothing loaded and lines were lost
    assert run.summary["line_skip_reasons"] == {"missing image": 2}
    assert run.summary["file_skip_reasons"] == {"missing image": 1}
    assert "page1.xml" in run.stderr
    assert (tmp_path / "out" / "manifest.jsonl").read_text() == ""


def test_a_corrupt_page_image_names_the_image(tmp_path, run_prepare):
    src = tmp_path / "src"
    src.mkdir()
    (src / "scan.jpg").write_bytes(b"\xff\xd8\xff\xe0 truncated jpeg")
    (src / "scan.xml").write_text(alto_xml(4, GOOD_LINE, image="scan.jpg"))
    run = run_prepare(f"alto:{src}", tmp_path / "out")
    assert run.summary["file_skip_reasons"] == {"unreadable image": 1}
    assert "scan.jpg" in run.stderr and "Traceback" not in run.stderr


def test_line_problems_on_a_page_xml_page(tmp_path, page_image, run_prepare):
    src = tmp_path / "src"
    page_image(src / "scan.png")
    body = """<TextRegion id="r">
      <TextLine id="outside"><Coords points="300,200 400,200 400,260 300,260"/><TextEquiv><Unicode>x</Unicode></TextEquiv></TextLine>
      <TextLine id="empty"><Coords points="10,10 100,10 100,40 10,40"/><TextEquiv><Unicode></Unicode></TextEquiv></TextLine>
      <TextLine id="line"><Coords points="10,50 100,50"/><TextEquiv><Unicode>a line, not an area</Unicode></TextEquiv></TextLine>
      <TextLine id="nocoords"><TextEquiv><Unicode>no coordinates</Unicode></TextEquiv></TextLine>
      <TextLine id="good"><Coords points="10,80 100,80 100,110 10,110"/><TextEquiv><Unicode>kept</Unicode></TextEquiv></TextLine>
    </TextRegion>"""
    (src / "scan.xml").write_text(page_xml(2013, body))
    run = run_prepare(f"page:{src}", tmp_path / "out")
    assert run.rc == 0
    assert [r.text for r in run.records] == ["kept"]
    assert run.summary["line_skip_reasons"] == {"empty transcription": 1, "polygon outside the page": 1,
                                                "zero-area line": 1, "no coordinates": 1}
    for line_id in ("scan_outside", "scan_empty", "scan_line"):
        assert f"scan.xml line {line_id}" in run.stderr
    assert "scan.xml line nocoords: no coordinates" in run.stderr  # the reader's skip names the XML id


def test_iam_lines_with_a_missing_line_image(tmp_path, page_image, run_prepare):
    src = tmp_path / "iam"
    (src / "ascii").mkdir(parents=True)
    (src / "ascii" / "lines.txt").write_text("a01-000u-00 ok 154 19 408 746 1661 89 A|MOVE\n"
                                             "a01-000u-01 ok 154 19 408 746 1661 89 to|stop\n"
                                             "a01-000u-02 ok 154 19\n")
    page_image(src / "lines" / "a01" / "a01-000u" / "a01-000u-00.png", 60, 20)
    run = run_prepare(f"iam:{src}", tmp_path / "out")
    assert [r.id for r in run.records] == ["a01-000u-00"]
    assert run.summary["line_skip_reasons"] == {"missing image": 1, "unreadable coordinates": 1}
    assert "a01-000u-01.png" in run.stderr and "lines.txt:3" in run.stderr


def test_a_missing_source_or_unknown_kind_is_a_clear_error(tmp_path, run_prepare, capsys):
    run = run_prepare(f"alto:{tmp_path / 'nowhere'}", tmp_path / "out")
    assert run.rc == 2 and "nowhere" in run.stderr and "Traceback" not in run.stderr
    with pytest.raises(SystemExit) as error:
        run_prepare(f"hocr:{tmp_path}", tmp_path / "out")
    assert "unknown SOURCE" in str(error.value) and "alto:PATH" in str(error.value)


def test_nothing_loadable_exits_nonzero_with_a_message(tmp_path, run_prepare):
    source = tmp_path / "src"
    source.mkdir()
    (source / "broken.xml").write_text("<alto><Layout>")
    run = run_prepare(f"alto:{source}", tmp_path / "out")
    assert run.rc == 1 and "no line could be loaded" in run.stderr and "broken.xml" in run.stderr


def test_malformed_page_reading_order_index_keeps_document_order(tmp_path, page_image, run_prepare):
    page_image(tmp_path / "scan.png")
    region = ('<TextRegion id="{rid}"><Coords points="0,0 200,0 200,100 0,100"/>'
              '<TextLine id="{lid}"><Coords points="{pts}"/><TextEquiv><Unicode>{text}</Unicode></TextEquiv></TextLine></TextRegion>')
    body = (region.format(rid="r1", lid="a", pts="10,10 110,10 110,40 10,40", text="first")
            + region.format(rid="r2", lid="b", pts="10,50 110,50 110,80 10,80", text="second"))
    order = ('<ReadingOrder><OrderedGroup id="g"><RegionRefIndexed index="x" regionRef="r1"/>'
             '<RegionRefIndexed index="y" regionRef="r2"/></OrderedGroup></ReadingOrder>')
    (tmp_path / "scan.xml").write_text(page_xml(2019, body, reading_order=order))
    run = run_prepare(f"page:{tmp_path / 'scan.xml'}", tmp_path / "out")
    assert run.rc == 0 and [r.text for r in run.records] == ["first", "second"]


def test_iam_component_without_coordinates_is_a_counted_line_skip(tmp_path, page_image, run_prepare):
    root = tmp_path / "iam"
    (root / "xml").mkdir(parents=True)
    (root / "forms").mkdir()
    page_image(root / "forms" / "a01-000u.png")
    (root / "xml" / "a01-000u.xml").write_text(
        '<form id="a01-000u" writer-id="000"><handwritten-part>'
        '<line id="a01-000u-00" text="good"><word id="w0" text="good"><cmp x="10" y="10" width="50" height="20"/></word></line>'
        '<line id="a01-000u-01" text="bad"><word id="w1" text="bad"><cmp x="10" y="40" width="50"/></word></line>'
        '</handwritten-part></form>')
    run = run_prepare(f"iam:{root}", tmp_path / "out")
    assert run.rc == 0 and [r.text for r in run.records] == ["good"]
    assert run.summary["lines_skipped"] == 1 and "a01-000u-01" in run.stderr
