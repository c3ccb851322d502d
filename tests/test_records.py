"""The canonical line manifest (data_prep.records), atomic writes, skip log and CliConfig."""
from __future__ import annotations

import argparse
import json
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from common.cliconfig import CliConfig
from common.files import atomic_write_text
from data_prep.records import LineRecord, read_manifest, resolve_image, write_manifest
from common.skips import SkipLog


def _records() -> list[LineRecord]:
    return [
        LineRecord(id="p1_l1", image="lines/p1_l1.png", text="Déjà vu « ça »", page="/data/p1.jpg",
                   polygon=[[0, 0], [10.5, 0], [10.5, 5], [0, 5]], baseline=[[0, 4], [10.5, 4]],
                   writer="w07", split="train"),
        LineRecord(id="l2", image="lines/l2.png", text="no page, no writer"),
    ]


def test_manifest_round_trip(tmp_path):
    path = tmp_path / "out" / "manifest.jsonl"
    assert write_manifest(path, _records()) == 2
    assert read_manifest(path) == _records()
    rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]
    assert [row["id"] for row in rows] == ["p1_l1", "l2"]
    assert "writer" not in rows[1] and "split" not in rows[1]  # unknown values are left out
    assert "Déjà" in path.read_text(encoding="utf-8")  # UTF-8, not \u escapes


text_strategy = st.text(st.characters(blacklist_categories=("Cs",)), max_size=30)


@settings(max_examples=40, deadline=None)
@given(st.lists(st.builds(LineRecord, id=st.text("abc_-0123", min_size=1, max_size=8),
                          image=st.just("lines/x.png"), text=text_strategy,
                          writer=st.one_of(st.none(), text_strategy)), max_size=5))
def test_any_records_survive_the_round_trip(tmp_path_factory, records):
    path = tmp_path_factory.mktemp("manifest") / "manifest.jsonl"
    write_manifest(path, records)
    assert read_manifest(path) == records


def test_reading_ignores_unknown_keys_and_blank_lines(tmp_path):
    path = tmp_path / "manifest.jsonl"
    path.write_text('{"id": "a", "image": "lines/a.png", "text": "x", "future_field": 1}\n\n', encoding="utf-8")
    assert read_manifest(path) == [LineRecord(id="a", image="lines/a.png", text="x")]


def test_a_bad_manifest_line_names_the_file_and_line(tmp_path):
    path = tmp_path / "manifest.jsonl"
    path.write_text('{"id": "a", "image": "a.png", "text": "x"}\n{not json\n', encoding="utf-8")
    with pytest.raises(ValueError, match=r"manifest\.jsonl:2"):
        read_manifest(path)


def test_a_missing_manifest_says_how_to_make_one(tmp_path):
    with pytest.raises(FileNotFoundError, match="htr prepare"):
        read_manifest(tmp_path / "nothing.jsonl")


def test_resolve_image_is_relative_to_the_manifest_folder(tmp_path):
    manifest = tmp_path / "set" / "manifest.jsonl"
    record = LineRecord(id="a", image="lines/a.png", text="x")
    assert resolve_image(manifest, record) == tmp_path / "set" / "lines" / "a.png"
    absolute = LineRecord(id="b", image=str(tmp_path / "b.png"), text="x")
    assert resolve_image(manifest, absolute) == tmp_path / "b.png"


def test_atomic_write_replaces_and_leaves_no_temp_file(tmp_path):
    path = tmp_path / "deep" / "file.txt"
    atomic_write_text(path, "one")
    atomic_write_text(path, "two")
    assert path.read_text() == "two"
    assert sorted(p.name for p in path.parent.iterdir()) == ["file.txt"]


def test_skip_log_counts_reasons_and_names_files(tmp_path):
    stream_lines: list[str] = []

    class Stream:
        def write(self, text):
            stream_lines.append(text)

    log = SkipLog(stream=Stream())
    log.skip_line(tmp_path / "a.xml", "empty transcription")
    log.skip_line(tmp_path / "a.xml", "empty transcription")
    log.skip_file(tmp_path / "b.jpg", "unreadable image", "truncated", lines=3)
    worker = SkipLog(stream=None)
    worker.skip_line("c.xml line 4", "zero-area line")
    log.merge(worker)
    summary = log.summary()
    assert summary["lines_skipped"] == 6
    assert summary["line_skip_reasons"] == {"empty transcription": 2, "unreadable image": 3, "zero-area line": 1}
    assert summary["files_skipped"] == 1
    assert summary["file_skip_reasons"] == {"unreadable image": 1}
    printed = "".join(stream_lines)
    assert "a.xml" in printed and "b.jpg" in printed and "truncated" in printed and "c.xml line 4" in printed


@dataclass
class ToyConfig(CliConfig):
    learning_rate: float = field(default=0.001, metadata={"help": "step size"})
    epochs: int = 3
    name: str = "run"
    augment: bool = False
    data_dir: Path = field(default=Path("data"), metadata={"help": "where the data is"})
    mode: str = field(default="fast", metadata={"choices": ["fast", "slow"]})


def _parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    ToyConfig.add_arguments(parser)
    return parser.parse_args(argv)


def test_cliconfig_fields_become_flags():
    config = ToyConfig.from_args(_parse(["--learning-rate", "0.5", "--augment", "--data-dir", "x/y"]))
    assert config == ToyConfig(learning_rate=0.5, augment=True, data_dir=Path("x/y"))
    assert ToyConfig.from_args(_parse([])) == ToyConfig()
    assert ToyConfig.from_args(_parse(["--no-augment"]), base=ToyConfig(augment=True)).augment is False


def test_cliconfig_command_line_overrides_only_what_is_given():
    base = ToyConfig(epochs=9, name="saved")
    assert ToyConfig.from_args(_parse(["--epochs", "4"]), base=base) == ToyConfig(epochs=4, name="saved")


def test_cliconfig_help_and_choices(capsys):
    parser = argparse.ArgumentParser()
    ToyConfig.add_arguments(parser)
    help_text = parser.format_help()
    assert "--learning-rate" in help_text and "step size" in help_text and "(default: 0.001)" in help_text
    with pytest.raises(SystemExit):
        parser.parse_args(["--mode", "medium"])
    with pytest.raises(SystemExit):
        parser.parse_args(["--epochs", "three"])


def test_cliconfig_save_load_round_trip(tmp_path):
    config = ToyConfig(learning_rate=0.25, epochs=7, name="x", augment=True, data_dir=Path("/d"))
    config.save(tmp_path / "config.json")
    assert ToyConfig.load(tmp_path / "config.json") == config


def test_cliconfig_load_rejects_unknown_keys(tmp_path):
    path = tmp_path / "config.json"
    path.write_text(json.dumps({"epochs": 2, "epoch": 3}))
    with pytest.raises(ValueError, match="epoch"):
        ToyConfig.load(path)
