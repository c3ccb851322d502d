"""scripts/line_widths.py: frames per character and what a width cap squeezes, from image headers."""
from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from data_prep.records import LineRecord, write_manifest
from script_module import load_script


def manifest_of(folder, lines: list[tuple[int, int, str]]):
    """Lines of the given (width, height, text), blank images."""
    records = []
    for k, (width, height, text) in enumerate(lines):
        Image.fromarray(np.full((height, width), 255, dtype=np.uint8)).save(folder / f"l{k}.png")
        records.append(LineRecord(id=f"l{k}", image=f"l{k}.png", text=text))
    write_manifest(folder / "manifest.jsonl", records)
    return folder / "manifest.jsonl"


def test_frames_per_character_too_short_lines_and_the_cap(tmp_path, capsys):
    widths = load_script("line_widths")
    # at height 32 (scale 1): 160 px = 20 frames; "aab" needs 4 frames, "abcdefghij" x3 needs 30
    manifest = manifest_of(tmp_path, [(160, 32, "aab"), (160, 32, "abcdefghij" * 3), (400, 32, "abcd")])
    sizes, unreadable = widths.line_sizes(manifest)
    row = widths.fit_row(sizes, height=32, cap=200, reduction=8)
    assert unreadable == 0 and row["too_short"] == 1 and row["over_cap"] == 1 / 3
    assert row["pixels_cut"] == 1 - (160 + 160 + 200) / (160 + 160 + 400)
    assert row["frames_per_char"] == 25 / 4  # the median of 20/3, 20/30 and 25/4 (capped to 200 px)
    assert widths.main([str(manifest), "--heights", "32,64", "--caps", "200"]) == 0
    assert capsys.readouterr().out.count("\n| ") == 3  # the header and a row per height


def test_a_broken_image_is_counted_and_a_missing_manifest_is_one_line(tmp_path, capsys):
    widths = load_script("line_widths")
    manifest = manifest_of(tmp_path, [(160, 32, "ab")])
    (tmp_path / "broken.png").write_bytes(b"not a png")
    with manifest.open("a") as handle:
        handle.write(LineRecord(id="x", image="broken.png", text="ab").to_json() + "\n")
    assert widths.main([str(manifest)]) == 0
    assert "(1 unreadable images skipped)" in capsys.readouterr().out
    assert widths.main([str(tmp_path / "nope.jsonl")]) == 1
    assert "nope.jsonl: manifest not found" in capsys.readouterr().err


def test_bad_numbers_are_one_line_each(tmp_path, capsys):
    widths = load_script("line_widths")
    manifest = manifest_of(tmp_path, [(160, 32, "ab")])
    for flags in (["--heights", "64,x"], ["--caps", "0"], ["--reduction", "0"]):
        with pytest.raises(SystemExit) as stop:
            widths.main([str(manifest), *flags])
        assert stop.value.code == 2 and "positive integer" in capsys.readouterr().err
