"""The ``htr`` command line: help texts and dispatch."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from pipeline.cli import COMMANDS, main

SOURCE_KINDS = ("alto:PATH", "page:PATH", "iam:PATH", "rimes:PATH", "folder:PATH", "synthetic")


@pytest.mark.parametrize("argv", [[], ["--help"], ["-h"], ["help"]])
def test_htr_help_lists_the_commands(capsys, argv):
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert "usage: htr COMMAND" in out
    for name in COMMANDS:
        assert name in out
    assert "ALTO" in out and "PAGE" in out and "IAM" in out and "Rimes" in out


def test_unknown_command_exits_2_with_usage(capsys):
    assert main(["frobnicate"]) == 2
    err = capsys.readouterr().err
    assert "unknown command 'frobnicate'" in err and "prepare" in err


def test_prepare_help_explains_the_source_kinds(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["prepare", "--help"])
    assert exit_info.value.code == 0
    out = " ".join(capsys.readouterr().out.split())  # argparse wraps the epilog
    for kind in SOURCE_KINDS:
        assert kind in out
    for flag in ("--out", "--jobs", "--writer-pattern", "--split", "--seed", "--train-pages", "--fonts-dir"):
        assert flag in out
    assert "NAME.png + NAME.gt.txt" in out and "ascii/lines.txt" in out


def test_prepare_without_out_is_a_usage_error(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["prepare", "alto:somewhere"])
    assert exit_info.value.code == 2
    assert "--out" in capsys.readouterr().err


def test_installed_console_script():
    script = Path(sys.executable).parent / "htr"
    if not script.is_file():
        pytest.skip(f"{script} not installed (pip install -e .)")
    for argv in (["--help"], ["prepare", "--help"]):
        done = subprocess.run([str(script), *argv], capture_output=True, text=True, timeout=60)
        assert done.returncode == 0, done.stderr
        assert "prepare" in done.stdout
    assert "folder:PATH" in done.stdout
