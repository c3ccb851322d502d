"""Fine-tuning: ``htr train --init MODEL_DIR`` starts a new training from a model folder.

The new run takes the folder's network layout (every model flag but the 2D-LSTM
implementation) and its weights; characters of the new training text that the model does not
know are appended to its alphabet, and the output layer gets one new row per new character:
the old rows are kept, a new row starts with small weights and the lowest bias of the old
character rows, so a new character is at first unlikely and is learnt from the new lines.
Everything else starts afresh, as in any new run: epochs, optimiser, early stopping, the
best dev CER (measured on the new dev set).  The result is an ordinary model folder.
"""
from __future__ import annotations

from dataclasses import dataclass, fields
from pathlib import Path

import torch

from pipeline.model import ModelConfig, load_model_folder

OUTPUT_LAYER = "output"  # the final linear layer of both architectures (weight rows = classes)
NEW_ROW_RANGE = 0.01


@dataclass
class InitialModel:
    config: ModelConfig
    alphabet: list[str]
    state: dict[str, torch.Tensor]
    added: list[str]  # characters appended to the alphabet


def extended_alphabet(alphabet: list[str], texts: list[str]) -> list[str]:
    """The model's alphabet (blank first, order kept) plus the new characters, sorted."""
    known = set(alphabet)
    return list(alphabet) + sorted({char for text in texts for char in text} - known)


def extend_output_rows(state: dict[str, torch.Tensor], classes: int, generator: torch.Generator) -> dict:
    """A state dict whose output layer has ``classes`` rows: old rows kept, new ones small."""
    weight, bias = state[f"{OUTPUT_LAYER}.weight"], state[f"{OUTPUT_LAYER}.bias"]
    extra = classes - weight.shape[0]
    if extra <= 0:
        return state
    new_weight = (torch.rand(extra, weight.shape[1], generator=generator) * 2 - 1) * NEW_ROW_RANGE
    low = bias[1:].min() if bias.numel() > 1 else bias.min()
    state = dict(state)
    state[f"{OUTPUT_LAYER}.weight"] = torch.cat([weight, new_weight.to(weight.dtype)])
    state[f"{OUTPUT_LAYER}.bias"] = torch.cat([bias, low.repeat(extra)])
    return state


def initial_model(folder: Path, texts: list[str], seed: int) -> InitialModel:
    """Layout, extended alphabet and starting weights for a fine-tuning run."""
    model, config, alphabet = load_model_folder(folder)
    grown = extended_alphabet(alphabet, texts)
    state = extend_output_rows(model.state_dict(), len(grown), torch.Generator().manual_seed(seed))
    return InitialModel(config, grown, state, grown[len(alphabet):])


def take_layout(target: ModelConfig, source: ModelConfig) -> None:
    """Copy every model flag of ``source`` into ``target`` but the 2D-LSTM implementation."""
    for item in fields(ModelConfig):
        if item.name != "mdlstm_impl":
            setattr(target, item.name, getattr(source, item.name))
