"""``htr prepare synthetic-lines:MANIFEST``: single rendered lines from a training manifest's
text and wordfreq's French words, at a tiny size.

The manifest is a small one written in tmp_path; the fonts are those ``make setup``
installs under tools/fonts (the tests skip when they are absent, as tests/test_synthetic.py do).
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from data_prep.records import LineRecord, read_manifest, resolve_image, write_manifest
from data_prep.synthetic.config import SyntheticConfig, SyntheticLinesConfig

DEFAULTS = SyntheticLinesConfig()
needs_fonts = pytest.mark.skipif(not DEFAULTS.fonts_dir.is_dir(),
                                 reason=f"handwriting fonts not installed ({DEFAULTS.fonts_dir}); run 'make setup'")

TEXTS = ["Le chat dort sur la fenêtre.", "né le 20 février 1972 à Lisbonne,",
         "l’équation de Dirac comme  la masse", "Où êtes-vous allés cet été ?", "des œuvres et des cœurs"]
UNCOVERED = "un bonhomme de neige \u2603 ici"  # no handwriting font has the snowman
SMALL = ("--font-size-min", "16", "--font-size-max", "18", "--wordfreq-words", "3000")


def _manifest(folder: Path, texts=(*TEXTS, UNCOVERED, "  "), split: str | None = "train") -> Path:
    path = folder / "src" / "manifest.jsonl"
    write_manifest(path, [LineRecord(id=f"l{n}", image=f"lines/l{n}.png", text=t, split=split) for n, t in enumerate(texts)])
    return path


def _render(run_prepare, tmp_path: Path, out: str, *flags: str, manifest: Path | None = None):
    manifest = manifest or _manifest(tmp_path)
    run = run_prepare(f"synthetic-lines:{manifest}", tmp_path / out, *SMALL, *flags)
    assert run.rc == 0, run.stderr
    return run


def _normalised() -> set[str]:
    return {" ".join(t.split()) for t in TEXTS}


def _images(out: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted((out / "lines").iterdir())}


@needs_fonts
def test_lines_are_written_and_read_back_with_their_images(tmp_path, run_prepare):
    run = _render(run_prepare, tmp_path, "out", "--lines", "8", "--wordfreq-share", "0.3")
    records = read_manifest(run.out / "manifest.jsonl")
    assert [r.id for r in records] == [f"synth-{n:06d}" for n in range(8)]
    for record in records:
        path = resolve_image(run.out / "manifest.jsonl", record)
        with Image.open(path) as image:
            assert image.mode == "L"
            pixels = np.asarray(image)
        height, width = pixels.shape
        assert record.polygon == [[0, 0], [width, 0], [width, height], [0, height]]
        assert 25 <= height <= 80 and width >= 2 * height  # one line of 16-18 px writing
        assert np.median(pixels) > 170 and np.median(pixels) - pixels.min() > 60  # dark ink on light paper
        assert record.writer and record.text and record.page == ""
    summary = run.summary
    assert summary["lines_loaded"] == 8 and summary["rendered"] == 8 and summary["reused"] == 0
    assert summary["from_manifest"] + summary["from_wordfreq"] == 8
    assert sum(summary["fonts"].values()) == 8
    assert "wrote 8 lines" in run.stdout and "fonts:" in run.stdout


@needs_fonts
def test_same_seed_same_lines_whatever_jobs_other_seed_other_lines(tmp_path, run_prepare):
    manifest = _manifest(tmp_path)
    one = _render(run_prepare, tmp_path, "one", "--lines", "6", manifest=manifest)
    two = _render(run_prepare, tmp_path, "two", "--lines", "6", "--jobs", "2", manifest=manifest)
    other = _render(run_prepare, tmp_path, "other", "--lines", "6", "--seed", "7", manifest=manifest)
    assert (one.out / "manifest.jsonl").read_bytes() == (two.out / "manifest.jsonl").read_bytes()
    assert _images(one.out) == _images(two.out)
    assert [r.text for r in one.records] != [r.text for r in other.records]
    assert set(_images(one.out).values()).isdisjoint(_images(other.out).values())


@needs_fonts
def test_text_comes_from_the_manifest_only_and_uncovered_text_is_skipped_and_counted(tmp_path, run_prepare):
    run = _render(run_prepare, tmp_path, "out", "--lines", "10", "--wordfreq-share", "0")
    texts = [r.text for r in run.records]
    assert len(texts) == 10 and set(texts) <= _normalised()
    assert set(texts) == _normalised()  # each transcription in turn: 10 lines use all 5 twice
    summary = run.summary
    assert summary["manifest_records"] == 7 and summary["manifest_records_used"] == 5
    assert summary["manifest_records_skipped"] == {"characters no font covers": 1, "empty transcription": 1}
    assert summary["uncovered_characters"] == "\u2603" and summary["from_wordfreq"] == 0
    assert "characters no font covers" in run.stdout


@needs_fonts
def test_wordfreq_share_is_respected_and_its_words_keep_to_the_manifest_alphabet(tmp_path):
    pytest.importorskip("wordfreq")
    from data_prep.synthetic.fonts import coverage, find_fonts
    from data_prep.synthetic.line_text import french_vocabulary, plan_lines, read_texts
    from data_prep.synthetic.text import ALPHABET
    fonts = find_fonts(DEFAULTS.fonts_dir, ALPHABET)
    texts = read_texts(_manifest(tmp_path), fonts)
    vocabulary = french_vocabulary(3000, 0.5, texts.alphabet, fonts)
    plans = plan_lines(1000, 3, 0.3, (16, 18), texts, vocabulary, fonts)
    drawn = [p for p in plans if p.source == "wordfreq"]
    assert 240 <= len(drawn) <= 360  # 300 expected; binomial sd 14.5
    assert all(p.text in _normalised() for p in plans if p.source == "manifest")
    assert all(set(p.text) <= texts.alphabet for p in drawn)
    assert all(set(p.text) - {" "} <= coverage(p.font) for p in plans)  # each in a font that has its glyphs
    assert len({p.text for p in drawn}) == len(drawn)  # fresh word sequences, not repeats
    # the first lines do not depend on how many are planned
    assert plan_lines(50, 3, 0.3, (16, 18), texts, vocabulary, fonts) == plans[:50]


@needs_fonts
def test_a_rerun_renders_nothing_a_longer_run_only_the_new_lines_a_new_seed_everything(tmp_path, run_prepare):
    manifest = _manifest(tmp_path)
    first = _render(run_prepare, tmp_path, "out", "--lines", "4", manifest=manifest).records
    stamps = {p.name: p.stat().st_mtime_ns for p in (tmp_path / "out" / "lines").iterdir()}
    again = _render(run_prepare, tmp_path, "out", "--lines", "4", manifest=manifest)
    assert again.summary["rendered"] == 0 and again.summary["reused"] == 4
    assert {p.name: p.stat().st_mtime_ns for p in (again.out / "lines").iterdir()} == stamps
    longer = _render(run_prepare, tmp_path, "out", "--lines", "6", manifest=manifest)
    assert longer.summary["rendered"] == 2 and longer.records[:4] == first
    shorter = _render(run_prepare, tmp_path, "out", "--lines", "3", manifest=manifest)
    assert shorter.summary["rendered"] == 0 and len(list((shorter.out / "lines").iterdir())) == 3
    reseeded = _render(run_prepare, tmp_path, "out", "--lines", "3", "--seed", "99", manifest=manifest)
    assert reseeded.summary["rendered"] == 3


@needs_fonts
def test_a_missing_manifest_is_one_clear_message_and_a_failure(tmp_path, run_prepare):
    run = run_prepare(f"synthetic-lines:{tmp_path / 'nope.jsonl'}", tmp_path / "out", "--lines", "3")
    assert run.rc != 0
    assert "manifest not found" in run.stderr and "Traceback" not in run.stderr
    assert len(run.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "out" / "manifest.jsonl").exists()


@needs_fonts
def test_a_manifest_of_dev_records_is_refused(tmp_path, run_prepare):
    manifest = _manifest(tmp_path, split="dev")
    run = run_prepare(f"synthetic-lines:{manifest}", tmp_path / "out", "--lines", "3")
    assert run.rc != 0 and "training" in run.stderr and "'dev'" in run.stderr
    assert not (tmp_path / "out" / "lines").exists()


def test_bad_flag_values_are_refused_by_name(tmp_path, run_prepare):
    manifest = _manifest(tmp_path)
    run = run_prepare(f"synthetic-lines:{manifest}", tmp_path / "out", "--wordfreq-share", "1.5")
    assert run.rc != 0 and "--wordfreq-share" in run.stderr


def test_the_shared_flags_mean_the_same_for_pages_and_lines(capsys):
    from data_prep.prepare import build_parser
    pages = SyntheticConfig()
    for name in SyntheticLinesConfig.SHARED:
        assert getattr(DEFAULTS, name) == getattr(pages, name), name
    text = build_parser().format_help()
    flags = [line.split()[0] for line in text.splitlines() if line.startswith("  --")]
    assert flags.count("--seed") == 1 and "--lines" in flags and "--wordfreq-share" in flags
    args = build_parser().parse_args(["synthetic-lines:x.jsonl", "--out", "o", "--seed", "5", "--lines", "9"])
    config = SyntheticLinesConfig.from_args(args)
    assert (config.seed, config.lines, config.font_size_min) == (5, 9, pages.font_size_min)
    assert json.loads(json.dumps(config.to_dict()))["lines"] == 9
