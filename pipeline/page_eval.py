"""``htr page-eval``: page-level CER/WER on ground-truth lines and on the lines ``htr segment`` found.

A page's text is its lines joined in reading order, so the score counts what segmentation
costs recognition: lines missed, split, merged, out of order.  Scored, each with a bootstrap
95% interval over pages (:func:`pipeline.evaluate.summary`):

* ``GT lines``: the ground-truth lines in ground-truth order;
* ``predicted``: the predicted lines in the segmenter's order;

and, when the segmentation score (``htr segment-eval``'s ``line_map``) maps predicted to
ground-truth lines, two steps between them:

* ``annotated only``: without the predicted lines that lie outside every ground-truth line
  (text the annotators left out, such as printed form headers);
* ``annotated, GT order``: those same lines in ground-truth order.

What is left between the last and ``GT lines`` is the cost of the crops themselves.
``htr report`` shows the point values (``pipeline.report.page_level``).
"""
from __future__ import annotations

import argparse
import json
import sys
from collections import defaultdict
from pathlib import Path

from common.files import atomic_write_text
from data_prep.records import read_manifest
from pipeline.evaluate import evaluate, summary
from pipeline.metrics import read_texts

GT_LINES, PREDICTED = "GT lines", "predicted"


def line_map(eval_json: Path | None) -> dict[str, str | None]:
    """Predicted line id -> ground-truth line id (None: unannotated), from ``htr segment-eval``."""
    if eval_json is None or not Path(eval_json).is_file():
        return {}
    return {pred: gt for page in json.loads(Path(eval_json).read_text())["pages"]
            for pred, gt in page.get("line_map", {}).items()}


def join_by_page(order: list[tuple[str, str]], texts: dict[str, str]) -> dict[str, str]:
    """Page (image stem) -> the texts of its lines in ``order`` (``(page, line id)`` pairs), joined."""
    pages: dict[str, list[str]] = defaultdict(list)
    for page, line_id in order:
        pages[Path(page).stem].append(texts.get(line_id, ""))
    return {page: " ".join(t for t in lines if t) for page, lines in pages.items()}


def predicted_orders(gt_order: list[tuple[str, str]], predicted: list[tuple[str, str]],
                     mapping: dict[str, str | None]) -> dict[str, list[tuple[str, str]]]:
    """The orders of predicted lines that are scored: as segmented and, with a line map, the
    annotated ones alone, then those in ground-truth order."""
    orders = {PREDICTED: predicted}
    if mapping:
        gt_rank = {line_id: k for k, (_, line_id) in enumerate(gt_order)}
        annotated = [(page, i) for page, i in predicted if mapping.get(i, i) is not None]
        orders["annotated only"] = annotated
        orders["annotated, GT order"] = sorted(annotated, key=lambda item: gt_rank.get(mapping.get(item[1]), len(gt_rank)))
    return orders


def page_scores(references: Path, gt_hyp: Path, seg_lines: Path, seg_hyp: Path, segment_eval: Path | None,
                samples: int = 1000) -> dict:
    """``{"pages": N, "scores": {GT_LINES: summary, PREDICTED: summary, ...}}``."""
    gt_records = read_manifest(references)
    gt_order = [(r.page, r.id) for r in gt_records]
    refs = join_by_page(gt_order, {r.id: r.text for r in gt_records})
    predicted = [(r.page, r.id) for r in read_manifest(seg_lines)]
    scores = {GT_LINES: summary(evaluate(refs, join_by_page(gt_order, read_texts(gt_hyp))), samples)}
    seg_texts = read_texts(seg_hyp)
    for name, order in predicted_orders(gt_order, predicted, line_map(segment_eval)).items():
        scores[name] = summary(evaluate(refs, join_by_page(order, seg_texts)), samples)
    return {"pages": len(refs), "scores": scores}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="htr page-eval",
        description="Page-level CER/WER (a page's lines joined in reading order) on ground-truth lines and on "
                    "predicted lines, with bootstrap 95%% intervals over pages; with the segmentation score's line "
                    "map also without unannotated predicted lines and in ground-truth order.")
    parser.add_argument("--ref", type=Path, required=True, help="ground-truth line manifest (text, page, order)")
    parser.add_argument("--hyp", type=Path, required=True, help="hypotheses of the ground-truth lines (id<TAB>text)")
    parser.add_argument("--seg-lines", type=Path, required=True, help="manifest of the predicted lines (htr prepare of htr segment's output)")
    parser.add_argument("--seg-hyp", type=Path, required=True, help="hypotheses of the predicted lines (id<TAB>text)")
    parser.add_argument("--segment-eval", type=Path, help="htr segment-eval JSON (its line_map splits the gap)")
    parser.add_argument("--out", type=Path, required=True, help="JSON file for the scores")
    parser.add_argument("--bootstrap", type=int, default=1000, help="bootstrap samples (default 1000)")
    args = parser.parse_args(argv)
    try:
        data = page_scores(args.ref, args.hyp, args.seg_lines, args.seg_hyp, args.segment_eval, args.bootstrap)
    except (FileNotFoundError, ValueError) as error:
        print(f"htr page-eval: {error}", file=sys.stderr)
        return 2
    atomic_write_text(args.out, json.dumps(data, indent=1, ensure_ascii=False) + "\n")
    cells = ", ".join(f"{name} CER {100 * s['cer']:.1f}%" for name, s in data["scores"].items())
    print(f"{args.out}: {data['pages']} pages: {cells}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
