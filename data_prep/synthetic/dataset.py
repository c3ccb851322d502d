"""``htr prepare synthetic``: the embedded default data set.

Writes, under the output folder::

    text/{train,dev,test}.txt      sentences of each split (train.txt is the LM corpus)
    {split}/pages/NAME.jpg + .xml  rendered pages and their ALTO v4 ground truth
    {split}/manifest.jsonl, lines/ line crops, read back from the ALTO like any real data; each
                                   line's writer is its page's font (reports resample fonts as hands)
    manifest.jsonl                 all splits together (records carry "split")
    synthetic-config.json          the settings; pages are re-rendered when they change

Every page has its own random generator seeded by (seed, split, page number), so
pages are identical across runs and across ``--jobs`` settings, and a killed run
resumes by rendering only the pages that are missing.
"""
from __future__ import annotations

import hashlib
import io
import json
import sys
from concurrent.futures import ProcessPoolExecutor
from dataclasses import replace
from pathlib import Path

import numpy as np
from PIL import Image
from tqdm import tqdm

from data_prep.alto_writer import alto_bytes, alto_document
from data_prep import layout as page_xml
from data_prep.line_crops import PrepareOptions, prepare_source
from common.files import atomic_write_bytes, atomic_write_text
from data_prep.records import LineRecord, read_manifest, write_manifest
from data_prep.synthetic.config import SyntheticConfig
from data_prep.synthetic.fonts import find_fonts
from data_prep.synthetic.columns import compose_columns
from data_prep.synthetic.page import compose_page, lines_per_page, random_layout, running_text
from data_prep.synthetic.text import ALPHABET, read_entries, sentences, split_sentences

SPLITS = ("train", "dev", "test")


def page_name(split: str, number: int) -> str:
    return f"{split}-{number:04d}"


def page_rng(config: SyntheticConfig, split: str, number: int) -> np.random.Generator:
    """The generator of one page: its font is the first draw, then its layout and text."""
    return np.random.default_rng([config.seed, SPLITS.index(split), number])


def draw_font(rng: np.random.Generator, fonts: list[Path]) -> Path:
    return fonts[int(rng.integers(len(fonts)))]


def page_fonts(config: SyntheticConfig, split: str, count: int, fonts: list[Path]) -> dict[str, str]:
    """Page name -> the name of the font it is written in (the page's "writer")."""
    return {page_name(split, n): draw_font(page_rng(config, split, n), fonts).stem for n in range(count)}


def render_page(config: SyntheticConfig, split: str, number: int, split_sentences_: list[str],
                fonts: list[Path], pages_dir: Path) -> None:
    """Render one page and its ALTO file (atomically: both appear, or neither)."""
    rng = page_rng(config, split, number)
    font = draw_font(rng, fonts)
    size = int(rng.integers(config.font_size_min, config.font_size_max + 1))
    layout = random_layout(rng, config.page_width, config.page_height, font, size, config.max_skew_degrees)
    wanted = int(rng.integers(max(1, lines_per_page(layout) // 2), lines_per_page(layout) + 1))
    start = int(rng.integers(len(split_sentences_)))
    name = page_name(split, number)
    if config.columns > 1 or config.margin_notes > 0:
        page, regions = compose_columns(split_sentences_, start, wanted, layout, rng, config.columns, config.margin_notes)
        xml = alto_bytes(page_xml.PageLayout(f"{name}.jpg", layout.width, layout.height, regions))
    else:  # the default data set: one column, one text block
        page, lines = compose_page(running_text(split_sentences_, start, wanted, layout, rng), layout, rng)
        xml = alto_document(f"{name}.jpg", layout.width, layout.height, lines)
    buffer = io.BytesIO()
    Image.fromarray(page, mode="L").save(buffer, format="JPEG", quality=88)
    atomic_write_bytes(pages_dir / f"{name}.jpg", buffer.getvalue())
    atomic_write_bytes(pages_dir / f"{name}.xml", xml)


def _render_task(task: tuple) -> None:
    render_page(*task)


def _fingerprint(config: SyntheticConfig, text_by_split: dict[str, list[str]], fonts: list[Path]) -> dict:
    """The settings plus a hash of the sentences and font names: pages depend on all three."""
    digest = hashlib.sha1()
    for split in SPLITS:
        digest.update("\n".join(text_by_split[split]).encode("utf-8"))
    digest.update("\n".join(font.name for font in fonts).encode("utf-8"))
    settings = config.to_dict()
    for key, default in (("columns", 1), ("margin_notes", 0.0)):
        if settings[key] == default:  # pages rendered before these options existed are the same pages
            del settings[key]
    return {**settings, "inputs_sha1": digest.hexdigest()}


def _fingerprint_changed(fingerprint: dict, out: Path) -> bool:
    path = out / "synthetic-config.json"
    return not path.is_file() or json.loads(path.read_text()) != fingerprint


def build_synthetic(config: SyntheticConfig, options: PrepareOptions) -> dict[str, dict]:
    """Render (or resume rendering) the pages, then prepare the line manifests."""
    out = options.out
    text_by_split = split_sentences(sentences(read_entries(config.text_dir)), config.dev_fraction, config.test_fraction)
    fonts = find_fonts(config.fonts_dir, ALPHABET)
    for split in SPLITS:
        atomic_write_text(out / "text" / f"{split}.txt", "\n".join(text_by_split[split]) + "\n")
    fingerprint = _fingerprint(config, text_by_split, fonts)
    if _fingerprint_changed(fingerprint, out):
        for stale in out.glob("*/pages/*.xml"):
            stale.unlink()
    counts = {"train": config.train_pages, "dev": config.dev_pages, "test": config.test_pages}
    tasks = [(config, split, n, text_by_split[split], fonts, out / split / "pages")
             for split in SPLITS for n in range(counts[split])
             if not (out / split / "pages" / f"{page_name(split, n)}.xml").is_file()]
    progress = tqdm(total=len(tasks), unit="page", desc="render", disable=not options.show_progress, file=sys.stderr)
    if options.jobs > 1 and len(tasks) > 1:
        with ProcessPoolExecutor(max_workers=options.jobs) as pool:
            for _ in pool.map(_render_task, tasks):
                progress.update(1)
    else:
        for task in tasks:
            _render_task(task)
            progress.update(1)
    progress.close()
    atomic_write_text(out / "synthetic-config.json", json.dumps(fingerprint, indent=2) + "\n")

    summaries: dict[str, dict] = {}
    combined: list[LineRecord] = []
    for split in SPLITS:
        split_out = out / split
        (split_out / "pages").mkdir(parents=True, exist_ok=True)  # a split of 0 pages is an empty folder
        _remove_extra_pages(split_out / "pages", counts[split], split)
        writers = page_fonts(config, split, counts[split], fonts)  # a page's font is its lines' writer
        result = prepare_source("alto", split_out / "pages", replace(options, out=split_out, split=split,
                                                                      page_writers=writers))
        summaries[split] = result.summary()
        for record in read_manifest(split_out / "manifest.jsonl"):
            record.image = f"{split}/{record.image}"
            combined.append(record)
    write_manifest(out / "manifest.jsonl", combined)
    return summaries


def _remove_extra_pages(pages_dir: Path, count: int, split: str) -> None:
    """Pages beyond the configured count (left by a larger earlier run) are removed."""
    keep = {page_name(split, n) for n in range(count)}
    for path in pages_dir.glob("*"):
        if path.stem not in keep:
            path.unlink()
