"""``htr train``: outputs, skipped lines, NaN batches, exact resume after a stop."""
from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image

from data_prep.records import LineRecord, write_manifest
from pipeline import train as train_module
from pipeline.data import bucket_batches, epoch_batches
from pipeline.train import TrainConfig
from pipeline.metrics import cpu_time

# Each symbol is a distinct 8 px wide glyph in a 16 px high line: learnable in a few steps.
GLYPHS = {"a": (0, 16), "b": (0, 8), "c": (8, 16), "d": (4, 12)}
TINY_MODEL = ["--threads", "1", "--height", "16", "--mdlstm-hidden", "2,3,4", "--mdlstm-conv", "3,4", "--sub-height", "2",
              "--mdlstm-impl", "wavefront", "--crnn-conv", "4,6,8", "--crnn-pools", "3",
              "--crnn-lstm-hidden", "6", "--crnn-lstm-layers", "2"]


def draw_line(text: str) -> Image.Image:
    """White line, 16 px high, a black glyph per character with 8 px gaps (+ margins)."""
    width = 16 * len(text) + 8
    pixels = np.full((16, width), 235, dtype=np.uint8)
    for k, char in enumerate(text):
        top, bottom = GLYPHS[char]
        pixels[top:bottom, 8 + 16 * k: 16 + 16 * k] = 20
    return Image.fromarray(pixels)


def write_tiny_set(folder: Path, texts: list[str], short: str | None = None) -> Path:
    """Manifest of rendered lines; ``short`` adds a line far too narrow for its text."""
    folder.mkdir(parents=True, exist_ok=True)
    records = []
    for k, text in enumerate(texts):
        draw_line(text).save(folder / f"l{k}.png")
        records.append(LineRecord(id=f"l{k}", image=f"l{k}.png", text=text))
    if short:
        Image.fromarray(np.full((16, 8), 235, dtype=np.uint8)).save(folder / "short.png")
        records.append(LineRecord(id="short", image="short.png", text=short))
    write_manifest(folder / "manifest.jsonl", records)
    return folder / "manifest.jsonl"



TRAIN_TEXTS = ["ab", "ca", "bca", "abc", "cab", "ba", "acb", "cc"]
DEV_TEXTS = ["abc", "ba", "cab"]


@pytest.fixture
def tiny(tmp_path: Path) -> dict:
    return {"train": write_tiny_set(tmp_path / "train", TRAIN_TEXTS, short="abcabc"),
            "dev": write_tiny_set(tmp_path / "dev", DEV_TEXTS)}


def run_train(tiny: dict, out: Path, *extra: str) -> int:
    argv = ["--train", str(tiny["train"]), "--dev", str(tiny["dev"]), "--out", str(out),
            "--batch-size", "3", "--no-progress", *TINY_MODEL, *extra]
    return train_module.main(argv)


def test_training_writes_model_checkpoint_metrics_and_counts_short_lines(tiny, tmp_path, capsys):
    out = tmp_path / "model"
    assert run_train(tiny, out, "--max-epochs", "2") == 0
    err = capsys.readouterr().err
    assert "short.png" in err and "too short" in err
    for name in ("model.json", "weights.pt", "last.pt", "train_config.json", "metrics.json", "metrics.csv"):
        assert (out / name).is_file(), name
    metrics = json.loads((out / "metrics.json").read_text())
    assert [row["epoch"] for row in metrics] == [1, 2]
    assert all(0 <= row["dev_cer"] <= 100 * 3 and row["lines_per_s"] > 0 for row in metrics)
    with (out / "metrics.csv").open() as handle:
        assert [int(row["epoch"]) for row in csv.DictReader(handle)] == [1, 2]
    described = json.loads((out / "model.json").read_text())
    assert described["alphabet"] == ["", "a", "b", "c"] and described["blank"] == 0
    saved = TrainConfig.load(out / "train_config.json")
    assert saved.height == 16 and saved.batch_size == 3 and saved.train == tiny["train"]


def final_state(out: Path) -> dict:
    return torch.load(out / "last.pt", weights_only=False)


def strip_timing(metrics: list[dict]) -> list[dict]:
    return [{k: v for k, v in row.items() if k not in ("lines_per_s", "epoch_seconds", "minutes")} for row in metrics]


def straight_and_split(train, folder: Path, stop: int, epochs: int, flags: list[str]) -> tuple[dict, dict]:
    """last.pt of a run of ``epochs`` epochs, and of one stopped after ``stop`` and resumed to
    ``epochs``; ``train(out, *flags)`` starts a run."""
    assert train(folder / "straight", "--max-epochs", str(epochs), *flags) == 0
    assert train(folder / "split", "--max-epochs", str(stop), *flags) == 0
    assert train_module.main(["--resume", "--out", str(folder / "split"), "--max-epochs", str(epochs)]) == 0
    return final_state(folder / "straight"), final_state(folder / "split")


@pytest.mark.parametrize("arch", ["mdlstm", "crnn"])
def test_resume_continues_exactly(tiny, tmp_path, arch):
    """Stopping after epoch 1 and resuming gives the same weights, optimiser state and
    metrics as an uninterrupted run (dropout, augmentation and data order included, the
    curriculum's last epoch and the warm-up's last updates the first resumed)."""
    flags = ["--arch", arch, "--augment", "--augmentation", "full" if arch == "mdlstm" else "light",
             "--dropout-where", "all", "--scheduler", "plateau", "--curriculum-epochs", "2", "--lr-warmup", "5"]
    straight, split = straight_and_split(lambda out, *more: run_train(tiny, out, *more), tmp_path, 1, 3, flags)
    for name, tensor in straight["model"].items():
        assert torch.equal(tensor, split["model"][name]), name
    assert strip_timing(straight["progress"]["metrics"]) == strip_timing(split["progress"]["metrics"])
    first = straight["optimizer"]["state"][0]
    assert all(torch.equal(v, split["optimizer"]["state"][0][k]) for k, v in first.items() if torch.is_tensor(v))


def test_resume_refuses_changed_model_flags(tiny, tmp_path, capsys):
    out = tmp_path / "model"
    assert run_train(tiny, out, "--max-epochs", "1") == 0
    assert train_module.main(["--resume", "--out", str(out), "--mdlstm-hidden", "2,3,5"]) == 1
    assert "differ" in capsys.readouterr().err


def test_nan_loss_batches_are_skipped_and_counted(tiny, tmp_path, monkeypatch):
    real_forward = torch.nn.CTCLoss.forward
    calls = {"n": 0}

    def sometimes_nan(self, *args):
        calls["n"] += 1
        loss = real_forward(self, *args)
        return loss * float("nan") if calls["n"] == 1 else loss

    monkeypatch.setattr(torch.nn.CTCLoss, "forward", sometimes_nan)
    out = tmp_path / "model"
    assert run_train(tiny, out, "--max-epochs", "1", "--arch", "crnn") == 0
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics[0]["bad_batches"] == 1 and np.isfinite(metrics[0]["train_loss"])
    weights = torch.load(out / "weights.pt", weights_only=True)
    assert all(torch.isfinite(t).all() for t in weights.values() if t.is_floating_point())


def test_training_learns_the_tiny_set(tiny, tmp_path):
    out = tmp_path / "model"
    assert run_train(tiny, out, "--max-epochs", "40", "--arch", "crnn", "--dropout-where", "none",
                     "--lr", "0.03", "--patience", "0") == 0
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics[-1]["train_loss"] < 0.5 * metrics[0]["train_loss"]
    assert min(row["dev_cer"] for row in metrics) < 50


def test_missing_manifest_is_a_clear_error(tmp_path, capsys):
    code = train_module.main(["--train", str(tmp_path / "nope.jsonl"), "--out", str(tmp_path / "m")])
    assert code == 1 and "nope.jsonl" in capsys.readouterr().err


def test_plateau_schedule_waits_for_the_end_of_the_all_blank_phase(tiny, tmp_path, monkeypatch):
    """A dev CER stuck at 100% (CTC's early all-blank phase) is not a plateau: the learning
    rate is only cut once the model has produced something and then stalls."""
    dev_cers = iter([100.0, 100.0, 50.0, 60.0])
    monkeypatch.setattr(train_module, "evaluate", lambda *args, **kwargs: next(dev_cers))
    out = tmp_path / "model"
    assert run_train(tiny, out, "--max-epochs", "4", "--scheduler", "plateau", "--lr-patience", "0",
                     "--lr", "0.001", "--patience", "0") == 0
    rates = [row["lr"] for row in json.loads((out / "metrics.json").read_text())]
    assert rates == [0.001, 0.001, 0.001, 0.0005]


def test_resume_accepts_a_checkpoint_from_before_a_new_layout_flag(tiny, tmp_path):
    """Checkpoints written before a model flag existed resume with that flag's default."""
    out = tmp_path / "model"
    assert run_train(tiny, out, "--max-epochs", "1") == 0
    state = torch.load(out / "last.pt", weights_only=False)
    del state["model_config"]["mdlstm_init"]
    torch.save(state, out / "last.pt")
    assert train_module.main(["--resume", "--out", str(out), "--max-epochs", "2"]) == 0
    assert len(json.loads((out / "metrics.json").read_text())) == 2


def test_resume_without_a_checkpoint_continues_from_the_model_folder(tiny, tmp_path, capsys):
    """A model folder as committed to git (no last.pt) resumes from its best weights, keeping
    the epoch count and metrics; only the optimiser state is new."""
    out = tmp_path / "model"
    assert run_train(tiny, out, "--max-epochs", "2", "--lr", "0.002") == 0
    (out / "last.pt").unlink()
    before = json.loads((out / "metrics.json").read_text())
    capsys.readouterr()
    assert train_module.main(["--resume", "--out", str(out), "--max-epochs", "3"]) == 0
    assert "continuing from the best weights" in capsys.readouterr().err
    after = json.loads((out / "metrics.json").read_text())
    assert after[:2] == before and [row["epoch"] for row in after] == [1, 2, 3]
    assert after[2]["lr"] == 0.002 and (out / "last.pt").is_file()


def test_each_epoch_records_the_threads_it_ran_on(tiny, tmp_path):
    """A training resumed with other --threads costs its epochs at the threads each ran on."""
    out = tmp_path / "model"
    assert run_train(tiny, out, "--max-epochs", "1") == 0  # TINY_MODEL: --threads 1
    assert train_module.main(["--resume", "--out", str(out), "--max-epochs", "2", "--threads", "2"]) == 0
    metrics = json.loads((out / "metrics.json").read_text())
    assert [row["cores"] for row in metrics] == [1, 2]
    first, second = (row["epoch_seconds"] for row in metrics)
    assert cpu_time(metrics, 1, unit_seconds=1) == pytest.approx([first, first + 2 * second])


def test_a_run_saved_before_the_mask_flag_resumes_without_masking(tiny, tmp_path):
    """A checkpoint, model folder and train_config.json written before --mdlstm-mask-padding
    existed resume as they trained (no masking): no layout mismatch, the same network."""
    out = tmp_path / "model"
    assert run_train(tiny, out, "--max-epochs", "1") == 0
    config = json.loads((out / "train_config.json").read_text())
    del config["mdlstm_mask_padding"]
    (out / "train_config.json").write_text(json.dumps(config))
    checkpoint = torch.load(out / "last.pt", weights_only=False)
    del checkpoint["model_config"]["mdlstm_mask_padding"]
    torch.save(checkpoint, out / "last.pt")
    assert train_module.main(["--resume", "--out", str(out), "--max-epochs", "2"]) == 0
    assert final_state(out)["model_config"]["mdlstm_mask_padding"] is False
    assert json.loads((out / "train_config.json").read_text())["mdlstm_mask_padding"] is False


def test_resume_with_nothing_to_resume_names_the_folder(tmp_path, capsys):
    (tmp_path / "empty").mkdir()
    TrainConfig(train=tmp_path / "t.jsonl", out=tmp_path / "empty").save(tmp_path / "empty" / "train_config.json")
    assert train_module.main(["--resume", "--out", str(tmp_path / "empty")]) == 1
    assert "no checkpoint to resume from" in capsys.readouterr().err


def test_fine_tuning_starts_afresh_from_a_model_folder_and_grows_its_alphabet(tiny, tmp_path, capsys):
    from pipeline.finetune import initial_model
    from pipeline.model_folder import load_model_folder

    base = tmp_path / "base"
    assert run_train(tiny, base, "--max-epochs", "3") == 0
    new_train = write_tiny_set(tmp_path / "new_train", ["dab", "ad", "bd", "cd", "da", "abd"])
    new_dev = write_tiny_set(tmp_path / "new_dev", ["ad", "db"])
    start = initial_model(base, ["dab"], seed=1)
    base_model, base_config, base_alphabet = load_model_folder(base)
    assert start.alphabet == base_alphabet + ["d"] and start.added == ["d"]
    for name, tensor in base_model.state_dict().items():  # every old weight is the start
        assert torch.equal(start.state[name][: tensor.shape[0]], tensor), name
    new_row = start.state["output.weight"][-1]
    assert new_row.abs().max() <= 0.01 and start.state["output.bias"][-1] == base_model.output.bias[1:].min()

    out = tmp_path / "tuned"
    capsys.readouterr()
    argv = ["--train", str(new_train), "--dev", str(new_dev), "--out", str(out), "--init", str(base),
            "--batch-size", "2", "--no-progress", "--threads", "1", "--max-epochs", "2", "--mdlstm-impl", "wavefront"]
    assert train_module.main(argv) == 0  # no layout flags: the base model's layout is taken
    assert "1 new: 'd'" in capsys.readouterr().err
    model, config, alphabet = load_model_folder(out)
    assert alphabet == base_alphabet + ["d"] and config.mdlstm_hidden == base_config.mdlstm_hidden
    metrics = json.loads((out / "metrics.json").read_text())
    assert [row["epoch"] for row in metrics] == [1, 2]  # epochs and best CER start afresh
    assert train_module.main(["--resume", "--out", str(out), "--max-epochs", "3"]) == 0  # and it resumes
    assert len(json.loads((out / "metrics.json").read_text())) == 3


def test_fine_tuning_keeps_the_dropout_flags_given_and_refuses_another_layout(tiny, tmp_path, capsys):
    from pipeline.model_folder import load_model_folder
    base = tmp_path / "base"
    assert run_train(tiny, base, "--max-epochs", "1", "--dropout-where", "all") == 0
    common = ["--train", str(tiny["train"]), "--dev", str(tiny["dev"]), "--init", str(base), "--batch-size", "3",
              "--no-progress", "--threads", "1", "--max-epochs", "1"]
    inherited, chosen = tmp_path / "inherited", tmp_path / "chosen"
    assert train_module.main([*common, "--out", str(inherited)]) == 0
    assert train_module.main([*common, "--out", str(chosen), "--dropout-where", "none", "--dropout", "0.2"]) == 0
    assert load_model_folder(inherited)[1].dropout_where == "all"  # no flag: the base model's dropout
    config = load_model_folder(chosen)[1]
    assert (config.dropout_where, config.dropout) == ("none", 0.2)
    assert config.mdlstm_hidden == load_model_folder(base)[1].mdlstm_hidden
    per_layer = tmp_path / "per-layer"
    assert train_module.main([*common, "--out", str(per_layer), "--dropout-layers", "0,0.1,0.3"]) == 0
    assert load_model_folder(per_layer)[1].dropout_layers == "0,0.1,0.3"
    # dropout flags given on a base with a per-layer list: the flags given apply, not the inherited list
    common_from_list = [*common[:common.index("--init") + 1], str(per_layer), *common[common.index("--init") + 2:]]
    assert train_module.main([*common_from_list, "--out", str(tmp_path / "flags"), "--dropout-where", "top"]) == 0
    config = load_model_folder(tmp_path / "flags")[1]
    assert (config.dropout_layers, config.dropout_where) == ("", "top")
    assert train_module.main([*common_from_list, "--out", str(tmp_path / "kept")]) == 0
    assert load_model_folder(tmp_path / "kept")[1].dropout_layers == "0,0.1,0.3"
    capsys.readouterr()
    hidden = load_model_folder(base)[1].mdlstm_hidden
    assert train_module.main([*common, "--out", str(tmp_path / "wider"), "--mdlstm-hidden", "2,3,9"]) == 1
    err = capsys.readouterr().err
    assert f"--mdlstm-hidden 2,3,9: the model being fine-tuned (--init) has {hidden}" in err
    assert "Traceback" not in err and not (tmp_path / "wider" / "model.json").exists()
    # the base model's own value, given again, is no conflict
    assert train_module.main([*common, "--out", str(tmp_path / "same"), "--mdlstm-hidden", hidden]) == 0


def test_fine_tuning_inherits_the_padding_mask_or_takes_the_flag_given(tiny, tmp_path):
    from pipeline.model_folder import load_model_folder
    base = tmp_path / "base"
    assert run_train(tiny, base, "--max-epochs", "1", "--no-mdlstm-mask-padding") == 0
    common = ["--train", str(tiny["train"]), "--dev", str(tiny["dev"]), "--init", str(base), "--batch-size", "3",
              "--no-progress", "--threads", "1", "--max-epochs", "1"]
    assert train_module.main([*common, "--out", str(tmp_path / "kept")]) == 0
    assert train_module.main([*common, "--out", str(tmp_path / "masked"), "--mdlstm-mask-padding"]) == 0
    assert load_model_folder(tmp_path / "kept")[1].mdlstm_mask_padding is False
    assert load_model_folder(tmp_path / "masked")[1].mdlstm_mask_padding is True


def test_a_dropout_list_of_the_wrong_length_is_one_line(tiny, tmp_path, capsys):
    assert run_train(tiny, tmp_path / "out", "--dropout-layers", "0.5") == 1
    err = capsys.readouterr().err
    assert "one probability per LSTM layer" in err and "Traceback" not in err


def test_fine_tuning_from_a_missing_folder_is_one_line(tiny, tmp_path, capsys):
    assert run_train(tiny, tmp_path / "out", "--init", str(tmp_path / "nowhere")) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith("htr train: ") and "model.json" in err[-1]


@pytest.mark.parametrize("recipe", ["light", "full"])
def test_augmentation_depends_on_seed_epoch_and_line_not_on_load_order(tiny, recipe):
    from common.skips import SkipLog
    from pipeline.data import LineDataset, build_alphabet, load_lines

    alphabet = build_alphabet(TRAIN_TEXTS)
    lines = load_lines(tiny["train"], alphabet, 16, 512, None, SkipLog(stream=None))
    data = LineDataset(lines, 16, 512, augment=recipe)
    data.set_epoch(7, 1)
    forward = [data[i][0] for i in range(len(lines))]
    backward = [data[i][0] for i in reversed(range(len(lines)))][::-1]
    assert all(torch.equal(a, b) for a, b in zip(forward, backward))
    data.set_epoch(7, 2)
    other = [data[i][0] for i in range(len(lines))]
    assert any(a.shape != b.shape or not torch.equal(a, b) for a, b in zip(forward, other))


@pytest.mark.parametrize("minutes, elapsed, epochs, expected", [
    (0, 1e6, 5, False),      # no budget
    (1, 1e6, 0, False),      # the first epoch always runs
    (1, 25, 1, False),       # 25 s + 25 s fits in 60 s
    (1, 40, 2, False),       # 40 + 20 = 60: ends exactly at the budget
    (1, 45, 2, True),        # 45 + 22.5 would end past it
    (3, 171, 6, True),       # 6 epochs of 28.5 s: a 7th would end at 3.33 minutes (the 2026-12-02 fine-tuning did)
])
def test_max_minutes_is_a_ceiling_at_the_mean_epoch_time(minutes, elapsed, epochs, expected):
    assert train_module.out_of_time(minutes, elapsed, epochs) is expected


def test_cosine_schedule_falls_to_zero_over_the_epochs_and_resumes(tiny, tmp_path):
    """--scheduler cosine: the rate after each epoch (the metrics' lr) follows a half cosine
    from --lr to 0 at --max-epochs, whatever the dev CER, and a split run follows it too."""
    flags = ["--scheduler", "cosine", "--lr", "0.004", "--patience", "0"]
    assert run_train(tiny, tmp_path / "straight", "--max-epochs", "4", *flags) == 0
    rates = [row["lr"] for row in json.loads((tmp_path / "straight" / "metrics.json").read_text())]
    assert rates == pytest.approx([0.004 * (1 + np.cos(np.pi * k / 4)) / 2 for k in (1, 2, 3, 4)], abs=1e-12)
    assert run_train(tiny, tmp_path / "split", "--max-epochs", "4", "--max-minutes", "1e-9", *flags) == 0
    assert train_module.main(["--resume", "--out", str(tmp_path / "split"), "--max-minutes", "0"]) == 0
    split = json.loads((tmp_path / "split" / "metrics.json").read_text())
    assert [row["lr"] for row in split] == pytest.approx(rates, abs=1e-12)


def test_resume_refuses_another_scheduler_but_a_warm_start_takes_it(tiny, tmp_path, capsys):
    """last.pt holds the schedule's state: another --scheduler on an exact resume is one
    message naming the file; from a model folder without last.pt a new schedule just starts."""
    out = tmp_path / "model"
    assert run_train(tiny, out, "--max-epochs", "1", "--scheduler", "plateau") == 0
    assert train_module.main(["--resume", "--out", str(out), "--max-epochs", "2", "--scheduler", "cosine"]) == 1
    err = capsys.readouterr().err
    assert "--scheduler cosine" in err and "last.pt" in err and "plateau" in err and "Traceback" not in err
    assert len(json.loads((out / "metrics.json").read_text())) == 1
    (out / "last.pt").unlink()
    assert train_module.main(["--resume", "--out", str(out), "--max-epochs", "2", "--scheduler", "cosine"]) == 0
    assert len(json.loads((out / "metrics.json").read_text())) == 2


def test_a_warm_start_anneals_from_its_last_rate_over_the_epochs_left(tiny, tmp_path):
    """A model trained at a constant rate, warm-started with --scheduler cosine: the rate
    falls from the rate it stopped at to 0 over the epochs --max-epochs still allows."""
    out = tmp_path / "model"
    assert run_train(tiny, out, "--max-epochs", "1", "--lr", "0.003", "--patience", "0") == 0
    (out / "last.pt").unlink()
    assert train_module.main(["--resume", "--out", str(out), "--max-epochs", "4", "--scheduler", "cosine"]) == 0
    rates = [row["lr"] for row in json.loads((out / "metrics.json").read_text())]
    assert rates == pytest.approx([0.003] + [0.003 * (1 + np.cos(np.pi * k / 3)) / 2 for k in (1, 2, 3)], abs=1e-12)


@settings(max_examples=40, deadline=None)
@given(widths=st.lists(st.integers(1, 3000), min_size=1, max_size=60), batch_size=st.integers(1, 8),
       curriculum=st.integers(0, 3), epoch=st.integers(1, 5))
def test_curriculum_epochs_take_the_lines_shortest_first_then_width_buckets(widths, batch_size, curriculum, epoch):
    batches = epoch_batches(widths, batch_size, seed=1, epoch=epoch, curriculum_epochs=curriculum)
    order = [i for batch in batches for i in batch]
    assert sorted(order) == list(range(len(widths))) and all(len(batch) <= batch_size for batch in batches)
    if epoch <= curriculum:
        assert [widths[i] for i in order] == sorted(widths)
    else:
        assert batches == bucket_batches(widths, batch_size, 1, epoch)


def test_ctc_reduction_line_weighs_lines_not_characters_and_reports_the_loss_per_character(tiny, tmp_path):
    def epoch_one(reduction: str, lr: str) -> tuple[float, dict]:
        out = tmp_path / f"{reduction}-{lr}"
        assert run_train(tiny, out, "--ctc-reduction", reduction, "--lr", lr, "--max-epochs", "1") == 0
        loss = json.loads((out / "metrics.json").read_text())[0]["train_loss"]
        return loss, torch.load(out / "last.pt", weights_only=False)["model"]

    still_char, _ = epoch_one("char", "0")
    still_line, _ = epoch_one("line", "0")
    assert still_line == pytest.approx(still_char, rel=1e-5)  # same weights all epoch: the same loss per character
    _, char_weights = epoch_one("char", "0.01")
    _, line_weights = epoch_one("line", "0.01")
    assert any(not torch.equal(char_weights[name], line_weights[name]) for name in char_weights)


def test_each_epoch_logs_the_median_gradient_norm_and_the_share_of_clipped_updates(tiny, tmp_path):
    def epoch_one(name: str, *flags: str) -> dict:
        out = tmp_path / name
        assert run_train(tiny, out, "--lr", "0", "--max-epochs", "1", *flags) == 0  # lr 0: the same weights throughout
        return json.loads((out / "metrics.json").read_text())[0]

    tight, loose, off = epoch_one("tight", "--clip", "1e-9"), epoch_one("loose", "--clip", "1e9"), epoch_one("off", "--clip", "0")
    assert (tight["clipped"], loose["clipped"], off["clipped"]) == (1.0, 0.0, 0.0)
    assert tight["grad_norm"] == loose["grad_norm"] == off["grad_norm"] > 0  # the norm before clipping
    # a line's whole loss is its per-character loss times its length: a larger gradient
    assert epoch_one("line", "--ctc-reduction", "line")["grad_norm"] > 2 * off["grad_norm"]
