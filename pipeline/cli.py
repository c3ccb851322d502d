"""``htr``: one command, a subcommand per stage.  Each stage module has its own ``main``."""
from __future__ import annotations

import contextlib
import importlib
import subprocess
import sys
from pathlib import Path

# subcommand -> (module with main(argv), one-line description)
COMMANDS: dict[str, tuple[str, str]] = {
    "prepare": ("data_prep.prepare", "data source (ALTO, PAGE, IAM, Rimes, folder, synthetic) -> line manifest"),
    "train": ("pipeline.train", "train an MDLSTM or CNN+BLSTM optical model with CTC (resumable, torchrun)"),
    "recognize": ("pipeline.recognize", "run a model over a manifest -> per-line log-probability cache (.npz)"),
    "ensemble": ("pipeline.model_folder", "combine model folders into one ensemble folder (averaged log-probabilities)"),
    "bench": ("pipeline.bench", "training/inference lines/s of each 2D-LSTM implementation and the CRNN"),
    "segment": ("pipeline.segment", "page images -> text lines in reading order (ALTO v4 with polygons, baselines)"),
    "segment-eval": ("pipeline.segment_eval", "score predicted lines against ground-truth ALTO/PAGE (IoU P/R/F1)"),
    "seg-crops": ("pipeline.seg_crops", "segmenter crops of training pages + matched ground-truth text -> manifest"),
    "evaluate": ("pipeline.evaluate", "CER/WER of hypotheses against references, with bootstrap intervals"),
    "page-eval": ("pipeline.page_eval", "page-level CER/WER on ground-truth and on predicted lines, with intervals"),
    "calibration": ("pipeline.calibration", "word confidences against word accuracy: reliability bins and ECE"),
    "run": ("pipeline.run", "run a whole experiment from a TOML config (resumable)"),
    "report": ("pipeline.report", "experiment folder -> Markdown + HTML report with tables and plots"),
    "transcribe": ("pipeline.transcribe", "page images -> text and ALTO (segment, recognise, decode)"),
    "lm": ("lm.build", "text -> lexicon + KenLM word (and character) n-gram models"),
    "decode": ("pipeline.decode", "cached log-probs -> text (greedy, beam, beam-lm, lexicon, char-lm)"),
    "tune": ("pipeline.tune", "search LM weight and word bonus on dev log-probs"),
}


def usage() -> str:
    width = max(len(name) for name in COMMANDS)
    rows = "\n".join(f"  {name:<{width}}  {text}" for name, (_, text) in COMMANDS.items())
    return ("usage: htr COMMAND [options]\n\nOffline handwritten text recognition toolkit.\n\n"
            f"commands:\n{rows}\n\nRun 'htr COMMAND --help' for the options of a command.")


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help", "help"):
        print(usage())
        return 0
    name, rest = argv[0], argv[1:]
    if name not in COMMANDS:
        print(f"htr: unknown command {name!r}\n\n{usage()}", file=sys.stderr)
        return 2
    module = importlib.import_module(COMMANDS[name][0])
    return int(module.main(rest) or 0)


def run_htr(args: list[str], in_process: bool = False, cwd: Path | None = None, output_to_stderr: bool = False) -> None:
    """Run ``htr ARGS`` for a script: as a subprocess from ``cwd``, or in this process (the
    scripts' tests); SystemExit naming the command when it fails.  ``output_to_stderr``: the
    command's stdout goes to stderr (a script whose own stdout is its result)."""
    print("+ htr " + " ".join(args), file=sys.stderr, flush=True)
    if in_process:
        with contextlib.redirect_stdout(sys.stderr) if output_to_stderr else contextlib.nullcontext():
            code = main(args)
    else:
        code = subprocess.run([sys.executable, "-m", "pipeline.cli", *args], cwd=cwd,
                              stdout=sys.stderr if output_to_stderr else None).returncode
    if code:
        raise SystemExit(f"htr {args[0]} failed (exit status {code})")


if __name__ == "__main__":
    sys.exit(main())
