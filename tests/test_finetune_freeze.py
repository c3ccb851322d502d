"""``htr train --init MODEL_DIR --freeze N``: the lowest N layers keep the base model's weights
(and batch-norm statistics), the layers above them train; the flag is refused where it makes
no sense.  Tiny generated base models and lines (tests/test_train.py's glyphs)."""
from __future__ import annotations

from pathlib import Path

import pytest
import torch

from pipeline import train as train_module
from pipeline.finetune import freeze_lower_layers, network_layers
from pipeline.model import ModelConfig, build_model
from pipeline.model_folder import save_model_folder
from pipeline.train import Dist, TrainConfig
from test_train import write_tiny_set

ALPHABET = ["", "a", "b", "c"]  # the texts below use no other character: the output keeps its rows
TEXTS = ["ab", "ca", "bca", "abc", "cab", "ba", "acb", "cc"]
LAYOUTS = {
    "mdlstm": dict(height=16, mdlstm_hidden="2,3,4", mdlstm_conv="3,4", sub_height=2, mdlstm_impl="wavefront"),
    "crnn": dict(height=16, crnn_conv="4,6,8", crnn_pools=3, crnn_lstm_hidden=6, crnn_lstm_layers=2),
}
NAMES = {"mdlstm": ["lstms.0", "convs.0", "lstms.1", "convs.1", "lstms.2", "output"],
         "crnn": ["conv.0+1", "conv.4+5", "conv.8+9", "lstms.0", "lstms.1", "output"]}


def tiny_base(folder: Path, arch: str) -> torch.nn.Module:
    torch.manual_seed(3)
    config = ModelConfig(arch=arch, **LAYOUTS[arch])
    model = build_model(config, len(ALPHABET))
    save_model_folder(folder, config, ALPHABET, model)
    return model


def fine_tune(tmp_path: Path, base: Path, *extra: str) -> int:
    train = write_tiny_set(tmp_path / "lines", TEXTS)
    return train_module.main(["--train", str(train), "--dev", str(train), "--out", str(tmp_path / "tuned"),
                              "--init", str(base), "--batch-size", "3", "--lr", "0.01", "--max-epochs", "1",
                              "--threads", "1", "--no-progress", "--mdlstm-impl", "wavefront", *extra])


def layer_of(name: str, arch: str) -> str:
    """The --freeze layer a state-dict entry belongs to (a CRNN conv block's two modules)."""
    if arch == "crnn" and name.startswith("conv."):
        index = int(name.split(".")[1])
        return next(layer for layer in NAMES["crnn"] if layer.startswith("conv.") and
                    index in {int(k) for k in layer[len("conv."):].split("+")})
    return ".".join(name.split(".")[:2]) if name.split(".")[0] in ("lstms", "convs") else name.split(".")[0]


@pytest.mark.parametrize("arch", ["mdlstm", "crnn"])
def test_the_layers_cover_every_parameter_once_from_the_input_up(arch):
    model = build_model(ModelConfig(arch=arch, **LAYOUTS[arch]), len(ALPHABET))
    layers = network_layers(model)
    assert [name for name, _ in layers] == NAMES[arch]
    counted = [id(p) for _, modules in layers for module in modules for p in module.parameters()]
    assert len(counted) == len(set(counted)) and set(counted) == {id(p) for p in model.parameters()}


@pytest.mark.parametrize("arch, freeze", [("mdlstm", 3), ("mdlstm", 5), ("crnn", 3), ("crnn", 4)])
def test_frozen_layers_keep_the_base_weights_and_the_rest_trains(tmp_path, arch, freeze, capsys):
    base = tiny_base(tmp_path / "base", arch)
    before = {name: tensor.clone() for name, tensor in base.state_dict().items()}
    assert fine_tune(tmp_path, tmp_path / "base", "--freeze", str(freeze)) == 0
    assert f"the lowest {freeze} layers frozen" in capsys.readouterr().err
    after = torch.load(tmp_path / "tuned" / "last.pt", map_location="cpu", weights_only=False)["model"]
    frozen = set(NAMES[arch][:freeze])
    checked = {"frozen": 0, "trained": 0}
    for name, tensor in before.items():
        if name.endswith("num_batches_tracked"):
            continue
        layer = layer_of(name, arch)
        if layer in frozen:  # weights, biases, and batch-norm running statistics
            assert torch.equal(after[name], tensor), f"{name} ({layer}) is frozen but changed"
            checked["frozen"] += 1
        elif tensor.is_floating_point() and "running_" not in name:
            assert not torch.equal(after[name], tensor), f"{name} ({layer}) should train but kept its value"
            checked["trained"] += 1
    assert checked["frozen"] and checked["trained"]


def test_without_freeze_every_layer_trains(tmp_path):
    base = tiny_base(tmp_path / "base", "mdlstm")
    assert fine_tune(tmp_path, tmp_path / "base") == 0
    after = torch.load(tmp_path / "tuned" / "last.pt", map_location="cpu", weights_only=False)["model"]
    assert all(not torch.equal(after[name], tensor) for name, tensor in base.state_dict().items())


def test_the_optimiser_holds_only_the_trained_parameters():
    config = TrainConfig(arch="mdlstm", freeze=4, **LAYOUTS["mdlstm"])
    model, optimizer, _ = train_module.build(config, len(ALPHABET), Dist())
    held = {id(p) for group in optimizer.param_groups for p in group["params"]}
    upper = {id(p) for module in (model.lstms[2], model.output) for p in module.parameters()}
    assert held == upper and not any(p.requires_grad for p in model.lstms[0].parameters())


def test_freeze_is_refused_where_it_makes_no_sense(tmp_path, capsys):
    train = write_tiny_set(tmp_path / "lines", TEXTS)
    argv = ["--train", str(train), "--out", str(tmp_path / "fresh"), "--max-epochs", "1", "--threads", "1",
            "--no-progress", "--height", "16", "--mdlstm-hidden", "2,3,4", "--mdlstm-conv", "3,4", "--sub-height", "2"]
    assert train_module.main([*argv, "--freeze", "2"]) == 1  # a new network: nothing to keep
    assert capsys.readouterr().err.strip().splitlines()[-1] == (
        "htr train: --freeze 2 needs --init MODEL_DIR: the frozen layers of a new network would stay random")

    tiny_base(tmp_path / "base", "mdlstm")
    assert fine_tune(tmp_path, tmp_path / "base", "--freeze", "6") == 1  # every layer: nothing would train
    message = capsys.readouterr().err.strip().splitlines()[-1]
    assert message.startswith("htr train: --freeze 6: the mdlstm network has 6 layers from the input up "
                              "(lstms.0, convs.0, lstms.1, convs.1, lstms.2, output); freeze 0 to 5")
    with pytest.raises(ValueError, match="freeze 0 to 5"):
        freeze_lower_layers(build_model(ModelConfig(**LAYOUTS["mdlstm"]), 4), -1)

    assert fine_tune(tmp_path, tmp_path / "base", "--freeze", "2") == 0
    capsys.readouterr()
    resume = ["--resume", "--out", str(tmp_path / "tuned"), "--max-epochs", "2", "--mdlstm-impl", "wavefront"]
    assert train_module.main([*resume, "--freeze", "3"]) == 1  # the optimiser holds the other layers
    assert "froze 2 layers" in capsys.readouterr().err
    assert train_module.main(resume) == 0  # the saved run's --freeze 2 goes on
