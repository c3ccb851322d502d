"""``htr transcribe PAGE_IMAGE... --model M [--lm DIR]``: page images to text, for end users.

Chains the stages through their own files: ``htr segment`` (ALTO with line
polygons), ``htr prepare --keep-empty`` (line crops), ``htr recognize`` (log-probs),
``htr decode`` (text).  Writes, for each page ``NAME``, ``OUT/NAME.txt`` (one line
of text per line, in reading order) and ``OUT/NAME.xml`` (ALTO v4 with the text),
and keeps the intermediate files in ``OUT/work/`` so any stage can be rerun.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from data_prep.alto_writer import AltoLine, alto_document
from data_prep.readers import read_alto
from data_prep.records import atomic_write_bytes, atomic_write_text
from data_prep.skips import SkipLog
from pipeline.evaluate import read_texts


def _htr(argv: list[str]) -> None:
    from pipeline.cli import main
    code = main(argv)
    if code:
        raise RuntimeError(f"htr {argv[0]} failed (exit {code})")


def transcribe(images: list[Path], model: Path, lm: Path | None, decoder: str, out: Path, jobs: int) -> list[Path]:
    """Run the stages; returns the text files written."""
    work = out / "work"
    _htr(["segment", *map(str, images), "--out", str(work / "segment"), "--jobs", str(jobs)])
    _htr(["prepare", f"alto:{work / 'segment'}", "--out", str(work / "lines"), "--keep-empty", "--no-progress"])
    manifest = work / "lines" / "manifest.jsonl"
    _htr(["recognize", "--model", str(model), "--manifest", str(manifest), "--out", str(work / "logits.npz")])
    decode = ["decode", "--logits", str(work / "logits.npz"), "--decoder", decoder, "--out", str(work / "hyp.tsv"),
              "--jobs", str(jobs)]
    _htr(decode + (["--lm", str(lm)] if lm is not None else []))
    return write_pages(work / "segment", work / "hyp.tsv", out)


def write_pages(segment_dir: Path, hyp_path: Path, out: Path) -> list[Path]:
    """Plain text and ALTO with the recognised text, one of each per page."""
    hyps = read_texts(hyp_path)  # keyed by line id: prepare read the same ALTO, so ids agree
    written = []
    for page in read_alto(segment_dir, SkipLog()):
        lines = [AltoLine(id=spec.id, polygon=spec.polygon, baseline=spec.baseline, text=hyps.get(spec.id, ""))
                 for spec in page.lines]
        stem = page.source.stem
        atomic_write_text(out / f"{stem}.txt", "".join(line.text + "\n" for line in lines))
        width, height = _page_size(page.image)
        image_name = str(page.image.resolve()) if page.image else f"{stem}.jpg"
        atomic_write_bytes(out / f"{stem}.xml", alto_document(image_name, width, height, lines))
        written.append(out / f"{stem}.txt")
    return written


def _page_size(image: Path | None) -> tuple[int, int]:
    if image is None:
        return (0, 0)
    from PIL import Image
    with Image.open(image) as handle:
        return handle.size


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="htr transcribe",
        description="Page images -> text: segment the lines, recognise them, decode. Writes OUT/NAME.txt "
                    "(a line of text per text line, in reading order) and OUT/NAME.xml (ALTO v4 with the text).",
        epilog="Example: htr transcribe scans/*.jpg --model models/copiste/dropout-all --lm models/copiste/lm "
               "--decoder lexicon --out transcripts")
    parser.add_argument("images", nargs="+", type=Path, help="page images")
    parser.add_argument("--model", type=Path, required=True, help="model folder written by 'htr train'")
    parser.add_argument("--lm", type=Path, help="LM folder written by 'htr lm' (needed by beam-lm, lexicon, char-lm)")
    parser.add_argument("--decoder", default=None, help="decoder (default: lexicon with --lm, else greedy)")
    parser.add_argument("--out", type=Path, default=Path("transcripts"), help="output folder (default: transcripts)")
    parser.add_argument("--jobs", type=int, default=1, help="worker processes for segmentation and decoding")
    args = parser.parse_args(argv)
    decoder = args.decoder or ("lexicon" if args.lm else "greedy")
    missing = [p for p in [args.model, *args.images, *([args.lm] if args.lm else [])] if not p.exists()]
    if missing:
        print(f"htr transcribe: not found: {', '.join(map(str, missing))}", file=sys.stderr)
        return 2
    try:
        written = transcribe(args.images, args.model, args.lm, decoder, args.out, args.jobs)
    except RuntimeError as error:
        print(f"htr transcribe: {error}", file=sys.stderr)
        return 1
    print(f"wrote {len(written)} transcripts (.txt and ALTO .xml) to {args.out}")
    return 0
