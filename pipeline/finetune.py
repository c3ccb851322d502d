"""Fine-tuning: ``htr train --init MODEL_DIR`` starts a new training from a model folder.

The new run takes the folder's network layout (every model flag but the 2D-LSTM
implementation and the dropout flags given on the command line: dropout has no weights, so a
fine-tuning run may change it) and its weights; a layout flag given with another value than
the folder's is refused by name; characters of the new training text that the model does not
know are appended to its alphabet, and the output layer gets one new row per new character:
the old rows are kept, a new row starts with small weights and the lowest bias of the old
character rows, so a new character is at first unlikely and is learnt from the new lines.
Everything else starts afresh, as in any new run: epochs, optimiser, early stopping, the
best dev CER (measured on the new dev set).  The result is an ordinary model folder.

``--freeze N`` (:func:`freeze_lower_layers`) trains only the upper part of the network: the
lowest N layers keep the base model's weights (and batch-norm statistics), which a few pages
of a new hand cannot then pull towards their own lines.
"""
from __future__ import annotations

import sys
from dataclasses import dataclass, fields
from pathlib import Path

import torch
from torch import nn

from pipeline.folders import ensemble_members, trainable_model
from pipeline.model import ModelConfig
from pipeline.model_folder import load_model_folder

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
    network = trainable_model(folder)
    if network != Path(folder):  # one network is trained: the ensemble's first member
        print(f"htr train: {folder} is an ensemble ({', '.join(m.name for m in ensemble_members(folder))}); "
              f"fine-tuning its first member, {network}", file=sys.stderr)
    model, config, alphabet = load_model_folder(network)
    grown = extended_alphabet(alphabet, texts)
    state = extend_output_rows(model.state_dict(), len(grown), torch.Generator().manual_seed(seed))
    return InitialModel(config, grown, state, grown[len(alphabet):])


# model flags without weights: a fine-tuning run may set them (the padding mask too: a model
# saved before it can be fine-tuned into reading each line as alone)
REGULARISATION = ("dropout", "dropout_where", "dropout_layers", "mdlstm_mask_padding", "crnn_mask_padding")


def take_layout(target: ModelConfig, source: ModelConfig, given: frozenset[str] = frozenset()) -> None:
    """Copy every model flag of ``source`` into ``target`` but the 2D-LSTM implementation and
    the dropout flags named in ``given`` (those given on the command line).  A layout flag in
    ``given`` whose value differs from ``source``'s would be silently dropped: it is an error."""
    for item in fields(ModelConfig):
        name = item.name
        if name == "mdlstm_impl" or (name in REGULARISATION and name in given):
            continue
        mine, theirs = getattr(target, name), getattr(source, name)
        if name in given and mine != theirs:
            raise ValueError(f"--{name.replace('_', '-')} {mine}: the model being fine-tuned (--init) has {theirs}, "
                             "and a fine-tuning run keeps its layout; drop the flag, or train a new model "
                             "without --init")
        setattr(target, name, theirs)
    if {"dropout", "dropout_where"} & given and "dropout_layers" not in given:
        target.dropout_layers = ""  # a per-layer list inherited from the base would override the flags given


# ---------------------------------------------------------------- training only the upper layers

def network_layers(model: nn.Module) -> list[tuple[str, list[nn.Module]]]:
    """The layers of an MDLSTM or CRNN network from the input up, as ``--freeze N`` counts
    them: (name, modules).  MDLSTM: ``lstms.0, convs.0, lstms.1, convs.1, ..., output``;
    CRNN: one entry per conv block (conv + batch norm: ``conv.0+1``), then ``lstms.0, ...,
    output``.  Dropout and activations have no weights and belong to no layer."""
    lstms = [(f"lstms.{i}", [lstm]) for i, lstm in enumerate(model.lstms)]
    if hasattr(model, "convs"):  # MDLSTMNet: an MDLSTM layer, then its subsampling conv
        convs = [(f"convs.{i}", [conv]) for i, conv in enumerate(model.convs)]
        lower = [layer for pair in zip(lstms, convs + [None]) for layer in pair if layer is not None]
    else:  # CRNN: conv blocks, then the BLSTM layers
        blocks: list[tuple[list[str], list[nn.Module]]] = []
        for name, module in model.conv.named_children():
            if isinstance(module, nn.Conv2d):
                blocks.append(([name], [module]))
            elif any(True for _ in module.parameters()):
                blocks[-1][0].append(name)
                blocks[-1][1].append(module)
        lower = [("conv." + "+".join(names), modules) for names, modules in blocks] + lstms
    return lower + [(OUTPUT_LAYER, [getattr(model, OUTPUT_LAYER)])]


def freeze_lower_layers(model: nn.Module, count: int, arch: str = "") -> list[str]:
    """Freeze the lowest ``count`` layers of ``model`` (:func:`network_layers`): their
    parameters get ``requires_grad = False``, so the optimiser (given only the parameters
    that require a gradient) leaves them as they are.  Returns the names frozen."""
    layers = network_layers(model)
    names = ", ".join(name for name, _ in layers)
    if not 0 <= count < len(layers):
        raise ValueError(f"--freeze {count}: the {arch + ' ' if arch else ''}network has {len(layers)} layers from the input up "
                         f"({names}); freeze 0 to {len(layers) - 1} of them, so the top layer still trains")
    for _, modules in layers[:count]:
        for module in modules:
            module.requires_grad_(False)
    return [name for name, _ in layers[:count]]


def hold_frozen_statistics(model: nn.Module) -> None:
    """Batch-norm layers whose weights are frozen keep their running statistics too (eval
    mode during training): a frozen layer computes exactly what the base model did."""
    for module in model.modules():
        if isinstance(module, nn.modules.batchnorm._BatchNorm) and not any(
                parameter.requires_grad for parameter in module.parameters()):
            module.eval()
