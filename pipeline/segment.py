"""Line segmentation, the ``htr segment`` command: page images -> text regions and their
lines in reading order, written as ALTO v4 or PAGE 2019 (one file per page).

A page goes through the ink steps of :mod:`pipeline.segment_ink` (load at a reduced
working size, binarise, deskew, remove ruling, specks and drawings), is cut into text
regions by :mod:`pipeline.segment_regions` (columns, margin notes, header blocks, and
their reading order; a page without gutters is one region), and the lines of each region
are found by :mod:`pipeline.segment_lines` (line spacing, ridges, ink to lines, polygons,
baselines, order within the region); :func:`segment_array` chains them and maps every
coordinate back to the full page.  Pages rotated beyond the deskew range are turned
upright first (:mod:`pipeline.rotation`).  The settings, the region, line and page types
and the error are in :mod:`pipeline.segment_types`.  This module also writes the outputs
(XML, drawings) and runs the pages, in a process pool with ``--jobs``.
"""
from __future__ import annotations

import argparse
import io
import math
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
from common.image_files import expand_images
from common.outlock import OutputError, claim_output
from common.skips import SkipLog
from data_prep.geometry import Polygon
from data_prep.layout import MARGINALIA, LayoutLine, PageLayout, Region, Step, relative_image
from data_prep.layout_formats import FORMATS, layout_bytes
from pipeline import rotation
from pipeline.segment_ink import (binarise, column_shifts, estimate_skew, load_page, remove_furniture,
                                  remove_graphics, shear_rows)
from pipeline.segment_lines import RawLine, drop_small_print, envelope, find_lines, line_period, reading_order
from pipeline.segment_regions import InkRegion, find_regions, outline
from pipeline.segment_types import PageResult, SegmentConfig, SegmentedLine, SegmentedRegion, SegmentError


# ---------------------------------------------------------------- page

def segment_array(gray: np.ndarray, full_size: tuple[int, int], config: SegmentConfig,
                  ink: np.ndarray | None = None) -> tuple[list[SegmentedRegion], float]:
    """Segment a working-size grayscale page (``ink``: its binarisation, if already made)
    into regions and their lines, in reading order; coordinates are returned for ``full_size``."""
    ink = binarise(gray, config) if ink is None else ink
    if ink.sum() < 20:
        return [], 0.0
    sheared, shift, skew = clean_ink(gray, ink, config)
    if sheared.sum() < 20:
        return [], skew
    period = line_period(sheared)
    regions, groups = region_lines(sheared, period, skew, config)
    to_page = _page_mapping(gray.shape, shift, full_size)
    return [_page_region(region, lines, period, to_page) for region, lines in zip(regions, groups) if lines], skew


def clean_ink(gray: np.ndarray, ink: np.ndarray, config: SegmentConfig) -> tuple[np.ndarray, np.ndarray, float]:
    """The deskewed ink without ruling, specks and drawings; the column shifts of the
    deskew and its angle."""
    # skew first (ruling, where there is any, only helps), so that ruling is horizontal
    # when it is looked for
    skew = estimate_skew(remove_small_objects(ink, max_size=3), config.max_skew)
    shift = column_shifts(gray.shape[1], skew)
    paper = float(np.percentile(gray[::4, ::4], 90))
    sheared = remove_furniture(shear_rows(ink, shift), shear_rows(gray, shift, paper), config)
    if sheared.sum() >= 20:
        sheared = remove_graphics(sheared, line_period(sheared), config)
    return sheared, shift, skew


def _page_region(region: InkRegion | None, lines: list[RawLine], period: float, to_page) -> SegmentedRegion:
    """A region's lines as polygons and baselines on the full page, and its outline."""
    found = []
    for line in lines:
        polygon, baseline = envelope(line, period)
        found.append(SegmentedLine(polygon=to_page(polygon), baseline=to_page(baseline)))
    return SegmentedRegion(outline([line.polygon for line in found]), found, margin=region is not None and region.margin)


def region_lines(ink: np.ndarray, period: float, skew: float,
                 config: SegmentConfig) -> tuple[list[InkRegion | None], list[list[RawLine]]]:
    """The regions of the deskewed ``ink`` and the lines of each, in reading order; a page
    of one region is segmented whole (region None), exactly as a single column."""
    regions: list[InkRegion | None] = find_regions(ink, period, skew, config.min_gutter) or [None]
    groups = [find_lines(ink, period, config) if region is None else _lines_in(region, period, config)
              for region in regions]
    return regions, [reading_order(lines, period) for lines in drop_small_print(groups, config)]


def _lines_in(region: InkRegion, period: float, config: SegmentConfig) -> list[RawLine]:
    """The lines of one region, in page (working) coordinates.  The region's ink is set on
    a blank margin of a line period, so the smoothing at its edges sees paper, not a
    mirror of the ink."""
    pad = int(math.ceil(period))
    canvas = np.zeros((region.mask.shape[0] + 2 * pad, region.mask.shape[1] + 2 * pad), bool)
    canvas[pad:-pad, pad:-pad] = region.mask
    return [line.moved(region.top - pad, region.left - pad) for line in find_lines(canvas, period, config)]


def _page_mapping(shape: tuple[int, int], shift: np.ndarray, full_size: tuple[int, int]):
    """Working (sheared) points -> full-page points: unshear, scale, clip to the page."""
    width, height = full_size
    scale_x, scale_y = width / shape[1], height / shape[0]

    def to_page(points: np.ndarray) -> Polygon:
        xs = np.clip(points[:, 0], 0, shape[1] - 1)
        ys = points[:, 1] - shift[np.clip(np.round(xs).astype(int), 0, len(shift) - 1)]
        xs, ys = (xs + 0.5) * scale_x, (ys + 0.5) * scale_y
        return np.column_stack([np.clip(xs, 0, width - 1), np.clip(ys, 0, height - 1)]).round(1).tolist()
    return to_page


def segment_turned(gray: np.ndarray, size: tuple[int, int], angle: float, config: SegmentConfig) -> list[SegmentedRegion]:
    """Segment a page whose lines run at ``angle`` degrees: upright it, segment that, and
    map each region and line (polygon, baseline) back onto the page of full ``size``."""
    turned = rotation.upright(gray, angle)
    scale_x, scale_y = size[0] / gray.shape[1], size[1] / gray.shape[0]
    canvas = (turned.shape[1] * scale_x, turned.shape[0] * scale_y)
    regions, _ = segment_array(turned, (round(canvas[0]), round(canvas[1])), config)

    def back(points: Polygon) -> Polygon:
        return rotation.to_original(points, angle, canvas, size)
    return [SegmentedRegion(back(region.polygon), [SegmentedLine(back(line.polygon), back(line.baseline))
                                                   for line in region.lines], region.margin)
            for region in regions]


def segment_page(path: Path, config: SegmentConfig) -> PageResult:
    gray, width, height = load_page(path, config.work_height)
    ink = binarise(gray, config)
    angle = rotation.page_angle(ink, config.max_skew, config.max_rotation)
    if angle:  # beyond the deskew range: rotate upright, segment, rotate the lines back
        regions = segment_turned(gray, (width, height), angle, config)
        return PageResult(image=path, width=width, height=height, regions=regions, skew=angle)
    regions, skew = segment_array(gray, (width, height), config, ink)
    return PageResult(image=path, width=width, height=height, regions=regions, skew=skew)


def page_layout(result: PageResult, out_dir: Path, config: SegmentConfig | None = None) -> PageLayout:
    """The page's regions and lines (reading order) for an XML file in ``out_dir``: the
    image's base name for eScriptorium and Transkribus, its path relative to ``out_dir``
    for the project's readers (``htr prepare alto:DIR``), the segmentation as processing
    step.  Lines are numbered across the page (``l001``...), regions ``r1``...; a margin
    note is a region of type ``marginalia``."""
    numbers = iter(range(1, len(result.lines) + 1))
    regions = [Region(f"r{index}", [LayoutLine(id=f"l{next(numbers):03d}", polygon=line.polygon, baseline=line.baseline)
                                    for line in region.lines], region.polygon,
                      MARGINALIA if region.margin else None)
               for index, region in enumerate(result.regions, start=1)]
    step = Step("line segmentation", {k: str(v) for k, v in (config or SegmentConfig()).to_dict().items()})
    return PageLayout(result.image.name, result.width, result.height, regions,
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
    for region in result.regions:  # regions thin and grey, under their lines
        outline_points = [(x * factor, y * factor) for x, y in region.polygon]
        draw.line(outline_points + outline_points[:1], fill=(128, 128, 128), width=max(1, width // 2))
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


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="htr segment",
        description="Find the text regions and lines of page images. Writes OUT/NAME.xml per page NAME.jpg "
                    "(ALTO v4, or PAGE 2019 with --format page: text regions (columns, margin notes) "
                    "in reading order, each with its lines in reading order, a polygon following the "
                    "ink and a baseline); read it back with 'htr prepare alto:OUT' (or page:OUT), or "
                    "import it into eScriptorium or Transkribus.")
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
    images = expand_images(args.images)
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
