"""Faults outside the layout files (issue 16, items 2, 3 and 6).

* One exit-code rule: 0 when something useful was produced, 1 with a one-line summary
  when every input was skipped; one message per skip, never nested.
* Model, cache and manifest loading errors are one line naming the file and the fix, and
  nothing expensive (model, language model) is loaded for an empty input.
* One writer per output: a second run on the same ``--out`` is refused, naming the
  first; a killed run leaves no stale lock.
"""
from __future__ import annotations

import io
import json
import re
import signal
import subprocess
import sys
import zipfile

import numpy as np
import pytest
import torch

from common.outlock import claim_output, lock_path
from data_prep.records import read_manifest
from lm.folder import LmDir
from pipeline import recognize as recognize_module, segment
from pipeline.decoders import flashlight
from pipeline.cli import main
from pipeline.logits import save_logits
from pipeline.model import ModelConfig, build_model
from pipeline.model_folder import save_model_folder
from test_decode import lm_dir, one_hot  # noqa: F401 - lm_dir is a fixture
from test_decode import ALPHABET as DECODE_ALPHABET
from test_recognize import ALPHABET, TINY, model_folder  # noqa: F401 - model_folder is a fixture
from test_train import write_tiny_set


def _err_lines(capsys) -> list[str]:
    return [line for line in capsys.readouterr().err.splitlines() if line.strip()]


# ---------------------------------------------------------------- exit codes, one message per skip

def test_segment_exits_1_when_every_input_was_unreadable_with_one_message_each(tmp_path, capsys):
    (tmp_path / "doc.pdf").write_bytes(b"%PDF-1.4 not an image")
    (tmp_path / "empty.png").write_bytes(b"")
    rc = segment.main([str(tmp_path / "doc.pdf"), str(tmp_path / "empty.png"), str(tmp_path / "gone.png"),
                       "--out", str(tmp_path / "seg")])
    err = capsys.readouterr().err.replace("\r", "\n")
    assert rc == 1
    skipped = re.findall(r"(?<!files )skipped: .*", err)
    assert len(skipped) == 3
    for name in ("doc.pdf", "empty.png"):
        [line] = [s for s in skipped if name in s]
        assert line.count(name) == 2 and line.count("unreadable image") == 1, line  # not nested
    assert "no page could be segmented" in err and "Traceback" not in err
    assert list((tmp_path / "seg").glob("*.xml")) == []


def test_recognize_refuses_an_empty_manifest_without_loading_the_model(tmp_path, monkeypatch, capsys):
    manifest = tmp_path / "empty.jsonl"
    manifest.write_text("\n")
    monkeypatch.setattr(recognize_module, "load_model_folder", lambda *a, **k: pytest.fail("model loaded"))
    out = tmp_path / "x.npz"
    rc = recognize_module.main(["--model", str(tmp_path), "--manifest", str(manifest), "--out", str(out), "--quiet"])
    assert rc == 1 and not out.exists()
    [line] = _err_lines(capsys)
    assert "empty.jsonl: no line in the manifest" in line


def test_recognize_exits_1_when_no_line_image_could_be_read(tmp_path, model_folder, capsys):
    manifest = write_tiny_set(tmp_path / "lines", ["ab", "ca"])
    for image in (tmp_path / "lines").glob("*.png"):
        image.unlink()
    out = tmp_path / "x.npz"
    rc = recognize_module.main(["--model", str(model_folder), "--manifest", str(manifest), "--out", str(out), "--quiet"])
    lines = _err_lines(capsys)
    assert rc == 1 and not out.exists()
    assert sum("skipped:" in line for line in lines) == 2 and "none of its 2 lines could be read" in lines[-1]


def test_decode_refuses_an_empty_cache_without_loading_the_lm(tmp_path, monkeypatch, capsys):
    logits = tmp_path / "empty.npz"
    save_logits(logits, [], [], DECODE_ALPHABET)
    monkeypatch.setattr(LmDir, "load", lambda *a: pytest.fail("language model loaded"))
    rc = main(["decode", "--logits", str(logits), "--decoder", "lexicon", "--lm", str(tmp_path),
               "--out", str(tmp_path / "hyp.tsv")])
    assert rc == 1 and not (tmp_path / "hyp.tsv").exists()
    [line] = _err_lines(capsys)
    assert "empty.npz: the cache holds no line" in line


def test_decode_refuses_an_lm_built_from_other_text_before_loading_it(tmp_path, lm_dir, monkeypatch, capsys):
    logits = tmp_path / "greek.npz"
    greek = ["", " ", "α", "β", "γ"]
    save_logits(logits, ["a"], [np.log(np.full((6, 5), 0.2, np.float32))], greek)
    monkeypatch.setattr(flashlight, "TokenLM", lambda *a, **k: pytest.fail("n-gram loaded"))
    for decoder in ("lexicon", "beam-lm"):
        rc = main(["decode", "--logits", str(logits), "--decoder", decoder, "--lm", str(lm_dir),
                   "--out", str(tmp_path / "hyp.tsv")])
        [line] = _err_lines(capsys)
        assert rc == 1 and str(lm_dir) in line and "0% of its training words" in line and "htr lm" in line


def test_evaluate_refuses_an_empty_reference_instead_of_scoring_0_percent(tmp_path, capsys):
    (tmp_path / "ref.tsv").write_text("")
    (tmp_path / "hyp.tsv").write_text("a\tsome text\n")
    rc = main(["evaluate", "--ref", str(tmp_path / "ref.tsv"), "--hyp", str(tmp_path / "hyp.tsv")])
    captured = capsys.readouterr()
    assert rc == 1 and "CER" not in captured.out
    assert "ref.tsv holds no reference line" in captured.err


def test_an_lm_of_the_same_text_is_accepted(tmp_path, lm_dir):
    logits = tmp_path / "dev.npz"
    save_logits(logits, ["a"], [one_hot("the cat")], DECODE_ALPHABET)
    assert main(["decode", "--logits", str(logits), "--decoder", "lexicon", "--lm", str(lm_dir),
                 "--out", str(tmp_path / "hyp.tsv")]) == 0


# ---------------------------------------------------------------- model and manifest loading

def _zip_without_data() -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("archive/version", "3\n")
    return buffer.getvalue()


def _other_model_weights() -> bytes:
    config = ModelConfig(arch="crnn", **TINY)
    buffer = io.BytesIO()
    torch.save(build_model(config, 7).state_dict(), buffer)
    return buffer.getvalue()


@pytest.mark.filterwarnings("ignore:Detected pickle protocol:UserWarning")
@pytest.mark.parametrize("content, says", [
    (b"\x00\x01garbage" * 50, "corrupt or not a weights file"),
    (b"", "corrupt or not a weights file"),
    (_zip_without_data(), "corrupt or not a weights file"),
    ("pickle", "corrupt or not a weights file"),  # a pickled object, not a state dict: weights_only refuses it
    ("truncate", "corrupt or not a weights file"),
    ("other", "the weights do not fit model.json"),
])
def test_corrupt_weights_are_one_line_naming_the_file_and_the_fix(tmp_path, model_folder, capsys, content, says):
    weights = model_folder / "weights.pt"
    if content == "pickle":
        import pickle
        content = pickle.dumps(subprocess.Popen)
    elif content == "truncate":
        content = weights.read_bytes()[:300]
    elif content == "other":
        content = _other_model_weights()
    weights.write_bytes(content)
    manifest = write_tiny_set(tmp_path / "lines", ["ab"])
    rc = recognize_module.main(["--model", str(model_folder), "--manifest", str(manifest),
                                "--out", str(tmp_path / "x.npz"), "--quiet"])
    [line] = _err_lines(capsys)
    assert rc == 1 and str(weights) in line and says in line and "htr train" in line
    assert "Traceback" not in line and "WeightsUnpickler" not in line


@pytest.mark.parametrize("text", ["{not json", '{"config": {"arch": "mdlstm", "no_such_key": 1}, "alphabet": []}',
                                  '{"alphabet": ["", "a"]}', "\udcff"])
def test_a_broken_model_json_is_one_line_naming_it(tmp_path, model_folder, capsys, text):
    (model_folder / "model.json").write_bytes(text.encode("utf-8", "surrogateescape"))
    manifest = write_tiny_set(tmp_path / "lines", ["ab"])
    rc = recognize_module.main(["--model", str(model_folder), "--manifest", str(manifest),
                                "--out", str(tmp_path / "x.npz"), "--quiet"])
    [line] = _err_lines(capsys)
    assert rc == 1 and "model.json: not a model description" in line and "htr train" in line


@pytest.mark.parametrize("bad_line, says", [
    ('{"id": "b", "image": "b.png", "text": "y"', "not valid JSON (Expecting ',' delimiter at column 42)"),
    ('["b", "b.png", "y"]', "a JSON list, not a record object"),
    ('"id image text"', "a JSON str, not a record object"),
    ('{"id": "b", "text": "y"}', "no image field"),
    ('{"id": 7, "image": "b.png", "text": "y"}', "field id is a JSON int"),
    ('{"id": "b", "image": "b.png", "text": "y", "polygon": "10,20"}', "field polygon is a JSON str"),
])
def test_a_bad_manifest_line_is_named_by_its_own_line_number_only(tmp_path, bad_line, says):
    path = tmp_path / "manifest.jsonl"
    path.write_text('{"id": "a", "image": "a.png", "text": "x"}\n' + bad_line + "\n", encoding="utf-8")
    with pytest.raises(ValueError) as error:
        read_manifest(path)
    message = str(error.value)
    assert message.startswith(f"{path}:2: ") and says in message and "htr prepare" in message
    assert "line 2 column" not in message and "line 1 column" not in message  # no inner JSON position


def test_a_manifest_that_is_not_utf8_names_the_file(tmp_path):
    path = tmp_path / "manifest.jsonl"
    path.write_bytes(b'{"id": "a", "image": "a.png", "text": "\xe9t\xe9"}\n')
    with pytest.raises(ValueError, match=r"manifest\.jsonl: not UTF-8 text .*re-save it as UTF-8"):
        read_manifest(path)


# ---------------------------------------------------------------- one writer per output

def test_a_second_run_on_the_same_out_is_refused_naming_the_first(tmp_path, page_image, run_prepare):
    from test_readers import alto_xml
    page_image(tmp_path / "src" / "scan.png")
    (tmp_path / "src" / "scan.xml").write_text(alto_xml(4, '<TextLine ID="a" HPOS="10" VPOS="10" WIDTH="100" '
                                                          'HEIGHT="30"><String CONTENT="x"/></TextLine>'))
    out = tmp_path / "out"
    with claim_output(out, "htr prepare (the first run)", folder=True):
        busy = run_prepare(f"alto:{tmp_path / 'src'}", out)
        assert busy.rc == 1 and not (out / "manifest.jsonl").exists()
        [line] = busy.stderr.splitlines()
        assert f"{out}: another run is writing it (htr prepare (the first run), pid" in line
    assert not lock_path(out, folder=True).exists()  # released and removed
    done = run_prepare(f"alto:{tmp_path / 'src'}", out)
    assert done.rc == 0 and len(done.records) == 1 and not lock_path(out, folder=True).exists()


def test_recognize_and_decode_outputs_are_locked_too(tmp_path, lm_dir, capsys):
    logits = tmp_path / "dev.npz"
    save_logits(logits, ["a"], [one_hot("the cat")], DECODE_ALPHABET)
    hyp = tmp_path / "hyp.tsv"
    with claim_output(hyp, "htr decode"):
        assert main(["decode", "--logits", str(logits), "--out", str(hyp)]) == 1
        assert "another run is writing it" in capsys.readouterr().err and not hyp.exists()
        manifest = write_tiny_set(tmp_path / "lines", ["ab"])
        with claim_output(tmp_path / "x.npz", "htr recognize"):
            assert recognize_module.main(["--model", str(tmp_path), "--manifest", str(manifest),
                                          "--out", str(tmp_path / "x.npz"), "--quiet"]) == 1
            assert "x.npz: another run is writing it" in capsys.readouterr().err
    assert main(["decode", "--logits", str(logits), "--out", str(hyp)]) == 0


def test_a_killed_run_leaves_no_stale_lock(tmp_path):
    out = tmp_path / "out"
    holder = subprocess.Popen(
        [sys.executable, "-c", "import sys, time; from common.outlock import claim_output\n"
         f"with claim_output({str(out)!r}, 'htr prepare', folder=True):\n"
         "    print('held', flush=True); time.sleep(60)"], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        with pytest.raises(RuntimeError, match="another run is writing it"):
            with claim_output(out, "second", folder=True):
                pass
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait()
    assert lock_path(out, folder=True).exists()  # kill -9 left the file, but not the lock
    with claim_output(out, "third", folder=True):
        assert json.dumps(str(out))
    assert not lock_path(out, folder=True).exists()


def test_an_output_that_cannot_be_a_folder_is_one_line(tmp_path, run_prepare):
    (tmp_path / "file").write_text("not a folder")
    run = run_prepare(f"alto:{tmp_path}", tmp_path / "file")
    assert run.rc == 1 and run.stderr.count("\n") == 1 and "cannot write there" in run.stderr
