"""The decoders' names and settings (also the flags of ``htr decode``), and the defaults that
tuned weights (``htr tune --out FILE``) give them."""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from common.cliconfig import CliConfig
from lm.folder import char_model, folder_tuned, read_tuned

DECODERS = ("greedy", "beam", "beam-lm", "lexicon", "char-lm")
LM_DECODERS = ("beam-lm", "lexicon", "char-lm")
# measured on synthetic posteriors: 15 costs the lexicon decoder WER, and buys char-lm 2.5x speed at no WER cost
DEFAULT_THRESHOLD = {"lexicon": 25.0, "char-lm": 15.0}


@dataclass
class DecodeConfig(CliConfig):
    decoder: str = field(default="greedy", metadata={"help": "decoder", "choices": DECODERS})
    beam: int = field(default=64, metadata={"help": "beam size (hypotheses kept per frame)"})
    # beam_token and token_min_logp: on real Copiste outputs (greedy CER 77%) 16 -> 8 labels made
    # lexicon 1.4x faster and -5 -> -2 made beam-lm 8x faster, WER unchanged (README, Stage 4)
    beam_token: int = field(default=8, metadata={"help": "labels considered per frame (slow-path guard)"})
    beam_threshold: float = field(default=0.0, metadata={
        "help": "lexicon/char-lm: drop hypotheses this far below the best (log); 0: 25 for lexicon, 15 for char-lm"})
    beam_prune_logp: float = field(default=-10.0, metadata={"help": "beam/beam-lm: drop beams this far below the best (log)"})
    token_min_logp: float = field(default=-2.0, metadata={"help": "beam/beam-lm: skip labels below this log-prob (except the frame's best)"})
    lm_weight: float = field(default=0.5, metadata={"help": "language model weight (tuned weights override the default)"})
    word_bonus: float = field(default=0.0, metadata={"help": "score added per word (tuned weights override the default)"})
    blank_penalty: float = field(default=0.0, metadata={
        "help": "subtracted from the blank's log-probability in every frame before the search, so an LM's "
                "cost per character does not make the search drop characters (tuned weights override the default)"})
    unk_penalty: float = field(default=-10.0, metadata={"help": "beam-lm: log10 penalty per out-of-vocabulary token"})
    extra_lexicon: bool = field(default=True, metadata={"help": "lexicon: also spell the LM directory's extra words (htr lm --extra-words), if it has them"})
    line_seconds: float = field(default=5.0, metadata={"help": "beam/beam-lm: redo a line slower than this with beam 8"})


def default_decoder(lm: Path | None) -> str:
    """The decoder to use when none is named: char-lm with an LM folder that has a character
    n-gram (with the shipped French model, tuned on Copiste dev: 8.8% CER, 23.1% WER against
    the lexicon decoder's 12.2 / 27.5; reports/probes/README.md), lexicon with any other LM folder,
    greedy without one."""
    if lm is None:
        return "greedy"
    return "char-lm" if char_model(lm).is_file() else "lexicon"


TUNED_KEYS = ("lm_weight", "word_bonus", "blank_penalty")  # what htr tune chooses; the rest of its entry is the search


def tuned_source(tuned: Path | None, lm: Path | None) -> Path | None:
    """Where an LM decoder's tuned weights come from: the file ``htr tune --out`` wrote (``--tuned``),
    else the LM folder's own ``tuned.json`` (an older or an exported LM folder), else nowhere."""
    if tuned is not None:
        return Path(tuned)
    return folder_tuned(lm) if lm is not None else None


def tuned_config(decoder: str, tuned: Path | None = None, lm: Path | None = None) -> DecodeConfig:
    """The defaults of ``decoder``, with the LM weight and word bonus of :func:`tuned_source`."""
    source = tuned_source(tuned, lm) if decoder in LM_DECODERS else None
    found = read_tuned(source, decoder) if source is not None else {}
    return DecodeConfig(decoder=decoder, **{key: found[key] for key in TUNED_KEYS if key in found})
