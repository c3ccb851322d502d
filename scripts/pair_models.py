"""Paired comparison of two model folders on the same lines: how many fewer character (and word)
errors model A's greedy output makes than model B's, with a paired-bootstrap 95% interval.

    .venv/bin/python scripts/pair_models.py A B --manifest work/copiste/dev/manifest.jsonl \
        [--subset work/copiste/dev/rest.jsonl ...] [--manifest work/copiste/train/eighth.jsonl ...] \
        [--out reports/probes/A-vs-B.json] [--threads 1] [--by-writer]

For each model and manifest: ``htr recognize`` + ``htr decode --decoder greedy`` + ``htr evaluate
--bootstrap 1000``, kept in ``work/pairs/MODEL/MANIFEST.{npz,tsv,json}`` and reused while newer than
the model's files and the manifest (so comparing C against A later recognizes only C).  Then
``htr evaluate --hyp A --against B`` per manifest (``work/pairs/A--vs--B/MANIFEST.json``, with every
line).  A ``--subset`` (e.g. the dev lines not used to choose an epoch) is scored from the outputs on
the first manifest: an MDLSTM saved before ``--mdlstm-mask-padding`` reads a line a little
differently in other company (its right-to-left scans start at the batch's padded right edge), so
reading the subset again would change its numbers.  Prints one line per comparison; ``--out`` writes them (models, manifests, each model's
CER/WER with intervals, the reductions with intervals, the command) without per-line rows.
``--by-writer`` adds the intervals from resampling whole writers (``htr evaluate --by-writer``).

A model folder is anything ``htr recognize --model`` reads: a probe's ``work/probes/NAME`` (its
best epoch), a released ``models/copiste/VARIANT``, an ensemble folder.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from common.files import atomic_write_text  # noqa: E402
from data_prep.records import line_writers  # noqa: E402
from pipeline.cli import run_htr  # noqa: E402
from pipeline.folders import MODEL_JSON, model_files  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
WORK = ROOT / "work" / "pairs"
BOOTSTRAP = 1000
IN_PROCESS = False  # run the htr commands in this process (the tests), not as subprocesses


def htr(args: list[str]) -> None:
    """Run ``htr ARGS``; its output goes to stderr, so that stdout holds only the comparisons."""
    run_htr(args, IN_PROCESS, ROOT, output_to_stderr=True)


def slug(path: Path) -> str:
    """A folder name for a path: relative to the repository where it lies inside it, '/' -> '+'."""
    path = Path(path).resolve()
    try:
        path = path.relative_to(ROOT)
    except ValueError:
        pass
    name = path.as_posix().strip("/")
    return name[: -len(".jsonl")].replace("/", "+") if name.endswith(".jsonl") else name.replace("/", "+")


def is_fresh(result: Path, inputs: list[Path]) -> bool:
    """``result`` exists and is newer than every input."""
    return result.is_file() and all(result.stat().st_mtime > path.stat().st_mtime for path in inputs)


def greedy_transcription(model: Path, manifest: Path, threads: int) -> Path:
    """The greedy transcription (TSV) of ``model`` on every line of ``manifest``, cached."""
    folder = WORK / slug(model)
    logits, hyp = folder / f"{slug(manifest)}.npz", folder / f"{slug(manifest)}.tsv"
    if not is_fresh(hyp, [*model_files(model), manifest]):
        folder.mkdir(parents=True, exist_ok=True)
        htr(["recognize", "--model", str(model), "--manifest", str(manifest), "--out", str(logits),
             "--threads", str(threads), "--quiet"])
        htr(["decode", "--decoder", "greedy", "--logits", str(logits), "--out", str(hyp)])
    return hyp


def evaluation(ref: Path, hyp: Path, out: Path, against: Path | None = None, by_writer: bool = False) -> dict:
    """``htr evaluate`` of ``hyp`` on the lines of ``ref`` (optionally ``--against`` a second
    hypothesis, ``--by-writer``), cached in ``out`` while newer than its inputs."""
    inputs = [ref, hyp] + ([against] if against else [])
    if by_writer:
        out = out.with_name(f"{out.stem}+writers{out.suffix}")  # a cache without them stays as it is
    if not is_fresh(out, inputs):
        out.parent.mkdir(parents=True, exist_ok=True)
        extra = (["--against", str(against)] if against else []) + (["--by-writer"] if by_writer else [])
        htr(["evaluate", "--ref", str(ref), "--hyp", str(hyp), *extra, "--bootstrap", str(BOOTSTRAP),
             "--out", str(out)])
    return json.loads(out.read_text(encoding="utf-8"))


def pct(value: float) -> float:
    return round(100 * value, 2)


def scores(evaluation: dict) -> dict:
    """CER and WER in percent with their intervals (and those from resampling writers, when
    there), and the counts behind them."""
    found = {"cer": pct(evaluation["cer"]), "cer_ci95": [pct(x) for x in evaluation["cer_ci95"]],
             "wer": pct(evaluation["wer"]), "wer_ci95": [pct(x) for x in evaluation["wer_ci95"]],
             "char_errors": evaluation["chars"]["errors"], "chars": evaluation["chars"]["ref"],
             "lines": evaluation["lines"]}
    if "by_writer" in evaluation:
        writers = evaluation["by_writer"]
        found.update(writers=writers["writers"], cer_ci95_writers=[pct(x) for x in writers["cer_ci95"]],
                     wer_ci95_writers=[pct(x) for x in writers["wer_ci95"]])
    return found


def reduction(against: dict, unit: str) -> dict:
    """``htr evaluate --against``'s relative reduction of ``unit`` errors, in percent."""
    found = against[unit]
    return {key: round(100 * found[key], 1) + 0.0 for key in ("reduction", "low", "high")}  # + 0.0: no "-0.0"


def compare(model_a: Path, model_b: Path, manifest: Path, threads: int,
            subsets: tuple[Path, ...] = (), by_writer: bool = False) -> list[dict]:
    """A against B on ``manifest``, then on the lines of each subset manifest as read within
    ``manifest`` (an MDLSTM saved before ``--mdlstm-mask-padding`` reads a line a little
    differently with other lines in its batch, so a subset is scored from the same outputs
    rather than recognized again)."""
    hyp_a = greedy_transcription(model_a, manifest, threads)
    hyp_b = greedy_transcription(model_b, manifest, threads)
    rows = []
    for ref in (manifest, *subsets):
        name = slug(manifest) if ref == manifest else f"{slug(manifest)}@{slug(ref)}"
        eval_a = evaluation(ref, hyp_a, WORK / slug(model_a) / f"{name}.json", by_writer=by_writer)
        eval_b = evaluation(ref, hyp_b, WORK / slug(model_b) / f"{name}.json", by_writer=by_writer)
        paired = WORK / f"{slug(model_a)}--vs--{slug(model_b)}" / f"{name}.json"
        against = evaluation(ref, hyp_a, paired, against=hyp_b, by_writer=by_writer)["against"]
        row = {"manifest": str(ref), "read_within": str(manifest), "a": scores(eval_a), "b": scores(eval_b),
               "cer_reduction": reduction(against, "cer"), "wer_reduction": reduction(against, "wer"),
               "paired": str(paired)}
        if by_writer:
            row.update(cer_reduction_writers=reduction(against["by_writer"], "cer"),
                       wer_reduction_writers=reduction(against["by_writer"], "wer"))
        rows.append(row)
    return rows


def fewer(cut: dict) -> str:
    """'12.3% fewer' or '4.5% more'."""
    return f"{abs(cut['reduction']):.1f}% {'fewer' if cut['reduction'] >= 0 else 'more'}"


def summary_line(row: dict) -> str:
    a, b, cut = row["a"], row["b"], row["cer_reduction"]
    line = (f"{row['manifest']} ({a['lines']} lines): CER {a['cer']:.2f} {a['cer_ci95']} against "
            f"{b['cer']:.2f} {b['cer_ci95']}: A makes {fewer(cut)} character errors, paired 95% "
            f"[{cut['low']:.1f}, {cut['high']:.1f}]; WER {a['wer']:.2f} against {b['wer']:.2f}: "
            f"{fewer(row['wer_reduction'])} word errors")
    if "cer_reduction_writers" in row:
        by = row["cer_reduction_writers"]
        line += (f"; resampling the {a['writers']} writers: CER {a['cer_ci95_writers']} against "
                 f"{b['cer_ci95_writers']}, paired [{by['low']:.1f}, {by['high']:.1f}]")
    return line


def check_inputs(models: list[Path], manifests: list[Path], subsets: list[Path],
                 by_writer: bool = False) -> str | None:
    """The first problem with the inputs, as one line; None when they can be read (raises
    ValueError for a manifest that is not one, or names no writer that ``by_writer`` needs)."""
    for model in models:
        if not (model / MODEL_JSON).is_file():
            return f"{model}: not a model folder (no {MODEL_JSON}); give a folder written by htr train or htr ensemble"
    for manifest in manifests + subsets:
        if not manifest.is_file():
            return f"{manifest}: no such manifest (make copiste-data writes work/copiste/*/manifest.jsonl)"
    if subsets:
        lines = set(line_ids(manifests[0]))
        for subset in subsets:
            outside = [line for line in line_ids(subset) if line not in lines]
            if outside:
                return (f"{subset}: {len(outside)} lines are not in {manifests[0]} (e.g. {outside[0]}); "
                        "a --subset must be a part of the first --manifest")
    for manifest in manifests if by_writer else []:  # before any model reads a line
        line_writers(manifest, line_ids(manifest), "--by-writer")
    return None


def line_ids(manifest: Path) -> list[str]:
    """The ``id`` of every record of a JSONL manifest; ValueError naming the file and line otherwise."""
    ids = []
    for number, row in enumerate(manifest.read_text(encoding="utf-8").splitlines(), start=1):
        if row.strip():
            try:
                ids.append(str(json.loads(row)["id"]))
            except (ValueError, KeyError, TypeError):
                raise ValueError(f"{manifest}:{number}: not a manifest record with an id") from None
    return ids


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("model_a", type=Path, help="model folder A (the one expected to make fewer errors)")
    parser.add_argument("model_b", type=Path, help="model folder B (the baseline)")
    parser.add_argument("--manifest", type=Path, action="append", required=True,
                        help="line manifest to compare on (repeat for several)")
    parser.add_argument("--subset", type=Path, action="append", default=[],
                        help="also compare on the lines of this manifest, a part of the first --manifest, "
                             "scored from the outputs on that manifest (repeat for several)")
    parser.add_argument("--out", type=Path, help="write the comparison as JSON here")
    parser.add_argument("--threads", type=int, default=1, help="torch threads of htr recognize")
    parser.add_argument("--by-writer", action="store_true",
                        help="also resample whole writers (htr evaluate --by-writer): every manifest must "
                             "name each line's writer")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        problem = check_inputs([args.model_a, args.model_b], args.manifest, args.subset, args.by_writer)
    except (OSError, ValueError) as error:
        problem = str(error)
    if problem:
        print(f"pair_models: {problem}", file=sys.stderr)
        return 1
    rows = [row for number, manifest in enumerate(args.manifest)
            for row in compare(args.model_a, args.model_b, manifest, args.threads,
                               tuple(args.subset) if number == 0 else (), args.by_writer)]
    for row in rows:
        print(summary_line(row))
    if args.out:
        command = "scripts/pair_models.py " + " ".join(
            [str(args.model_a), str(args.model_b)] + [f"--manifest {m}" for m in args.manifest]
            + [f"--subset {m}" for m in args.subset] + (["--by-writer"] if args.by_writer else []))
        report = {"a": str(args.model_a), "b": str(args.model_b), "decoder": "greedy",
                  "bootstrap": BOOTSTRAP, "command": command, "comparisons": rows}
        try:
            args.out.parent.mkdir(parents=True, exist_ok=True)
            atomic_write_text(args.out, json.dumps(report, indent=1, ensure_ascii=False) + "\n")
        except OSError as error:
            print(f"pair_models: cannot write {args.out}: {error.strerror}", file=sys.stderr)
            return 1
        print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
