"""Shared fixtures: small page images drawn with numpy, and running ``htr prepare``.

Every data fixture is generated inside the test's tmp_path; nothing is read from
the repository's data folders.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import pytest
from PIL import Image

from data_prep.records import LineRecord, read_manifest

PAPER = 230  # page background level of the fixture pages
INK = 20  # level of the dark "text" blocks


def draw_page(path: Path, width: int = 240, height: int = 160,
              blocks: tuple[tuple[int, int, int, int], ...] = ()) -> np.ndarray:
    """Write a light grayscale page with dark text-like blocks (left, top, right, bottom).

    Each block is drawn as a row of short dark strokes, like handwriting at a
    distance, so a crop of it has both ink and paper.  Returns the page array.
    """
    page = np.full((height, width), PAPER, dtype=np.uint8)
    for left, top, right, bottom in blocks:
        for x in range(left, right, 6):
            page[top:bottom, x:min(x + 4, right)] = INK
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(page, mode="L").save(path)
    return page


@pytest.fixture
def page_image() -> Callable[..., np.ndarray]:
    """``page_image(path, width, height, blocks)``: see :func:`draw_page`."""
    return draw_page


@dataclass
class PrepareRun:
    """What one ``htr prepare`` run produced."""

    rc: int
    out: Path
    stdout: str
    stderr: str

    @property
    def summary(self) -> dict:
        return json.loads((self.out / "summary.json").read_text(encoding="utf-8"))

    @property
    def records(self) -> list[LineRecord]:
        return read_manifest(self.out / "manifest.jsonl")

    def by_id(self) -> dict[str, LineRecord]:
        return {record.id: record for record in self.records}

    def crop(self, record_id: str) -> np.ndarray:
        record = self.by_id()[record_id]
        with Image.open(self.out / record.image) as image:
            assert image.mode == "L", "line crops are grayscale"
            return np.asarray(image)


@pytest.fixture
def run_prepare(capsys) -> Callable[..., PrepareRun]:
    """``run_prepare(source, out, *flags)`` runs ``htr prepare`` in-process via the CLI."""
    from pipeline.cli import main

    def run(source: str, out: Path, *flags: str) -> PrepareRun:
        capsys.readouterr()
        rc = main(["prepare", source, "--out", str(out), "--no-progress", *flags])
        captured = capsys.readouterr()
        return PrepareRun(rc=rc, out=out, stdout=captured.out, stderr=captured.err)

    return run


@pytest.fixture(autouse=True)
def restore_torch_threads():
    """Commands under test (train, recognize, transcribe) set torch's thread count;
    put it back so one test's setting never slows or changes another."""
    import torch

    before = torch.get_num_threads()
    yield
    torch.set_num_threads(before)
