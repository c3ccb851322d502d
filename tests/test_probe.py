"""scripts/probe.py: the probe protocol's command, per-probe files, summary table and plot."""
from __future__ import annotations

import json
import os
import signal

import pytest

from script_module import load_script



@pytest.fixture
def probe(tmp_path, monkeypatch):
    module = load_script("probe")
    monkeypatch.setattr(module, "WORK", tmp_path / "work")
    monkeypatch.setattr(module, "REPORTS", tmp_path / "reports")
    monkeypatch.setattr(module, "KEPT", tmp_path / "models" / "copiste-next")
    return module


def fake_run(probe, name: str, cers: list[float], seconds: float) -> None:
    folder = probe.WORK / name
    folder.mkdir(parents=True)
    rows = [{"epoch": k + 1, "dev_cer": cer, "train_loss": 3.0 - k / 10, "lines_per_s": 30.0,
             "epoch_seconds": seconds} for k, cer in enumerate(cers)]
    (folder / "metrics.json").write_text(json.dumps(rows))


def empty_manifests(probe, tmp_path, monkeypatch) -> None:
    """Point the probe at empty train and dev manifests (it checks that they exist)."""
    for manifest in ("train", "dev"):
        path = tmp_path / manifest / "manifest.jsonl"
        path.parent.mkdir()
        path.write_text("")
    monkeypatch.setattr(probe, "TRAIN", tmp_path / "train" / "manifest.jsonl")
    monkeypatch.setattr(probe, "DEV", tmp_path / "dev" / "manifest.jsonl")


def test_a_new_probe_trains_from_the_manifests_and_a_started_one_resumes(probe):
    first = probe.train_command("p", 10, 1, ["--lr", "0.003"])
    assert "--train" in first and first[-2:] == ["--lr", "0.003"] and "--resume" not in first
    (probe.WORK / "p").mkdir(parents=True)
    (probe.WORK / "p" / "last.pt").write_bytes(b"")
    again = probe.train_command("p", 12, 1, ["--lr", "0.003"])
    assert again[-1] == "--resume" and "--lr" not in again and again[again.index("--max-epochs") + 1] == "12"


def test_probe_files_summary_and_plot(probe):
    fake_run(probe, "base", [100, 100, 99, 90, 80, 70, 65, 60, 58, 55], seconds=150)
    fake_run(probe, "fast", [100, 85, 70, 60, 50, 45], seconds=60)
    probe.write_probe("base", 1, [], ["htr", "train"])
    probe.write_probe("fast", 2, ["--lr", "0.003"], ["htr", "train"])
    rows = (probe.REPORTS / "fast.csv").read_text().splitlines()
    assert rows[0] == "epoch,dev_cer,train_loss,lines_per_s,cpu_minutes"
    assert rows[-1].endswith(",12.0")  # 6 epochs x 60 s x 2 threads
    assert json.loads((probe.REPORTS / "fast.json").read_text())["flags"] == ["--lr", "0.003"]
    probe.write_summary()
    table = (probe.REPORTS / "summary.md").read_text()
    assert "| base | (defaults) | 80.0 | 55.0 |  | 10 | 55.0 | 25 |" in table
    assert "| fast | `--lr 0.003` | 50.0 |  |  | 6 | 45.0 | 12 |" in table
    assert (probe.REPORTS / "probes.png").stat().st_size > 1000


def test_the_plot_draws_a_row_per_family_of_probe_names(probe):
    for name in ("eighth-b", "batch-4", "swa-x", "eighth-a", "crnn-y"):
        fake_run(probe, name, [100, 90, 80], seconds=60)
        probe.write_probe(name, 1, [], ["htr", "train"])
    families = probe.by_family(probe.read_probes())
    assert list(families) == [probe.OTHER_FAMILY, "MDLSTM, an eighth of the training lines",
                              "CNN + BLSTM (and synthetic pretraining)", "averaging and snapshot stages"]
    assert list(families["MDLSTM, an eighth of the training lines"]) == ["eighth-a", "eighth-b"]
    assert list(families[probe.OTHER_FAMILY]) == ["batch-4"]
    probe.write_summary()
    assert (probe.REPORTS / "probes.png").stat().st_size > 1000


def test_compare_plots_named_probes_and_names_a_missing_one(probe, tmp_path, capsys):
    fake_run(probe, "none", [100, 80, 60, 65, 70], seconds=60)
    fake_run(probe, "all", [100, 85, 70, 62, 58], seconds=60)
    for name in ("none", "all"):
        probe.write_probe(name, 1, [], ["htr", "train"])
    out = tmp_path / "cmp.png"
    assert probe.main(["--compare", "none", "all", "--plot", str(out)]) == 0
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert probe.main(["--compare", "none", "nope", "--plot", str(tmp_path / "x.png")]) == 1
    err = capsys.readouterr().err
    assert "no record of nope" in err and "Traceback" not in err and not (tmp_path / "x.png").exists()
    blocker = tmp_path / "file"
    blocker.write_text("")
    assert probe.main(["--compare", "none", "--plot", str(blocker / "x.png")]) == 1  # a file where a folder should be
    assert "cannot write" in capsys.readouterr().err


def test_a_summary_waits_for_one_being_written(probe):
    """Two probes recording at once: the second rebuilds the table after the first has
    written it, from every probe's files, instead of racing it."""
    import fcntl
    import threading
    fake_run(probe, "base", [100, 90], seconds=60)
    probe.write_probe("base", 1, [], ["htr", "train"])
    probe.WORK.mkdir(parents=True, exist_ok=True)
    with open(probe.WORK / ".summary.lock", "w") as held:
        fcntl.flock(held, fcntl.LOCK_EX)
        writer = threading.Thread(target=probe.write_summary)
        writer.start()
        writer.join(timeout=0.5)
        assert writer.is_alive() and not (probe.REPORTS / "summary.md").exists()
    writer.join(timeout=60)
    assert "| base |" in (probe.REPORTS / "summary.md").read_text()


def test_a_training_run_elsewhere_is_recorded_as_a_probe_without_training(probe, tmp_path):
    run = tmp_path / "experiment" / "models" / "dropout-all"
    run.mkdir(parents=True)
    rows = [{"epoch": k + 1, "dev_cer": cer, "train_loss": 3.0, "lines_per_s": 30.0, "epoch_seconds": 120}
            for k, cer in enumerate([100, 90, 70])]
    (run / "metrics.json").write_text(json.dumps(rows))
    assert probe.main(["recipe", "--record", str(run), "--", "--batch-size", "4"]) == 0
    described = json.loads((probe.REPORTS / "recipe.json").read_text())
    assert described["flags"] == ["--batch-size", "4"] and "--record" in described["command"]
    assert (probe.REPORTS / "recipe.csv").read_text().splitlines()[-1] == "3,70,3.0,30.0,6.0"
    assert not (probe.WORK / "recipe").exists()
    assert probe.main(["missing", "--record", str(tmp_path / "nowhere")]) == 1


def test_a_stopped_probe_records_what_it_trained_and_says_how_to_continue(probe, tmp_path, monkeypatch, capsys):
    empty_manifests(probe, tmp_path, monkeypatch)

    def interrupted(command):
        fake_run(probe, "p", [100, 90], seconds=60)  # two epochs done when the stop comes
        os.kill(os.getpid(), signal.SIGTERM)  # `kill PID` of a probe running in the background

    monkeypatch.setattr(probe.subprocess, "call", interrupted)
    assert probe.main(["p", "--epochs", "5", "--", "--lr", "0.003"]) == 130
    assert signal.getsignal(signal.SIGTERM) == signal.SIG_DFL  # the handlers are given back
    assert "same command continues" in capsys.readouterr().err
    assert (probe.REPORTS / "p.csv").read_text().splitlines()[-1].startswith("2,90")
    assert json.loads((probe.REPORTS / "p.json").read_text())["flags"] == ["--lr", "0.003"]


def test_a_recorded_probe_whose_checkpoint_is_gone_is_not_silently_started_over(probe, tmp_path, monkeypatch, capsys):
    """A fresh checkout keeps reports/probes but not work/probes: rerunning a probe's command
    there would train from epoch 1 and overwrite the curve it recorded."""
    empty_manifests(probe, tmp_path, monkeypatch)
    fake_run(probe, "p", [100, 90, 70], seconds=60)
    probe.write_probe("p", 1, ["--lr", "0.003"], ["htr", "train"])
    recorded = (probe.REPORTS / "p.csv").read_text()
    (probe.WORK / "p" / "metrics.json").unlink()  # the new checkout has no work/probes/p
    (probe.WORK / "p").rmdir()
    trained = []
    monkeypatch.setattr(probe.subprocess, "call", lambda command: trained.append(command) or 0)

    assert probe.main(["p", "--epochs", "5", "--", "--lr", "0.003"]) == 1
    message = capsys.readouterr().err
    assert "3 epochs are recorded" in message and "last.pt is missing" in message and "--restart" in message
    assert not trained and (probe.REPORTS / "p.csv").read_text() == recorded
    assert json.loads((probe.REPORTS / "p.json").read_text())["flags"] == ["--lr", "0.003"]

    assert probe.main(["p", "--epochs", "5", "--restart", "--", "--lr", "0.003"]) == 0
    assert len(trained) == 1 and "--resume" not in trained[0]


def test_the_csv_carries_the_gradient_columns_only_where_every_epoch_logged_them(probe):
    fake_run(probe, "logged", [100, 90], seconds=60)
    fake_run(probe, "older", [100, 90], seconds=60)
    for name, norms in (("logged", [12.5, 3.25]), ("older", [None, 3.25])):  # "older": resumed by a newer htr train
        path = probe.WORK / name / "metrics.json"
        rows = json.loads(path.read_text())
        for row, norm in zip(rows, norms):
            if norm is not None:
                row.update(grad_norm=norm, clipped=0.5)
        path.write_text(json.dumps(rows))
        probe.write_probe(name, 1, [], ["htr", "train"])
    logged = (probe.REPORTS / "logged.csv").read_text().splitlines()
    assert logged[0].endswith(",grad_norm,clipped") and logged[1].endswith(",12.5,0.5")
    assert (probe.REPORTS / "older.csv").read_text().splitlines()[0] == "epoch,dev_cer,train_loss,lines_per_s,cpu_minutes"
    probe.write_summary()  # the summary reads both kinds of CSV


def test_a_kept_probe_continues_in_a_fresh_checkout_from_its_best_weights(probe):
    with pytest.raises(FileNotFoundError, match="nothing to keep"):
        probe.keep("p")
    fake_run(probe, "p", [100, 90, 80], seconds=60)
    for name in ("model.json", "weights.pt", "train_config.json", "last.pt"):
        (probe.WORK / "p" / name).write_text(name)
    probe.write_probe("p", 1, ["--lr", "0.003"], ["htr", "train"])
    assert "3 epochs" in probe.keep("p")
    assert sorted(f.name for f in (probe.KEPT / "p").iterdir()) == sorted(probe.KEPT_FILES)  # no checkpoint
    import shutil
    shutil.rmtree(probe.WORK)  # a fresh checkout: work/ is gone, the record and the kept folder are not
    assert "--from-kept continues" in probe.lost_checkpoint_message("p")
    assert "continuing from" in probe.from_kept("p")
    assert probe.lost_checkpoint_message("p") is None
    command = probe.train_command("p", 80, 1, ["--lr", "0.003"])
    assert command[-1] == "--resume" and "--lr" not in command
    (probe.WORK / "p" / "last.pt").write_text("")
    with pytest.raises(FileExistsError):
        probe.from_kept("p")  # a checkpoint is there: nothing to put back
