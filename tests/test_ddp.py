"""Data-parallel training under torchrun: 2 CPU processes (gloo) keep identical weights."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import torch

from pipeline.model import build_model
from pipeline.train import TrainConfig
from test_train import DEV_TEXTS, TRAIN_TEXTS, write_tiny_set

REPO = Path(__file__).resolve().parents[1]

WORKER = """
import sys
from pathlib import Path
import torch
import torch.distributed as dist
from pipeline.train import TrainConfig, train

config = TrainConfig.load(Path(sys.argv[1]))
model = train(config)
torch.save(model.state_dict(), Path(config.out) / f"rank{dist.get_rank()}.pt")
dist.barrier()
dist.destroy_process_group()
"""


def test_two_processes_keep_identical_weights(tmp_path):
    config = TrainConfig(train=write_tiny_set(tmp_path / "train", TRAIN_TEXTS * 2),
                         dev=write_tiny_set(tmp_path / "dev", DEV_TEXTS), out=tmp_path / "model",
                         height=16, mdlstm_hidden="2,3,4", mdlstm_conv="3,4", sub_height=2,
                         mdlstm_impl="wavefront", dropout_where="all", augment=True,
                         batch_size=2, max_epochs=2, threads=1, progress=False)
    config.save(tmp_path / "config.json")
    (tmp_path / "worker.py").write_text(WORKER)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")])}
    result = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
                             str(tmp_path / "worker.py"), str(tmp_path / "config.json")],
                            cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    rank0 = torch.load(tmp_path / "model" / "rank0.pt", weights_only=True)
    rank1 = torch.load(tmp_path / "model" / "rank1.pt", weights_only=True)
    torch.manual_seed(config.seed)
    initial = build_model(config, 4).state_dict()
    for name, tensor in rank0.items():
        assert torch.equal(tensor, rank1[name]), name
    assert any(not torch.equal(tensor, initial[name]) for name, tensor in rank0.items())
    assert "2 process(es)" in result.stderr
    assert (tmp_path / "model" / "last.pt").is_file()
