"""``htr prepare SOURCE --out DIR``: any supported source -> canonical line manifest.

SOURCE is ``KIND:PATH`` (``alto:``, ``page:``, ``iam:``, ``rimes:``, ``folder:``),
``synthetic`` or ``synthetic-lines:MANIFEST`` (lines rendered from a training manifest's
text, :mod:`data_prep.synthetic.lines`).  The output folder gets ``manifest.jsonl`` (one record per line, see
:class:`data_prep.records.LineRecord`), ``lines/`` (grayscale PNG crops) and
``summary.json`` (lines loaded and skipped, with the reasons).  Bad input never
stops the run: each problem is printed with its file name and counted.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from data_prep.line_crops import PrepareOptions, prepare_source
from common.outlock import OutputError, claim_output
from data_prep.readers import READERS
from data_prep.synthetic.config import SyntheticConfig, SyntheticLinesConfig

SYNTHETIC_LINES = "synthetic-lines"


def parse_source(source: str) -> tuple[str, Path | None]:
    if source == "synthetic":
        return "synthetic", None
    kind, sep, path = source.partition(":")
    if not sep or kind not in (*READERS, SYNTHETIC_LINES) or not path:
        kinds = ", ".join(f"{k}:PATH" for k in READERS)
        raise SystemExit(f"htr prepare: unknown SOURCE {source!r}; use one of {kinds}, synthetic, "
                         f"or {SYNTHETIC_LINES}:MANIFEST")
    return kind, Path(path)


def format_summary(summary: dict) -> str:
    parts = [f"loaded {summary['lines_loaded']} lines"]
    if summary.get("pages"):
        parts[0] += f" from {summary['pages']} pages"
    parts.append(f"skipped {summary['lines_skipped']} lines")
    if summary["line_skip_reasons"]:
        parts[-1] += " (" + ", ".join(f"{n} {r}" for r, n in summary["line_skip_reasons"].items()) + ")"
    if summary["files_skipped"]:
        parts.append(f"skipped {summary['files_skipped']} files (" +
                     ", ".join(f"{n} {r}" for r, n in summary["file_skip_reasons"].items()) + ")")
    return "; ".join(parts)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="htr prepare",
        description="Turn a data source into the canonical line manifest (DIR/manifest.jsonl + DIR/lines/*.png).",
        epilog="SOURCE kinds: alto:PATH (ALTO v2-v4 files or folder), page:PATH (PAGE XML 2013/2019), "
               "iam:PATH (IAM root: ascii/lines.txt + lines/, or xml/ + forms/), rimes:PATH (Rimes line XML), "
               "folder:PATH (NAME.png + NAME.gt.txt), synthetic (render the embedded default data set), "
               "synthetic-lines:MANIFEST (render --lines single lines from the text of a training manifest "
               "and French words from wordfreq, for pretraining). "
               "Example: htr prepare alto:../shared/data/copiste/dev --out work/copiste/dev")
    parser.add_argument("source", metavar="SOURCE", help="KIND:PATH, 'synthetic' or 'synthetic-lines:MANIFEST'")
    parser.add_argument("--out", type=Path, required=True, help="output folder")
    parser.add_argument("--jobs", type=int, default=1, help="worker processes for cropping (default 1)")
    parser.add_argument("--writer-pattern", default=None,
                        help="regex applied to each line id; its first group is stored as the writer "
                             r"(e.g. 'imp_wikitexte_(\d+)' for Copiste)")
    parser.add_argument("--split", default=None, help="value of the 'split' field of every record")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    parser.add_argument("--keep-empty", action="store_true",
                        help="keep lines without transcription (e.g. lines found by 'htr segment', to recognise them)")
    SyntheticConfig.add_arguments(parser.add_argument_group("synthetic data set (SOURCE = synthetic)"))
    SyntheticLinesConfig.add_arguments(parser.add_argument_group(
        "synthetic lines (SOURCE = synthetic-lines:MANIFEST)",
        "also --seed, --font-size-min, --font-size-max, --max-skew-degrees and --fonts-dir above, and --jobs"))
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    parse_source(args.source)  # an unknown SOURCE is refused before the output is touched
    try:
        with claim_output(args.out, "htr prepare", folder=True):
            return _run(args)
    except OutputError as error:
        print(f"htr prepare: {error}", file=sys.stderr)
        return 1


def _run(args: argparse.Namespace) -> int:
    kind, path = parse_source(args.source)
    options = PrepareOptions(out=args.out, jobs=args.jobs, writer_pattern=args.writer_pattern,
                             split=args.split, show_progress=not args.no_progress,
                             keep_empty=args.keep_empty)
    if kind == "synthetic":
        from data_prep.synthetic.dataset import build_synthetic  # renders with scipy/skimage: 1.5 s of imports
        summaries = build_synthetic(SyntheticConfig.from_args(args), options)
        for split, summary in summaries.items():
            print(f"{split}: {format_summary(summary)}")
        print(f"wrote {args.out}/manifest.jsonl and {args.out}/{{train,dev,test}}/")
        return 0
    if kind == SYNTHETIC_LINES:
        return _synthetic_lines(args, path, options)
    try:
        result = prepare_source(kind, path, options)
    except FileNotFoundError as error:
        print(f"htr prepare: {error}", file=sys.stderr)
        return 2
    print(format_summary(result.summary()))
    print(f"wrote {args.out / 'manifest.jsonl'} ({len(result.records)} lines) and {args.out / 'summary.json'}")
    if not result.records:
        print(f"htr prepare: no line could be loaded from {path}; see the messages above", file=sys.stderr)
        return 1
    return 0


def _synthetic_lines(args: argparse.Namespace, manifest: Path, options: PrepareOptions) -> int:
    from data_prep.synthetic.lines import build_synthetic_lines, format_lines_summary  # scipy/skimage imports
    try:
        summary = build_synthetic_lines(SyntheticLinesConfig.from_args(args), manifest, options)
    except (FileNotFoundError, ValueError) as error:
        print(f"htr prepare: {error}", file=sys.stderr)
        return 2
    print(format_lines_summary(summary))
    print(f"wrote {args.out / 'manifest.jsonl'} ({summary['lines_loaded']} lines), {args.out / 'lines'}/ "
          f"and {args.out / 'summary.json'}")
    if args.lines and not summary["lines_loaded"]:
        print("htr prepare: no line could be rendered; see the messages above", file=sys.stderr)
        return 1
    return 0
