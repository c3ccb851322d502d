"""CER/WER: summed edit operations, intervals, paired reductions, the CLI."""
from __future__ import annotations

import json

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pipeline.evaluate import (bootstrap_rate, by_writer, edit_counts, evaluate, main, paired_reduction,
                               read_texts, summary)
from pipeline.metrics import cpu_time

split = str.split


def test_edit_counts_separate_substitutions_insertions_deletions():
    counts = edit_counts("abcd", "axcde")
    assert (counts.sub, counts.ins, counts.dele, counts.ref) == (1, 1, 0, 4)
    assert edit_counts("abc", "").dele == 3


def test_rates_are_summed_over_the_set_not_averaged_per_line():
    refs = {"a": "ab", "b": "abcdefgh"}
    hyps = {"a": "", "b": "abcdefgh"}
    result = summary(evaluate(refs, hyps, tokenize=split), samples=50)
    assert result["cer"] == 2 / 10  # a per-line mean would give 0.5


def test_missing_hypothesis_counts_as_empty_output():
    result = summary(evaluate({"a": "one two"}, {}, tokenize=split), samples=10)
    assert result["missing"] == 1 and result["wer"] == 1.0 and result["cer"] == 1.0


@given(st.lists(st.text(alphabet="ab c", min_size=1, max_size=12), min_size=1, max_size=8))
@settings(max_examples=60, deadline=None)
def test_identical_hypotheses_score_zero(texts):
    refs = {str(i): t for i, t in enumerate(texts)}
    result = summary(evaluate(refs, dict(refs), tokenize=split), samples=20)
    assert result["cer"] == 0 and result["chars"]["errors"] == 0


@given(st.text(alphabet="abc ", max_size=15), st.text(alphabet="abc ", max_size=15))
@settings(max_examples=100, deadline=None)
def test_error_count_is_the_edit_distance_and_bounded(ref, hyp):
    counts = edit_counts(ref, hyp)
    assert counts.errors <= max(len(ref), len(hyp))
    assert counts.errors >= abs(len(ref) - len(hyp))


def test_bootstrap_interval_contains_the_point_estimate():
    rng = np.random.default_rng(1)
    errors = rng.integers(0, 5, 200).astype(float)
    lengths = rng.integers(10, 30, 200).astype(float)
    low, high = bootstrap_rate(errors, lengths, samples=300)
    assert low <= errors.sum() / lengths.sum() <= high and low < high


def test_paired_reduction_is_positive_when_the_new_system_is_better():
    lengths = np.full(100, 20.0)
    base = np.full(100, 4.0)
    new = np.full(100, 2.0)
    result = paired_reduction(base, new, lengths, samples=200)
    assert result["reduction"] == 0.5 and result["low"] <= 0.5 <= result["high"]


def test_cli_reads_tsv_and_manifest_and_writes_json(tmp_path, capsys):
    ref = tmp_path / "manifest.jsonl"
    ref.write_text(json.dumps({"id": "l1", "image": "x.png", "text": "le chat dort."}) + "\n"
                   + json.dumps({"id": "l2", "image": "y.png", "text": "bonjour"}) + "\n", encoding="utf-8")
    hyp = tmp_path / "hyp.tsv"
    hyp.write_text("l1\tle chat dort.\nl2\tbonjoor\n", encoding="utf-8")
    out = tmp_path / "eval.json"
    assert main(["--ref", str(ref), "--hyp", str(hyp), "--out", str(out), "--bootstrap", "50"]) == 0
    data = json.loads(out.read_text(encoding="utf-8"))
    assert data["chars"]["sub"] == 1 and data["lines"] == 2
    assert {line["id"] for line in data["per_line"]} == {"l1", "l2"}
    assert "CER" in capsys.readouterr().out
    assert read_texts(hyp)["l2"] == "bonjoor"


def test_cli_compares_two_systems_line_by_line(tmp_path, capsys):
    """--against: the relative reduction of the errors over a baseline on the same lines, with
    a paired interval; a system that fixes every error the baseline makes on most lines is
    better beyond the luck of the lines, and the comparison the other way round is negative."""
    lines = {f"l{i}": "le chat dort sur le tapis" for i in range(40)}
    ref, good, bad = tmp_path / "ref.tsv", tmp_path / "good.tsv", tmp_path / "bad.tsv"
    ref.write_text("".join(f"{k}\t{v}\n" for k, v in lines.items()), encoding="utf-8")
    good.write_text("".join(f"{k}\t{v if i % 4 else 'le chat dort sur le tapi'}\n"
                            for i, (k, v) in enumerate(lines.items())), encoding="utf-8")
    bad.write_text("".join(f"{k}\tle chot dort sur le tapis\n" for k in lines), encoding="utf-8")
    out = tmp_path / "eval.json"
    assert main(["--ref", str(ref), "--hyp", str(good), "--against", str(bad), "--out", str(out), "--bootstrap", "200"]) == 0
    against = json.loads(out.read_text(encoding="utf-8"))["against"]
    assert against["hyp"] == str(bad)
    assert against["cer"]["reduction"] == 0.75 and 0 < against["cer"]["low"] <= 0.75 <= against["cer"]["high"]
    assert "fewer errors than" in capsys.readouterr().out
    assert main(["--ref", str(ref), "--hyp", str(bad), "--against", str(good), "--out", str(out), "--bootstrap", "200"]) == 0
    assert json.loads(out.read_text(encoding="utf-8"))["against"]["cer"]["high"] < 0


@given(st.lists(st.tuples(st.sampled_from("wxyz"), st.text(alphabet="ab ", min_size=1, max_size=8),
                          st.text(alphabet="ab ", max_size=8)), min_size=1, max_size=12))
@settings(max_examples=60, deadline=None)
def test_each_writers_rates_are_those_of_its_own_lines(lines):
    refs = {str(i): ref for i, (_, ref, _) in enumerate(lines)}
    hyps = {str(i): hyp for i, (_, _, hyp) in enumerate(lines)}
    writers = [writer for writer, _, _ in lines]
    result = evaluate(refs, hyps, tokenize=split)
    data = by_writer(result, writers, samples=30)
    assert [w["writer"] for w in data["per_writer"]] == sorted(set(writers)) and data["writers"] == len(set(writers))
    for writer in data["per_writer"]:  # each writer's rates are those of its own lines scored alone
        own = [key for key, name in zip(refs, writers) if name == writer["writer"]]
        alone = summary(evaluate({k: refs[k] for k in own}, {k: hyps[k] for k in own}, tokenize=split), samples=10)
        assert (writer["cer"], writer["wer"], writer["lines"]) == pytest.approx((alone["cer"], alone["wer"], len(own)))
    assert sum(w["lines"] for w in data["per_writer"]) == len(lines)


def test_resampling_writers_keeps_a_writers_lines_together():
    """Two writers, one perfect and one with every character wrong, 20 lines each: resampling
    lines gives a narrow interval around 50%, resampling writers sees sets of only one of them."""
    refs = {f"l{i}": "abcd" for i in range(40)}
    hyps = {f"l{i}": "abcd" if i < 20 else "wxyz" for i in range(40)}
    result = evaluate(refs, hyps, tokenize=split)
    low, high = by_writer(result, ["good"] * 20 + ["bad"] * 20, samples=400)["cer_ci95"]
    line_low, line_high = summary(result, samples=400)["cer_ci95"]
    assert (low, high) == (0.0, 1.0) and 0.3 < line_low < line_high < 0.7


def test_cli_by_writer_reports_each_writer_and_names_a_manifest_without_writers(tmp_path, capsys):
    ref = tmp_path / "manifest.jsonl"
    ref.write_text("".join(json.dumps({"id": f"l{i}", "image": f"l{i}.png", "text": "le chat", "writer": f"w{i % 3}"}) + "\n"
                           for i in range(9)), encoding="utf-8")
    hyp, base = tmp_path / "hyp.tsv", tmp_path / "base.tsv"
    hyp.write_text("".join(f"l{i}\tle chat\n" for i in range(9)), encoding="utf-8")
    base.write_text("".join(f"l{i}\tle chot\n" for i in range(9)), encoding="utf-8")
    out = tmp_path / "eval.json"
    assert main(["--ref", str(ref), "--hyp", str(hyp), "--against", str(base), "--by-writer", "--out", str(out),
                 "--bootstrap", "50"]) == 0
    data = json.loads(out.read_text(encoding="utf-8"))
    assert [w["writer"] for w in data["by_writer"]["per_writer"]] == ["w0", "w1", "w2"]
    assert data["against"]["by_writer"]["cer"]["reduction"] == 1.0
    assert "by writer (3 writers)" in capsys.readouterr().out
    assert main(["--ref", str(hyp), "--hyp", str(hyp), "--by-writer"]) == 2
    assert "needs a manifest (.jsonl) that names each line's writer" in capsys.readouterr().err
    ref.write_text(json.dumps({"id": "l0", "image": "l0.png", "text": "le chat"}) + "\n", encoding="utf-8")
    assert main(["--ref", str(ref), "--hyp", str(hyp), "--by-writer"]) == 2
    assert "1 lines are not there or name no writer (e.g. l0)" in capsys.readouterr().err


def test_cli_names_a_missing_baseline(tmp_path, capsys):
    ref = tmp_path / "ref.tsv"
    ref.write_text("l1\tbonjour\n", encoding="utf-8")
    assert main(["--ref", str(ref), "--hyp", str(ref), "--against", str(tmp_path / "base.tsv")]) == 2
    assert "base.tsv" in capsys.readouterr().err

def test_cli_names_a_missing_file(tmp_path, capsys):
    assert main(["--ref", str(tmp_path / "nope.tsv"), "--hyp", str(tmp_path / "h.tsv")]) == 2
    assert "nope.tsv" in capsys.readouterr().err


def test_training_tuning_and_evaluation_count_the_same_character_and_word_errors():
    """One CER/WER definition (pipeline.metrics): htr evaluate's per-line counts, the totals
    htr tune ranks by and the per-line char_edits that training sums for its dev CER agree,
    typographic apostrophes and doubled spaces folded alike."""
    from pipeline.metrics import char_edits, error_rates, word_edits
    refs = {"a": "l\u2019homme  est là,", "b": "the cat sat"}
    hyps = {"a": "l'homme est la", "b": "the bat sat"}
    chars, words = evaluate(refs, hyps).totals()
    rates = error_rates((refs[k], hyps[k]) for k in refs)
    per_line = [char_edits(refs[k], hyps[k]) for k in refs]
    assert (rates.char_errors, rates.chars) == (chars.errors, chars.ref) == (
        sum(e.errors for e in per_line), sum(e.ref for e in per_line)) == (3, 26)
    assert (rates.word_errors, rates.words) == (words.errors, words.ref) == (
        sum(word_edits(refs[k], hyps[k]).errors for k in refs), 8)


def test_cpu_time_adds_up_each_epochs_training_seconds_times_threads():
    rows = [{"epoch_seconds": 1800.0}, {"epoch_seconds": 900.0}, {"epoch_seconds": 3600.0}]
    assert cpu_time(rows, 1) == pytest.approx([0.5, 0.75, 1.75])
    assert cpu_time(rows, 2) == pytest.approx([1.0, 1.5, 3.5])
    assert cpu_time(rows, 1, unit_seconds=60) == pytest.approx([30.0, 45.0, 105.0])
    assert cpu_time([], 2) == []
    # rows that recorded their cores (htr train does) count at those, older rows at the argument
    mixed = [{"epoch_seconds": 60.0}, {"epoch_seconds": 60.0, "cores": 2}, {"epoch_seconds": 60.0, "cores": 1}]
    assert cpu_time(mixed, 1, unit_seconds=60) == pytest.approx([1.0, 3.0, 4.0])
