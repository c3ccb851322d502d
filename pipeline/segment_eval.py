"""Scoring a line segmentation against ground truth (ALTO or PAGE XML).

Lines are compared as pixel regions (their polygons filled).  Predicted and ground-truth
lines are matched one-to-one by maximum total IoU (Hungarian assignment); a match counts
at a threshold when its IoU reaches it.  Reported per page and in total:

- precision, recall and F1 at IoU >= 0.5 and >= 0.75;
- over-segmentation (ICDAR 2013 style): a ground-truth line split over several
  predictions, i.e. >= 2 predictions that each lie mostly (>= 50% of their area) inside
  it and cover >= 10% of it; under-segmentation: a prediction that swallows several
  ground-truth lines (>= 2 lines each >= 50% inside it, each >= 10% of it);
- reading order: the predicted lines matched at IoU >= 0.5, taken in ground-truth
  order, appear in increasing predicted order (``same_order``); as a softer measure,
  the share of matched lines in the longest run that is in order (``order_agreement``,
  1.0 = same order; one line placed elsewhere, e.g. a page label the annotator
  listed last, costs one line, not the whole page);
- column-wise reading order (``region_order``): the matched predicted lines, in predicted
  order, visit the ground truth's text regions (columns, margin notes; ALTO TextBlock,
  PAGE TextRegion) in the ground truth's order, one region after the other, whatever the
  order within a region (``same_order`` is the strict, line-level score);
- for each predicted line, the ground-truth line it overlaps most (``line_map``), or none
  when less than 10% of it lies inside any ground-truth line: text the annotators left
  out, such as printed form headers.  The report uses the map to split the recognition
  cost of segmentation into unannotated lines, reading order and the crops themselves.
"""
from __future__ import annotations

import argparse
import json
import sys
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
from lxml import etree
from scipy.optimize import linear_sum_assignment

from data_prep.geometry import polygon_mask
from data_prep.readers import read_alto, read_pagexml
from data_prep.readers.base import LineSpec, local_name, parse_xml, safe_id, xml_files
from common.files import atomic_write_text
from common.skips import SkipLog

THRESHOLDS = (0.5, 0.75)
UNANNOTATED_BELOW = 0.1  # share of a predicted line inside ground-truth lines


@dataclass
class Region:
    """A filled polygon: its mask over its own bounding box."""

    left: int
    top: int
    mask: np.ndarray

    @classmethod
    def from_polygon(cls, polygon: list[list[float]]) -> "Region":
        points = np.asarray(polygon, float)
        left, top = np.floor(points.min(axis=0)).astype(int)
        right, bottom = np.ceil(points.max(axis=0)).astype(int)
        mask = polygon_mask(points - [left, top], (bottom - top + 1, right - left + 1))
        return cls(int(left), int(top), mask)

    @property
    def area(self) -> int:
        return int(self.mask.sum())


def intersection(a: Region, b: Region) -> int:
    left, top = max(a.left, b.left), max(a.top, b.top)
    right = min(a.left + a.mask.shape[1], b.left + b.mask.shape[1])
    bottom = min(a.top + a.mask.shape[0], b.top + b.mask.shape[0])
    if right <= left or bottom <= top:
        return 0
    wa = a.mask[top - a.top: bottom - a.top, left - a.left: right - a.left]
    wb = b.mask[top - b.top: bottom - b.top, left - b.left: right - b.left]
    return int(np.count_nonzero(wa & wb))


def overlaps(pred: list[Region], gt: list[Region]) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Pixel intersections (pred x gt), the areas of the predicted and of the ground-truth
    regions (at least 1), and the IoU matrix."""
    inter = np.array([[intersection(p, g) for g in gt] for p in pred], float).reshape(len(pred), len(gt))
    p_area = np.array([max(1, r.area) for r in pred], float)
    g_area = np.array([max(1, r.area) for r in gt], float)
    iou = inter / np.maximum(1.0, p_area[:, None] + g_area[None, :] - inter) if inter.size else inter
    return inter, p_area, g_area, iou


def assign(iou: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The one-to-one matching of maximum total IoU (Hungarian): row and column indices of
    the min(rows, columns) assigned pairs (a pair may have IoU 0)."""
    if not iou.size:
        return np.array([], int), np.array([], int)
    return linear_sum_assignment(-iou)


def match_polygons(pred: list[list[list[float]]], gt: list[list[list[float]]]) -> list[tuple[int, int, float]]:
    """Match two lists of line polygons one-to-one as ``score_page`` does: ``(pred index,
    gt index, IoU)`` for each assigned pair, indices into the lists given, in predicted
    order.  A polygon of fewer than 3 points takes part in no pair; pairs of IoU 0 are
    left out (they are assigned only because the assignment is total)."""
    p_index = [i for i, p in enumerate(pred) if len(p) >= 3]
    g_index = [j for j, g in enumerate(gt) if len(g) >= 3]
    _, _, _, iou = overlaps([Region.from_polygon(pred[i]) for i in p_index],
                            [Region.from_polygon(gt[j]) for j in g_index])
    rows, cols = assign(iou)
    return sorted((p_index[r], g_index[c], float(iou[r, c])) for r, c in zip(rows, cols) if iou[r, c] > 0)


@dataclass
class PageScore:
    page: str
    gt_lines: int
    pred_lines: int
    matched: dict[str, int] = field(default_factory=dict)  # threshold -> matches
    over: int = 0
    under: int = 0
    same_order: bool = True
    order_agreement: float = 1.0
    in_order: int = 0  # matched lines in the longest in-order run
    region_order: bool = True  # the matched lines visit the ground-truth regions in order
    mean_iou: float = 0.0
    # per predicted line: index of the ground-truth line it overlaps most, None if unannotated
    pred_to_gt: list[int | None] = field(default_factory=list)


def score_page(name: str, pred: list[list[list[float]]], gt: list[list[list[float]]],
               gt_regions: list[int] | None = None) -> PageScore:
    """Score one page's predicted polygons (in reading order) against ground truth;
    ``gt_regions``: the rank of each ground-truth line's region in reading order."""
    p_regions = [Region.from_polygon(p) for p in pred if len(p) >= 3]
    g_regions = [Region.from_polygon(g) for g in gt if len(g) >= 3]
    inter, p_area, g_area, iou = overlaps(p_regions, g_regions)
    score = PageScore(page=name, gt_lines=len(g_regions), pred_lines=len(p_regions))
    rows, cols = assign(iou)
    pair_iou = iou[rows, cols] if iou.size else np.array([])
    for threshold in THRESHOLDS:
        score.matched[str(threshold)] = int((pair_iou >= threshold).sum())
    score.mean_iou = float(pair_iou.mean()) if len(pair_iou) else 0.0
    if inter.size:
        inside_gt = (inter >= 0.5 * p_area[:, None]) & (inter >= 0.1 * g_area[None, :])
        inside_pred = (inter >= 0.5 * g_area[None, :]) & (inter >= 0.1 * p_area[:, None])
        score.over = int((inside_gt.sum(axis=0) >= 2).sum())
        score.under = int((inside_pred.sum(axis=1) >= 2).sum())
        annotated = inter.sum(axis=1) >= UNANNOTATED_BELOW * p_area
        score.pred_to_gt = [int(np.argmax(row)) if ok else None for row, ok in zip(inter, annotated)]
    else:
        score.pred_to_gt = [None] * len(p_regions)
    good = pair_iou >= 0.5
    order = [p for _, p in sorted(zip(cols[good], rows[good]))]
    score.same_order = all(a < b for a, b in zip(order, order[1:]))
    score.in_order = longest_increasing(order)
    score.order_agreement = round(score.in_order / len(order), 4) if order else 1.0
    if gt_regions is not None:
        visited = [gt_regions[g] for _, g in sorted(zip(rows[good], cols[good]))]
        score.region_order = all(a <= b for a, b in zip(visited, visited[1:]))
    return score


def longest_increasing(sequence: list[int]) -> int:
    """Length of the longest strictly increasing subsequence (patience sorting)."""
    from bisect import bisect_left

    tails: list[int] = []
    for value in sequence:
        index = bisect_left(tails, value)
        tails[index:index + 1] = [value]
    return len(tails)


def prf(matched: int, pred: int, gt: int) -> dict[str, float]:
    precision = matched / pred if pred else (1.0 if not gt else 0.0)
    recall = matched / gt if gt else (1.0 if not pred else 0.0)
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {"precision": round(precision, 4), "recall": round(recall, 4), "f1": round(f1, 4)}


def page_lines(path: Path, log: SkipLog) -> dict[str, list[LineSpec]]:
    """Stem -> lines with a polygon (reading order) for every ALTO/PAGE XML file under ``path``."""
    return {stem: lines for stem, (lines, _) in _pages(path, log).items()}


def _pages(path: Path, log: SkipLog) -> dict[str, tuple[list[LineSpec], list[int]]]:
    """Stem -> (lines with a polygon, the rank of each line's region) for every XML file under ``path``."""
    pages: dict[str, tuple[list[LineSpec], list[int]]] = {}
    for xml_path in xml_files(path):
        root = parse_xml(xml_path, log)
        if root is None:
            continue
        reader = read_pagexml if local_name(root) == "PcGts" else read_alto
        for spec in reader(xml_path, log):
            lines = [line for line in spec.lines if len(line.polygon) >= 3]
            pages[xml_path.stem] = (lines, region_ranks(root, xml_path.stem, lines))
    return pages


def region_ranks(root: etree._Element, stem: str, lines: list[LineSpec]) -> list[int]:
    """For each of ``lines`` (read from the XML ``root`` of file ``stem``, in reading
    order), the rank of its text region (TextBlock, TextRegion) in reading order: regions
    rank by their first line, as the readers give the lines region by region.  A line
    whose region is not found (a line without an ID) ranks with the line before it."""
    region_of: dict[str, int] = {}
    regions = (e for e in root.iter() if local_name(e) in ("TextBlock", "TextRegion"))
    for number, region in enumerate(regions):
        for line in region.iter("{*}TextLine"):
            key = line.get("ID") or line.get("id")
            if key:
                region_of.setdefault(safe_id(f"{stem}_{key}"), number)
    ranks: dict[int, int] = {}
    result, last = [], 0
    for line in lines:
        region = region_of.get(line.id)
        last = ranks.setdefault(region, len(ranks)) if region is not None else last
        result.append(last)
    return result


def evaluate(pred_dir: Path, gt_dir: Path, log: SkipLog) -> dict:
    """Per-page and total scores; a ground-truth page without prediction counts as empty."""
    truth = _pages(gt_dir, log)
    gt = {stem: lines for stem, (lines, _) in truth.items()}
    pred = page_lines(pred_dir, log)
    missing = sorted(set(gt) - set(pred))
    for name in missing:
        log.skip_file(pred_dir / f"{name}.xml", "no prediction for ground-truth page", "scored as zero lines")
    scores = [score_page(name, [line.polygon for line in pred.get(name, [])], [line.polygon for line in gt[name]],
                         truth[name][1]) for name in sorted(gt)]
    total = {"pages": len(scores), "gt_lines": sum(s.gt_lines for s in scores),
             "pred_lines": sum(s.pred_lines for s in scores),
             "over_segmented": sum(s.over for s in scores), "under_segmented": sum(s.under for s in scores),
             "same_order_pages": sum(s.same_order for s in scores),
             "unannotated_pred_lines": sum(g is None for s in scores for g in s.pred_to_gt)}
    total["same_order_rate"] = round(total["same_order_pages"] / len(scores), 4) if scores else 0.0
    total["region_order_pages"] = sum(s.region_order for s in scores)
    total["region_order_rate"] = round(total["region_order_pages"] / len(scores), 4) if scores else 0.0
    total["gt_regions"] = sum(len(set(ranks)) for _, ranks in truth.values())
    total["order_agreement_mean"] = round(float(np.mean([s.order_agreement for s in scores])), 4) if scores else 0.0
    total["pages_at_most_one_line_out_of_order"] = sum(
        1 for s in scores if s.in_order >= s.matched["0.5"] - 1)
    for threshold in THRESHOLDS:
        matched = sum(s.matched[str(threshold)] for s in scores)
        total[f"iou>={threshold}"] = {"matched": matched, **prf(matched, total["pred_lines"], total["gt_lines"])}
    pages = []
    for s in scores:
        row = asdict(s)
        del row["pred_to_gt"]
        row["mean_iou"] = round(s.mean_iou, 4)
        row["line_map"] = {line.id: (None if g is None else gt[s.page][g].id)
                           for line, g in zip(pred.get(s.page, []), s.pred_to_gt)}
        for threshold in THRESHOLDS:
            row[f"iou>={threshold}"] = prf(s.matched[str(threshold)], s.pred_lines, s.gt_lines)
        pages.append(row)
    return {"pred": str(pred_dir), "gt": str(gt_dir), "total": total, "pages": pages,
            "pages_without_prediction": missing}


def table(report: dict, worst: int = 5) -> str:
    """Short text summary: totals and the worst pages by F1 at IoU >= 0.5."""
    t = report["total"]
    lines = [f"{'':12} {'P':>7} {'R':>7} {'F1':>7}"]
    for threshold in THRESHOLDS:
        s = t[f"iou>={threshold}"]
        lines.append(f"IoU>={threshold:<7} {s['precision']:7.4f} {s['recall']:7.4f} {s['f1']:7.4f}")
    lines.append(f"pages {t['pages']}, GT lines {t['gt_lines']}, predicted {t['pred_lines']}, "
                 f"over-segmented {t['over_segmented']}, under-segmented {t['under_segmented']}, "
                 f"predicted outside every GT line {t.get('unannotated_pred_lines', 0)}, "
                 f"same reading order {t['same_order_pages']}/{t['pages']} "
                 f"(at most one line out of order: {t['pages_at_most_one_line_out_of_order']}/{t['pages']}, "
                 f"mean order agreement {t['order_agreement_mean']:.4f}), "
                 f"GT regions {t.get('gt_regions', 0)} read region by region in order on "
                 f"{t.get('region_order_pages', t['pages'])}/{t['pages']} pages")
    bad = sorted(report["pages"], key=lambda p: (p["iou>=0.5"]["f1"], p["page"]))[:worst]
    bad = [p for p in bad if p["iou>=0.5"]["f1"] < 1.0 or not p["same_order"]]
    if bad:
        lines.append("worst pages (F1@0.5, GT/pred lines, over/under, order):")
        for p in bad:
            lines.append(f"  {p['page']}: {p['iou>=0.5']['f1']:.3f}  {p['gt_lines']}/{p['pred_lines']}  "
                         f"{p['over']}/{p['under']}  {'ok' if p['same_order'] else 'DIFFERENT'}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="htr segment-eval",
        description="Score predicted text lines (ALTO from 'htr segment') against ground-truth "
                    "ALTO or PAGE XML, page files matched by name: P/R/F1 at IoU>=0.5 and 0.75 "
                    "(one-to-one matching of line polygons), over/under-segmentation, reading order.")
    parser.add_argument("--pred", type=Path, required=True, help="folder of predicted ALTO files")
    parser.add_argument("--gt", type=Path, required=True, help="folder of ground-truth ALTO/PAGE files")
    parser.add_argument("--out", type=Path, help="write the full report (per page and total) as JSON here")
    args = parser.parse_args(argv)
    for folder in (args.pred, args.gt):
        if not folder.exists():
            print(f"htr segment-eval: {folder}: no such file or folder", file=sys.stderr)
            return 2
    log = SkipLog()
    report = evaluate(args.pred, args.gt, log)
    print(table(report))
    if args.out:
        atomic_write_text(args.out, json.dumps(report, indent=1) + "\n")
    return 0 if report["pages"] else 1
