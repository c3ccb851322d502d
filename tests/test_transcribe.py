"""``htr transcribe``: page images in, one text file and one ALTO or PAGE file per page out,
each written as soon as its page is done; a rerun skips the pages already done."""
from __future__ import annotations

import os

import numpy as np
import pytest
import torch
from PIL import Image

from data_prep.readers import read_alto, read_pagexml
from common.skips import SkipLog
from pipeline import transcribe as transcribe_module
from pipeline.model import ModelConfig, build_model
from pipeline.model_folder import save_model_folder
from pipeline.transcribe import main
from xmlcheck import check

ALPHABET = ["", " ", "a", "b", "c"]
TINY = dict(height=16, mdlstm_hidden="2,3,4", mdlstm_conv="3,4", sub_height=2, mdlstm_impl="wavefront")
READ = {"alto": read_alto, "page": read_pagexml}


def _page(path, lines: int) -> None:
    """A light page with ``lines`` rows of dark word-like blobs."""
    page = np.full((400, 600), 235, dtype=np.uint8)
    rng = np.random.default_rng(3)
    for row in range(lines):
        top = 60 + row * 70
        x = 40
        while x < 520:
            width = int(rng.integers(30, 70))
            page[top:top + 22, x:x + width] = 30
            page[top + 22:top + 30, x + 5:x + 9] = 30  # a descender
            x += width + 18
    Image.fromarray(page).save(path)


@pytest.fixture
def setup(tmp_path):
    """A tiny random model and two pages (4 and 2 lines) in their own folder."""
    torch.manual_seed(0)
    config = ModelConfig(arch="mdlstm", **TINY)
    save_model_folder(tmp_path / "model", config, ALPHABET, build_model(config, len(ALPHABET)))
    (tmp_path / "scans").mkdir()
    for name, lines in (("p1", 4), ("p 2 (copy)", 2)):
        _page(tmp_path / "scans" / f"{name}.png", lines)
    return tmp_path


def _run(root, *extra) -> int:
    return main([str(root / "scans" / "p1.png"), str(root / "scans" / "p 2 (copy).png"),
                 "--model", str(root / "model"), "--out", str(root / "out"), *extra])


@pytest.mark.parametrize("fmt", ["alto", "page"])
def test_pages_become_text_and_xml_with_one_line_per_segmented_line(setup, fmt, capsys):
    assert _run(setup, "--format", fmt) == 0
    assert "2 pages transcribed (6 lines)" in capsys.readouterr().out
    for name, lines in (("p1", 4), ("p 2 (copy)", 2)):
        text = (setup / "out" / f"{name}.txt").read_text(encoding="utf-8")
        assert text.count("\n") == lines
        root = check(setup / "out" / f"{name}.xml", fmt)
        declared = (root.findtext(".//{*}sourceImageInformation/{*}fileName") if fmt == "alto"
                    else root.find("{*}Page").get("imageFilename"))
        assert declared == f"{name}.png"  # the base name, as eScriptorium and Transkribus match it
        page = next(iter(READ[fmt](setup / "out" / f"{name}.xml", SkipLog(stream=None))))
        assert len(page.lines) == lines and page.image.resolve() == (setup / "scans" / f"{name}.png").resolve()
        assert [line.text for line in page.lines] == text.splitlines()
        assert set("".join(text.split())) <= set("abc")
        _check_confidences(root, fmt, text.splitlines())


def _check_confidences(root, fmt: str, texts: list[str]) -> None:
    """Every word of the text carries its optical confidence (and, in ALTO, one CC digit per character)."""
    lines = list(root.iter("{*}TextLine"))
    for line, text in zip(lines, texts):
        if fmt == "alto":
            strings = [s for s in line.iter("{*}String") if s.get("CONTENT")]
            assert [s.get("CONTENT") for s in strings] == text.split()
            assert all(0 <= float(s.get("WC")) <= 1 and len(s.get("CC").split()) == len(s.get("CONTENT")) for s in strings)
            assert all(int(s.get("WIDTH")) >= 0 and s.get("HPOS") is not None for s in strings)
        else:
            words = line.findall("{*}Word")
            assert [w.findtext("{*}TextEquiv/{*}Unicode") for w in words] == text.split()
            assert all(0 <= float(w.find("{*}TextEquiv").get("conf")) <= 1 for w in words)


def _mtimes(root) -> dict:
    return {p.name: p.stat().st_mtime_ns for p in (root / "out").glob("*.*")}


def test_rerun_skips_pages_done_and_redoes_changed_ones(setup, capsys):
    assert _run(setup) == 0
    first = _mtimes(setup)
    # nothing is loaded when every page is up to date: a broken model file, older than the outputs, is not read
    weights = setup / "model" / "weights.pt"
    weights.write_bytes(b"broken")
    os.utime(weights, (1, 1))
    capsys.readouterr()
    assert _run(setup) == 0
    assert "2 up to date" in capsys.readouterr().out and _mtimes(setup) == first
    save_model_folder(setup / "model", ModelConfig(arch="mdlstm", **TINY), ALPHABET,
                      build_model(ModelConfig(arch="mdlstm", **TINY), len(ALPHABET)))
    os.utime(weights, (1, 1))
    os.utime(setup / "model" / "model.json", (1, 1))
    image = setup / "scans" / "p1.png"
    os.utime(image, (first["p1.txt"] / 1e9 + 5,) * 2)  # an image changed after its transcription
    (setup / "out" / "p 2 (copy).xml").unlink()  # an output lost
    assert _run(setup) == 0
    assert "2 pages transcribed" in capsys.readouterr().out
    assert _run(setup, "--format", "page") == 0  # outputs in the other format are not up to date
    assert "2 pages transcribed" in capsys.readouterr().out


def test_each_page_is_written_when_done_and_an_interrupted_run_continues(setup, monkeypatch, capsys):
    real = transcribe_module.transcribe_page
    calls = []

    def interrupted(job, image):
        calls.append(image.name)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return real(job, image)

    monkeypatch.setattr(transcribe_module, "transcribe_page", interrupted)
    with pytest.raises(KeyboardInterrupt):
        _run(setup)
    assert sorted(p.name for p in (setup / "out").glob("*.*")) == ["p1.txt", "p1.xml"]
    monkeypatch.setattr(transcribe_module, "transcribe_page", real)
    capsys.readouterr()
    assert _run(setup) == 0
    assert "1 pages transcribed (2 lines); 1 up to date" in capsys.readouterr().out


def test_exit_is_non_zero_only_when_no_page_could_be_read(setup, capsys):
    bad = setup / "scans" / "bad.jpg"
    bad.write_bytes(b"not an image")
    model = ["--model", str(setup / "model"), "--out", str(setup / "out")]
    assert main([str(bad), str(setup / "gone.png"), *model]) == 1
    captured = capsys.readouterr()
    assert "2 could not be read" in captured.out and "bad.jpg" in captured.err and "gone.png" in captured.err
    assert main([str(bad), str(setup / "scans" / "p1.png"), *model]) == 0
    assert "1 pages transcribed (4 lines); 1 could not be read" in capsys.readouterr().out


def test_missing_model_is_named(tmp_path, capsys):
    assert main([str(tmp_path / "nope.jpg"), "--model", str(tmp_path / "nomodel")]) == 2
    assert "nope.jpg" in capsys.readouterr().err


def test_without_model_the_shipped_default_reads_the_pages(setup, monkeypatch, capsys):
    monkeypatch.setattr(transcribe_module, "DEFAULT_MODEL", setup / "model")
    monkeypatch.setattr(transcribe_module, "DEFAULT_LM", setup / "no-lm")
    assert main([str(setup / "scans" / "p1.png"), "--out", str(setup / "out")]) == 0
    assert f"model {setup / 'model'}" in capsys.readouterr().err
    assert (setup / "out" / "p1.txt").is_file() and (setup / "out" / "p1.xml").is_file()


def test_without_model_a_missing_default_is_one_message(setup, monkeypatch, capsys):
    monkeypatch.setattr(transcribe_module, "DEFAULT_MODEL", setup / "not-shipped")
    assert main([str(setup / "scans" / "p1.png"), "--out", str(setup / "out")]) == 2
    err = capsys.readouterr().err
    assert "not-shipped" in err and "--model" in err and "Traceback" not in err
    assert not (setup / "out" / "p1.txt").exists()


def test_the_shipped_default_model_is_a_model_folder_or_an_ensemble_of_them():
    from pipeline.folders import DEFAULT_LM, DEFAULT_MODEL, can_warm_start, ensemble_members
    for folder in ensemble_members(DEFAULT_MODEL) or [DEFAULT_MODEL]:
        assert can_warm_start(folder), f"{folder}: make copiste-models --default"
    assert (DEFAULT_LM / "lm.bin").is_file()


@pytest.mark.parametrize("fmt", ["alto", "page"])
def test_a_two_column_page_with_a_margin_note_is_written_region_by_region_as_htr_segment_finds_them(setup, fmt):
    """The regions of ``htr segment`` (two columns, then the note beside the right one, typed
    marginalia), each with its lines, their text, words and confidences, in reading order."""
    from test_segment_regions import make_columns
    from pipeline import segment
    truth = make_columns(setup / "columns" / "two.png", lines=6, note="right", seed=1)
    assert main([str(truth.path), "--model", str(setup / "model"), "--out", str(setup / "out"), "--format", fmt]) == 0
    assert segment.main([str(truth.path), "--out", str(setup / "seg"), "--format", fmt]) == 0
    root, segmented = check(setup / "out" / "two.xml", fmt), check(setup / "seg" / "two.xml", fmt)
    tag, key, outline = ("TextBlock", "ID", "{*}Shape/{*}Polygon") if fmt == "alto" else ("TextRegion", "id", "{*}Coords")
    attribute = "POINTS" if fmt == "alto" else "points"

    def regions(tree):  # region id, type, outline, its lines' ids and outlines
        return [(r.get(key), r.get("type" if fmt == "page" else "TAGREFS"), r.find(outline).get(attribute),
                 [(l.get(key), l.find(outline).get(attribute)) for l in r.iter("{*}TextLine")])
                for r in tree.iter(f"{{*}}{tag}")]
    written = regions(root)
    assert written == regions(segmented) and len(written) == 3
    assert [len(lines) for *_, lines in written] == [6, 6, 3]
    blocks = list(root.iter(f"{{*}}{tag}"))
    if fmt == "page":
        assert [r.get("type") for r in blocks] == [None, None, "marginalia"]
        refs = sorted(root.iter("{*}RegionRefIndexed"), key=lambda r: int(r.get("index")))
        assert [r.get("regionRef") for r in refs] == [r.get("id") for r in blocks]
    else:
        tags = root.findall("{*}Tags/{*}OtherTag")
        assert [(t.get("LABEL"), t.get("DESCRIPTION")) for t in tags] == [("MarginTextZone", "block type MarginTextZone")]
        assert [b.get("TAGREFS") for b in blocks] == [None, None, tags[0].get("ID")]
        assert [b.get("IDNEXT") for b in blocks] == [b.get("ID") for b in blocks[1:]] + [None]
    text = (setup / "out" / "two.txt").read_text(encoding="utf-8").splitlines()
    assert len(text) == 15
    _check_confidences(root, fmt, text)  # every line of every region: its words and their confidences
    spec = next(iter(READ[fmt](setup / "out" / "two.xml", SkipLog(stream=None))))
    assert [line.text for line in spec.lines] == text
    seg_spec = next(iter(READ[fmt](setup / "seg" / "two.xml", SkipLog(stream=None))))
    assert [line.polygon for line in spec.lines] == [line.polygon for line in seg_spec.lines]


def test_an_lm_folder_with_a_character_model_is_read_with_char_lm_unless_a_decoder_is_named(setup, capsys):
    import json
    from test_decode import write_arpa
    lm = setup / "lm"
    lm.mkdir()
    write_arpa(lm / "lm.arpa", ["a", "ab", "cab"], [])
    write_arpa(lm / "char.arpa", ["<sp>", "a", "b", "c"], [("a", "b")])
    (lm / "lexicon.txt").write_text("a\t1\nab\t1\ncab\t1\n", encoding="utf-8")
    (lm / "words.txt").write_text("a\t1\nab\t1\ncab\t1\n", encoding="utf-8")
    (lm / "lm.json").write_text(json.dumps({"config": {"lowercase": False}}), encoding="utf-8")
    assert _run(setup, "--lm", str(lm)) == 0
    assert "decoder char-lm" in capsys.readouterr().err
    assert (setup / "out" / "p1.txt").is_file()
    assert _run(setup, "--lm", str(lm), "--decoder", "lexicon", "--force") == 1  # KenLM needs bigrams
    err = capsys.readouterr().err
    assert "lm.arpa" in err and "Traceback" not in err
    write_arpa(lm / "lm.arpa", ["a", "ab", "cab"], [("a", "ab")])
    assert _run(setup, "--lm", str(lm), "--decoder", "lexicon", "--force") == 0
    assert "decoder" not in capsys.readouterr().err  # nothing was picked for the user
