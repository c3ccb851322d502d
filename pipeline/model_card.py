"""The machine-readable header of a model card (``MODEL_CARD.md``): YAML front matter.

The fields follow HTR-United's catalogue (``license``, ``language`` as ISO 639-3,
``script`` as ISO 15924, ``time``, ``hands``, ``volume``, ``format``) for what a person has to
state, in a card-metadata TOML file (e.g. ``configs/copiste-card.toml``); the rest is read
from the exported model folders: per model its architecture, settings, alphabet, training
state and dev CER/WER per decoding system, the language model, the software version, and
the commands that reproduce the models.  ``scripts/export_models.py`` writes it;
:func:`read_front_matter` reads it back.
"""
from __future__ import annotations

import json
import re
from pathlib import Path

import yaml

from data_prep.layout import SOFTWARE, software_version
from common.files import read_toml
from lm.folder import char_model, folder_tuned
from pipeline.decoders.config import TUNED_KEYS
from pipeline.folders import CONFIG_FILE, DEFAULT_MODEL, MODEL_JSON, ensemble_members
from pipeline.metrics import best_epoch_row

REQUIRED = ("title", "license", "language", "script", "time", "training-data", "reproduce")
ARCH_KEYS = {"mdlstm": ("height", "mdlstm_hidden", "mdlstm_conv", "block_width", "block_height", "sub_width", "sub_widths", "sub_height"),
             "crnn": ("height", "crnn_conv", "crnn_pools", "crnn_keep_width", "crnn_lstm_hidden", "crnn_lstm_layers")}


def read_meta(path: Path) -> dict:
    """The hand-written part of the header; a missing field is named with the file."""
    meta = read_toml(path, "card metadata file")
    missing = [key for key in REQUIRED if key not in meta]
    if missing:
        raise ValueError(f"{path}: missing {', '.join(missing)} (see configs/copiste-card.toml for an example)")
    return meta


SHIPPED_DEFAULT = DEFAULT_MODEL.name  # the folder of an export that htr transcribe reads without --model


def model_entry(folder: Path, scores: list[tuple[str, float, float]], default: bool) -> dict:
    """One model of the header: what its folder says, and its dev scores (system, CER %, WER %);
    an ensemble folder's entry lists its members' entries."""
    members = ensemble_members(folder)
    if members:
        entries = [model_entry(member, [], False) for member in members]
        for entry in entries:
            entry["path"] = f"{folder.name}/{entry['path']}"
            del entry["default"], entry["dev"]
        return {"name": folder.name, "path": folder.name, "default": default,
                "architecture": {"ensemble": [member.name for member in members],
                                 "combine": "mean of the members' log-probabilities, renormalised"},
                "dev": _dev_scores(scores), "alphabet": dict(entries[0]["alphabet"]), "members": entries}
    description = json.loads((folder / MODEL_JSON).read_text(encoding="utf-8"))
    train = json.loads((folder / CONFIG_FILE).read_text(encoding="utf-8"))
    metrics = json.loads((folder / "metrics.json").read_text(encoding="utf-8"))
    best = best_epoch_row(metrics)
    config = description["config"]
    return {
        "name": folder.name, "path": folder.name, "default": default,
        "architecture": {"arch": config.get("arch"), **{k: config[k] for k in ARCH_KEYS.get(config.get("arch"), ()) if config.get(k) not in (None, "")},
                         "dropout": config.get("dropout"), "dropout_where": config.get("dropout_where"),
                         **({"dropout_layers": config["dropout_layers"]} if config.get("dropout_layers") else {})},
        "training": {"epochs": len(metrics), "max_epochs": train.get("max_epochs"), "best_epoch": best["epoch"],
                     "best_dev_cer": round(float(best["dev_cer"]), 2), "optimizer": train.get("optimizer"),
                     "lr": train.get("lr"), "batch_size": train.get("batch_size"), "seed": train.get("seed"),
                     # the lineage of a fine-tuned or weight-averaged model: its epochs count from that start
                     **({"init": str(train["init"])} if train.get("init") else {}),
                     **({"average_from": train["average_from"]} if train.get("average_from") else {})},
        # CER and WER in %, on the dev set, per decoding system of the experiment
        "dev": _dev_scores(scores),
        # output k of the network is symbols[k - 1]; output 0 is the CTC blank
        "alphabet": {"size": len(description["alphabet"]), "blank_index": 0, "symbols": "".join(description["alphabet"][1:])},
    }


def _dev_scores(scores: list[tuple[str, float, float]]) -> list[dict]:
    return [{"system": name, "cer": round(cer, 2), "wer": round(wer, 2)} for name, cer, wer in scores]


def lm_entry(lm: Path) -> dict | None:
    if not (lm / "lm.json").is_file():
        return None
    info = json.loads((lm / "lm.json").read_text(encoding="utf-8"))
    dev = info.get("dev", {})
    kind = f"word {info['config']['order']}-gram (KenLM) + strict lexicon"
    if char_model(lm).is_file():
        kind += f"; character {info['config'].get('char_order', 'n')}-gram (KenLM)"
    entry = {"path": lm.name, "type": kind,
             "lexicon_tokens": info["lexicon_size"], "surface_words": info["surface_words"],
             "dev_perplexity": dev.get("perplexity"), "dev_oov_rate": dev.get("oov_rate")}
    if info.get("extension"):
        entry["extra_words"] = {"source": info["extension"]["source"], "listed": info["extension"]["listed_words"]}
    tuned = folder_tuned(lm)  # the exported LM folder carries the tuned weights of one variant
    if tuned is not None:
        entry["tuned"] = {decoder: {k: v for k, v in found.items() if k in TUNED_KEYS}
                          for decoder, found in json.loads(tuned.read_text(encoding="utf-8")).items()}
    return entry


def front_matter(meta: dict, out: Path, variants: list[str], scores: dict[str, list], default: str) -> str:
    """The YAML header (with its ``---`` lines) for the models ``variants`` exported in ``out``."""
    shipped = out / SHIPPED_DEFAULT
    if (shipped / MODEL_JSON).is_file():  # `htr transcribe` without --model reads with OUT/default
        default = SHIPPED_DEFAULT
        variants = [*[v for v in variants if v != SHIPPED_DEFAULT], SHIPPED_DEFAULT]
    source = (shipped / "SOURCE").read_text(encoding="utf-8").strip() if (shipped / "SOURCE").is_file() else None
    models = [model_entry(out / v, scores.get(source if v == SHIPPED_DEFAULT else v, []), v == default)
              for v in variants]
    for entry in models:
        if entry["name"] == SHIPPED_DEFAULT and source:
            entry["copy_of"] = source  # a variant of the same export, or a model folder's path
    header = {**meta, "software": {"name": SOFTWARE, "version": software_version()}, "models": models}
    lm = lm_entry(out / "lm")
    if lm is not None:
        header["language-model"] = lm
    text = yaml.safe_dump(header, allow_unicode=True, sort_keys=False, width=100)
    return f"---\n{text}---\n\n"


def split_card(text: str) -> tuple[dict | None, str]:
    """(front matter, body) of a card; (None, text) when it has no front matter."""
    match = re.match(r"---\n(.*?\n)---\n\n?", text, re.S)
    if not match:
        return None, text
    return yaml.safe_load(match.group(1)), text[match.end():]


def read_front_matter(card: Path) -> dict:
    header, _ = split_card(Path(card).read_text(encoding="utf-8"))
    if header is None:
        raise ValueError(f"{card}: no YAML front matter (regenerate it with scripts/export_models.py)")
    return header


def scores_from_body(body: str) -> dict[str, list[tuple[str, float, float]]]:
    """The ``| variant | system | CER | WER |`` rows of a card's score table."""
    scores: dict[str, list] = {}
    for variant, system, cer, wer in re.findall(r"^\| (\S+) \| ([^|]+?) \| ([\d.]+) \| ([\d.]+) \|$", body, re.M):
        scores.setdefault(variant, []).append((system, float(cer), float(wer)))
    return scores
