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
    exp.paths.tuned("dropout-all").parent.mkdir()
    exp.paths.tuned("dropout-all").write_text(json.dumps({"lexicon": {"lm_weight": 0.7, "word_bonus": 1.0}}))
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


META = """title = "Tiny models"
license = [{ name = "CC-BY-4.0", url = "https://creativecommons.org/licenses/by/4.0/" }]
language = ["fra"]
script = [{ iso = "Latn", name = "Latin" }]
time = { notBefore = "2024", notAfter = "2024" }
reproduce = ["make copiste-data", "make copiste-models"]

[training-data]
title = "Tiny data"
license = [{ name = "CC-BY-4.0" }]
volume = [{ metric = "lines", count = 12 }]
"""


def _export_with_card(tmp_path):
    exp = _complete_experiment(tmp_path)
    (tmp_path / "card.toml").write_text(META, encoding="utf-8")
    out = tmp_path / "models"
    done = subprocess.run([sys.executable, str(SCRIPT), str(exp.folder), "--out", str(out), "--card",
                           str(tmp_path / "card.toml")], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    return out


def test_card_header_is_yaml_with_licences_language_alphabet_scores_and_reproduce(tmp_path):
    from pipeline.model_card import read_front_matter
    out = _export_with_card(tmp_path)
    header = read_front_matter(out / "MODEL_CARD.md")
    assert header["license"][0]["name"] == "CC-BY-4.0" and header["training-data"]["license"][0]["name"] == "CC-BY-4.0"
    assert header["language"] == ["fra"] and header["script"][0]["iso"] == "Latn" and header["time"]["notBefore"] == "2024"
    assert header["reproduce"] == ["make copiste-data", "make copiste-models"]
    assert header["software"]["name"] == "dropout-htr"
    models = {m["name"]: m for m in header["models"]}
    assert models["dropout-all"]["default"] and models["dropout-all"]["alphabet"] == {"size": 2, "blank_index": 0, "symbols": "a"}
    rnn = next(row for row in models["dropout-all"]["dev"] if row["system"] == "RNN alone")
    body = (out / "MODEL_CARD.md").read_text()
    assert f"| dropout-all | RNN alone | {rnn['cer']:.1f} | {rnn['wer']:.1f} |" in body  # header and table agree
    assert models["dropout-none"]["training"]["best_dev_cer"] == 26.67


def test_refresh_card_rewrites_only_the_header(tmp_path):
    out = _export_with_card(tmp_path)
    card = out / "MODEL_CARD.md"
    body = card.read_text().split("\n---\n\n", 1)[1]
    (tmp_path / "card.toml").write_text(META.replace("Tiny models", "Renamed"), encoding="utf-8")
    done = subprocess.run([sys.executable, str(SCRIPT), "--refresh-card", str(out), "--card", str(tmp_path / "card.toml")],
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    text = card.read_text()
    assert text.startswith("---\ntitle: Renamed\n") and text.endswith(body) and text.count("\n---\n") == 1


def test_refresh_card_keeps_the_exported_header_when_nothing_changed(tmp_path):
    """Refreshing after a change to one model (here none) must not reorder the models or round
    their scores to the body table's 0.1, so a refreshed card differs only where the models do."""
    out = _export_with_card(tmp_path)
    card = out / "MODEL_CARD.md"
    exported = card.read_text()
    done = subprocess.run([sys.executable, str(SCRIPT), "--refresh-card", str(out), "--card", str(tmp_path / "card.toml")],
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert card.read_text() == exported


def test_card_metadata_without_a_licence_is_refused_by_name(tmp_path):
    exp = _complete_experiment(tmp_path)
    (tmp_path / "card.toml").write_text(META.replace('license = [{ name = "CC-BY-4.0", url = "https://creativecommons.org/licenses/by/4.0/" }]\n', ""))
    done = subprocess.run([sys.executable, str(SCRIPT), str(exp.folder), "--out", str(tmp_path / "m"), "--card",
                           str(tmp_path / "card.toml")], capture_output=True, text=True)
    assert done.returncode == 1 and "card.toml: missing license" in done.stderr


def _best_variant(exp) -> str:
    def best(variant):
        return min(row["dev_cer"] for row in json.loads((exp.folder / "models" / variant / "metrics.json").read_text()))
    return min(exp.variants, key=best)


def test_default_best_copies_the_variant_with_the_lowest_dev_cer_and_the_card_says_so(tmp_path):
    exp = _complete_experiment(tmp_path)
    (exp.folder / "models" / "dropout-none" / "weights.pt").write_bytes(b"none weights")
    out = tmp_path / "models"
    done = subprocess.run([sys.executable, str(SCRIPT), str(exp.folder), "--out", str(out), "--default", "best"],
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    best = _best_variant(exp)
    assert (out / "default" / "weights.pt").read_bytes() == (out / best / "weights.pt").read_bytes()
    assert (out / "default" / "SOURCE").read_text().strip() == best
    assert f"`default/` is a copy of `{best}`" in (out / "MODEL_CARD.md").read_text()


def test_default_may_be_a_model_folder_of_another_layout_and_a_wrong_name_is_one_message(tmp_path):
    exp = _complete_experiment(tmp_path)
    other = exp.folder / "models" / "dropout-all"
    out = tmp_path / "models"
    done = subprocess.run([sys.executable, str(SCRIPT), str(exp.folder), "--out", str(out), "--default", str(other)],
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert (out / "default" / "model.json").read_bytes() == (other / "model.json").read_bytes()
    done = subprocess.run([sys.executable, str(SCRIPT), str(exp.folder), "--out", str(tmp_path / "m2"),
                           "--default", "dropout-wide"], capture_output=True, text=True)
    assert done.returncode == 1 and "--default dropout-wide" in done.stderr and "Traceback" not in done.stderr


def _two_member_ensemble(tmp_path: Path, without_metrics: tuple[str, ...] = ()) -> Path:
    """tmp_path/ens: an ensemble of two trained CRNNs, crnn-a (30% dev CER) and crnn-b (31%,
    fine-tuned and weight-averaged); the members named in ``without_metrics`` lack metrics.json."""
    from test_ensemble import save_crnn
    from pipeline.model_folder import main as ensemble_main
    members = [tmp_path / "trained" / name for name in ("crnn-a", "crnn-b")]
    for seed, member in enumerate(members):
        save_crnn(member, seed)
        if member.name not in without_metrics:
            (member / "metrics.json").write_text(json.dumps([{"epoch": 1, "dev_cer": 30.0 + seed}]))
        lineage = {"init": "models/base", "average_from": 2} if seed else {}  # b: fine-tuned, weights averaged
        (member / "train_config.json").write_text(json.dumps({"max_epochs": 9, "lr": 0.001, **lineage}))
    assert ensemble_main([*map(str, members), "--out", str(tmp_path / "ens")]) == 0
    return tmp_path / "ens"


def test_an_ensemble_default_is_exported_with_its_members_and_the_card_lists_them(tmp_path):
    from pipeline.model_card import read_front_matter
    exp = _complete_experiment(tmp_path)
    (tmp_path / "card.toml").write_text(META, encoding="utf-8")
    ensemble = _two_member_ensemble(tmp_path)
    out = tmp_path / "models"
    out.mkdir()
    (out / "default").mkdir()
    (out / "default" / "weights.pt").write_bytes(b"an older single default")
    done = subprocess.run([sys.executable, str(SCRIPT), str(exp.folder), "--out", str(out), "--default",
                           str(ensemble), "--card", str(tmp_path / "card.toml")], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert "crnn-a 30.00%" in done.stdout and "crnn-b 31.00%" in done.stdout
    assert not (out / "default" / "weights.pt").exists()
    assert (out / "default" / "crnn-b" / "weights.pt").read_bytes() == (tmp_path / "trained" / "crnn-b" / "weights.pt").read_bytes()
    default = next(m for m in read_front_matter(out / "MODEL_CARD.md")["models"] if m["name"] == "default")
    assert default["default"] and default["architecture"]["ensemble"] == ["crnn-a", "crnn-b"]
    assert [m["path"] for m in default["members"]] == ["default/crnn-a", "default/crnn-b"]
    assert [m["training"]["best_dev_cer"] for m in default["members"]] == [30.0, 31.0]
    assert "init" not in default["members"][0]["training"]
    assert default["members"][1]["training"]["init"] == "models/base"
    assert default["members"][1]["training"]["average_from"] == 2
    assert default["alphabet"]["symbols"] == "abc"


def test_an_ensemble_member_without_its_metrics_stops_the_export_before_the_old_default_changes(tmp_path):
    exp = _complete_experiment(tmp_path)
    ensemble = _two_member_ensemble(tmp_path, without_metrics=("crnn-b",))  # copied without its metrics
    out = tmp_path / "models"
    (out / "default").mkdir(parents=True)
    (out / "default" / "weights.pt").write_bytes(b"the previous default")
    done = subprocess.run([sys.executable, str(SCRIPT), str(exp.folder), "--out", str(out), "--default",
                           str(ensemble)], capture_output=True, text=True)
    assert done.returncode == 1 and "Traceback" not in done.stderr
    assert "crnn-b/metrics.json: missing" in done.stderr
    assert sorted(p.name for p in (out / "default").iterdir()) == ["weights.pt"]
    assert (out / "default" / "weights.pt").read_bytes() == b"the previous default"


def test_lm_tuned_ships_the_given_weights_and_the_card_says_for_what(tmp_path):
    exp = _complete_experiment(tmp_path)
    tuned = tmp_path / "tuned-default.json"
    tuned.write_text(json.dumps({"lexicon": {"lm_weight": 0.25, "word_bonus": -2.0, "wer": 0.3}}))
    out = tmp_path / "models"
    done = subprocess.run([sys.executable, str(SCRIPT), str(exp.folder), "--out", str(out), "--lm-tuned", str(tuned)],
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert json.loads((out / "lm" / "tuned.json").read_text())["lexicon"]["lm_weight"] == 0.25
    assert f"tuned on dev for the default model (`{tuned}`)" in (out / "MODEL_CARD.md").read_text()
    done = subprocess.run([sys.executable, str(SCRIPT), str(exp.folder), "--out", str(out), "--lm-tuned",
                           str(tmp_path / "none.json")], capture_output=True, text=True)
    assert done.returncode == 1 and "none.json: missing" in done.stderr


def test_a_character_model_ships_with_the_lm_and_a_stale_one_is_removed(tmp_path):
    exp = _complete_experiment(tmp_path)
    lm = exp.folder / "lm"
    (lm / "char.bin").write_text("char.bin")
    info = json.loads((lm / "lm.json").read_text())
    info["config"]["char_order"] = 6
    info["dev"]["char_perplexity"] = 4.7
    (lm / "lm.json").write_text(json.dumps(info))
    out = tmp_path / "models"
    command = [sys.executable, str(SCRIPT), str(exp.folder), "--out", str(out)]
    done = subprocess.run(command, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert (out / "lm" / "char.bin").read_text() == "char.bin"
    card = (out / "MODEL_CARD.md").read_text()
    assert "Character 6-gram (`char.bin`, KenLM) from the same text (dev perplexity 4.7 per character)" in card
    assert "--decoder char-lm" in card
    (lm / "char.bin").unlink()
    done = subprocess.run(command, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert not (out / "lm" / "char.bin").exists()
    assert "char-lm" not in (out / "MODEL_CARD.md").read_text()


def test_the_default_note_follows_the_default_in_the_card_and_a_missing_note_is_named(tmp_path):
    exp = _complete_experiment(tmp_path)
    note = tmp_path / "default.md"
    note.write_text("It reads Tiny dev at\n**9.9% CER**.\n")
    out = tmp_path / "models"
    command = [sys.executable, str(SCRIPT), str(exp.folder), "--out", str(out), "--default", "dropout-all"]
    done = subprocess.run([*command, "--default-note", str(note)], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    card = (out / "MODEL_CARD.md").read_text()
    assert "the model `htr transcribe` reads with when it is given no `--model`. It reads Tiny dev at **9.9% CER**." in card
    done = subprocess.run([*command, "--default-note", str(tmp_path / "gone.md")], capture_output=True, text=True)
    assert done.returncode == 1 and "gone.md" in done.stderr


def test_replacing_the_default_without_the_experiment_writes_what_a_full_export_writes(tmp_path):
    """A fresh checkout has models/ but no experiment folder: --replace-default must give the same
    default folder, tuned weights and card as exporting again with the new --default."""
    exp = _complete_experiment(tmp_path)
    (tmp_path / "card.toml").write_text(META, encoding="utf-8")
    ensemble = _two_member_ensemble(tmp_path)
    (tmp_path / "note.md").write_text("An ensemble of\ntwo small CRNNs.\n")
    (tmp_path / "tuned.json").write_text(json.dumps({"char-lm": {"lm_weight": 2.0, "word_bonus": -1.0, "tried": []}}))
    new_default = ["--default", str(ensemble), "--lm-tuned", str(tmp_path / "tuned.json"),
                   "--default-note", str(tmp_path / "note.md"), "--card", str(tmp_path / "card.toml")]

    def export(out, *flags):
        done = subprocess.run([sys.executable, str(SCRIPT), *flags], capture_output=True, text=True)
        assert done.returncode == 0, done.stderr
        return out

    replaced = export(tmp_path / "replaced", str(exp.folder), "--out", str(tmp_path / "replaced"), "--default",
                      "dropout-all", "--card", str(tmp_path / "card.toml"))
    export(replaced, "--replace-default", str(replaced), *new_default)
    fresh = export(tmp_path / "fresh", str(exp.folder), "--out", str(tmp_path / "fresh"), *new_default)

    def files(out):
        return {str(p.relative_to(out)): p.read_bytes() for p in sorted(out.rglob("*")) if p.is_file() and p.name != "MODEL_CARD.md"}

    assert files(replaced) == files(fresh)
    card = (replaced / "MODEL_CARD.md").read_text()
    assert card.replace(str(replaced), "OUT") == (fresh / "MODEL_CARD.md").read_text().replace(str(fresh), "OUT")
    assert "two small CRNNs." in card and '"lm_weight": 2.0' in card and "`default/` is a copy of `dropout-all`" not in card


def test_replacing_the_default_needs_an_exported_card_and_a_model_folder(tmp_path):
    done = subprocess.run([sys.executable, str(SCRIPT), "--replace-default", str(tmp_path / "none"), "--default",
                           str(tmp_path)], capture_output=True, text=True)
    assert done.returncode == 1 and "MODEL_CARD.md: missing" in done.stderr and "Traceback" not in done.stderr
    out = _export_with_card(tmp_path)
    before = {p: p.read_bytes() for p in out.rglob("*") if p.is_file()}
    done = subprocess.run([sys.executable, str(SCRIPT), "--replace-default", str(out), "--default", str(out / "dropout-none"),
                           "--lm-tuned", str(tmp_path / "nowhere.json")], capture_output=True, text=True)
    assert done.returncode == 1 and "nowhere.json: missing" in done.stderr
    assert {p: p.read_bytes() for p in out.rglob("*") if p.is_file()} == before  # nothing half-replaced


def test_replacing_the_default_stops_on_a_card_without_the_tuned_sentence_before_writing(tmp_path):
    exp = _complete_experiment(tmp_path)
    (tmp_path / "card.toml").write_text(META, encoding="utf-8")
    out = tmp_path / "models"
    done = subprocess.run([sys.executable, str(SCRIPT), str(exp.folder), "--out", str(out), "--default", "dropout-all"],
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    card = out / "MODEL_CARD.md"
    card.write_text(card.read_text().replace("`tuned.json` holds the LM weight", "The LM weight"))
    (tmp_path / "tuned.json").write_text(json.dumps({"lexicon": {"lm_weight": 2.0}}))
    before = {p: p.read_bytes() for p in out.rglob("*") if p.is_file()}
    done = subprocess.run([sys.executable, str(SCRIPT), "--replace-default", str(out), "--default", str(out / "dropout-none"),
                           "--lm-tuned", str(tmp_path / "tuned.json")], capture_output=True, text=True)
    assert done.returncode == 1 and "no sentence on the tuned LM weights" in done.stderr
    assert {p: p.read_bytes() for p in out.rglob("*") if p.is_file()} == before
