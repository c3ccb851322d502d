"""Segmentation benchmark: segment a folder of pages, score against its ground truth,
time it, and write one JSON report (the numbers in the README come from here).

    .venv/bin/python scripts/bench_segment.py --pages ../shared/data/copiste/dev \\
        --gt ../shared/data/copiste/dev --out reports/segmentation/copiste-dev.json

Timing is single-process wall time of ``segment_page`` (decode + segmentation) per page,
so pages/s is per core; ALTO writing is not timed.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from common.files import atomic_write_bytes, atomic_write_text  # noqa: E402
from common.skips import SkipLog  # noqa: E402
from common.image_files import images_in  # noqa: E402
from pipeline.segment import page_alto, segment_page  # noqa: E402
from pipeline.segment_eval import evaluate, table  # noqa: E402
from pipeline.segment_types import SegmentConfig  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pages", type=Path, required=True, help="folder of page images")
    parser.add_argument("--gt", type=Path, required=True, help="folder of ground-truth ALTO/PAGE files")
    parser.add_argument("--out", type=Path, required=True, help="JSON report to write")
    parser.add_argument("--pred", type=Path, help="keep the predicted ALTO here (default: a temporary folder)")
    args = parser.parse_args()
    images = images_in(args.pages)
    if not images:
        print(f"bench_segment: no page images in {args.pages}", file=sys.stderr)
        return 1
    config = SegmentConfig()
    with tempfile.TemporaryDirectory() as scratch:
        pred = args.pred or Path(scratch)
        pred.mkdir(parents=True, exist_ok=True)
        seconds = []
        for path in images:
            start = time.perf_counter()
            result = segment_page(path, config)
            seconds.append(time.perf_counter() - start)
            atomic_write_bytes(pred / f"{path.stem}.xml", page_alto(result, pred))
        report = evaluate(pred, args.gt, SkipLog())
    report["pred"] = str(args.pred) if args.pred else "(temporary)"
    total = sum(seconds)
    report["speed"] = {"pages": len(images), "seconds": round(total, 2),
                       "pages_per_second_one_core": round(len(images) / total, 2),
                       "slowest_page_seconds": round(max(seconds), 3),
                       "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores (shared)"}
    report["config"] = config.to_dict()
    print(table(report))
    print(f"speed: {report['speed']['pages_per_second_one_core']} pages/s on one core "
          f"({len(images)} pages in {total:.1f} s)")
    atomic_write_text(args.out, json.dumps(report, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
