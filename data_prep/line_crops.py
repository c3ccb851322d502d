"""Crop the lines of a data source into a manifest folder (the work of ``htr prepare``).

A reader (:mod:`data_prep.readers`) turns a source into page and line-image specs; this
module crops each line, writes ``lines/*.png``, ``manifest.jsonl`` and ``summary.json``
and counts what it skipped.  Below both the ``htr prepare`` command and the synthetic
data set, which prepares its rendered pages like any real source.
"""
from __future__ import annotations

import io
import json
import re
import sys
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Iterator

import numpy as np
from PIL import Image, UnidentifiedImageError
from tqdm import tqdm

from common import skips
from data_prep.geometry import GeometryError, box_polygon, crop_polygon, min_line_size, page_background
from data_prep.readers import READERS, LineImageSpec, PageSpec
from data_prep.readers.base import Spec, unique_ids
from common.files import atomic_write_bytes, atomic_write_text
from data_prep.records import LineRecord, line_image_path, write_manifest
from common.skips import SkipLog

Image.MAX_IMAGE_PIXELS = 400_000_000  # large archival scans are legitimate input


@dataclass
class PrepareOptions:
    out: Path
    jobs: int = 1
    writer_pattern: str | None = None  # regex on the page/line id; group 1 is the writer
    split: str | None = None
    show_progress: bool = True
    keep_empty: bool = False  # keep lines without text (predicted segmentation, transcription)
    # page image name without suffix -> the writer of its lines, where the source names none
    page_writers: dict[str, str] = field(default_factory=dict)


@dataclass
class PrepareResult:
    records: list[LineRecord] = field(default_factory=list)
    skips: SkipLog = field(default_factory=SkipLog)
    pages: int = 0

    def summary(self) -> dict:
        return {"lines_loaded": len(self.records), "pages": self.pages, **self.skips.summary()}


def load_grayscale(path: Path) -> np.ndarray:
    """Read an image as an 8-bit grayscale array; raises GeometryError-like ValueErrors."""
    if not path.is_file():
        raise FileNotFoundError(path)
    if path.stat().st_size == 0:
        raise ValueError("file is empty (0 bytes)")
    with Image.open(path) as image:
        image.load()
        if image.mode.startswith("I;16"):  # 16-bit scans: convert("L") would clip, not scale
            array = (np.asarray(image).astype(np.uint16) >> 8).astype(np.uint8)
        else:
            array = np.asarray(image.convert("L"))
    if array.size == 0:
        raise ValueError("image has no pixels")
    return array


def png_bytes(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(array, mode="L").save(buffer, format="PNG", optimize=False)
    return buffer.getvalue()


def _writer(pattern: re.Pattern | None, default: str | None, key: str) -> str | None:
    if pattern is not None and (match := pattern.search(key)):
        return match.group(1) if match.groups() else match.group(0)
    return default


def _open_image(path: Path | None, where: Path, log: SkipLog, lines: int) -> np.ndarray | None:
    if path is None:
        log.skip_file(where, skips.MISSING_IMAGE, "no page image found beside it (checked the declared name and the same stem)", lines=lines)
        return None
    try:
        return load_grayscale(path)
    except FileNotFoundError:
        log.skip_file(path, skips.MISSING_IMAGE, f"named by {where}", lines=lines)
    except (UnidentifiedImageError, OSError, ValueError) as error:
        log.skip_file(path, skips.UNREADABLE_IMAGE, f"{error}; re-export or remove it", lines=lines)
    return None


def _write_crop(out: Path, line_id: str, crop: np.ndarray, where, log: SkipLog) -> str | None:
    """Write a line image under its file name (see records.line_image_path); a write
    that fails (disk full, permissions) is a counted skip, not the end of the run."""
    relative = line_image_path(line_id)
    try:
        atomic_write_bytes(out / relative, png_bytes(crop))
    except OSError as error:
        log.skip_line(where, skips.UNWRITABLE, f"{out / relative}: {error.strerror or error}")
        return None
    return relative


def process_page(spec: PageSpec, options: PrepareOptions) -> tuple[list[LineRecord], SkipLog]:
    """Crop every line of one page; returns the records and what was skipped."""
    log = SkipLog(stream=None)
    records: list[LineRecord] = []
    if not spec.lines:
        return records, log
    page = _open_image(spec.image, spec.source, log, len(spec.lines))
    if page is None:
        return records, log
    background = page_background(page)
    pattern = re.compile(options.writer_pattern) if options.writer_pattern else None
    page_writer = spec.writer or options.page_writers.get(spec.image.stem)
    for line in spec.lines:
        where = f"{spec.source} line {line.id}"
        if not line.text and not options.keep_empty:
            log.skip_line(where, skips.EMPTY_TEXT)
            continue
        try:
            crop = crop_polygon(page, line.polygon, background, min_size=min_line_size(line.text))
        except GeometryError as error:
            log.skip_line(where, error.reason, error.detail)
            continue
        relative = _write_crop(options.out, line.id, crop, where, log)
        if relative is None:
            continue
        records.append(LineRecord(id=line.id, image=relative, text=line.text, page=str(spec.image.resolve()),
                                  polygon=line.polygon, baseline=line.baseline,
                                  writer=_writer(pattern, page_writer, line.id), split=options.split))
    return records, log


def process_line_image(spec: LineImageSpec, options: PrepareOptions) -> tuple[list[LineRecord], SkipLog]:
    log = SkipLog(stream=None)
    if not spec.text:
        log.skip_line(spec.image, skips.EMPTY_TEXT, f"transcription in {spec.source}")
        return [], log
    array = _open_image(spec.image, spec.source, log, 1)
    if array is None:
        return [], log
    if min(array.shape) < 2:
        log.skip_line(spec.image, skips.ZERO_AREA, f"image is {array.shape[1]}x{array.shape[0]} px")
        return [], log
    min_width, min_height = min_line_size(spec.text)
    if array.shape[1] < min_width or array.shape[0] < min_height:
        log.skip_line(spec.image, skips.TOO_SMALL, f"image is {array.shape[1]}x{array.shape[0]} px, "
                      f"{len(spec.text)} characters need {min_width}x{min_height}")
        return [], log
    relative = _write_crop(options.out, spec.id, array, spec.image, log)
    if relative is None:
        return [], log
    height, width = array.shape
    pattern = re.compile(options.writer_pattern) if options.writer_pattern else None
    record = LineRecord(id=spec.id, image=relative, text=spec.text, page="",
                        polygon=box_polygon(0, 0, width, height), baseline=[],
                        writer=_writer(pattern, spec.writer, spec.id), split=options.split)
    return [record], log


def _process(item: tuple[Spec, PrepareOptions]) -> tuple[list[LineRecord], SkipLog]:
    spec, options = item
    if isinstance(spec, PageSpec):
        return process_page(spec, options)
    return process_line_image(spec, options)


def prepare_specs(specs: Iterable[Spec], options: PrepareOptions, log: SkipLog) -> PrepareResult:
    """Crop/copy every spec into ``options.out``; the manifest is written by the caller."""
    result = PrepareResult(skips=log)
    specs = list(specs)  # readers are fast; listing gives the progress bar its total
    # ids are unique per page; pages of different folders may share a name (Transkribus: doc/0001.xml)
    unique_ids(item for spec in specs for item in (spec.lines if isinstance(spec, PageSpec) else [spec]))
    items = [(spec, options) for spec in specs]
    result.pages = sum(isinstance(spec, PageSpec) for spec in specs)
    unit = "page" if result.pages else "line"
    progress = tqdm(total=len(items), unit=unit, desc="prepare", disable=not options.show_progress,
                    file=sys.stderr)
    if options.jobs > 1 and len(items) > 1:
        with ProcessPoolExecutor(max_workers=options.jobs) as pool:
            outputs: Iterator = pool.map(_process, items, chunksize=4)
            _collect(outputs, result, progress)
    else:
        _collect(map(_process, items), result, progress)
    progress.close()
    return result


def _collect(outputs: Iterable, result: PrepareResult, progress: tqdm) -> None:
    for records, page_log in outputs:
        result.records.extend(records)
        result.skips.merge(page_log)
        progress.update(1)


def prepare_source(kind: str, path: Path, options: PrepareOptions, log: SkipLog | None = None) -> PrepareResult:
    """Read ``path`` with the ``kind`` reader and write the output folder."""
    log = log or SkipLog()
    if not path.exists():
        raise FileNotFoundError(f"{path}: no such file or folder (SOURCE was {kind}:{path})")
    result = prepare_specs(READERS[kind](path, log), options, log)
    write_outputs(result, options.out, source=f"{kind}:{path}")
    return result


def write_outputs(result: PrepareResult, out: Path, source: str) -> None:
    write_manifest(out / "manifest.jsonl", result.records)
    summary = {"source": source, **result.summary()}
    atomic_write_text(out / "summary.json", json.dumps(summary, indent=2, ensure_ascii=False) + "\n")
