"""The experiment runner's plan and resumption, and the report built from its outputs."""
from __future__ import annotations

import json
import os
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from data_prep.records import LineRecord, write_manifest
from pipeline.evaluate import evaluate, to_json
from pipeline.folders import EXPORTED_FILES
from pipeline.report import write_report
from pipeline.experiment import System, flags, load_experiment, system_slug
from pipeline.run import Step, TrainingPaused, plan, run, train_concurrently

CONFIG = """
title = "tiny"
jobs = 1
[data]
train = "{root}/train.jsonl"
dev = "{root}/dev.jsonl"
test = "{root}/test.jsonl"
lm_text = ["{root}/text.txt"]
[train]
max_minutes = 0.1
augment = false
[[variants]]
name = "dropout-none"
dropout_where = "none"
[[variants]]
name = "dropout-all"
dropout_where = "all"
[[decode.systems]]
name = "RNN alone"
decoder = "greedy"
[[decode.systems]]
name = "+ lexicon + LM"
decoder = "lexicon"
tune = true
"""


def _experiment(tmp_path: Path):
    config = tmp_path / "exp.toml"
    config.write_text(CONFIG.format(root=tmp_path))
    return config, load_experiment(config, tmp_path / "exp")


def test_flags_follow_the_cli_conventions():
    assert flags({"max_minutes": 4, "augment": True, "progress": False, "sizes": [2, 10]}) == [
        "--max-minutes", "4", "--augment", "--no-progress", "--sizes", "2,10"]


def test_plan_trains_each_variant_and_decodes_each_system(tmp_path):
    _, exp = _experiment(tmp_path)
    steps = plan(exp)
    commands = [s.argv[0] for s in steps]
    assert commands.count("train") == 2 and commands.count("lm") == 1 and commands.count("tune") == 2
    train = next(s for s in steps if s.argv[0] == "train" and "dropout-all" in s.name)
    assert train.argv[train.argv.index("--dropout-where") + 1] == "all"
    assert "--no-augment" in train.argv
    decodes = [s for s in steps if s.argv[0] == "decode"]
    assert len(decodes) == 2 * 2  # variants x systems, on the test split only
    assert system_slug(System("+ lexicon + LM", "lexicon")) == "lexicon-lm"


def test_a_step_is_redone_only_when_an_output_is_missing_or_older_than_an_input(tmp_path):
    source, target = tmp_path / "in.txt", tmp_path / "out.txt"
    source.write_text("a")
    step = Step("copy", ["noop"], [source], [target])
    assert not step.up_to_date()
    target.write_text("a")
    assert step.up_to_date()
    later = time.time() + 10
    os.utime(source, (later, later))
    assert not step.up_to_date()



def test_an_input_copied_again_with_the_same_bytes_does_not_redo_the_step(tmp_path):
    """A data folder refreshed with new file times (the same pages) must not send every page
    back to the segmenter: the step's stamp says what its inputs held when it last ran."""
    source, target, stamp = tmp_path / "in.txt", tmp_path / "out.txt", tmp_path / "stamps" / "copy.json"
    source.write_text("a")
    step = Step("copy", ["noop"], [source], [target], stamp=stamp)
    target.write_text("a")
    step.record_inputs()
    later = time.time() + 10
    source.write_text("a")
    os.utime(source, (later, later))
    assert step.up_to_date()
    source.write_text("b")
    os.utime(source, (later, later))
    assert not step.up_to_date()
    assert not Step("copy", ["noop"], [source], [target], stamp=tmp_path / "none.json").up_to_date()


def test_every_planned_step_has_its_own_stamp_in_the_experiment_folder(tmp_path):
    _, exp = _experiment(tmp_path)
    stamps = [s.stamp for s in plan(exp)]
    assert all(p is not None and exp.folder in p.parents for p in stamps)
    assert len(set(stamps)) == len(stamps)


def _write_outputs(tmp_path: Path, exp, writers: int = 0) -> None:
    rng = np.random.default_rng(0)
    records = []
    for i in range(12):
        image = tmp_path / "lines" / f"l{i}.png"
        image.parent.mkdir(exist_ok=True)
        Image.fromarray(rng.integers(0, 255, (20, 60), dtype=np.uint8)).save(image)
        records.append(LineRecord(id=f"l{i}", image=str(image), text=f"the cat {i} sat on the mat", page=f"/p/page{i // 4}.jpg",
                                  writer=f"w{i % writers}" if writers else None))
    write_manifest(exp.test, records)
    refs = {r.id: r.text for r in records}
    errors = {"dropout-none": {"RNN alone": 4, "+ lexicon + LM": 2}, "dropout-all": {"RNN alone": 2, "+ lexicon + LM": 1}}
    for variant, per_system in errors.items():
        for system, n in per_system.items():
            hyps = {k: ("x" * n) + v[n:] for k, v in refs.items()}
            out = exp.folder / "eval" / variant / f"test.{system_slug(System(system, ''))}.json"
            out.parent.mkdir(parents=True, exist_ok=True)
            out.write_text(json.dumps(to_json(evaluate(refs, hyps, tokenize=str.split), samples=50)))
        model = exp.folder / "models" / variant
        model.mkdir(parents=True)
        (model / "metrics.json").write_text(json.dumps([
            {"epoch": e, "train_loss": 3.0 / e, "dev_cer": 80.0 / e, "lines_per_s": 30.0, "epoch_seconds": 30.0, "minutes": e / 2} for e in (1, 2, 3)]))
        (model / "weights.pt").write_bytes(b"0" * 2048)


def test_report_shows_the_paper_table_reductions_plots_and_gallery(tmp_path):
    config, exp = _experiment(tmp_path)
    exp.folder.mkdir()
    (exp.folder / "config.toml").write_text(config.read_text())
    _write_outputs(tmp_path, exp)
    (exp.folder / "lm").mkdir()
    (exp.folder / "lm" / "lm.json").write_text(json.dumps({
        "config": {"order": 3}, "corpus_tokens": 900, "lexicon_size": 300, "surface_words": 350,
        "extension": {"source": "wordfreq:fr", "listed_words": 50, "surface_words_added": 400},
        "dev": {"perplexity": 120.5, "oov_rate": 0.2, "surface_oov_rate": 0.25, "extended_surface_oov_rate": 0.125}}))
    paths = write_report(exp.folder)
    markdown = paths["markdown"].read_text()
    assert "| dropout-all |" in markdown and "RNN alone CER %" in markdown
    assert "| (every variant) | --max-minutes 0.1 --no-augment |" in markdown
    assert "| dropout-all | --dropout-where all |" in markdown
    assert "| dev surface-word OOV | 25.0% with the training words, 12.5% with the extension |" in markdown
    metrics = json.loads(paths["metrics"].read_text())
    none_cer = metrics["test"]["dropout-none/RNN alone"]["cer"]
    all_cer = metrics["test"]["dropout-all/RNN alone"]["cer"]
    assert all_cer == none_cer / 2
    dropout_row = metrics["tables"]["dropout"][1]
    assert dropout_row[0] == "dropout-all" and dropout_row[1].startswith("50.0%")
    page = paths["html"].read_text()
    assert page.count("data:image/png;base64,") >= 2 + 8  # two plots, eight gallery lines
    assert "<ins>" in page and (exp.folder / "report" / "learning_curves.png").stat().st_size > 1000
    assert "Interim report" in markdown and "3 epochs (unfinished: interim)" in markdown  # no DONE yet
    for variant in exp.variants:
        (exp.folder / "models" / variant / "DONE").write_text("training finished\n")
    markdown = write_report(exp.folder)["markdown"].read_text()
    assert "Interim report" not in markdown and "3 epochs (finished)" in markdown
    assert "best dev CER 26.7% at epoch 3" in markdown
    assert "## Over writers" in markdown and metrics["tables"]["writers"] == []  # the manifest names none


def test_with_writers_the_report_resamples_whole_writers_and_plots_each_one(tmp_path):
    config, exp = _experiment(tmp_path)
    exp.folder.mkdir()
    (exp.folder / "config.toml").write_text(config.read_text())
    _write_outputs(tmp_path, exp, writers=3)
    paths = write_report(exp.folder)
    table = json.loads(paths["metrics"].read_text())["tables"]["writers"]
    rows = {(row[0], row[1]): row for row in table[1:]}
    assert len(rows) == 4 and all(row[2] == "3" for row in rows.values())
    none, dropout = rows[("dropout-none", "RNN alone")], rows[("dropout-all", "RNN alone")]
    assert none[-1] == "-" and dropout[-1].startswith("50.0%")  # half the errors on every writer's lines
    assert float(dropout[3].split()[0]) == float(none[3].split()[0]) / 2
    assert (exp.folder / "report" / "writers.png").stat().st_size > 1000


def test_training_minutes_add_up_the_runs_of_a_resumed_training():
    from pipeline.report import training_minutes
    runs = [{"minutes": m} for m in (7.0, 13.0, 6.5, 12.0, 5.0)]  # three runs: 13 + 12 + 5 minutes
    assert training_minutes(runs) == 30.0
    assert training_minutes([{"minutes": 4.0}, {"minutes": 9.0}]) == 9.0


def test_variants_train_at_the_same_time_and_resume_in_chunks(tmp_path, capsys):
    """train_jobs = 2: both variants train in parallel processes, each logging to its folder;
    with train_until = "epochs" a run stopped short of max_epochs pauses, and the next run
    resumes both from their checkpoints and marks them done."""
    from test_train import DEV_TEXTS, TINY_MODEL, TRAIN_TEXTS, write_tiny_set

    train = write_tiny_set(tmp_path / "train", TRAIN_TEXTS)
    dev = write_tiny_set(tmp_path / "dev", DEV_TEXTS)
    model_flags = {TINY_MODEL[k][2:].replace("-", "_"): TINY_MODEL[k + 1] for k in range(0, len(TINY_MODEL), 2)}
    model_flags.pop("threads")
    options = "\n".join(f'{key} = "{value}"' for key, value in model_flags.items())
    config = tmp_path / "par.toml"
    config.write_text(f"""
train_until = "epochs"
train_jobs = 2
[data]
train = "{train}"
dev = "{dev}"
test = "{dev}"
[train]
{options}
max_epochs = 2
max_minutes = 1e-9  # any epoch passes it, however fast the machine
patience = 0
progress = false
[[variants]]
name = "none"
dropout_where = "none"
[[variants]]
name = "all"
dropout_where = "all"
""")
    exp = load_experiment(config, tmp_path / "exp")
    with pytest.raises(TrainingPaused):  # max_minutes stops each after epoch 1
        train_concurrently([s for s in plan(exp) if s.argv[0] == "train"], exp, {}, poll_seconds=0.2)
    for name in ("none", "all"):
        model = exp.folder / "models" / name
        assert len(json.loads((model / "metrics.json").read_text())) == 1
        assert "epoch 1:" in (model / "train.log").read_text()
        assert not (model / "DONE").exists()
    # an interim run trains nothing and recognises with the best weights so far
    assert sorted(run(exp, config, only="train,recognize", interim=True)) == ["train all", "train none"]
    recognitions = [s for s in plan(exp) if s.argv[0] == "recognize"]
    assert recognitions and all(s.up_to_date() for s in recognitions)
    assert all(len(json.loads((exp.folder / "models" / n / "metrics.json").read_text())) == 1 for n in ("none", "all"))
    time.sleep(0.05)  # so the next checkpoints are visibly newer than the interim outputs
    assert run(exp, config, only="train") == []  # resumes both for their second and last epoch
    for name in ("none", "all"):
        model = exp.folder / "models" / name
        assert len(json.loads((model / "metrics.json").read_text())) == 2
        assert (model / "DONE").exists() and exp.paths.stamp(f"train {name}").is_file()
    assert "training 2 variants, 2 at a time" in capsys.readouterr().out
    # a new experiment folder continues from exported model folders (as committed: no last.pt)
    exported = tmp_path / "exported"
    for name in ("none", "all"):
        for file in EXPORTED_FILES:
            (exported / name).mkdir(parents=True, exist_ok=True)
            (exported / name / file).write_bytes((exp.folder / "models" / name / file).read_bytes())
    config.write_text(config.read_text().replace("max_epochs = 2", "max_epochs = 3")
                      .replace("train_jobs = 2", f'train_jobs = 2\nresume_from = "{exported}"'))
    again = load_experiment(config, tmp_path / "again")
    run(again, config, only="train")
    assert "continues from" in capsys.readouterr().out
    for name in ("none", "all"):
        metrics = json.loads((again.folder / "models" / name / "metrics.json").read_text())
        assert [row["epoch"] for row in metrics] == [1, 2, 3] and (again.folder / "models" / name / "DONE").exists()


def test_page_level_splits_the_segmentation_cost_into_unannotated_lines_order_and_crops(tmp_path):
    """A predicted page with a printed header the annotators left out and two lines swapped:
    dropping the header and restoring ground-truth order leaves no error, since the crops
    themselves are read right.  The runner's page-eval steps score them, the report reads that."""
    from pipeline.cli import main as htr
    from pipeline.report import page_level
    from pipeline.run import page_eval_steps
    config, exp = _experiment(tmp_path)
    texts = {"g1": "dear sir", "g2": "your letter came", "g3": "yours truly"}
    write_manifest(exp.test, [LineRecord(id=k, image=f"{k}.png", text=v, page="/p/page.jpg") for k, v in texts.items()])
    seg = exp.folder / "segment"
    predicted = {"p1": ("FORM 12", None), "p2": ("dear sir", "g1"), "p3": ("yours truly", "g3"),
                 "p4": ("your letter came", "g2")}
    write_manifest(seg / "lines" / "manifest.jsonl",
                   [LineRecord(id=k, image=f"{k}.png", text="", page="/p/page.jpg") for k in predicted])
    (seg / "eval.json").write_text(json.dumps({"pages": [{"page": "page", "line_map": {k: g for k, (_, g) in predicted.items()}}]}))
    for variant in exp.variants:
        for system in exp.systems:
            hyp = exp.folder / "hyp" / variant / f"test.{system_slug(system)}.tsv"
            hyp.parent.mkdir(parents=True, exist_ok=True)
            hyp.write_text("".join(f"{k}\t{v}\n" for k, v in texts.items()))
            hyp.with_name(f"test-seg.{system_slug(system)}.tsv").write_text(
                "".join(f"{k}\t{text}\n" for k, (text, _) in predicted.items()))
    for variant in exp.variants:
        for step in page_eval_steps(exp, variant):
            assert htr(step.argv) == 0 and step.up_to_date()
    header, *rows = page_level(exp)
    assert header[2:6] == ["GT lines CER %", "predicted CER %", "annotated only CER %", "annotated, GT order CER %"]
    assert len(rows) == 4
    for row in rows:
        gt, predicted_cer, annotated, in_order = (float(cell.split()[0]) for cell in row[2:6])
        assert gt == 0.0 and in_order == 0.0
        assert predicted_cer > annotated > 0.0


def test_an_unknown_stage_key_is_refused_when_the_config_loads_naming_the_key_and_the_file(tmp_path):
    config = tmp_path / "typo.toml"
    for added, typo in (("[train]\nmax_minutse = 1\n", "max_minutse"), ("[lm]\nordre = 3\n[train]\n", "ordre")):
        config.write_text(CONFIG.format(root=tmp_path).replace("[train]\n", added))
        with pytest.raises(ValueError) as error:
            load_experiment(config, tmp_path / "exp")
        assert str(config) in str(error.value) and f"unknown key '{typo}'" in str(error.value)
    config.write_text(CONFIG.format(root=tmp_path).replace('dropout_where = "all"', 'dropout_were = "all"'))
    with pytest.raises(ValueError, match="unknown key 'dropout_were' in \\[\\[variants\\]\\] 'dropout-all'"):
        load_experiment(config, tmp_path / "exp")
    # the report of a finished folder reads its config without the stage check
    assert load_experiment(config, tmp_path / "exp", check_stages=False).variants["dropout-all"] == {"dropout_were": "all"}


def test_resume_from_as_a_table_seeds_each_variant_from_its_own_folder_and_refuses_an_unknown_variant(tmp_path, capsys):
    """A probe kept under its own name (models/copiste-next/PROBE) continues as a variant of an
    experiment: the table names each variant's folder; a variant it leaves out starts afresh."""
    from pipeline.folders import WARM_START
    from pipeline.run import seed_from_exported
    kept = tmp_path / "kept" / "probe-none"
    kept.mkdir(parents=True)
    for name in WARM_START:
        (kept / name).write_text("[]" if name.endswith(".json") else "weights")
    config = tmp_path / "exp.toml"
    table = f'resume_from = {{ "dropout-none" = "{kept}" }}\n'
    config.write_text(table + CONFIG.format(root=tmp_path))
    exp = load_experiment(config, tmp_path / "exp")
    assert exp.resume_source("dropout-none") == kept and exp.resume_source("dropout-all") is None
    seed_from_exported(exp)
    assert "dropout-none: continues from" in capsys.readouterr().out
    assert all((exp.paths.model("dropout-none") / name).read_bytes() == (kept / name).read_bytes() for name in WARM_START)
    assert not exp.paths.model("dropout-all").exists()
    config.write_text(f'resume_from = "{tmp_path / "kept"}"\n' + CONFIG.format(root=tmp_path))
    assert load_experiment(config, tmp_path / "exp").resume_source("dropout-all") == tmp_path / "kept" / "dropout-all"
    config.write_text(table.replace("dropout-none", "dropout-typo") + CONFIG.format(root=tmp_path))
    with pytest.raises(ValueError, match="resume_from names dropout-typo, not a variant"):
        load_experiment(config, tmp_path / "exp")


def test_the_shipped_experiment_configs_pass_the_stage_key_check():
    root = Path(__file__).resolve().parents[1] / "configs"
    for name in ("synthetic.toml", "copiste.toml", "copiste-line.toml"):
        assert load_experiment(root / name).variants


def test_every_image_kind_of_the_test_pages_folder_is_segmented(tmp_path):
    config, _ = _experiment(tmp_path)
    pages = tmp_path / "pages"
    pages.mkdir()
    for name in ("a.tiff", "b.JPG", "c.webp", "c.xml", "notes.txt"):
        (pages / name).write_bytes(b"")
    config.write_text(config.read_text().replace("[data]\n", f'[data]\ntest_pages = "{pages}"\n'))
    exp = load_experiment(config, tmp_path / "exp")
    [segment] = [s for s in plan(exp) if s.kind == "segment"]
    assert [p.name for p in segment.inputs] == ["a.tiff", "b.JPG", "c.webp"]
    assert segment.outputs == [exp.paths.predicted_xml(p) for p in segment.inputs]


def test_with_test_pages_the_plan_scores_the_pages_where_the_report_reads_them(tmp_path):
    config, _ = _experiment(tmp_path)
    (tmp_path / "pages").mkdir()
    (tmp_path / "pages" / "a.jpg").write_bytes(b"")
    config.write_text(config.read_text().replace("[data]\n", f'[data]\ntest_pages = "{tmp_path / "pages"}"\n'))
    exp = load_experiment(config, tmp_path / "exp")
    steps = plan(exp)
    pages = [s for s in steps if s.kind == "page-eval"]
    assert {out for s in pages for out in s.outputs} == {exp.paths.page_scores(v, system) for v in exp.variants
                                                           for system in exp.systems}
    decoded = {out for s in steps if s.kind == "decode" for out in s.outputs}
    assert all(set(s.inputs) & decoded and exp.paths.segment_eval in s.inputs for s in pages)
    assert all(steps.index(s) > steps.index(d) for s in pages for d in steps  # each after the decodes it reads
               if d.kind == "decode" and set(d.outputs) & set(s.inputs))


def test_the_plan_writes_where_the_experiment_folder_says_the_report_reads(tmp_path):
    _, exp = _experiment(tmp_path)
    steps = plan(exp)
    scored = {out for s in steps if s.kind == "evaluate" for out in s.outputs}
    assert scored == {exp.paths.scores(v, "test", system) for v in exp.variants for system in exp.systems}
    decoded = {out for s in steps if s.kind == "decode" for out in s.outputs}
    assert decoded == {exp.paths.hyp(v, "test", system) for v in exp.variants for system in exp.systems}
    train = next(s for s in steps if s.kind == "train")
    assert train.model == exp.paths.model("dropout-none") and train.outputs == [exp.paths.done("dropout-none")]
    tune = next(s for s in steps if s.kind == "tune")
    tuned = exp.paths.tuned("dropout-none")
    assert tune.outputs == [tuned] and tune.argv[tune.argv.index("--out") + 1] == str(tuned)
    assert tune.argv[tune.argv.index("--lm") + 1] == str(exp.paths.lm)  # the shared LM folder, not a copy of it
    [decode] = [s for s in steps if s.kind == "decode" and "dropout-none" in s.name and "--tuned" in s.argv]
    assert decode.argv[decode.argv.index("--tuned") + 1] == str(tuned) and tuned in decode.inputs


def test_the_list_before_the_data_exists_names_the_prepare_commands_and_a_missing_page_folder_is_one_line(tmp_path, capsys):
    from pipeline.run import main

    config = tmp_path / "fresh.toml"
    config.write_text(CONFIG.format(root=tmp_path / "data").replace(
        "[data]\n", '[data]\nprepare = ["prepare", "synthetic", "--out", "somewhere"]\ntest_pages = "nowhere/pages"\n'))
    assert main([str(config), "--list", "--folder", str(tmp_path / "exp")]) == 0
    assert "todo  prepare the data: htr prepare synthetic --out somewhere" in capsys.readouterr().out
    (tmp_path / "data").mkdir()
    for name in ("train", "dev", "test"):
        (tmp_path / "data" / f"{name}.jsonl").write_text("")
    assert main([str(config), "--list", "--folder", str(tmp_path / "exp")]) == 1
    assert "nowhere/pages: the config's test_pages folder does not exist" in capsys.readouterr().err


def _tune_step(exp, variant="dropout-all"):
    return next(s for s in plan(exp) if s.kind == "tune" and variant in s.name)


def test_every_tuned_decoder_is_tuned_and_one_added_later_is_tuned_alone(tmp_path):
    config = tmp_path / "exp.toml"
    config.write_text(CONFIG.format(root=tmp_path) + '[[decode.systems]]\nname = "+ character LM"\n'
                      'decoder = "char-lm"\ntune = true\n')
    exp = load_experiment(config, tmp_path / "exp")
    assert exp.tune_decoders == ["lexicon", "char-lm"]
    step = _tune_step(exp)
    assert step.argv[step.argv.index("--decoder"):][:3] == ["--decoder", "lexicon", "char-lm"]
    tuned = exp.paths.tuned("dropout-all")
    tuned.parent.mkdir(parents=True)
    tuned.write_text(json.dumps({"lexicon": {"lm_weight": 0.5, "word_bonus": 0.0}}))  # tuned before char-lm was added
    step = _tune_step(exp)
    assert not step.up_to_date()
    assert step.argv[step.argv.index("--decoder"):][:2] == ["--decoder", "char-lm"]
    assert step.argv[step.argv.index("--decoder") + 2].startswith("--")
    tuned.write_text(json.dumps({"lexicon": {"lm_weight": 0.5}, "char-lm": {"lm_weight": 1.5}}))
    assert _tune_step(exp).up_to_date()
    later = time.time() + 10  # new dev outputs: every decoder again
    exp.paths.logits("dropout-all", "dev").parent.mkdir(parents=True, exist_ok=True)
    exp.paths.logits("dropout-all", "dev").write_text("")
    os.utime(exp.paths.logits("dropout-all", "dev"), (later, later))
    step = _tune_step(exp)
    assert not step.up_to_date() and step.argv[step.argv.index("--decoder"):][:3] == ["--decoder", "lexicon", "char-lm"]


def test_the_old_tune_decoder_key_is_refused_with_the_fix(tmp_path):
    config = tmp_path / "old.toml"
    config.write_text(CONFIG.format(root=tmp_path).replace("[[decode.systems]]", '[decode]\ntune_decoder = "lexicon"\n'
                                                           '[[decode.systems]]', 1))
    with pytest.raises(ValueError, match="tune_decoder is no longer read.*remove the line"):
        load_experiment(config, tmp_path / "exp")
    assert load_experiment(config, tmp_path / "exp", check_stages=False).tune_decoders == ["lexicon"]
