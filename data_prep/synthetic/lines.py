"""``htr prepare synthetic-lines:MANIFEST``: single handwriting-style text lines for pretraining.

Each line is rendered exactly as a line of ``htr prepare synthetic`` (:mod:`.page`): the
page generator's :func:`compose_page` puts it alone on a small page (paper with uneven
illumination, ink darkness, pixel noise, a rotation up to ``max_skew_degrees``), the page
goes through JPEG like the synthetic pages do, and the line is cropped by its ink outline
as ``htr prepare`` crops the lines of any page (outside the outline: the paper level).
The text and fonts: :mod:`.line_text`.

Writes, under the output folder::

    lines/synth-NNNNNN.png       the line images (grayscale, dark ink on light paper)
    manifest.jsonl               one record per line (writer = the font's name)
    summary.json                 lines written, skipped by reason, fonts used, wall time
    synthetic-lines-config.json  the settings and a hash of the inputs

A rerun with the same settings and inputs renders only the lines that are missing (none
after a complete run); ``--lines`` may grow or shrink without re-rendering the others.
"""
from __future__ import annotations

import hashlib
import io
import json
import math
import sys
import time
from collections import Counter
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
from PIL import Image
from tqdm import tqdm

from common.files import atomic_write_bytes, atomic_write_text
from data_prep.geometry import GeometryError, box_polygon, crop_polygon, min_line_size, page_background
from data_prep.line_crops import PrepareOptions, png_bytes
from data_prep.records import LineRecord, line_image_path, write_manifest
from data_prep.synthetic.config import SyntheticLinesConfig
from data_prep.synthetic.fonts import find_fonts
from data_prep.synthetic.line_text import (NO_FONT, LinePlan, covers, french_vocabulary, plan_lines,
                                           read_texts)
from data_prep.synthetic.page import PageLayout, compose_page
from data_prep.synthetic.render import text_width
from data_prep.synthetic.text import ALPHABET

FINGERPRINT = "synthetic-lines-config.json"
NOT_PLACED = "line did not fit its page"
RAN_OFF = "line ran off its page"


def line_id(index: int) -> str:
    return f"synth-{index:06d}"


def line_layout(text: str, font: Path, size: int, skew: float, max_skew: float) -> PageLayout:
    """A page just big enough for one line of ``text``: room for the widest rendering
    (word spacing up to 1.7 spaces, slant, the first-line indent of up to 8% of the
    page width) and for a rotation of ``max_skew`` degrees."""
    width = int((1.6 * text_width(text, font, size) + 8 * size) / 0.92)
    room = int(width / 2 * math.sin(math.radians(max_skew))) + 2
    return PageLayout(width=width, height=2 * room + int(5.5 * size), font=font, size=size,
                      left_margin=size, right_margin=size, top_margin=room + 2 * size, bottom_margin=size,
                      line_spacing=2.0 * size, skew_degrees=skew)


def render_line_image(plan: LinePlan, seed: int, max_skew: float) -> np.ndarray:
    """The cropped grayscale line; raises GeometryError (reason: a counted skip)."""
    if not covers(plan.font, plan.text):
        raise GeometryError(NO_FONT, f"{plan.font.name} lacks some of {plan.text!r}")
    rng = np.random.default_rng([seed, 1, plan.index])
    layout = line_layout(plan.text, plan.font, plan.size, float(rng.uniform(-max_skew, max_skew)), max_skew)
    page, lines = compose_page([plan.text], layout, rng)
    if not lines:
        raise GeometryError(NOT_PLACED, f"{layout.width}x{layout.height} px")
    polygon = [[float(round(x)), float(round(y))] for x, y in lines[0].polygon]  # as the ALTO file has them
    xs = [x for x, _ in polygon]
    if min(xs) < 1 or max(xs) > layout.width - 2:
        raise GeometryError(RAN_OFF, f"outline x {min(xs):.0f}..{max(xs):.0f} of {layout.width} px")
    buffer = io.BytesIO()  # the synthetic pages are JPEG files: the same compression here
    Image.fromarray(page, mode="L").save(buffer, format="JPEG", quality=88)
    page = np.asarray(Image.open(buffer).convert("L"))
    return crop_polygon(page, polygon, page_background(page), min_size=min_line_size(plan.text))


def _render_task(task: tuple[LinePlan, int, float, Path]) -> tuple[int, tuple[int, int] | None, str, str]:
    """Render and write one line: (index, (width, height) or None, skip reason, detail)."""
    plan, seed, max_skew, out = task
    try:
        crop = render_line_image(plan, seed, max_skew)
    except GeometryError as error:
        return plan.index, None, error.reason, error.detail
    atomic_write_bytes(out / line_image_path(line_id(plan.index)), png_bytes(crop))
    return plan.index, (crop.shape[1], crop.shape[0]), "", ""


def _fingerprint(config: SyntheticLinesConfig, texts: list[str], words: list[str], fonts: list[Path]) -> dict:
    """What the lines depend on: the settings (not the count) and a hash of text, words and fonts."""
    digest = hashlib.sha1()
    for part in (texts, words, [font.name for font in fonts]):
        digest.update("\n".join(part).encode("utf-8") + b"\0")
    settings = {k: v for k, v in config.to_dict().items() if k not in ("lines", "fonts_dir")}
    if config.wordfreq_share == 0:  # the vocabulary is not used
        del settings["wordfreq_words"], settings["wordfreq_smoothing"]
    return {**settings, "inputs_sha1": digest.hexdigest()}


def _clean(lines_dir: Path, keep: set[str], fingerprint: dict, out: Path) -> None:
    """Remove every line image when the fingerprint changed, else those beyond the count,
    and temp files of a killed run; then record the fingerprint."""
    path = out / FINGERPRINT
    changed = not path.is_file() or json.loads(path.read_text(encoding="utf-8")) != fingerprint
    if lines_dir.is_dir():
        for image in lines_dir.iterdir():
            if changed or image.name not in keep:
                image.unlink()
    atomic_write_text(path, json.dumps(fingerprint, indent=2, ensure_ascii=False) + "\n")


def _existing_size(path: Path) -> tuple[int, int] | None:
    try:
        with Image.open(path) as image:
            return image.size
    except OSError:  # unreadable: render it again
        return None


def build_synthetic_lines(config: SyntheticLinesConfig, manifest: Path, options: PrepareOptions) -> dict:
    """Render (or resume rendering) the lines, write the manifest and summary; the summary."""
    started = time.monotonic()
    config.validate()
    out = options.out
    fonts = find_fonts(config.fonts_dir, ALPHABET)
    texts = read_texts(manifest, fonts)
    vocabulary = None
    if config.wordfreq_share > 0:
        vocabulary = french_vocabulary(config.wordfreq_words, config.wordfreq_smoothing, texts.alphabet, fonts)
    plans = plan_lines(config.lines, config.seed, config.wordfreq_share,
                       (config.font_size_min, config.font_size_max), texts, vocabulary, fonts)
    names = {Path(line_image_path(line_id(plan.index))).name: plan for plan in plans}
    lines_dir = out / "lines"
    _clean(lines_dir, set(names), _fingerprint(config, texts.texts, vocabulary.words if vocabulary else [], fonts), out)

    sizes: dict[int, tuple[int, int]] = {}
    for name, plan in names.items():
        if (lines_dir / name).is_file() and (size := _existing_size(lines_dir / name)) is not None:
            sizes[plan.index] = size
    reused = len(sizes)
    tasks = [(plan, config.seed, config.max_skew_degrees, out) for plan in plans if plan.index not in sizes]
    skipped: Counter = Counter()
    progress = tqdm(total=len(tasks), unit="line", desc="render", disable=not options.show_progress, file=sys.stderr)
    if options.jobs > 1 and len(tasks) > 1:
        with ProcessPoolExecutor(max_workers=options.jobs) as pool:
            results = pool.map(_render_task, tasks, chunksize=16)
            _collect(results, sizes, skipped, progress)
    else:
        _collect(map(_render_task, tasks), sizes, skipped, progress)
    progress.close()

    records = [LineRecord(id=line_id(p.index), image=line_image_path(line_id(p.index)), text=p.text, page="",
                          polygon=box_polygon(0, 0, *sizes[p.index]), baseline=[], writer=p.font.stem,
                          split=options.split)
               for p in plans if p.index in sizes]
    write_manifest(out / "manifest.jsonl", records)
    written = [p for p in plans if p.index in sizes]
    summary = {
        "source": f"synthetic-lines:{manifest}",
        "lines_loaded": len(records),
        "lines_skipped": sum(skipped.values()),
        "line_skip_reasons": dict(skipped),
        "files_skipped": 0, "file_skip_reasons": {},
        "from_manifest": sum(p.source == "manifest" for p in written),
        "from_wordfreq": sum(p.source == "wordfreq" for p in written),
        "manifest_records": texts.records,
        "manifest_records_used": len(texts.texts),
        "manifest_records_skipped": dict(texts.skipped),
        "uncovered_characters": texts.uncovered,
        "wordfreq_words": len(vocabulary.words) if vocabulary else 0,
        "wordfreq_words_dropped": vocabulary.dropped if vocabulary else 0,
        "fonts": dict(sorted(Counter(p.font.name for p in written).items())),
        "rendered": len(sizes) - reused,
        "reused": reused,
        "wall_seconds": round(time.monotonic() - started, 1),
    }
    atomic_write_text(out / "summary.json", json.dumps(summary, indent=2, ensure_ascii=False) + "\n")
    return summary


def _collect(results, sizes: dict, skipped: Counter, progress: tqdm) -> None:
    for index, size, reason, detail in results:
        if size is None:
            skipped[reason] += 1
            print(f"skipped: line {line_id(index)}: {reason} ({detail})", file=sys.stderr)
        else:
            sizes[index] = size
        progress.update(1)


def format_lines_summary(summary: dict) -> str:
    """The summary in a few lines for the terminal."""
    skipped = summary["manifest_records_skipped"]
    parts = [f"wrote {summary['lines_loaded']} lines ({summary['from_manifest']} from the manifest's "
             f"transcriptions, {summary['from_wordfreq']} from wordfreq words; {summary['rendered']} rendered now, "
             f"{summary['reused']} already there) in {summary['wall_seconds']} s",
             f"manifest: {summary['manifest_records_used']} of {summary['manifest_records']} records used"
             + ("; skipped " + ", ".join(f"{n} ({reason})" for reason, n in skipped.items()) if skipped else "")
             + (f"; characters no font covers: {summary['uncovered_characters']!r}" if summary["uncovered_characters"] else "")]
    if summary["wordfreq_words"]:
        parts.append(f"wordfreq: {summary['wordfreq_words']} words ({summary['wordfreq_words_dropped']} left out: "
                     "a character the manifest does not use, or no letter)")
    if summary["lines_skipped"]:
        parts.append("lines skipped: " + ", ".join(f"{n} {r}" for r, n in summary["line_skip_reasons"].items()))
    fonts = summary["fonts"]
    parts.append(f"fonts: {len(fonts)} (" + ", ".join(f"{name} {n}" for name, n in fonts.items()) + ")")
    return "\n".join(parts)
