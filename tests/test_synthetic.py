"""``htr prepare synthetic``: the embedded default data set, rendered at a tiny size.

Uses the handwriting fonts and the fortune text that ``make setup`` installs under
tools/; the tests skip when they are absent.
"""
from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from data_prep.readers import read_alto
from data_prep.records import read_manifest
from common.skips import SkipLog
from data_prep.synthetic.config import SyntheticConfig
from data_prep.synthetic.text import read_entries, sentences, split_sentences

DEFAULTS = SyntheticConfig()
needs_assets = pytest.mark.skipif(
    not DEFAULTS.fonts_dir.is_dir() or not DEFAULTS.text_dir.is_dir(),
    reason=f"synthetic fonts/text not installed ({DEFAULTS.fonts_dir}, {DEFAULTS.text_dir}); run 'make setup'")

SPLITS = ("train", "dev", "test")
TINY = ("--train-pages", "2", "--dev-pages", "1", "--test-pages", "1", "--page-width", "600", "--page-height", "400")


def _render(run_prepare, out: Path, *flags: str):
    run = run_prepare("synthetic", out, *TINY, *flags)
    assert run.rc == 0, run.stderr
    return run


def _page_files(out: Path) -> list[Path]:
    return sorted(out.glob("*/pages/*"))


def _geometry(out: Path) -> list[tuple]:
    """What must not change between identical runs: ids, texts, polygons, baselines."""
    return [(r.id, r.image, r.text, r.polygon, r.baseline, r.split) for r in read_manifest(out / "manifest.jsonl")]


@pytest.fixture(scope="module")
def rendered(tmp_path_factory) -> Path:
    """One tiny synthetic data set shared by the read-only tests of this module."""
    from data_prep.prepare import main
    out = tmp_path_factory.mktemp("synthetic")
    assert main(["synthetic", "--out", str(out), "--no-progress", *TINY]) == 0
    return out


@needs_assets
def test_pages_alto_and_line_crops_are_written(rendered):
    for split, pages in (("train", 2), ("dev", 1), ("test", 1)):
        names = sorted(p.name for p in (rendered / split / "pages").iterdir())
        assert names == sorted([f"{split}-{n:04d}.jpg" for n in range(pages)] + [f"{split}-{n:04d}.xml" for n in range(pages)])
        summary = json.loads((rendered / split / "summary.json").read_text())
        assert summary["pages"] == pages and summary["lines_skipped"] == 0 and summary["files_skipped"] == 0
        records = read_manifest(rendered / split / "manifest.jsonl")
        assert len(records) == summary["lines_loaded"] >= pages  # several lines per page
        for record in records:
            assert record.split == split and record.text.strip() and len(record.polygon) >= 3 and record.baseline
            with Image.open(rendered / split / record.image) as image:
                crop = np.asarray(image)
            assert image.mode == "L" and crop.shape[0] >= 10 and crop.shape[1] > crop.shape[0]
            assert crop.min() < 128 < crop.max()  # ink on paper
    combined = read_manifest(rendered / "manifest.jsonl")
    assert len(combined) == sum(len(read_manifest(rendered / s / "manifest.jsonl")) for s in SPLITS)
    assert all((rendered / record.image).is_file() for record in combined)  # paths relative to the top folder
    with Image.open(rendered / "train" / "pages" / "train-0000.jpg") as page:
        assert page.size == (600, 400)


@needs_assets
def test_each_line_names_its_pages_font_as_its_writer(rendered):
    from data_prep.synthetic.fonts import find_fonts
    from data_prep.synthetic.text import ALPHABET
    font_names = {font.stem for font in find_fonts(DEFAULTS.fonts_dir, ALPHABET)}
    for split in SPLITS:
        writers_of_page: dict[str, set] = {}
        for record in read_manifest(rendered / split / "manifest.jsonl"):
            writers_of_page.setdefault(Path(record.page).stem, set()).add(record.writer)
        assert writers_of_page and all(len(w) == 1 and w <= font_names for w in writers_of_page.values())
    assert all(record.writer for record in read_manifest(rendered / "manifest.jsonl"))


@needs_assets
def test_alto_read_back_gives_the_manifest_lines(rendered):
    log = SkipLog(stream=None)
    for split in SPLITS:
        pages = list(read_alto(rendered / split / "pages", log))
        lines = [(line.id, line.text, line.polygon) for page in pages for line in page.lines]
        records = [(r.id, r.text, r.polygon) for r in read_manifest(rendered / split / "manifest.jsonl")]
        assert lines == records
        assert all(page.image is not None and page.image.suffix == ".jpg" for page in pages)
    assert log.messages == []


def _whole_sentence_in(sentence: str, corpus: str) -> bool:
    """Does ``sentence`` occur in ``corpus`` (one sentence a line, lower case) as a whole
    line, give or take case, surrounding quotes or brackets and a trailing '-- Author'?"""
    needle = sentence.lower().strip(QUOTES + " ")
    start = corpus.find(needle)
    while start >= 0:
        line_start = corpus.rfind("\n", 0, start) + 1
        line_end = corpus.find("\n", start)
        before, after = corpus[line_start:start], corpus[start + len(needle):line_end]
        if not before.strip(QUOTES + " ") and re.fullmatch(r"[\"')\s]*(\s--\s.*)?", after):
            return True
        start = corpus.find(needle, start + 1)
    return False


QUOTES = "\"'()"


def test_quoted_and_attributed_copies_of_a_sentence_are_one_sentence(tmp_path):
    (tmp_path / "fortunes").mkdir()
    (tmp_path / "fortunes" / "quotes").write_text(
        'Go home now, said the man. Then he left the room.\n%\n"Go home now, said the man."\n%\n'
        "GO HOME NOW, SAID THE MAN.\n%\nThen he left the room. -- A. Writer\n%\n"
        "Friendship needs a certain parallelism of life.\n    -- Henry Brook Adams\n%\n"
        "Friendship needs a certain parallelism of life. -- Henry Brook Adams\n")
    found = sentences(read_entries(tmp_path / "fortunes"))
    assert found == ["Go home now, said the man.", "Then he left the room.",
                     "Friendship needs a certain parallelism of life."]
    for fraction in (0.0, 0.3, 0.7):
        splits = split_sentences(found, dev_fraction=fraction, test_fraction=fraction)
        assert sorted(sum(splits.values(), [])) == sorted(found)




@needs_assets
def test_no_test_sentence_is_in_the_training_text(rendered):
    texts = {split: (rendered / "text" / f"{split}.txt").read_text(encoding="utf-8") for split in SPLITS}
    assert all(len(texts[split].splitlines()) > 100 for split in SPLITS)
    train, dev = texts["train"].lower(), texts["dev"].lower()
    leaks = [s for s in texts["test"].splitlines() if _whole_sentence_in(s, train) or _whole_sentence_in(s, dev)]
    assert leaks == []
    assert not [s for s in texts["dev"].splitlines() if _whole_sentence_in(s, train)]


def test_the_leak_check_finds_quoted_and_attributed_copies():
    corpus = 'one line.\n"go home now."\nfar away -- a. author\nsaid: stay here.\n'
    assert _whole_sentence_in("Go home now.", corpus) and _whole_sentence_in("Far away", corpus)
    assert _whole_sentence_in("One line.", corpus)
    assert not _whole_sentence_in("Stay here.", corpus)  # part of a longer sentence
    assert not _whole_sentence_in("home now.", corpus)


@needs_assets
def test_each_split_is_rendered_from_its_own_sentences(rendered):
    for split in SPLITS:
        sentences = (rendered / "text" / f"{split}.txt").read_text(encoding="utf-8").split("\n")
        running = " ".join(sentences + sentences)  # pages may wrap around the end of the list
        for record in read_manifest(rendered / split / "manifest.jsonl"):
            assert record.text in running, f"{split} line {record.text!r} is not from {split}.txt"


@needs_assets
def test_same_seed_same_data_set_in_another_folder_with_more_jobs(rendered, tmp_path, run_prepare):
    _render(run_prepare, tmp_path / "again", "--jobs", "2")
    assert _geometry(tmp_path / "again") == _geometry(rendered)
    for page_file in _page_files(rendered):  # page images and ALTO, byte for byte
        assert (tmp_path / "again" / page_file.relative_to(rendered)).read_bytes() == page_file.read_bytes()
    for split in SPLITS:
        assert (tmp_path / "again" / "text" / f"{split}.txt").read_bytes() == (rendered / "text" / f"{split}.txt").read_bytes()


@needs_assets
def test_a_rerun_resumes_and_a_config_change_rerenders(tmp_path, run_prepare):
    out = tmp_path / "synth"
    _render(run_prepare, out)
    before = {p: p.stat().st_mtime_ns for p in _page_files(out)}
    assert len(before) == 8
    _render(run_prepare, out)
    assert {p: p.stat().st_mtime_ns for p in _page_files(out)} == before  # nothing re-rendered

    (out / "dev" / "pages" / "dev-0000.xml").unlink()  # as if killed while writing this page
    _render(run_prepare, out)
    after = {p: p.stat().st_mtime_ns for p in _page_files(out)}
    changed = sorted(p.name for p in before if after[p] != before[p])
    assert changed == ["dev-0000.jpg", "dev-0000.xml"]

    geometry = _geometry(out)
    xml_before = {p: p.read_bytes() for p in out.glob("*/pages/*.xml")}
    _render(run_prepare, out, "--seed", "7")
    assert all(p.stat().st_mtime_ns != before[p] for p in before if p.suffix == ".xml")
    assert any(p.read_bytes() != xml_before[p] for p in xml_before)
    assert _geometry(out) != geometry
    assert json.loads((out / "synthetic-config.json").read_text())["seed"] == 7


@needs_assets
def test_fewer_pages_removes_the_extra_ones(tmp_path, run_prepare):
    out = tmp_path / "synth"
    _render(run_prepare, out)
    _render(run_prepare, out, "--train-pages", "1")
    assert sorted(p.name for p in (out / "train" / "pages").iterdir()) == ["train-0000.jpg", "train-0000.xml"]
    assert {r.page for r in read_manifest(out / "train" / "manifest.jsonl")} == {str((out / "train" / "pages" / "train-0000.jpg").resolve())}


@needs_assets
@pytest.mark.parametrize("seed", [1, 2])
def test_two_column_pages_with_a_margin_note_have_their_regions_in_reading_order(tmp_path, seed):
    """--columns 2 --margin-notes 1: one region per column and one for the note, in reading
    order (columns left to right, the note right after the column it is beside), valid ALTO
    read back with its text; the segmenter finds the regions and reads them in that order."""
    from lxml import etree
    from data_prep.synthetic.dataset import render_page
    from data_prep.synthetic.fonts import find_fonts
    from data_prep.synthetic.text import ALPHABET
    from pipeline import segment_eval
    from pipeline.segment import segment_page
    from pipeline.segment_types import SegmentConfig
    from xmlcheck import check

    config = SyntheticConfig(seed=seed, columns=2, margin_notes=1.0)
    text = sentences(read_entries(config.text_dir))[:300]
    render_page(config, "test", 0, text, find_fonts(config.fonts_dir, ALPHABET), tmp_path)
    root = check(tmp_path / "test-0000.xml", "alto")
    blocks = [[(float(l.get("HPOS")), float(l.get("HPOS")) + float(l.get("WIDTH"))) for l in b.iter("{*}TextLine")]
              for b in root.iter("{*}TextBlock")]
    assert len(blocks) == 3 and all(blocks)
    column_lefts = [min(a for a, _ in block) for block in blocks]
    widths = [max(b for _, b in block) - min(a for a, _ in block) for block in blocks]
    note = int(np.argmin(widths))
    columns = [k for k in range(3) if k != note]
    assert column_lefts[columns[0]] < column_lefts[columns[1]]  # columns left to right
    assert note == (1 if column_lefts[note] < column_lefts[columns[0]] else 2)  # right after its column
    spec = next(read_alto(tmp_path / "test-0000.xml", SkipLog(stream=None)))
    assert all(line.text for line in spec.lines) and len(spec.lines) == sum(map(len, blocks))
    block_of = [k for k, block in enumerate(blocks) for _ in block]
    running = " ".join(line.text for line, k in zip(spec.lines, block_of) if k != note)
    assert running in " ".join(text * 2)  # the text flows from the first column into the second
    result = segment_page(tmp_path / "test-0000.jpg", SegmentConfig())
    ranks = segment_eval.region_ranks(etree.parse(str(tmp_path / "test-0000.xml")).getroot(), "test-0000", spec.lines)
    score = segment_eval.score_page("p", [line.polygon for line in result.lines], [line.polygon for line in spec.lines], ranks)
    assert len(result.regions) == 3 and sum(region.margin for region in result.regions) == 1
    assert score.matched["0.5"] >= 0.9 * len(spec.lines) and score.region_order  # IoU: see README (synthetic GT is tight)


def test_an_unsupported_column_count_is_refused_with_a_usage_error(tmp_path, capsys):
    from data_prep.prepare import main
    with pytest.raises(SystemExit) as stop:
        main(["synthetic", "--out", str(tmp_path / "out"), "--columns", "4"])
    assert stop.value.code == 2 and "--columns" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


@needs_assets
def test_a_split_of_no_pages_is_empty_not_an_error(tmp_path):
    from data_prep.prepare import main
    assert main(["synthetic", "--out", str(tmp_path), "--no-progress", "--train-pages", "0", "--dev-pages", "0",
                 "--test-pages", "0"]) == 0
    assert read_manifest(tmp_path / "manifest.jsonl") == []
