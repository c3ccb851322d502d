"""The committed Copiste models (models/copiste) work with `htr recognize` and `htr decode`,
as the model card promises: every variant loads and writes a log-probability cache, and the
strict-lexicon decoder with the committed LM only outputs words of its lexicon (training
words, plus the lexicon extension when the LM has one)."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from lm.folder import read_counts
from pipeline import decode as decode_module
from pipeline import recognize as recognize_module
from lm.folder import LmDir
from pipeline.experiment import load_experiment
from pipeline.logits import load_logits
from test_train import write_tiny_set

RELEASE = Path(__file__).resolve().parents[1] / "models" / "copiste"
VARIANTS = ("dropout-none", "dropout-top", "dropout-all")
# the decoding systems of the experiment the models come from (configs/copiste.toml)
SYSTEMS = {s.name for s in load_experiment(Path(__file__).resolve().parents[1] / "configs" / "copiste.toml").systems}

pytestmark = pytest.mark.skipif(not (RELEASE / "lm" / "lm.bin").is_file(), reason="models/copiste not exported")


@pytest.fixture(scope="module")
def lines(tmp_path_factory):
    return write_tiny_set(tmp_path_factory.mktemp("lines"), ["abc", "cab", "bacab"])


@pytest.mark.parametrize("variant", (*VARIANTS, "default"))
def test_released_model_recognises_lines(variant, lines, tmp_path):
    model = RELEASE / variant
    out = tmp_path / "dev.npz"
    code = recognize_module.main(["--model", str(model), "--manifest", str(lines), "--out", str(out),
                                  "--threads", "1", "--quiet"])
    assert code == 0
    cache = load_logits(out)
    assert cache.ids == ["l0", "l1", "l2"]
    assert cache.alphabet == json.loads((model / "model.json").read_text())["alphabet"]


def test_released_lm_decodes_into_lexicon_words_only(lines, tmp_path):
    logits, hyp = tmp_path / "dev.npz", tmp_path / "hyp.tsv"
    assert recognize_module.main(["--model", str(RELEASE / "dropout-all"), "--manifest", str(lines),
                                  "--out", str(logits), "--threads", "1", "--quiet"]) == 0
    assert decode_module.main(["--logits", str(logits), "--decoder", "lexicon", "--lm", str(RELEASE / "lm"),
                               "--out", str(hyp), "--jobs", "1"]) == 0
    words = set(read_counts(RELEASE / "lm" / "words.txt")) | set(LmDir.load(RELEASE / "lm").extension()[0])
    rows = [line.split("\t") for line in hyp.read_text(encoding="utf-8").splitlines()]
    assert [row[0] for row in rows] == ["l0", "l1", "l2"]
    assert all(word in words for row in rows for word in row[1].split())


def test_released_lm_decodes_with_its_character_model_and_tuned_weights_when_it_ships_one(lines, tmp_path):
    from pipeline.decoders.config import default_decoder
    if default_decoder(RELEASE / "lm") != "char-lm":
        pytest.skip("the released LM has no character n-gram")
    assert "char-lm" in json.loads((RELEASE / "lm" / "tuned.json").read_text())  # weights tuned for it
    logits, hyp = tmp_path / "dev.npz", tmp_path / "hyp.tsv"
    assert recognize_module.main(["--model", str(RELEASE / "default"), "--manifest", str(lines),
                                  "--out", str(logits), "--threads", "1", "--quiet"]) == 0
    assert decode_module.main(["--logits", str(logits), "--decoder", "char-lm", "--lm", str(RELEASE / "lm"),
                               "--out", str(hyp), "--jobs", "1"]) == 0
    assert [line.split("\t")[0] for line in hyp.read_text(encoding="utf-8").splitlines()] == ["l0", "l1", "l2"]


def test_released_card_header_describes_each_committed_model():
    from pipeline.model_card import read_front_matter
    header = read_front_matter(RELEASE / "MODEL_CARD.md")
    assert header["license"] and header["training-data"]["license"] and header["language"] == ["fra"]
    assert {m["name"] for m in header["models"]} == {*VARIANTS, "default"}
    default = next(m for m in header["models"] if m["default"])
    assert default["name"] == "default"
    members = default.get("members", [])  # an ensemble: its members' entries
    assert all(m["training"]["best_dev_cer"] > 0 for m in members or [default])
    if default["copy_of"] in VARIANTS:  # else another layout's model folder (a probe), named by its path
        assert (RELEASE / "default" / "weights.pt").read_bytes() == (RELEASE / default["copy_of"] / "weights.pt").read_bytes()
    for entry in header["models"] + members:
        alphabet = json.loads((RELEASE / entry["path"] / "model.json").read_text())["alphabet"]
        assert entry["alphabet"]["symbols"] == "".join(alphabet[1:]) and entry["alphabet"]["size"] == len(alphabet)
        if entry["name"] in VARIANTS:  # the experiment's score table covers its variants
            assert {row["system"] for row in entry["dev"]} == SYSTEMS
