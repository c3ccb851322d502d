"""How a line manifest fits the network's input: frames per character and what a width cap squeezes.

    .venv/bin/python scripts/line_widths.py work/copiste/train/manifest.jsonl --heights 48,64 --caps 1200,1600,2048

For each line height (``htr train --height``) and width cap (``--max-width``) it prints one row:
the normalised widths (median, 99th percentile), the output frames per character CTC gets
(median, and the share of lines with fewer than 2), the lines too short for their label (CTC
needs a frame per character plus one between repeated characters: ``htr train`` skips them),
the lines wider than the cap (squeezed to it, so fewer frames per character) and the share of
all line pixels the cap removes (about the share of MDLSTM scan time it saves).  Only the image
headers are read.  Frames = ceil(width / --reduction); the default is the default networks'
(``pipeline.model.frame_width``: 8 for the MDLSTM's 2-px blocks and two conv subsamplings of 2,
and for the CRNN's three 2x2 poolings).
"""
from __future__ import annotations

import argparse
import statistics
import sys
from pathlib import Path

from PIL import Image

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from data_prep.records import iter_manifest, resolve_image  # noqa: E402
from pipeline.data import min_frames, scaled_width  # noqa: E402
from pipeline.model import ModelConfig, frame_width, int_list  # noqa: E402


def line_sizes(manifest: Path) -> tuple[list[tuple[int, int, str]], int]:
    """(width, height, text) of every line whose image opens, and how many did not."""
    sizes, unreadable = [], 0
    for record in iter_manifest(manifest):
        try:
            with Image.open(resolve_image(manifest, record)) as image:
                sizes.append((image.size[0], image.size[1], record.text))
        except (OSError, ValueError):
            unreadable += 1
    return sizes, unreadable


def fit_row(sizes: list[tuple[int, int, str]], height: int, cap: int, reduction: int) -> dict:
    widths = [scaled_width(w, h, height, cap) for w, h, _ in sizes]
    uncapped = [scaled_width(w, h, height, 10**9) for w, h, _ in sizes]
    frames = [-(-width // reduction) for width in widths]
    per_char = [f / max(1, len(text)) for f, (_, _, text) in zip(frames, sizes)]
    needed = [min_frames([ord(c) for c in text]) for _, _, text in sizes]
    percentile_99 = sorted(widths)[min(len(widths) - 1, int(0.99 * len(widths)))]
    return {"height": height, "cap": cap, "median_width": statistics.median(widths), "p99_width": percentile_99,
            "frames_per_char": statistics.median(per_char),
            "under_2": sum(p < 2 for p in per_char) / len(sizes),
            "too_short": sum(f < n for f, n in zip(frames, needed)),
            "over_cap": sum(u > cap for u in uncapped) / len(sizes),
            "pixels_cut": 1 - sum(widths) / sum(uncapped)}


def table(rows: list[dict], lines: int) -> str:
    head = ("| height | width cap | median / p99 width | frames per character (median) | lines < 2 frames "
            "per character | too short to train | lines over the cap | pixels the cap removes |")
    out = [head, "|" + "---|" * 8]
    for r in rows:
        out.append(f"| {r['height']} | {r['cap']} | {r['median_width']:.0f} / {r['p99_width']} | {r['frames_per_char']:.2f} "
                   f"| {100 * r['under_2']:.1f}% | {r['too_short']} of {lines} | {100 * r['over_cap']:.1f}% "
                   f"| {100 * r['pixels_cut']:.1f}% |")
    return "\n".join(out) + "\n"


def comma_ints(text: str) -> list[int]:
    try:
        return int_list(text)
    except ValueError as error:  # argparse shows only this type's message
        raise argparse.ArgumentTypeError(f"{error}; give positive integers, e.g. 48,64") from None


def positive_int(text: str) -> int:
    if not text.strip().isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"{text!r}: give a positive integer")
    return int(text)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], epilog=__doc__.split("\n\n", 2)[2],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("manifest", type=Path, help="line manifest (JSONL) written by htr prepare")
    parser.add_argument("--heights", type=comma_ints, default=[ModelConfig.height], help="line heights to try (px, comma-separated)")
    parser.add_argument("--caps", type=comma_ints, default=[ModelConfig.max_width], help="width caps to try (px, comma-separated)")
    parser.add_argument("--reduction", type=positive_int, default=frame_width(ModelConfig()),
                        help="input columns per output frame")
    args = parser.parse_args(argv)
    try:
        sizes, unreadable = line_sizes(args.manifest)
    except (FileNotFoundError, ValueError) as error:
        print(f"line_widths: {error}", file=sys.stderr)
        return 1
    if not sizes:
        print(f"line_widths: {args.manifest}: no line image could be opened ({unreadable} unreadable)", file=sys.stderr)
        return 1
    rows = [fit_row(sizes, height, cap, args.reduction) for height in args.heights for cap in args.caps]
    print(f"{args.manifest}: {len(sizes)} lines" + (f" ({unreadable} unreadable images skipped)" if unreadable else ""))
    print(table(rows, len(sizes)), end="")
    return 0


if __name__ == "__main__":
    sys.exit(main())
