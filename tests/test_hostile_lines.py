"""Hostile line geometry and ids (issue 16, item 1): every degenerate line is a counted
skip with its own reason, never a silently wrong training pair, and an id that cannot be
a file name still loads under a safe, stable one.

Each case is a page of the kind that went wrong by hand: ``nan`` tokens that used to be
dropped and the rest re-paired, 1e12 corners clipped to a whole-page crop, a 1x1 px line
with a 40-character label, a 5,000-character ID that made ``htr prepare`` die with
"File name too long".
"""
from __future__ import annotations

import pytest

from data_prep.records import MAX_NAME, line_image_path
from test_readers import RIMES_XML, alto_xml, page_xml

GOOD = '<TextLine ID="good" HPOS="10" VPOS="10" WIDTH="120" HEIGHT="30"><String CONTENT="good line"/></TextLine>'


def _line(ident: str, text: str = "text", box: str = 'HPOS="10" VPOS="60" WIDTH="120" HEIGHT="30"',
          points: str | None = None) -> str:
    shape = f'<Shape><Polygon POINTS="{points}"/></Shape>' if points is not None else ""
    return f'<TextLine ID="{ident}" {box}>{shape}<String CONTENT="{text}"/></TextLine>'


def _alto_page(tmp_path, page_image, *lines: str):
    src = tmp_path / "src"
    page_image(src / "scan.png", 240, 160, ((10, 10, 130, 40), (10, 60, 130, 90)))
    (src / "scan.xml").write_text(alto_xml(4, "\n".join([GOOD, *lines])))
    return src


@pytest.mark.parametrize("line, reason", [
    # the nan tokens used to be dropped and the rest re-paired into a triangle
    (_line("nan", points="nan 300 500 nan 900 400 300 400"), "non-finite coordinate"),
    (_line("inf", points="10 60 inf 60 130 90 10 90"), "non-finite coordinate"),
    (_line("overflow", points="10 60 1e999 60 130 90 10 90"), "non-finite coordinate"),
    (_line("huge", points="0 0 1e12 0 1e12 1e12 0 1e12"), "coordinates far outside the page"),
    (_line("hugebox", box='HPOS="10" VPOS="60" WIDTH="1e12" HEIGHT="30"'), "coordinates far outside the page"),
    (_line("tiny", text="a forty character label on a 1x1 px line", box='HPOS="50" VPOS="50" WIDTH="1" HEIGHT="1"'),
     "line too small for its text"),
    (_line("narrow", text="x" * 40, box='HPOS="10" VPOS="60" WIDTH="30" HEIGHT="30"'), "line too small for its text"),
    (_line("nobox", box=""), "no coordinates"),
    (_line("word", points="10 60 130 sixty 130 90 10 90"), "unreadable coordinates"),
    (_line("negative", box='HPOS="130" VPOS="60" WIDTH="-120" HEIGHT="30"'), "unreadable coordinates"),
    (_line("odd", points="10 60 130 60 130"), "odd number of coordinates"),
    (_line("nanbaseline", box='HPOS="10" VPOS="60" WIDTH="120" HEIGHT="30" BASELINE="10 nan 130 85"'),
     "non-finite coordinate"),
])
def test_a_degenerate_alto_line_is_skipped_with_its_own_reason(tmp_path, page_image, run_prepare, line, reason):
    run = run_prepare(f"alto:{_alto_page(tmp_path, page_image, line)}", tmp_path / "out")
    assert run.rc == 0
    assert [r.id for r in run.records] == ["scan_good"]  # the good line of the page still loads
    assert run.summary["line_skip_reasons"] == {reason: 1}
    [message] = [m for m in run.stderr.splitlines() if m.startswith("skipped:")]
    assert "scan.xml line" in message and reason in message
    assert "Traceback" not in run.stderr and "NoneType" not in run.stderr


def test_a_line_without_coordinates_says_which_attributes_are_missing(tmp_path, page_image, run_prepare):
    run = run_prepare(f"alto:{_alto_page(tmp_path, page_image, _line('bare', box=''))}", tmp_path / "out")
    assert "no Shape/Polygon POINTS and no HPOS/VPOS/WIDTH/HEIGHT" in run.stderr


def test_a_line_half_off_the_page_is_still_clipped_and_kept(tmp_path, page_image, run_prepare):
    """Only coordinates beyond one page size from the edges are refused."""
    line = _line("edge", points="200 60 400 60 400 90 200 90")
    run = run_prepare(f"alto:{_alto_page(tmp_path, page_image, line)}", tmp_path / "out")
    assert sorted(run.by_id()) == ["scan_edge", "scan_good"]
    assert run.crop("scan_edge").shape == (31, 40)


def test_a_5000_character_id_loads_under_a_short_stable_file_name(tmp_path, page_image, run_prepare):
    long_id = "x" * 5000
    src = _alto_page(tmp_path, page_image, _line(long_id))
    page_image(src / "other.png")
    (src / "other.xml").write_text(alto_xml(4, GOOD, image="other.png"))
    run = run_prepare(f"alto:{src}", tmp_path / "out")
    assert run.rc == 0 and "Traceback" not in run.stderr
    records = run.by_id()
    assert sorted(records) == ["other_good", "scan_good", f"scan_{long_id}"]  # the id is kept whole
    name = records[f"scan_{long_id}"].image
    assert len(name) < MAX_NAME and (run.out / name).is_file()
    again = run_prepare(f"alto:{src}", tmp_path / "again")
    assert again.by_id()[f"scan_{long_id}"].image == name  # stable across runs


@pytest.mark.parametrize("line_id", ["CON", "nul.txt", ".hidden", "-dash", "x" * (MAX_NAME + 1), "é_accent"])
def test_ids_that_are_not_plain_file_names_get_a_hashed_one(line_id):
    path = line_image_path(line_id)
    stem = path.removeprefix("lines/").removesuffix(".png")
    assert path != f"lines/{line_id}.png" and len(path) < MAX_NAME
    assert stem[0].isalnum() and all(c.isalnum() or c in "_-" for c in stem)
    assert line_image_path(line_id) == path != line_image_path(line_id + "_")


def test_ids_differing_only_in_case_get_two_files(tmp_path, page_image, run_prepare):
    src = _alto_page(tmp_path, page_image, _line("Line"), _line("line", text="other"))
    run = run_prepare(f"alto:{src}", tmp_path / "out")
    images = [r.image.casefold() for r in run.records]
    assert len(run.records) == 3 and len(set(images)) == 3  # one file each on a case-blind disk


def test_control_characters_and_long_ids_stay_on_one_message_line(tmp_path, page_image, run_prepare):
    src = _alto_page(tmp_path, page_image, _line("a&#10;b" + "y" * 3000, points="nan 1 2 3"))
    run = run_prepare(f"alto:{src}", tmp_path / "out")
    [message] = [m for m in run.stderr.splitlines() if "non-finite" in m]
    assert message.startswith("skipped: ") and "a\\x0ab" in message and len(message) < 400
    assert "characters]" in message  # the middle of the id is elided, its length said


def test_an_unwritable_lines_folder_is_a_counted_skip_per_line(tmp_path, page_image, run_prepare):
    src = _alto_page(tmp_path, page_image)
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "lines").write_text("a file where the lines folder goes")
    run = run_prepare(f"alto:{src}", tmp_path / "out")
    assert run.rc == 1 and "Traceback" not in run.stderr
    assert run.summary["line_skip_reasons"] == {"line image could not be written": 1}
    assert "no line could be loaded" in run.stderr


def test_page_xml_nan_points_and_odd_index_are_skips_not_exceptions(tmp_path, page_image, run_prepare):
    src = tmp_path / "src"
    page_image(src / "scan.png")
    body = """<TextRegion id="r">
      <TextLine id="nan"><Coords points="10,10 nan,10 100,40 10,40"/><TextEquiv><Unicode>x</Unicode></TextEquiv></TextLine>
      <TextLine id="pts"><Coords><Point x="10" y="inf"/><Point x="100" y="50"/><Point x="100" y="80"/></Coords>
        <TextEquiv><Unicode>y</Unicode></TextEquiv></TextLine>
      <TextLine id="good"><Coords points="10,80 100,80 100,110 10,110"/>
        <TextEquiv index="\u00b2"><Unicode>kept</Unicode></TextEquiv></TextLine>
    </TextRegion>"""
    (src / "scan.xml").write_text(page_xml(2019, body), encoding="utf-8")
    run = run_prepare(f"page:{src}", tmp_path / "out")
    assert [r.text for r in run.records] == ["kept"]
    assert run.summary["line_skip_reasons"] == {"non-finite coordinate": 2}


def test_rimes_nan_box_is_a_non_finite_skip(tmp_path, page_image, run_prepare):
    src = tmp_path / "src"
    for name in ("train2011-1.png", "train2011-2.png"):
        page_image(src / "images" / name)
    (src / "rimes.xml").write_text(RIMES_XML.replace('<Line Left="10" Top="20"', '<Line Left="nan" Top="20"'))
    run = run_prepare(f"rimes:{src}", tmp_path / "out")
    assert run.summary["line_skip_reasons"] == {"non-finite coordinate": 1}
    assert len(run.records) == 2
    assert "Left" in run.stderr and "Traceback" not in run.stderr
