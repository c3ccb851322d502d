"""Model folders: what ``htr train`` writes and ``htr recognize`` / ``htr transcribe`` read.

A model folder holds ``model.json`` (the network's config + its alphabet, output 0 the CTC
blank) and ``weights.pt`` (a state dict).  An **ensemble folder** (``htr ensemble``) holds
member model folders as subfolders and a ``model.json`` naming them; it reads a line with
every member and outputs the mean of their log-probabilities, renormalised (a product of
experts: on Copiste dev the mean of log-probabilities beat the mean of probabilities, which
smears the members' slightly shifted CTC spikes into blanks).  Members must read the same
line images (height, width cap) and give the same number of frames per line; their
alphabets must hold the same symbols, in any order.
"""
from __future__ import annotations

import argparse
import io
import json
import shutil
import sys
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from common.files import atomic_write_bytes, atomic_write_text
from pipeline.folders import (ENSEMBLE_KEY, EXPORTED_FILES, MODEL_JSON, WEIGHTS, copy_model_folder,
                              ensemble_members, read_metrics)
from pipeline.logits import label_order
from pipeline.metrics import best_epoch_row
from pipeline.model import ModelConfig, build_model, count_parameters, model_config_of, with_legacy_defaults

FIX = "copy the model folder again, or retrain it with 'htr train'"
SAME_INPUT = ("height", "max_width", "line_norm")  # what the members' line images must share


def save_model_folder(folder: Path, config: ModelConfig, alphabet: list[str], model: nn.Module) -> None:
    """Write the small, self-contained folder that ``htr recognize --model`` reads."""
    folder = Path(folder)
    description = {"config": model_config_of(config).to_dict(), "alphabet": list(alphabet), "blank": 0,
                   "parameters": count_parameters(model)}
    buffer = io.BytesIO()
    torch.save(model.state_dict(), buffer)
    atomic_write_bytes(folder / WEIGHTS, buffer.getvalue())
    atomic_write_text(folder / MODEL_JSON, json.dumps(description, ensure_ascii=False, indent=2) + "\n")


def load_model_folder(folder: Path, impl: str | None = None) -> tuple[nn.Module, ModelConfig, list[str]]:
    """Model (in eval mode), its config and alphabet from a model or ensemble folder (an
    ensemble's config is its first member's: the line images it expects)."""
    folder = Path(folder)
    members = ensemble_members(folder)
    return combine(members, impl, where=folder) if members else load_single(folder, impl)


def load_single(folder: Path, impl: str | None = None) -> tuple[nn.Module, ModelConfig, list[str]]:
    for name in (MODEL_JSON, WEIGHTS):
        if not (folder / name).is_file():
            raise FileNotFoundError(f"{folder / name}: missing (a model folder is written by 'htr train')")
    try:
        description = json.loads((folder / MODEL_JSON).read_text(encoding="utf-8"))
        config = ModelConfig(**with_legacy_defaults(description["config"]))
        config.check()
        alphabet = list(description["alphabet"])
    except (ValueError, KeyError, TypeError) as error:  # bad JSON or UTF-8, missing, unknown or bad keys
        raise ValueError(f"{folder / MODEL_JSON}: not a model description ({_first_line(error)}); {FIX}") from None
    if impl is not None:
        config.mdlstm_impl = impl
    model = build_model(config, len(alphabet))
    try:
        state = torch.load(folder / WEIGHTS, map_location="cpu", weights_only=True)
    except Exception as error:  # noqa: BLE001 - torch raises UnpicklingError, RuntimeError, EOFError, ...
        raise ValueError(f"{folder / WEIGHTS}: corrupt or not a weights file ({_first_line(error)}); {FIX}") from None
    try:
        model.load_state_dict(state)
    except (RuntimeError, TypeError, AttributeError, KeyError) as error:
        raise ValueError(f"{folder / WEIGHTS}: the weights do not fit {MODEL_JSON} ({_first_line(error)}); {FIX}") from None
    return model.eval(), config, alphabet


# ---------------------------------------------------------------- ensembles


class EnsembleNet(nn.Module):
    """Members' log-probabilities, each reordered to the first member's alphabet, averaged and
    renormalised; the same ``(logprobs (T, B, N), frames)`` interface as one network."""

    def __init__(self, members: list[nn.Module], orders: list[list[int]]):
        super().__init__()
        self.members = nn.ModuleList(members)
        for k, order in enumerate(orders):
            self.register_buffer(f"order{k}", torch.tensor(order, dtype=torch.long), persistent=False)

    def forward(self, images: torch.Tensor, widths: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        outputs, lengths = [], None
        for k, member in enumerate(self.members):
            logprobs, lengths = member(images, widths)
            outputs.append(logprobs.index_select(-1, getattr(self, f"order{k}")))
        return F.log_softmax(torch.stack(outputs).mean(dim=0), dim=-1), lengths

    def frames(self, widths):
        return self.members[0].frames(widths)


def combine(members: list[Path], impl: str | None = None, where: Path | None = None
            ) -> tuple[nn.Module, ModelConfig, list[str]]:
    """One :class:`EnsembleNet` of the model folders ``members`` (checked to fit together)."""
    loaded = []
    for member in members:
        if ensemble_members(member):
            raise ValueError(f"{member}: already an ensemble{f' (inside {where})' if where else ''}; list its members instead")
        loaded.append(load_single(member, impl))
    first_model, first_config, alphabet = loaded[0]
    orders = [list(range(len(alphabet)))]
    for member, (model, config, symbols) in zip(members[1:], loaded[1:]):
        orders.append(member_order(member, model, config, symbols, first_model, first_config, alphabet))
    return EnsembleNet([model for model, _, _ in loaded], orders).eval(), first_config, alphabet


def member_order(folder: Path, model: nn.Module, config: ModelConfig, alphabet: list[str],
                 first_model: nn.Module, first_config: ModelConfig, first_alphabet: list[str]) -> list[int]:
    """The column order that matches a member's outputs to the first member's alphabet; a member
    that cannot be averaged with the first one raises ``ValueError`` naming it."""
    for key in SAME_INPUT:
        if getattr(config, key) != getattr(first_config, key):
            raise ValueError(f"{folder}: {key} {getattr(config, key)} differs from the first member's "
                             f"{getattr(first_config, key)}; ensemble members must read the same line images")
    if any(model.frames(width) != first_model.frames(width) for width in range(1, 257)):
        raise ValueError(f"{folder}: gives a different number of frames per line than the first member "
                         "(another width reduction); its outputs cannot be averaged frame by frame")
    try:
        if alphabet[0] != first_alphabet[0]:
            raise ValueError(f"blank {alphabet[0]!r} against {first_alphabet[0]!r}")
        return label_order(alphabet, first_alphabet)
    except ValueError as error:
        raise ValueError(f"{folder}: its alphabet differs from the first member's ({error}); "
                         "ensemble members must know the same symbols") from None


def write_ensemble(out: Path, members: list[Path]) -> dict:
    """Copy the member folders into ``out/NAME/`` and write ``out/model.json`` naming them.  The
    members are loaded and checked together first, so a bad one is named before anything is
    written.  Returns the description."""
    out, members = Path(out), [Path(member) for member in members]
    if len(members) < 2:
        raise ValueError("an ensemble needs at least two model folders")
    names = [member.resolve().name for member in members]
    if len(set(names)) != len(names):
        raise ValueError(f"two members share a folder name ({', '.join(names)}); members are stored as OUT/NAME: rename one")
    _, config, alphabet = combine(members)
    old_members = [member for member in ensemble_members(out) if member.name not in names]
    for member, name in zip(members, names):
        if (out / name).resolve() != member.resolve():
            copy_model_folder(member, out / name)
    for stale in EXPORTED_FILES:  # an ordinary model folder turned ensemble (members were copied first)
        if stale != MODEL_JSON:
            (out / stale).unlink(missing_ok=True)
    description = {ENSEMBLE_KEY: names, "alphabet": alphabet, "blank": 0, "height": config.height,
                   "combine": "mean of the members' log-probabilities, renormalised",
                   "members": {name: member_summary(out / name) for name in names}}
    atomic_write_text(out / MODEL_JSON, json.dumps(description, ensure_ascii=False, indent=2) + "\n")
    for member in old_members:  # an earlier ensemble's members that the new one leaves out
        shutil.rmtree(member, ignore_errors=True)
    return description


def member_summary(folder: Path) -> dict:
    description = json.loads((folder / MODEL_JSON).read_text(encoding="utf-8"))
    best = best_epoch_row(read_metrics(folder))
    return {"arch": description["config"].get("arch"), "parameters": description.get("parameters"),
            **({"best_epoch": best["epoch"], "best_dev_cer": best["dev_cer"]} if best else {})}


def _first_line(error: BaseException) -> str:
    lines = str(error).strip().splitlines() or [type(error).__name__]
    return lines[0][:160]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="htr ensemble",
        description="Combine trained model folders into one ensemble folder that htr recognize, htr transcribe, "
                    "make copiste-pages and the model export read like any model: every member reads each line and the mean of "
                    "their log-probabilities is the output. Members must share the line height and width cap "
                    "and give as many frames per line (e.g. two CRNNs, or two MDLSTMs of one layout); they are "
                    "copied into OUT.",
        epilog="Example: htr ensemble models/copiste-next/crnn-all models/copiste-next/crnn-all-synth-init "
               "--out models/copiste/default")
    parser.add_argument("members", nargs="+", type=Path, help="model folders written by 'htr train'")
    parser.add_argument("--out", type=Path, required=True, help="the ensemble folder to write")
    args = parser.parse_args(argv)
    try:
        description = write_ensemble(args.out, args.members)
    except (FileNotFoundError, ValueError) as error:
        print(f"htr ensemble: {error}", file=sys.stderr)
        return 1
    print(f"htr ensemble: {len(description[ENSEMBLE_KEY])} members ({', '.join(description[ENSEMBLE_KEY])}) -> {args.out}")
    return 0
