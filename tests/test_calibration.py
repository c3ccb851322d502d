"""Calibration of word confidences (pipeline.calibration): bins, ECE, the two inputs, the runner
step and the report's table and reliability plot, on generated posteriors."""
from __future__ import annotations

import json

import numpy as np
import pytest

from pipeline.calibration import computed_confidences, main, reliability, right_words
from pipeline.decode import Hypothesis, write_hypotheses
from pipeline.logits import SyntheticNoise, save_logits, synthetic_logprobs

ALPHABET = ["", " ", "a", "c", "e", "h", "m", "n", "o", "s", "t", "'", "l"]


def test_a_word_is_right_when_the_alignment_pairs_it_with_the_same_word():
    assert right_words("the cat sat", ["the", "bat", "sat"]) == [True, False, True]
    assert right_words("the cat", ["the", "the", "cat"]) == [True, False, True]  # an inserted word is wrong
    assert right_words("l\u2019homme  est", ["l'homme", "est"]) == [True, True]  # compared after normalize
    assert right_words("", ["a"]) == [False] and right_words("a b", []) == []


def test_bins_and_expected_calibration_error():
    pairs = [(0.95, True)] * 3 + [(0.95, False)] + [(0.15, True), (0.15, False)]
    data = reliability(pairs, bins=10)
    nine, one = data["bins"][9], data["bins"][1]
    assert (nine["words"], nine["accuracy"], one["words"], one["accuracy"]) == (4, 0.75, 2, 0.5)
    assert nine["confidence"] == pytest.approx(0.95) and data["bins"][5]["words"] == 0
    assert data["ece"] == pytest.approx(4 / 6 * 0.2 + 2 / 6 * 0.35)
    assert data["accuracy"] == pytest.approx(4 / 6) and data["words"] == 6
    assert reliability([(1.0, True)], bins=4)["bins"][3]["words"] == 1  # confidence 1 is in the top bin
    assert reliability([])["ece"] is None


def _decoded_set(tmp_path, seed: int = 0):
    """References, a log-probability cache of noisy posteriors of them, and its greedy-like hypotheses
    with every third line's first word replaced (as a lexicon might)."""
    rng = np.random.default_rng(seed)
    texts = ["the cat sat", "a hat on me", "no one else", "the man's hat", "to tea", "as the sea"] * 3
    ids = [f"l{i}" for i in range(len(texts))]
    noise = SyntheticNoise(confusion=0.15, flat=0.1)
    arrays = [synthetic_logprobs(text, ALPHABET, rng, noise) for text in texts]
    save_logits(tmp_path / "test.npz", ids, arrays, ALPHABET)
    hyps = [("mat " + t.split(" ", 1)[1]) if i % 3 == 0 else t for i, t in enumerate(texts)]
    (tmp_path / "hyp.tsv").write_text("".join(f"{i}\t{h}\n" for i, h in zip(ids, hyps)))
    (tmp_path / "ref.tsv").write_text("".join(f"{i}\t{t}\n" for i, t in zip(ids, texts)))
    return ids, texts, hyps, arrays


def test_the_side_file_and_the_hypotheses_with_their_logits_give_the_same_calibration(tmp_path, capsys):
    ids, texts, hyps, arrays = _decoded_set(tmp_path)
    write_hypotheses(tmp_path / "dec.tsv", ids, [Hypothesis(h, []) for h in hyps], True, arrays, ALPHABET, 0)
    assert main(["--ref", str(tmp_path / "ref.tsv"), "--conf", str(tmp_path / "dec.conf.jsonl"),
                 "--out", str(tmp_path / "a.json")]) == 0
    assert main(["--ref", str(tmp_path / "ref.tsv"), "--hyp", str(tmp_path / "hyp.tsv"), "--logits",
                 str(tmp_path / "test.npz"), "--out", str(tmp_path / "b.json")]) == 0
    a, b = (json.loads((tmp_path / name).read_text()) for name in ("a.json", "b.json"))
    words = sum(len(h.split()) for h in hyps)
    assert a["words"] == b["words"] == words and a["lines"] == len(ids)
    assert a["accuracy"] == b["accuracy"] == pytest.approx((words - len(ids) // 3) / words)
    assert a["ece"] == pytest.approx(b["ece"], abs=1e-3) and 0 <= b["ece"] <= 1
    replaced = [c for line_id, words in computed_confidences(tmp_path / "hyp.tsv", tmp_path / "test.npz").items()
                for k, (word, c) in enumerate(words) if k == 0 and int(line_id[1:]) % 3 == 0]
    assert max(replaced) < 0.05  # "mat" for "the"/"a"/...: the optical evidence says no
    assert "ECE" in capsys.readouterr().out


def test_the_cli_needs_one_input_and_names_a_missing_file(tmp_path, capsys):
    with pytest.raises(SystemExit):
        main(["--ref", "r.tsv", "--out", str(tmp_path / "c.json")])
    assert "--conf" in capsys.readouterr().err
    (tmp_path / "r.tsv").write_text("a\tthe cat\n")
    assert main(["--ref", str(tmp_path / "r.tsv"), "--conf", str(tmp_path / "none.conf.jsonl"),
                 "--out", str(tmp_path / "c.json")]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "none.conf.jsonl: not found" in err and "--confidences" in err


def test_an_all_blank_output_has_no_ece_and_is_no_error(tmp_path):
    (tmp_path / "r.tsv").write_text("a\tthe cat\n")
    (tmp_path / "h.conf.jsonl").write_text(json.dumps({"id": "a", "confidence": 0.0, "words": []}) + "\n")
    assert main(["--ref", str(tmp_path / "r.tsv"), "--conf", str(tmp_path / "h.conf.jsonl"),
                 "--out", str(tmp_path / "c.json")]) == 0
    assert json.loads((tmp_path / "c.json").read_text())["ece"] is None


def test_the_runner_calibrates_each_decoded_test_set_and_the_report_shows_it(tmp_path):
    from test_run_report import _experiment, _write_outputs

    from pipeline.cli import main as htr
    from pipeline.report import write_report
    from pipeline.run import plan

    config, exp = _experiment(tmp_path)
    exp.folder.mkdir()
    (exp.folder / "config.toml").write_text(config.read_text())
    _write_outputs(tmp_path, exp)
    records = [json.loads(line) for line in exp.test.read_text().splitlines()]
    rng = np.random.default_rng(3)
    alphabet = ["", *sorted(set("".join(r["text"] for r in records)) | {"x"})]
    for variant in exp.variants:
        arrays = [synthetic_logprobs(r["text"], alphabet, rng, SyntheticNoise(confusion=0.2)) for r in records]
        save_logits(exp.paths.logits(variant, "test"), [r["id"] for r in records], arrays, alphabet)
        for system in exp.systems:
            hyp = exp.paths.hyp(variant, "test", system)
            hyp.parent.mkdir(parents=True, exist_ok=True)
            hyp.write_text("".join(f"{r['id']}\t{r['text'].replace('cat', 'xat')}\n" for r in records))
    steps = [s for s in plan(exp) if s.kind == "calibration"]
    assert {out for s in steps for out in s.outputs} == {exp.paths.calibration(v, "test", s) for v in exp.variants
                                                         for s in exp.systems}
    for step in steps:
        assert htr(step.argv) == 0 and step.up_to_date()
    paths = write_report(exp.folder)
    markdown = paths["markdown"].read_text()
    assert "## Confidence calibration" in markdown and "![reliability](reliability.png)" in markdown
    header, *rows = json.loads(paths["metrics"].read_text())["tables"]["calibration"]
    assert header[-1] == "ECE %" and len(rows) == 4 and all(row[2] == str(7 * len(records)) for row in rows)
    assert all(float(row[3]) == pytest.approx(100 * 6 / 7, abs=0.1) for row in rows)  # "xat" of 7 words is wrong
    assert (exp.folder / "report" / "reliability.png").stat().st_size > 1000
    assert paths["html"].read_text().count("data:image/png;base64,") >= 3 + 8  # three plots, eight gallery lines
