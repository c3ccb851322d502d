"""scripts/export_models.py: the committable model folders, LM and model card of an experiment."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from test_run_report import _experiment, _write_outputs

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "export_models.py"


def _complete_experiment(tmp_path: Path):
    config, exp = _experiment(tmp_path)
    exp.folder.mkdir()
    (exp.folder / "config.toml").write_text(config.read_text())
    _write_outputs(tmp_path, exp)
    for variant in exp.variants:
        model = exp.folder / "models" / variant
        (model / "model.json").write_text(json.dumps({"config": {}, "alphabet": ["", "a"]}))
        (model / "metrics.csv").write_text("epoch,dev_cer\n1,80.0\n")
        (model / "train_config.json").write_text(json.dumps({"max_epochs": 40, "dropout_where": variant[8:], "lr": 0.001}))
    (exp.folder / "models" / "dropout-all" / "DONE").write_text("training finished\n")
    lm = exp.folder / "lm"
    lm.mkdir()
    for name in ("lexicon.txt", "words.txt", "lm.bin"):
        (lm / name).write_text(name)
    (lm / "lm.json").write_text(json.dumps({"config": {"order": 3}, "texts": ["train.txt"], "lexicon_size": 5,
                                            "surface_words": 6, "dev": {"perplexity": 12.5, "oov_rate": 0.1}}))
    (lm / "dropout-all").mkdir()
    (lm / "dropout-all" / "tuned.json").write_text(json.dumps({"lexicon": {"lm_weight": 0.7, "word_bonus": 1.0}}))
    return exp


def test_export_copies_models_and_lm_and_writes_a_card(tmp_path):
    exp = _complete_experiment(tmp_path)
    out = tmp_path / "models"
    done = subprocess.run([sys.executable, str(SCRIPT), str(exp.folder), "--out", str(out), "--data", "Tiny test data."],
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    for variant in exp.variants:
        assert (out / variant / "weights.pt").read_bytes() == (exp.folder / "models" / variant / "weights.pt").read_bytes()
    assert json.loads((out / "lm" / "tuned.json").read_text())["lexicon"]["lm_weight"] == 0.7
    card = (out / "MODEL_CARD.md").read_text()
    assert "Tiny test data." in card
    assert "| dropout-all | 3 of 40 | finished | 26.7% | 3 |" in card
    assert "| dropout-none | 3 of 40 | unfinished (interim) |" in card
    assert "| dropout-all | + lexicon + LM |" in card  # the scores found in eval/
    assert f"htr recognize --model {out}/dropout-all" in card


def test_export_names_the_missing_file(tmp_path):
    exp = _complete_experiment(tmp_path)
    (exp.folder / "lm" / "lm.bin").unlink()
    done = subprocess.run([sys.executable, str(SCRIPT), str(exp.folder), "--out", str(tmp_path / "m")],
                          capture_output=True, text=True)
    assert done.returncode == 1 and "lm.bin: missing" in done.stderr
