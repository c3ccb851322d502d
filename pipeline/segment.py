"""Line segmentation, the ``htr segment`` command: page images -> text lines in reading
order, written as ALTO v4 or PAGE 2019 (one file per page).

A page goes through the ink steps of :mod:`pipeline.segment_ink` (load at a reduced
working size, binarise, deskew, remove ruling, specks and drawings) and the line finding
of :mod:`pipeline.segment_lines` (line spacing, ridges, ink to lines, polygons, baselines,
reading order); :func:`segment_array` chains them and maps every coordinate back to the
full page.  Pages rotated beyond the deskew range are turned upright first
(:mod:`pipeline.rotation`).  The settings, the line and page types and the error are in
:mod:`pipeline.segment_types`.  This module also writes the outputs (XML, drawings) and
runs the pages, in a process pool with ``--jobs``.
"""
from __future__ import annotations

import argparse
import io
import sys
from concurrent.futures import ProcessPoolExecutor
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw
from skimage.morphology import remove_small_objects
from tqdm import tqdm

from common import skips
from common.files import atomic_write_bytes
from common.image_files import images_in
from common.outlock import OutputError, claim_output
from common.skips import SkipLog
from data_prep.geometry import Polygon
from data_prep.layout import LayoutLine, PageLayout, Step, relative_image, single_region
from data_prep.layout_formats import FORMATS, layout_bytes
from pipeline import rotation
from pipeline.segment_ink import (binarise, column_shifts, estimate_skew, load_page, remove_furniture,
                                  remove_graphics, shear_rows)
from pipeline.segment_lines import assign_ink, collect_lines, envelope, line_period, reading_order, ridge_lines
from pipeline.segment_types import PageResult, SegmentConfig, SegmentedLine, SegmentError


# ---------------------------------------------------------------- page

def segment_array(gray: np.ndarray, full_size: tuple[int, int], config: SegmentConfig,
                  ink: np.ndarray | None = None) -> tuple[list[SegmentedLine], float]:
    """Segment a working-size grayscale page (``ink``: its binarisation, if already made);
    coordinates are returned for ``full_size``."""
    width, height = full_size
    scale_x, scale_y = width / gray.shape[1], height / gray.shape[0]
    ink = binarise(gray, config) if ink is None else ink
    if ink.sum() < 20:
        return [], 0.0
    # skew first (ruling, where there is any, only helps), so that ruling is horizontal
    # when it is looked for
    skew = estimate_skew(remove_small_objects(ink, max_size=3), config.max_skew)
    shift = column_shifts(gray.shape[1], skew)
    paper = float(np.percentile(gray[::4, ::4], 90))
    sheared = remove_furniture(shear_rows(ink, shift), shear_rows(gray, shift, paper), config)
    if sheared.sum() < 20:
        return [], skew
    sheared = remove_graphics(sheared, line_period(sheared), config)
    if sheared.sum() < 20:
        return [], skew
    period = line_period(sheared)
    smooth, ridges = ridge_lines(sheared, period)
    assigned, sizes = assign_ink(sheared, smooth, ridges, period)
    raw = reading_order(collect_lines(assigned, sizes, period, config), period)

    def to_page(points: np.ndarray) -> Polygon:
        xs = np.clip(points[:, 0], 0, gray.shape[1] - 1)
        ys = points[:, 1] - shift[np.clip(np.round(xs).astype(int), 0, len(shift) - 1)]
        xs, ys = (xs + 0.5) * scale_x, (ys + 0.5) * scale_y
        return np.column_stack([np.clip(xs, 0, width - 1), np.clip(ys, 0, height - 1)]).round(1).tolist()

    lines = []
    for line in raw:
        polygon, baseline = envelope(line, period)
        lines.append(SegmentedLine(polygon=to_page(polygon), baseline=to_page(baseline)))
    return lines, skew


def segment_turned(gray: np.ndarray, size: tuple[int, int], angle: float, config: SegmentConfig) -> list[SegmentedLine]:
    """Segment a page whose lines run at ``angle`` degrees: upright it, segment that, and
    map each line (polygon, baseline) back onto the page of full ``size``."""
    turned = rotation.upright(gray, angle)
    scale_x, scale_y = size[0] / gray.shape[1], size[1] / gray.shape[0]
    canvas = (turned.shape[1] * scale_x, turned.shape[0] * scale_y)
    lines, _ = segment_array(turned, (round(canvas[0]), round(canvas[1])), config)
    result = []
    for line in lines:
        result.append(SegmentedLine(polygon=rotation.to_original(line.polygon, angle, canvas, size),
                                    baseline=rotation.to_original(line.baseline, angle, canvas, size)))
    return result


def segment_page(path: Path, config: SegmentConfig) -> PageResult:
    gray, width, height = load_page(path, config.work_height)
    ink = binarise(gray, config)
    angle = rotation.page_angle(ink, config.max_skew, config.max_rotation)
    if angle:  # beyond the deskew range: rotate upright, segment, rotate the lines back
        lines = segment_turned(gray, (width, height), angle, config)
        return PageResult(image=path, width=width, height=height, lines=lines, skew=angle)
    lines, skew = segment_array(gray, (width, height), config, ink)
    return PageResult(image=path, width=width, height=height, lines=lines, skew=skew)


def page_layout(result: PageResult, out_dir: Path, config: SegmentConfig | None = None) -> PageLayout:
    """The page's lines (one region, reading order) for an XML file in ``out_dir``: the
    image's base name for eScriptorium and Transkribus, its path relative to ``out_dir``
    for the project's readers (``htr prepare alto:DIR``), the segmentation as processing step."""
    lines = [LayoutLine(id=f"l{number:03d}", polygon=line.polygon, baseline=line.baseline)
             for number, line in enumerate(result.lines, start=1)]
    step = Step("line segmentation", {k: str(v) for k, v in (config or SegmentConfig()).to_dict().items()})
    return single_region(result.image.name, result.width, result.height, lines,
                         image_path=relative_image(result.image, out_dir), steps=[step],
                         created=datetime.now(timezone.utc))


def page_alto(result: PageResult, out_dir: Path) -> bytes:
    """ALTO v4 bytes of a segmented page (see :func:`page_layout`)."""
    return layout_bytes(page_layout(result, out_dir), "alto")


def draw_page(result: PageResult, max_height: int = 1650) -> bytes:
    """JPEG of the page with polygons (alternating colours), baselines and line numbers."""
    image = Image.open(result.image).convert("RGB")
    factor = min(1.0, max_height / image.height)
    if factor < 1:
        image = image.resize((round(image.width * factor), round(image.height * factor)), Image.BILINEAR)
    draw = ImageDraw.Draw(image)
    colours = [(230, 25, 75), (60, 180, 75), (0, 130, 200), (245, 130, 48), (145, 30, 180), (70, 240, 240)]
    width = max(2, round(3 * factor * 2))
    for number, line in enumerate(result.lines, start=1):
        colour = colours[number % len(colours)]
        polygon = [(x * factor, y * factor) for x, y in line.polygon]
        draw.line(polygon + polygon[:1], fill=colour, width=width)
        draw.line([(x * factor, y * factor) for x, y in line.baseline], fill=(0, 0, 255), width=width)
        draw.text((max(0, polygon[0][0] - 30), polygon[0][1]), str(number), fill=colour)
    buffer = io.BytesIO()
    image.save(buffer, "JPEG", quality=85)
    return buffer.getvalue()


# ---------------------------------------------------------------- command line

def _work(task: tuple[Path, Path, SegmentConfig, bool, str]) -> tuple[Path, int, str | None]:
    """Segment one page and write its outputs; returns (image, lines, error message)."""
    path, out_dir, config, draw, fmt = task
    try:
        result = segment_page(path, config)
    except SegmentError as error:
        return path, 0, error.detail
    atomic_write_bytes(out_dir / f"{path.stem}.xml", layout_bytes(page_layout(result, out_dir, config), fmt))
    if draw:
        atomic_write_bytes(out_dir / f"{path.stem}.draw.jpg", draw_page(result))
    return path, len(result.lines), None


def _images(inputs: list[Path]) -> list[Path]:
    found = []
    for item in inputs:
        if item.is_dir():
            found += images_in(item)
        else:
            found.append(item)
    return found


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="htr segment",
        description="Find the text lines of page images. Writes OUT/NAME.xml per page NAME.jpg "
                    "(ALTO v4, or PAGE 2019 with --format page: a text region, its lines in reading "
                    "order with a polygon following the ink and a baseline); read it back with "
                    "'htr prepare alto:OUT' (or page:OUT), or import it into eScriptorium or Transkribus.")
    parser.add_argument("images", nargs="+", type=Path, help="page images (or folders of them)")
    parser.add_argument("--out", type=Path, required=True, help="output folder")
    parser.add_argument("--jobs", type=int, default=1, help="worker processes, one page each (default 1)")
    parser.add_argument("--draw", action="store_true", help="also write OUT/NAME.draw.jpg with polygons and baselines drawn")
    parser.add_argument("--format", choices=FORMATS, default="alto", help="XML format: alto (ALTO v4, default) or page (PAGE 2019-07-15)")
    parser.add_argument("--config", type=Path, help="JSON segmenter config (flags override it)")
    SegmentConfig.add_arguments(parser.add_argument_group("segmenter"))
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    config = SegmentConfig.from_args(args, SegmentConfig.load(args.config) if args.config else None)
    images = _images(args.images)
    log = SkipLog()
    for path in [p for p in images if not p.is_file()]:
        log.skip_file(path, skips.MISSING_IMAGE)
    images = [p for p in images if p.is_file()]
    stems = [p.stem for p in images]
    if len(set(stems)) != len(stems):
        print("htr segment: several images share a name; their ALTO files would overwrite each other", file=sys.stderr)
        return 2
    try:
        with claim_output(args.out, "htr segment", folder=True):
            return _segment_all(args, config, images, log)
    except OutputError as error:
        print(f"htr segment: {error}", file=sys.stderr)
        return 1


def _segment_all(args: argparse.Namespace, config: SegmentConfig, images: list[Path], log: SkipLog) -> int:
    tasks = [(path, args.out, config, args.draw, args.format) for path in images]
    total = 0
    with tqdm(total=len(tasks), unit="page", desc="segment") as progress:
        if args.jobs > 1 and len(tasks) > 1:
            with ProcessPoolExecutor(max_workers=args.jobs) as pool:
                outcomes = pool.map(_work, tasks, chunksize=1)
                for outcome in outcomes:
                    total += _report(outcome, log, progress)
        else:
            for task in tasks:
                total += _report(_work(task), log, progress)
    pages = len(images) - log.files[skips.UNREADABLE_IMAGE]
    print(f"segment: {total} lines on {pages} pages -> {args.out}", file=sys.stderr)
    if log.files:
        print(f"segment: {sum(log.files.values())} files skipped: {dict(log.files)}", file=sys.stderr)
    if not pages:
        print(f"htr segment: no page could be segmented ({sum(log.files.values())} inputs skipped, "
              "see above); nothing written", file=sys.stderr)
        return 1
    return 0


def _report(outcome: tuple[Path, int, str | None], log: SkipLog, progress: tqdm) -> int:
    path, count, error = outcome
    if error:
        log.skip_file(path, skips.UNREADABLE_IMAGE, error)
    progress.update(1)
    return count
