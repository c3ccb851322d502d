"""Optical models: output frames, dropout placement, model folder, benchmark JSON."""
from __future__ import annotations

import json

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

from pipeline.bench import BenchConfig, run_bench
from pipeline.model import FastDropout, ModelConfig, build_model, count_parameters, padded_bilstm
from pipeline.model_folder import load_model_folder, save_model_folder



@pytest.fixture(autouse=True)
def one_thread():
    """Tiny networks run fastest (and steadiest on a busy machine) on one thread."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)

TINY = dict(height=16, mdlstm_hidden="2,3,4", mdlstm_conv="3,4", sub_height=2, mdlstm_impl="wavefront",
            crnn_conv="4,6,8", crnn_pools=3, crnn_lstm_hidden=6, crnn_lstm_layers=2)


def tiny(arch: str, **changes) -> ModelConfig:
    return ModelConfig(arch=arch, **{**TINY, **changes})


@pytest.mark.parametrize("arch", ["mdlstm", "crnn"])
def test_lines_give_ceil_width_over_8_frames_of_log_probabilities(arch):
    torch.manual_seed(0)
    model = build_model(tiny(arch), 5).eval()
    images = torch.rand(3, 1, 16, 64)
    widths = torch.tensor([64, 40, 17])
    with torch.no_grad():
        logprobs, frames = model(images, widths)
    assert logprobs.shape == (8, 3, 5)
    assert frames.tolist() == [8, 5, 3] == [model.frames(w) for w in (64, 40, 17)]
    assert torch.allclose(logprobs.exp().sum(-1), torch.ones(8, 3), atol=1e-5)


@pytest.mark.parametrize("keep,frames", [(0, [8, 5, 3]), (1, [16, 10, 5]), (2, [32, 20, 9])])
def test_crnn_keep_width_gives_2_to_the_n_times_the_frames(keep, frames):
    """--crnn-keep-width N: the last N poolings halve the height only, so a line of width W
    gets ceil(W / 2^(pools - N)) frames, each a valid distribution."""
    model = build_model(tiny("crnn", crnn_keep_width=keep), 5).eval()
    with torch.no_grad():
        logprobs, got = model(torch.rand(3, 1, 16, 64), torch.tensor([64, 40, 17]))
    assert logprobs.shape == (frames[0], 3, 5) and got.tolist() == frames
    assert torch.allclose(logprobs.exp().sum(-1), torch.ones(frames[0], 3), atol=1e-5)


def test_crnn_keep_width_beyond_the_poolings_is_refused():
    with pytest.raises(ValueError, match="crnn_keep_width"):
        tiny("crnn", crnn_keep_width=4).check()


def test_pham_network_reduces_height_32x_and_width_8x():
    model = build_model(ModelConfig(mdlstm_impl="wavefront"), 10).eval()
    with torch.no_grad():
        logprobs, frames = model(torch.rand(1, 1, 64, 96), torch.tensor([96]))
    assert logprobs.shape == (12, 1, 10) and frames.tolist() == [12]
    assert [layer.hidden for layer in model.lstms] == [2, 10, 50]
    assert [conv.out_channels for conv in model.convs] == [6, 20]


@pytest.mark.parametrize("arch,where,expected", [
    ("mdlstm", "none", 0), ("mdlstm", "top", 1), ("mdlstm", "all", 3),
    ("crnn", "none", 0), ("crnn", "top", 1), ("crnn", "all", 2)])
def test_dropout_placements(arch, where, expected):
    torch.manual_seed(0)
    model = build_model(tiny(arch, dropout_where=where), 5)
    assert sum(isinstance(m, FastDropout) for m in model.modules()) == expected
    images, widths = torch.rand(2, 1, 16, 32), torch.tensor([32, 32])
    model.train()
    with torch.no_grad():
        first, second = model(images, widths)[0], model(images, widths)[0]
    # dropout makes training passes random; evaluation is always deterministic
    assert torch.equal(first, second) == (expected == 0)
    model.eval()
    with torch.no_grad():
        assert torch.equal(model(images, widths)[0], model(images, widths)[0])


@pytest.mark.parametrize("p", [0.2, 0.5])
def test_fast_dropout_drops_a_fraction_p_and_keeps_the_expected_value(p):
    torch.manual_seed(0)
    drop = FastDropout(p).train()
    x = torch.ones(64, 64, 32)
    y = drop(x)
    assert abs((y == 0).float().mean().item() - p) < 0.01
    assert abs(y.mean().item() - 1.0) < 0.02
    assert torch.equal(drop(x) == 0, drop(x) == 0) is False  # a new mask each call
    assert torch.equal(drop.eval()(x), x)


def test_top_dropout_is_only_on_the_last_lstm():
    model = build_model(tiny("mdlstm", dropout_where="top"), 5)
    assert [isinstance(d, FastDropout) for d in model.drops] == [False, False, True]


@pytest.mark.parametrize("arch,probs", [("mdlstm", "0.1,0,0.5"), ("crnn", "0.2,0.5")])
def test_dropout_layers_sets_each_lstm_layers_probability(arch, probs):
    """--dropout-layers gives each LSTM layer its own p (0: none), overriding --dropout-where."""
    model = build_model(tiny(arch, dropout_where="none", dropout_layers=probs), 5)
    expected = [float(p) for p in probs.split(",")]
    assert [d.p if isinstance(d, FastDropout) else 0.0 for d in model.drops] == expected


@pytest.mark.parametrize("arch,probs,message", [
    ("mdlstm", "0.5,0.5", "one probability per LSTM layer \\(3\\)"),
    ("crnn", "0.1,0.2,0.3", "one probability per LSTM layer \\(2\\)"),
    ("mdlstm", "0.1,x,0.5", "comma-separated probabilities"),
    ("mdlstm", "0.1,0.2,1.0", "must be in \\[0, 1\\)")])
def test_malformed_dropout_layers_is_refused_with_the_reason(arch, probs, message):
    with pytest.raises(ValueError, match=message):
        tiny(arch, dropout_layers=probs).check()


def test_sizes_are_configurable_and_checked():
    small = count_parameters(build_model(tiny("mdlstm"), 5))
    large = count_parameters(build_model(tiny("mdlstm", mdlstm_hidden="4,6,8"), 5))
    assert large > small
    with pytest.raises(ValueError, match="one entry fewer"):
        build_model(tiny("mdlstm", mdlstm_conv="3"), 5)
    with pytest.raises(ValueError):
        build_model(tiny("mdlstm", dropout=1.5), 5)


@pytest.mark.parametrize("arch", ["mdlstm", "crnn"])
def test_model_folder_round_trip(tmp_path, arch):
    torch.manual_seed(0)
    config = tiny(arch)
    model = build_model(config, 4).eval()
    save_model_folder(tmp_path, config, ["", "a", "b", "c"], model)
    loaded, loaded_config, alphabet = load_model_folder(tmp_path)
    assert alphabet == ["", "a", "b", "c"] and loaded_config == config
    images, widths = torch.rand(2, 1, 16, 48), torch.tensor([48, 30])
    with torch.no_grad():
        assert torch.allclose(model(images, widths)[0], loaded(images, widths)[0])
    described = json.loads((tmp_path / "model.json").read_text())
    assert described["parameters"] == count_parameters(model)


def test_missing_model_folder_names_the_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="model.json"):
        load_model_folder(tmp_path)


def test_bench_report_shape():
    config = BenchConfig(quick=True, widths="32,48", lines=1, height=16, naive_width=16, impls="naive,wavefront")
    report = run_bench(config, say=lambda text: None)
    for impl in ("naive", "wavefront"):
        assert report["mdlstm"][impl]["train_lines_per_s"] > 0
        assert report["mdlstm"][impl]["infer_lines_per_s"] > 0
    assert "scaled_from" in report["mdlstm"]["naive"]
    assert report["crnn"]["train_lines_per_s"] > 0
    assert report["params"]["mdlstm"] > 0 and report["params"]["crnn"] > 0


def test_bench_times_every_layer_and_relates_the_network_to_a_gemm():
    config = BenchConfig(quick=True, widths="32", lines=2, height=32, impls="wavefront")
    report = run_bench(config, say=lambda text: None)
    assert report["gemm_gflops"] > 0
    wavefront = report["mdlstm"]["wavefront"]
    assert 0 < wavefront["train_share_of_gemm"] and 0 < wavefront["infer_gflops"]
    layers = report["layers"]["mdlstm"]
    assert list(layers) == ["lstms.0", "convs.0", "lstms.1", "convs.1", "lstms.2", "output", "other", "step_ms"]
    timed = [t for name, t in layers.items() if name not in ("other", "step_ms")]
    assert all(t["forward_ms"] > 0 and t["backward_ms"] > 0 for t in timed)
    assert sum(t["forward_ms"] + t["backward_ms"] for t in timed) < layers["step_ms"]
    # 2 lines of 32x32 px: the first layer sees 16x16 cells of 4 inputs, 2 cells per direction
    assert layers["lstms.0"]["forward_mmacs"] == round(2 * 16 * 16 * 4 * 10 * (4 + 4) / 1e6, 3)
    assert report["mmacs_per_line"]["mdlstm"] > 0


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has a GPU")
def test_bench_on_a_missing_gpu_is_one_clear_message():
    with pytest.raises(ValueError, match="no CUDA device"):
        run_bench(BenchConfig(device="cuda", quick=True), say=lambda text: None)


def test_per_layer_subsampling_widths_give_the_top_layer_more_columns_and_ctc_more_frames():
    model = build_model(ModelConfig(mdlstm_impl="wavefront", sub_widths="2,1"), 10).eval()
    with torch.no_grad():
        logprobs, frames = model(torch.rand(1, 1, 64, 96), torch.tensor([96]))
    assert logprobs.shape == (24, 1, 10) and frames.tolist() == [24]  # width / 4, not / 8
    assert [conv.kernel_size for conv in model.convs] == [(4, 2), (4, 1)]
    with pytest.raises(ValueError, match="one width per conv layer"):
        ModelConfig(sub_widths="2,1,1").check()


@pytest.mark.parametrize("sub_widths", ["", "2,1"])
def test_mdlstm_net_in_the_lanes_layout_matches_the_wavefront_network(sub_widths):
    """With the C++ layer the whole network runs in the lanes layout (convs and output as
    GEMMs); outputs and every gradient are those of the (B, C, H, W) network."""
    from pipeline.bench import set_impl
    from pipeline.mdlstm import cpp_available
    if not cpp_available():
        pytest.skip("C++ scan unavailable")
    torch.manual_seed(0)
    model = build_model(ModelConfig(arch="mdlstm", height=32, sub_widths=sub_widths), 20).eval()
    images, widths = torch.rand(5, 1, 32, 72), torch.tensor([72, 60, 50, 40, 33])  # 5 lines: padded lanes
    weights = torch.randn(9 if not sub_widths else 18, 5, 20, generator=torch.Generator().manual_seed(1))
    results = {}
    for impl in ("wavefront", "cpp"):
        set_impl(model, impl)
        model.zero_grad()
        logprobs, frames = model(images, widths)
        (logprobs * weights).sum().backward()
        results[impl] = logprobs.detach(), frames, [p.grad.clone() for p in model.parameters()]
    (out_a, frames_a, grads_a), (out_b, frames_b, grads_b) = results["wavefront"], results["cpp"]
    torch.testing.assert_close(out_a, out_b, atol=1e-5, rtol=1e-5)
    assert torch.equal(frames_a, frames_b)
    for a, b in zip(grads_a, grads_b):
        torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-4)


@settings(max_examples=25, deadline=None)
@given(st.lists(st.integers(1, 12), min_size=1, max_size=5), st.booleans())
def test_padded_bilstm_equals_packing_the_sequences(lengths, training):
    """The CRNN's BLSTM on the plain padded tensor gives what packing gives: the same
    outputs inside every line (zeros past its end) and the same gradients."""
    torch.manual_seed(len(lengths))
    lstm = nn.LSTM(5, 3, bidirectional=True).train(training)
    steps, lengths = max(lengths), torch.tensor(lengths)
    x = torch.randn(steps, len(lengths), 5, requires_grad=True)
    packed = nn.utils.rnn.pack_padded_sequence(x, lengths, enforce_sorted=False)
    expected = nn.utils.rnn.pad_packed_sequence(lstm(packed)[0], total_length=steps)[0]
    got = padded_bilstm(lstm, x, lengths)
    torch.testing.assert_close(got, expected, atol=1e-6, rtol=1e-5)
    upstream = torch.randn_like(expected)
    inputs = [x, lstm.weight_ih_l0, lstm.weight_hh_l0_reverse, lstm.bias_ih_l0_reverse]
    for a, b in zip(torch.autograd.grad(got, inputs, upstream), torch.autograd.grad(expected, inputs, upstream)):
        torch.testing.assert_close(a, b, atol=1e-6, rtol=1e-5)


def batch_vs_alone_gaps(model: nn.Module) -> list[float]:
    """Per line of a batch of five random lines of different widths (32 px high), the largest
    difference between its log-probabilities in the batch and alone."""
    torch.manual_seed(0)
    widths = torch.tensor([100, 61, 37, 90, 13])
    images = torch.zeros(5, 1, 32, 100)
    for b, width in enumerate(widths.tolist()):
        images[b, :, :, :width] = torch.rand(1, 32, width)
    with torch.no_grad():
        batched, frames = model.eval()(images, widths)
        return [(batched[:n, b] - model(images[b:b + 1, :, :, :w], widths[b:b + 1])[0][:, 0]).abs().max().item()
                for b, (w, n) in enumerate(zip(widths.tolist(), frames.tolist()))]


@pytest.mark.parametrize("impl", ["wavefront", "cpp"])
def test_an_mdlstm_reads_a_line_the_same_in_any_batch(impl):
    """The padding of a batch of lines of different widths holds no 2D-LSTM state, so each
    line's log-probabilities are those it gets alone; with the flag off (as models saved before
    it load: next tests) the padding still reaches the padded lines."""
    from pipeline.bench import set_impl
    from pipeline.mdlstm import cpp_available
    if impl == "cpp" and not cpp_available():
        pytest.skip("C++ scan unavailable")
    for mask in (True, False):
        torch.manual_seed(0)
        model = build_model(ModelConfig(arch="mdlstm", height=32, mdlstm_mask_padding=mask), 6)
        set_impl(model, impl)
        gaps = batch_vs_alone_gaps(model)
        if mask:
            assert max(gaps) < 1e-5
        else:
            assert max(gaps) > 1e-3  # the widest line alone reads the same; the padded ones do not


@pytest.mark.parametrize("keep_width", [0, 1])
def test_a_crnn_reads_a_line_the_same_in_any_batch(keep_width):
    """Past each line's right edge the conv blocks' bias activations are zeroed, so the next
    conv sees what it sees at the edge of the line alone; without the flag (models saved
    before it) they reach the last columns of the narrower lines."""
    for mask in (True, False):
        torch.manual_seed(0)
        model = build_model(ModelConfig(arch="crnn", height=32, crnn_keep_width=keep_width, crnn_mask_padding=mask), 6)
        for norm in model.modules():  # a trained net's batch norms shift the padding away from zero
            if isinstance(norm, nn.BatchNorm2d):
                nn.init.normal_(norm.bias)
        gaps = batch_vs_alone_gaps(model)
        if mask:
            assert max(gaps) < 1e-5
        else:
            assert max(gaps) > 1e-3


@pytest.mark.parametrize("arch", ["mdlstm", "crnn"])
def test_a_model_folder_without_the_mask_flag_loads_without_masking(tmp_path, arch):
    flag = f"{arch}_mask_padding"
    config = tiny(arch)
    assert getattr(config, flag)  # new models mask
    save_model_folder(tmp_path / "new", config, ["", "a", "b"], build_model(config, 3))
    description = json.loads((tmp_path / "new" / "model.json").read_text())
    assert description["config"][flag] is True
    del description["config"][flag]
    (tmp_path / "new" / "model.json").write_text(json.dumps(description))
    _, loaded, _ = load_model_folder(tmp_path / "new")
    assert getattr(loaded, flag) is False


def test_bench_costs_the_mdlstm_layout_it_is_given_and_refuses_a_bad_one():
    small = dict(quick=True, widths="32", lines=1, height=16, impls="wavefront", layers=False)
    paper = run_bench(BenchConfig(**small), say=lambda text: None)
    wide = run_bench(BenchConfig(**small, mdlstm_hidden="4,20,100", mdlstm_conv="12,40"), say=lambda text: None)
    assert wide["params"]["mdlstm"] > 3 * paper["params"]["mdlstm"]
    assert wide["mdlstm_layout"] == {"hidden": "4,20,100", "conv": "12,40"}
    assert wide["mmacs_per_line"]["mdlstm"] > paper["mmacs_per_line"]["mdlstm"]
    with pytest.raises(ValueError, match="mdlstm_conv"):
        run_bench(BenchConfig(**small, mdlstm_conv="6"), say=lambda text: None)
