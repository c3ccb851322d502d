"""Fuzzing the ALTO and PAGE readers through ``htr prepare`` (issue 16, item 4).

1,200 seeded mutants of real-shaped ALTO v4 and PAGE 2019 files (see tests/fuzzing.py)
are prepared one by one: no exception may escape, and no kept line may be degenerate
(non-finite or far-off coordinates, a crop too small for its text, a missing image file,
an unsafe file name).  The run must also have *found* hostile input: several different
skip reasons, and good lines loaded, or the fuzzer has stopped mutating anything.
A failure names the seed and the mutations, so the input can be rebuilt.
"""
from __future__ import annotations

import functools
import random
import time
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import fuzzing
from conftest import draw_page
from data_prep import line_crops as prepare
from data_prep.geometry import min_line_size
from data_prep.line_crops import PrepareOptions, prepare_source
from data_prep.records import MAX_NAME
from common.skips import SkipLog

MUTANTS_PER_READER = 600
COPISTE_DEV = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "copiste" / "dev"


@pytest.fixture
def cached_pages(monkeypatch):
    """Decode each page image once: the fuzzer exercises the readers and the crop checks,
    not PNG decoding 1,200 times."""
    monkeypatch.setattr(prepare, "load_grayscale", functools.lru_cache(maxsize=4)(prepare.load_grayscale))


def check_records(result, out: Path, page: np.ndarray) -> None:
    height, width = page.shape
    for record in result.records:
        polygon = np.asarray(record.polygon, dtype=float)
        assert record.text and np.isfinite(polygon).all()
        assert polygon[:, 0].min() >= -width and polygon[:, 0].max() <= 2 * width
        assert polygon[:, 1].min() >= -height and polygon[:, 1].max() <= 2 * height
        assert not record.baseline or np.isfinite(np.asarray(record.baseline, dtype=float)).all(), record.id
        name = record.image.removeprefix("lines/")
        assert len(name) <= MAX_NAME + 4 and "/" not in name and not name.startswith(".")
        with Image.open(out / record.image) as image:
            crop_width, crop_height = image.size
        min_width, min_height = min_line_size(record.text)
        assert crop_width >= min_width and crop_height >= min_height, (record.id, image.size, record.text)


def fuzz(kind: str, make_seed, count: int, tmp_path: Path, page: np.ndarray, first_seed: int = 0) -> Counter:
    """Prepare ``count`` mutants; returns the skip reasons seen (and 'loaded')."""
    seen: Counter = Counter()
    source = tmp_path / kind
    source.mkdir()
    for seed in range(first_seed, first_seed + count):
        rng = random.Random(seed)
        document, done = fuzzing.mutate(make_seed(rng), rng)
        xml_path = source / f"mutant{seed}.xml"
        xml_path.write_bytes(document)
        (source / f"mutant{seed}.png").symlink_to(source.parent / "page.png")
        out = tmp_path / "out" / f"{kind}{seed}"
        log = SkipLog(stream=None)
        try:
            result = prepare_source(kind, xml_path, PrepareOptions(out=out, show_progress=False), log)
            check_records(result, out, page)
        except Exception as error:  # noqa: BLE001 - the point is to report any escape
            pytest.fail(f"{kind} seed {seed} ({'; '.join(done)}): {type(error).__name__}: {error}")
        assert all("\n" not in message for message in log.messages)
        seen.update(log.lines)
        seen.update(log.files)
        seen["loaded"] += len(result.records)
    return seen


def test_1200_mutated_alto_and_page_files_never_raise_nor_keep_a_degenerate_line(tmp_path, cached_pages):
    page = draw_page(tmp_path / "page.png", fuzzing.WIDTH, fuzzing.HEIGHT, tuple(fuzzing.LINE_BOXES))
    start = time.perf_counter()
    alto = fuzz("alto", fuzzing.alto_seed, MUTANTS_PER_READER, tmp_path, page)
    pagexml = fuzz("page", fuzzing.page_seed, MUTANTS_PER_READER, tmp_path, page)
    elapsed = time.perf_counter() - start
    for seen in (alto, pagexml):  # the mutants reach the checks, and most lines survive them
        assert seen["loaded"] > 2 * MUTANTS_PER_READER
        hostile = {"non-finite coordinate", "XML does not parse", "coordinates far outside the page",
                   "unreadable coordinates", "odd number of coordinates", "no coordinates"}
        assert len(hostile & set(seen)) >= 5, seen
    assert elapsed < 60, f"{2 * MUTANTS_PER_READER} inputs took {elapsed:.0f} s"


@pytest.mark.shared
@pytest.mark.skipif(not COPISTE_DEV.is_dir(), reason=f"{COPISTE_DEV} not available")
def test_mutants_of_a_real_copiste_page_never_raise(tmp_path, cached_pages):
    """The same fuzzer seeded with one real eScriptorium export (its image stays in ../shared)."""
    real = sorted(COPISTE_DEV.glob("*.xml"))[0]
    image = real.with_suffix(".jpg")
    (tmp_path / "page.png").symlink_to(image)
    page = prepare.load_grayscale(image)
    seen = fuzz("alto", lambda rng: real.read_bytes(), 30, tmp_path, page)
    assert seen["loaded"] > 30 * 10 and len(set(seen) - {"loaded"}) >= 3, seen
