"""What a model folder written by ``htr train`` holds.

Torch-free on purpose: the experiment runner checks folders without importing torch.
"""
from __future__ import annotations

import json
import shutil
from pathlib import Path

MODEL_JSON, WEIGHTS = "model.json", "weights.pt"  # the best model so far
METRICS_JSON, METRICS_CSV = "metrics.json", "metrics.csv"  # one row per epoch
LAST = "last.pt"  # full checkpoint: model, optimiser, scheduler, RNG, epoch
CONFIG_FILE = "train_config.json"  # the training flags, reloaded by --resume
DONE = "DONE"  # written by htr run when the training is finished (max epochs or early stop)
TRAIN_LOG = "train.log"  # a training htr run started in the background writes its output here
# enough to continue a training without last.pt (e.g. a model folder committed to git)
WARM_START = (MODEL_JSON, WEIGHTS, METRICS_JSON)
# what an exported model folder carries
EXPORTED_FILES = (*WARM_START, CONFIG_FILE, METRICS_CSV)


# An ensemble folder (``htr ensemble``): its model.json names member model folders, kept as its
# subfolders, whose averaged log-probabilities are the ensemble's output.
ENSEMBLE_KEY = "ensemble"


def ensemble_members(folder: Path) -> list[Path]:
    """The member folders of an ensemble folder; [] for an ordinary model folder (or none)."""
    path = Path(folder) / MODEL_JSON
    try:
        description = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return []
    names = description.get(ENSEMBLE_KEY) if isinstance(description, dict) else None
    if not isinstance(names, list) or not all(isinstance(name, str) and name for name in names):
        return []  # not an ensemble; loading it as a model folder names what is wrong
    return [Path(folder) / name for name in names]


def trainable_model(folder: Path) -> Path:
    """The one network a training can start from (``htr train --init``): the folder itself, or an
    ensemble's first member (the ensemble's best, as ``htr ensemble`` lists them)."""
    members = ensemble_members(folder)
    return members[0] if members else Path(folder)


def model_files(folder: Path) -> list[Path]:
    """Every file a model folder's outputs depend on (an ensemble's: its members' too)."""
    members = ensemble_members(folder)
    if members:
        return [Path(folder) / MODEL_JSON] + [path for member in members for path in model_files(member)]
    return [Path(folder) / MODEL_JSON, Path(folder) / WEIGHTS]


def can_warm_start(folder: Path) -> bool:
    return all((folder / name).is_file() for name in WARM_START)


def can_resume(folder: Path) -> bool:
    """``htr train --resume`` has something to continue from in ``folder``."""
    return (folder / LAST).is_file() or can_warm_start(folder)


def copy_model_folder(source: Path, target: Path) -> None:
    """Copy a model folder's files (``EXPORTED_FILES``, no checkpoint) to ``target`` through a
    temporary folder, so an interrupted copy never leaves a half-written folder where a reader
    (an ensemble, a training that continues from it) finds it."""
    partial = target.with_name(f".{target.name}.partial")
    shutil.rmtree(partial, ignore_errors=True)
    partial.mkdir(parents=True)
    for file in EXPORTED_FILES:
        if (source / file).is_file():
            shutil.copy2(source / file, partial / file)
    shutil.rmtree(target, ignore_errors=True)
    partial.rename(target)


def read_metrics(folder: Path) -> list[dict]:
    """The epoch rows of ``folder/metrics.json``; [] before the first epoch is written."""
    path = folder / METRICS_JSON
    return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else []


# The models shipped in the repository (``make copiste-models``): ``htr transcribe`` reads pages
# with these when it is given no ``--model`` (and then no ``--lm``).
SHIPPED = Path(__file__).resolve().parent.parent / "models" / "copiste"
DEFAULT_MODEL = SHIPPED / "default"  # the best released model of any layout
DEFAULT_LM = SHIPPED / "lm"
