"""``htr transcribe PAGE_IMAGE... [--model M] [--lm DIR] [--format alto|page]``: page images to text.

Without ``--model`` it reads with the shipped French model (``models/copiste/default``, the best
released model of any layout) and its LM (``models/copiste/lm``).

Page by page, the stages of the toolkit: segmentation (``htr segment``; its ALTO is kept in
``OUT/work/segment/NAME.xml``), the line crops of ``htr prepare`` (``OUT/work/lines/``, with
a manifest per page), recognition (``OUT/work/logits/NAME.npz``) and decoding.  The model
and the decoder are loaded once.  As soon as a page is done, ``OUT/NAME.txt`` (a line of
text per text line, in reading order) and ``OUT/NAME.xml`` (ALTO v4 or PAGE 2019 with the
segmenter's text regions in reading order (columns, margin notes typed ``marginalia``), their
lines with the text, and per word its box and optical confidences (:mod:`pipeline.confidence`:
ALTO ``WC``/``CC``, PAGE ``Word`` and ``TextEquiv@conf``) are written, each atomically.  A
page whose two outputs are newer than its image and than the model and LM files (and whose
XML is in the asked format) is skipped, so an interrupted run continues where it stopped;
``--force`` redoes every page.
"""
from __future__ import annotations

import argparse
import sys
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

from lxml import etree

from common.image_files import expand_images
from data_prep.layout import LayoutLine, PageLayout, Region, Step, Word, bounds, relative_image
from data_prep.layout_formats import FORMATS, layout_bytes
from data_prep.line_crops import PrepareOptions, process_page
from data_prep.readers import read_alto
from common.files import atomic_write_bytes, atomic_write_text
from data_prep.records import write_manifest
from common.skips import SkipLog
from pipeline.confidence import WordEvidence, evidence
from pipeline.decoders.config import DECODERS, LM_DECODERS, DecodeConfig, default_decoder, tuned_config
from pipeline.decoders.pool import make_decoder
from pipeline.folders import DEFAULT_LM, DEFAULT_MODEL, MODEL_JSON, model_files
from pipeline.segment import page_layout, segment_page
from pipeline.segment_types import SegmentConfig, SegmentError

LM_FILES = ("lm.bin", "lm.arpa", "char.bin", "char.arpa", "words.txt", "lexicon.txt", "tuned.json",
            "wordlist.txt", "extension.json")


@dataclass
class Summary:
    done: list[str] = field(default_factory=list)
    fresh: list[str] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)  # image -> reason
    lines: int = 0

    def text(self, out: Path) -> str:
        parts = [f"{len(self.done)} pages transcribed ({self.lines} lines)"]
        if self.fresh:
            parts.append(f"{len(self.fresh)} up to date, skipped (--force redoes them)")
        if self.failed:
            parts.append(f"{len(self.failed)} could not be read: {', '.join(self.failed)}")
        return f"transcribe: {'; '.join(parts)} -> {out}"


class Recogniser:
    """The optical model and the decoder, loaded once for every page."""

    def __init__(self, model: Path, lm: Path | None, decoder: str, jobs: int, tuned: Path | None = None) -> None:
        import torch
        from pipeline.model_folder import load_model_folder
        self.torch = torch
        self.device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
        self.model, self.config, self.alphabet = load_model_folder(model)
        self.model.to(self.device)
        self.decode_config = tuned_config(decoder, tuned, lm)
        self.decoder = make_decoder(self.decode_config, self.alphabet, 0, lm)  # built here, forked workers inherit it
        self.jobs = jobs
        self.pool = ProcessPoolExecutor(jobs, initializer=_init_worker,
                                        initargs=(self.decode_config, self.alphabet, lm)) if jobs > 1 else None
        self.settings = {"model": str(model), "decoder": decoder, "lm": str(lm) if lm else "none",
                         **({"lm_weight": str(self.decode_config.lm_weight), "word_bonus": str(self.decode_config.word_bonus),
                             "blank_penalty": str(self.decode_config.blank_penalty)}
                            if decoder in LM_DECODERS else {})}

    def texts(self, manifest: Path, logits: Path) -> dict[str, tuple[str, list[WordEvidence], int]]:
        """Line id -> (decoded text, its words' optical confidences, frames) for a page manifest."""
        from pipeline.data import LineDataset, load_lines
        from pipeline.logits import save_logits
        from pipeline.recognize import run_model
        lines = load_lines(manifest, self.alphabet, self.config.height, self.config.max_width, None, SkipLog(stream=None))
        dataset = LineDataset(lines, self.config.height, self.config.max_width, cache=False, norm=self.config.line_norm)
        logprobs = run_model(self.model, dataset, 16, self.device, progress=False) if lines else []
        save_logits(logits, [line.id for line in lines], logprobs, self.alphabet, 0)
        if self.pool is not None and len(logprobs) > 1:
            size = -(-len(logprobs) // self.jobs)
            chunks = [logprobs[i:i + size] for i in range(0, len(logprobs), size)]
            texts = [text for chunk in self.pool.map(_decode, chunks) for text in chunk]
        else:
            texts = [self.decoder.decode(array).text for array in logprobs]
        return {line.id: (text, evidence(text, array, self.alphabet, 0), len(array))
                for line, text, array in zip(lines, texts, logprobs)}

    def close(self) -> None:
        if self.pool is not None:
            self.pool.shutdown()


_DECODER = None


def _init_worker(config: DecodeConfig, alphabet: list[str], lm: Path | None) -> None:
    global _DECODER
    _DECODER = make_decoder(config, alphabet, 0, lm)


def _decode(arrays: list) -> list[str]:
    return [_DECODER.decode(array).text for array in arrays]


@dataclass
class Job:
    out: Path
    fmt: str
    model: Path
    lm: Path | None = None
    decoder: str = "greedy"
    jobs: int = 1
    force: bool = False
    tuned: Path | None = None  # htr tune --out FILE (else the LM folder's own tuned.json, if any)
    segment: SegmentConfig = field(default_factory=SegmentConfig)
    _recogniser: Recogniser | None = None

    @property
    def recogniser(self) -> Recogniser:
        """Loaded at the first page to do: nothing is loaded when every page is up to date."""
        if self._recogniser is None:
            self._recogniser = Recogniser(self.model, self.lm, self.decoder, self.jobs, self.tuned)
        return self._recogniser

    def close(self) -> None:
        if self._recogniser is not None:
            self._recogniser.close()


def outputs(out: Path, image: Path) -> tuple[Path, Path]:
    return out / f"{image.stem}.txt", out / f"{image.stem}.xml"


def newest_input(job: Job) -> float:
    """mtime of the newest model and LM file."""
    files = model_files(job.model) + ([job.lm / name for name in LM_FILES] if job.lm else [])
    files += [job.tuned] if job.tuned else []
    return max((path.stat().st_mtime for path in files if path.is_file()), default=0.0)


def is_fresh(job: Job, image: Path) -> bool:
    """Both outputs exist, are newer than the image, the model and the LM, and the XML is in ``job.fmt``."""
    paths = outputs(job.out, image)
    if job.force or not all(path.is_file() for path in paths):
        return False
    if min(path.stat().st_mtime for path in paths) <= max(image.stat().st_mtime, newest_input(job)):
        return False
    try:
        root = etree.parse(str(paths[1])).getroot()
    except etree.XMLSyntaxError:
        return False
    return etree.QName(root).localname == ("PcGts" if job.fmt == "page" else "alto")


def transcribe_page(job: Job, image: Path) -> int:
    """Segment, crop, recognise and decode one page; write its outputs.  Returns its line count."""
    work = job.out / "work"
    result = segment_page(image, job.segment)  # SegmentError for an unreadable image
    segmentation = page_layout(result, work / "segment", job.segment)
    atomic_write_bytes(work / "segment" / f"{image.stem}.xml", layout_bytes(segmentation, "alto"))
    spec = next(read_alto(work / "segment" / f"{image.stem}.xml", SkipLog(stream=None)))
    records, _ = process_page(spec, PrepareOptions(out=work / "lines", keep_empty=True, show_progress=False))
    manifest = work / "lines" / f"{image.stem}.jsonl"
    write_manifest(manifest, records)
    texts = job.recogniser.texts(manifest, work / "logits" / f"{image.stem}.npz")
    if len(spec.lines) != len(segmentation.lines):  # the segmentation file is ours: every line reads back
        raise SegmentError(image, f"{len(spec.lines)} of its {len(segmentation.lines)} segmented lines read back")
    read_back = iter(spec.lines)  # the file's lines, region by region, in the order written
    regions = [Region(region.id, [_line(line.id, read, texts.get(read.id), result.width)
                                  for line, read in zip(region.lines, read_back)], region.polygon, region.type)
               for region in segmentation.regions]
    steps = segmentation.steps + [Step("text recognition", job.recogniser.settings)]
    page = PageLayout(image.name, result.width, result.height, regions, image_path=relative_image(image, job.out),
                      steps=steps, created=datetime.now(timezone.utc))
    text_path, xml_path = outputs(job.out, image)
    atomic_write_bytes(xml_path, layout_bytes(page, job.fmt))
    atomic_write_text(text_path, "".join(line.text + "\n" for line in page.lines))
    return len(page.lines)


def _line(line_id: str, spec, decoded: tuple[str, list[WordEvidence], int] | None, page_width: int) -> LayoutLine:
    """A written line: its text, and per word a box (its frames mapped onto the line crop's
    columns) and the optical confidences; the line's confidence is the mean of its words'."""
    if decoded is None:  # the line could not be cropped
        return LayoutLine(line_id, spec.polygon, spec.baseline, "")
    text, words, frames = decoded
    left, top, right, bottom = bounds(spec.polygon)
    left, right = max(0, left), min(page_width, right + 1)  # the crop's columns, as prepare cuts them
    scale = (right - left) / max(1, frames)
    boxes = [(left + w.start * scale, top, left + (w.end + 1) * scale, bottom) for w in words]
    return LayoutLine(line_id, spec.polygon, spec.baseline, text,
                      words=[Word(w.text, box, w.confidence, w.chars) for w, box in zip(words, boxes)],
                      confidence=sum(w.confidence for w in words) / len(words) if words else None)


def transcribe(images: list[Path], job: Job) -> Summary:
    summary = Summary()
    for number, image in enumerate(images, start=1):
        if not image.is_file():
            summary.failed[str(image)] = "not found"
            print(f"htr transcribe: {image}: not found; skipped", file=sys.stderr)
        elif is_fresh(job, image):
            summary.fresh.append(str(image))
        else:
            try:
                summary.lines += transcribe_page(job, image)
            except SegmentError as error:
                summary.failed[str(image)] = str(error)
                print(f"htr transcribe: {error}; skipped", file=sys.stderr)
                continue
            summary.done.append(str(image))
            print(f"[{number}/{len(images)}] {image.name} -> {outputs(job.out, image)[0]}", file=sys.stderr)
    return summary


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="htr transcribe",
        description="Page images -> text: segment the lines, recognise them, decode, page by page. Writes "
                    "OUT/NAME.txt (a line of text per text line, in reading order) and OUT/NAME.xml (ALTO v4, "
                    "or PAGE 2019 with --format page) as soon as each page is done; pages already transcribed "
                    "(outputs newer than the image, the model and the LM) are skipped, so a rerun continues.",
        epilog="Example: htr transcribe scans/*.jpg --model models/copiste/dropout-all --lm models/copiste/lm "
               "--decoder lexicon --out transcripts")
    parser.add_argument("images", nargs="+", type=Path, help="page images (or folders of them)")
    parser.add_argument("--model", type=Path, help="model folder written by 'htr train' (default: the shipped French "
                                                   "model, models/copiste/default, with its LM models/copiste/lm)")
    parser.add_argument("--lm", type=Path, help="LM folder written by 'htr lm' (needed by beam-lm, lexicon, char-lm)")
    parser.add_argument("--decoder", default=None, choices=DECODERS,
                        help="decoder (default: char-lm with an --lm folder that has a character n-gram, lexicon "
                             "with any other --lm, else greedy)")
    parser.add_argument("--tuned", type=Path, help="tuned LM weight, word bonus and blank penalty ('htr tune --out'; default: the "
                                                   "LM folder's own tuned.json, if it has one)")
    parser.add_argument("--format", choices=FORMATS, default="alto", help="XML format: alto (ALTO v4, default) or page (PAGE 2019-07-15)")
    parser.add_argument("--out", type=Path, default=Path("transcripts"), help="output folder (default: transcripts)")
    parser.add_argument("--jobs", type=int, default=1, help="worker processes for decoding")
    parser.add_argument("--force", action="store_true", help="redo pages whose outputs are up to date")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    chosen = args.model is None or (args.decoder is None and args.lm is not None)
    if args.model is None:
        if not (DEFAULT_MODEL / MODEL_JSON).is_file():
            print(f"htr transcribe: no --model given and the shipped default model {DEFAULT_MODEL} is missing; "
                  "pass --model MODEL_DIR (a folder written by 'htr train')", file=sys.stderr)
            return 2
        args.model = DEFAULT_MODEL
        if args.lm is None and DEFAULT_LM.is_dir():
            args.lm = DEFAULT_LM
    decoder = args.decoder or default_decoder(args.lm)
    if chosen:  # say what was picked for the user
        print(f"htr transcribe: model {args.model}" + (f", LM {args.lm}" if args.lm else "") + f", decoder {decoder}",
              file=sys.stderr)
    missing = [p for p in [args.model, *([args.lm] if args.lm else []), *([args.tuned] if args.tuned else [])]
               if not p.exists()]
    if missing:
        missing += [p for p in args.images if not p.exists()]
        print(f"htr transcribe: not found: {', '.join(map(str, missing))}", file=sys.stderr)
        return 2
    images = expand_images(args.images)
    stems = [p.stem for p in images]
    if len(set(stems)) != len(stems):
        print("htr transcribe: several images share a name; their outputs would overwrite each other", file=sys.stderr)
        return 2
    job = Job(args.out, args.format, args.model, args.lm, decoder, args.jobs, args.force, args.tuned)
    try:
        summary = transcribe(images, job)
    except (OSError, ValueError, KeyError, RuntimeError) as error:  # the model or LM cannot be loaded
        print(f"htr transcribe: {error}", file=sys.stderr)
        return 1
    finally:
        job.close()
    print(summary.text(args.out))
    return 0 if summary.done or summary.fresh else 1
