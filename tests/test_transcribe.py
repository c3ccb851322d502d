"""``htr transcribe``: page images in, one text file and one ALTO file per page out."""
from __future__ import annotations

import numpy as np
import torch
from PIL import Image

from data_prep.readers import read_alto
from data_prep.skips import SkipLog
from pipeline.model import ModelConfig, build_model, save_model_folder
from pipeline.transcribe import main

ALPHABET = ["", " ", "a", "b", "c"]
TINY = dict(height=16, mdlstm_hidden="2,3,4", mdlstm_conv="3,4", sub_height=2, mdlstm_impl="wavefront")


def _page(path, lines: int) -> None:
    """A light page with ``lines`` rows of dark word-like blobs."""
    page = np.full((400, 600), 235, dtype=np.uint8)
    rng = np.random.default_rng(3)
    for row in range(lines):
        top = 60 + row * 70
        x = 40
        while x < 520:
            width = int(rng.integers(30, 70))
            page[top:top + 22, x:x + width] = 30
            page[top + 22:top + 30, x + 5:x + 9] = 30  # a descender
            x += width + 18
    Image.fromarray(page).save(path)


def test_pages_become_text_and_alto_with_one_line_per_segmented_line(tmp_path, capsys):
    torch.manual_seed(0)
    config = ModelConfig(arch="mdlstm", **TINY)
    save_model_folder(tmp_path / "model", config, ALPHABET, build_model(config, len(ALPHABET)))
    for name, lines in (("p1", 4), ("p2", 2)):
        _page(tmp_path / f"{name}.png", lines)
    out = tmp_path / "out"
    code = main([str(tmp_path / "p1.png"), str(tmp_path / "p2.png"), "--model", str(tmp_path / "model"),
                 "--out", str(out)])
    assert code == 0
    for name, lines in (("p1", 4), ("p2", 2)):
        text = (out / f"{name}.txt").read_text(encoding="utf-8")
        assert text.count("\n") == lines
        page = next(iter(read_alto(out / f"{name}.xml", SkipLog(stream=None))))
        assert len(page.lines) == lines and page.image is not None
        assert [line.text for line in page.lines] == text.splitlines()
        assert set("".join(text.split())) <= set("abc")


def test_missing_inputs_are_named(tmp_path, capsys):
    assert main([str(tmp_path / "nope.jpg"), "--model", str(tmp_path / "nomodel")]) == 2
    assert "nope.jpg" in capsys.readouterr().err
