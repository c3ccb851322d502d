"""``htr seg-crops``: the segmenter's own line crops of training pages, each with its
ground-truth text, so training also sees the crops it will be given at reading time.

Inputs are two line manifests of the same pages: ``--pred``, the crops of ``htr segment``'s
lines (``htr prepare alto:SEG --keep-empty``: records without text but with ``page`` and
``polygon``), and ``--gt``, the ground-truth lines (``page``, ``polygon``, ``text``).  Pages
are paired by the name of their page image (as ``htr segment-eval`` pairs page files);
on each page the predicted and ground-truth polygons are matched one-to-one by maximum
total IoU, with :func:`pipeline.segment_eval.match_polygons`, the matcher of
``htr segment-eval``.  A predicted line whose partner overlaps it with IoU >= ``--min-iou``
is kept with its partner's text.  Every other line is counted by why it was dropped:

- ``unmatched``: a predicted line with no partner (more predictions than ground-truth lines
  on the page, or no overlap with any line left);
- ``low_iou``: a predicted line whose partner overlaps it below ``--min-iou`` (a line cut in
  two, two lines merged, a crop that misses part of its line);
- ``no_gt_page``: a predicted line of a page the ground truth does not have;
- ``gt_without_text``: partner found, but the ground-truth line has no transcription;
- ``gt_without_partner``: ground-truth lines no kept predicted line stands for.

``OUT/manifest.jsonl`` holds one record per kept crop: the predicted line's id, image,
page, polygon and baseline, the ground-truth ``text`` (and ``writer``/``split``), and
``gt_id``, ``iou`` and ``source: "segmenter"``; extra keys the manifest reader ignores.
Image paths are rewritten relative to the new manifest's folder, so they resolve from
there (:func:`data_prep.records.resolve_image`).  ``--combined DIR`` also writes
``DIR/manifest.jsonl``: every ground-truth line, then the kept crops, for
``htr train --train DIR/manifest.jsonl``.  Both folders get ``summary.json``.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
from collections import Counter, defaultdict
from dataclasses import asdict
from pathlib import Path

import numpy as np

from common import skips
from common.files import atomic_write_text
from common.outlock import OutputError, claim_output
from common.skips import SkipLog
from data_prep.records import LineRecord, read_manifest, resolve_image
from pipeline.segment_eval import match_polygons

SOURCE = "segmenter"  # the "source" of a kept crop's record
NO_PAGE = "no page field"
REPEATED_ID = "repeated line id"
SHARED_PAGE_NAME = "page name shared by several page images"
TOO_LARGE = "polygon too large"
MAX_BOX_PIXELS = 50_000_000  # a line's bounding box; a whole 300 dpi A3 scan is ~17M
DROP_REASONS = ("unmatched", "low_iou", "no_gt_page", "gt_without_text")


class InputError(ValueError):
    """An input that cannot be used at all (missing, unreadable): one line, exit 2."""


def manifest_path(path: Path) -> Path:
    """A manifest given as the file or as its folder (``DIR`` -> ``DIR/manifest.jsonl``)."""
    path = Path(path)
    return path / "manifest.jsonl" if path.is_dir() else path


def load(path: Path, log: SkipLog) -> list[tuple[LineRecord, Path]]:
    """The records of a manifest with their absolute image paths; records whose image is
    missing or whose id repeats an earlier one are skipped and counted."""
    try:
        records = read_manifest(path)
    except (FileNotFoundError, ValueError) as error:
        raise InputError(str(error)) from None
    loaded, seen = [], set()
    for record in records:
        where = f"{path}: line {record.id}"
        if record.id in seen:
            log.skip_line(where, REPEATED_ID, "only its first record is used")
            continue
        seen.add(record.id)
        image = Path(os.path.abspath(resolve_image(path, record)))
        if not image.is_file():
            log.skip_line(where, skips.MISSING_IMAGE, str(image))
            continue
        loaded.append((record, image))
    return loaded


def polygon_problem(polygon: object) -> str | None:
    """Why a record's polygon cannot be matched, or None when it can."""
    if not isinstance(polygon, list) or len(polygon) < 3:
        return skips.NO_COORDINATES
    try:
        points = np.asarray(polygon, float)
    except (TypeError, ValueError):
        return skips.BAD_GEOMETRY
    if points.ndim != 2 or points.shape[1] != 2:
        return skips.BAD_GEOMETRY
    if not np.isfinite(points).all():
        return skips.NON_FINITE
    width, height = points.max(axis=0) - points.min(axis=0)
    if (width + 2) * (height + 2) > MAX_BOX_PIXELS:
        return TOO_LARGE
    return None


def by_page(lines: list[tuple[LineRecord, Path]], path: Path, log: SkipLog) -> dict[str, list[tuple[LineRecord, Path]]]:
    """Page name (the page image's stem) -> its matchable lines, in manifest order.  Lines
    without page or usable polygon are skipped from matching (and counted); so are the
    pages whose name several different page images share."""
    pages: dict[str, list[tuple[LineRecord, Path]]] = defaultdict(list)
    images: dict[str, set[str]] = defaultdict(set)
    for record, image in lines:
        where = f"{path}: line {record.id}"
        if not record.page:
            log.skip_line(where, NO_PAGE, "cannot be paired with a page")
            continue
        problem = polygon_problem(record.polygon)
        if problem:
            log.skip_line(where, problem, "cannot be matched")
            continue
        name = Path(record.page).stem
        pages[name].append((record, image))
        images[name].add(record.page)
    for name in [n for n, found in images.items() if len(found) > 1]:
        log.skip_file(f"{path}: page {name}", SHARED_PAGE_NAME, ", ".join(sorted(images[name])),
                      lines=len(pages.pop(name)))
    return dict(pages)


def relative(image: Path, folder: Path) -> str:
    """``image`` relative to ``folder`` (absolute when no relative path exists)."""
    try:
        return Path(os.path.relpath(image, os.path.abspath(folder))).as_posix()
    except ValueError:  # another drive (Windows)
        return image.as_posix()


def crop_record(pred: LineRecord, gt: LineRecord, iou: float, image: Path, folder: Path) -> dict:
    """The manifest record of a kept crop, its image relative to ``folder``."""
    record = LineRecord(id=pred.id, image=relative(image, folder), text=gt.text, page=pred.page,
                        polygon=pred.polygon, baseline=pred.baseline,
                        writer=gt.writer if gt.writer is not None else pred.writer,
                        split=gt.split if gt.split is not None else pred.split)
    data = {k: v for k, v in asdict(record).items() if v is not None}
    return {**data, "gt_id": gt.id, "iou": round(iou, 4), "source": SOURCE}


def match_pages(pred: dict, gt: dict, min_iou: float) -> tuple[list[tuple[LineRecord, LineRecord, float, Path]], dict]:
    """Kept (pred record, gt record, IoU, pred image) in predicted page and line order, and
    the counts (totals and per page)."""
    kept: list[tuple[LineRecord, LineRecord, float, Path]] = []
    dropped: Counter = Counter({reason: 0 for reason in DROP_REASONS})
    pages = {}
    for name, lines in pred.items():
        truth = gt.get(name, [])
        if not truth:
            dropped["no_gt_page"] += len(lines)
            pages[name] = {"pred_lines": len(lines), "gt_lines": 0, "kept": 0}
            continue
        pairs = match_polygons([r.polygon for r, _ in lines], [r.polygon for r, _ in truth])
        partner = {p: (g, iou) for p, g, iou in pairs}
        page_kept = 0
        for index, (record, image) in enumerate(lines):
            if index not in partner:
                dropped["unmatched"] += 1
                continue
            g, iou = partner[index]
            if iou < min_iou:
                dropped["low_iou"] += 1
            elif not truth[g][0].text.strip():
                dropped["gt_without_text"] += 1
            else:
                kept.append((record, truth[g][0], iou, image))
                page_kept += 1
        pages[name] = {"pred_lines": len(lines), "gt_lines": len(truth), "kept": page_kept}
    for name in sorted(set(gt) - set(pred)):
        pages[name] = {"pred_lines": 0, "gt_lines": len(gt[name]), "kept": 0}
    ious = np.array([iou for _, _, iou, _ in kept])
    counts = {
        "pages": len(pages), "pages_matched": len(set(pred) & set(gt)),
        "gt_pages_without_prediction": sorted(set(gt) - set(pred)),
        "pred_lines": sum(len(v) for v in pred.values()), "gt_lines": sum(len(v) for v in gt.values()),
        "kept": len(kept), "dropped": sum(dropped.values()), "dropped_reasons": dict(dropped),
        "gt_without_partner": sum(len(v) for v in gt.values()) - len(kept),
        "mean_iou": round(float(ious.mean()), 4) if len(ious) else 0.0,
        "iou_quantiles": ({f"p{q}": round(float(np.percentile(ious, q)), 4) for q in (10, 50, 90)}
                          if len(ious) else {}),
    }
    return kept, {**counts, "per_page": dict(sorted(pages.items()))}


def one_line_summary(summary: dict) -> str:
    d = summary["dropped_reasons"]
    text = (f"seg-crops: {summary['pred_lines']} predicted lines, {summary['gt_lines']} ground-truth lines, "
            f"{summary['pages_matched']} pages in both; kept {summary['kept']} at IoU >= {summary['min_iou']} "
            f"(mean IoU {summary['mean_iou']:.4f}); dropped {summary['dropped']} predicted lines "
            f"({d['unmatched']} unmatched, {d['low_iou']} IoU below {summary['min_iou']}, "
            f"{d['no_gt_page']} on pages without ground truth, {d['gt_without_text']} matched to a line "
            f"without text); {summary['gt_without_partner']} ground-truth lines without a kept partner")
    skipped = summary["skipped"]["lines_skipped"]
    return text + (f"; skipped {skipped} records (see above)" if skipped else "")


def combined_records(gt_lines: list[tuple[LineRecord, Path]], kept: list, folder: Path) -> tuple[list[dict], int]:
    """Ground-truth records then the kept crops, images relative to ``folder``; a crop whose
    id is a ground-truth id gets ``_seg`` (``_seg2``, ...) added.  Returns also how many did."""
    records, ids, renamed = [], set(), 0
    for record, image in gt_lines:
        data = {k: v for k, v in asdict(record).items() if v is not None}
        records.append({**data, "image": relative(image, folder)})
        ids.add(record.id)
    for pred, gt, iou, image in kept:
        crop = crop_record(pred, gt, iou, image, folder)
        if crop["id"] in ids:
            renamed += 1
            base, number = crop["id"] + "_seg", 1
            while (candidate := base if number == 1 else f"{base}{number}") in ids:
                number += 1
            crop["id"] = candidate
        ids.add(crop["id"])
        records.append(crop)
    return records, renamed


def write_jsonl(path: Path, records: list[dict]) -> None:
    atomic_write_text(path, "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records))


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="htr seg-crops",
        description="Pair the segmenter's line crops of training pages with the ground-truth text: "
                    "on each page (paired by page image name) predicted and ground-truth line polygons "
                    "are matched one-to-one by IoU (the matcher of 'htr segment-eval'); each predicted "
                    "crop matched at IoU >= --min-iou becomes a training line with its partner's text. "
                    "Writes OUT/manifest.jsonl (the kept crops, with gt_id and iou) and OUT/summary.json "
                    "(what was kept and dropped, and why); --combined DIR also writes DIR/manifest.jsonl "
                    "with the ground-truth lines plus the kept crops, to train on both. Use it on "
                    "training pages only: crops of dev/test pages would leak their text into training.",
        epilog="Example: htr segment ../shared/data/copiste/train/*.jpg --out seg/pred; "
               "htr prepare alto:seg/pred --out seg/lines --keep-empty; "
               "htr seg-crops --pred seg/lines/manifest.jsonl --gt work/copiste/train/manifest.jsonl "
               "--out seg --combined work/copiste/train-plus-seg; "
               "htr train --train work/copiste/train-plus-seg/manifest.jsonl ...")
    parser.add_argument("--pred", type=Path, required=True,
                        help="manifest (or its folder) of predicted-line crops: 'htr prepare alto:SEG --keep-empty' "
                             "of 'htr segment' output; records need page and polygon")
    parser.add_argument("--gt", type=Path, required=True,
                        help="ground-truth line manifest (or its folder) of the same pages (page, polygon, text), "
                             "e.g. work/copiste/train/manifest.jsonl")
    parser.add_argument("--out", type=Path, required=True, help="output folder: manifest.jsonl, summary.json")
    parser.add_argument("--min-iou", type=float, default=0.5,
                        help="keep a crop when its matched ground-truth line overlaps it with at least this "
                             "IoU (pixel regions of the polygons; default 0.5)")
    parser.add_argument("--combined", type=Path, metavar="DIR",
                        help="also write DIR/manifest.jsonl: every ground-truth line of --gt, then the kept "
                             "crops (an id already in --gt gets _seg added), for 'htr train --train'")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if not 0.0 < args.min_iou <= 1.0:  # NaN fails it too
        print(f"htr seg-crops: --min-iou {args.min_iou}: give a value in (0, 1]", file=sys.stderr)
        return 2
    pred_path, gt_path = manifest_path(args.pred), manifest_path(args.gt)
    outputs = [args.out / "manifest.jsonl"] + ([args.combined / "manifest.jsonl"] if args.combined else [])
    for source in (pred_path, gt_path):
        if not source.is_file():
            print(f"htr seg-crops: {source}: manifest not found (create one with 'htr prepare')", file=sys.stderr)
            return 2
        if any(os.path.abspath(source) == os.path.abspath(out) for out in outputs):
            print(f"htr seg-crops: {source} is an input; give --out/--combined another folder", file=sys.stderr)
            return 2
    if args.combined and os.path.abspath(args.combined) == os.path.abspath(args.out):
        print("htr seg-crops: --combined and --out are the same folder; give them different folders", file=sys.stderr)
        return 2
    log = SkipLog()
    try:
        pred_lines, gt_lines = load(pred_path, log), load(gt_path, log)
    except InputError as error:
        print(f"htr seg-crops: {error}", file=sys.stderr)
        return 2
    try:
        with claim_output(args.out, "htr seg-crops", folder=True):
            if not args.combined:
                return _run(args, pred_path, gt_path, pred_lines, gt_lines, log)
            with claim_output(args.combined, "htr seg-crops", folder=True):
                return _run(args, pred_path, gt_path, pred_lines, gt_lines, log)
    except OutputError as error:
        print(f"htr seg-crops: {error}", file=sys.stderr)
        return 1


def _run(args: argparse.Namespace, pred_path: Path, gt_path: Path, pred_lines: list, gt_lines: list,
         log: SkipLog) -> int:
    kept, counts = match_pages(by_page(pred_lines, pred_path, log), by_page(gt_lines, gt_path, log), args.min_iou)
    crops = [crop_record(pred, gt, iou, image, args.out) for pred, gt, iou, image in kept]
    summary = {"pred": str(pred_path), "gt": str(gt_path), "min_iou": args.min_iou,
               "out": str(args.out / "manifest.jsonl"), **counts, "skipped": log.summary()}
    write_jsonl(args.out / "manifest.jsonl", crops)
    if args.combined:
        records, renamed = combined_records(gt_lines, kept, args.combined)
        write_jsonl(args.combined / "manifest.jsonl", records)
        summary["combined"] = {"path": str(args.combined / "manifest.jsonl"), "gt_lines": len(gt_lines),
                               "seg_crops": len(crops), "lines": len(records), "renamed_ids": renamed}
    text = json.dumps(summary, indent=1, ensure_ascii=False) + "\n"
    for folder in [args.out] + ([args.combined] if args.combined else []):  # every file before any message
        atomic_write_text(folder / "summary.json", text)
    print(one_line_summary(summary))
    print(f"wrote {args.out / 'manifest.jsonl'} ({len(crops)} lines) and {args.out / 'summary.json'}")
    if args.combined:
        print(f"wrote {args.combined / 'manifest.jsonl'} ({summary['combined']['lines']} lines: "
              f"{len(gt_lines)} ground-truth + {len(crops)} segmenter crops)")
    if not crops:
        print(f"htr seg-crops: no predicted line matched a ground-truth line at IoU >= {args.min_iou}; "
              "are --pred and --gt crops of the same pages?", file=sys.stderr)
        return 1
    return 0
