"""2D LSTM layer: the three implementations agree, gradients are right, scans go the right way."""
from __future__ import annotations

import warnings

import pytest
import torch

from pipeline import mdlstm, mdlstm_ext
from pipeline.mdlstm import MDLSTM2d

SHAPES = [(2, 1, 7), (2, 7, 1), (3, 3, 5), (2, 5, 3), (3, 1, 1)]  # (batch, H, W)


@pytest.fixture(scope="module")
def cpp():
    """Compile the C++ scan once for this module (cached afterwards); skip if impossible."""
    if not mdlstm.cpp_available():
        pytest.skip(f"C++ scan unavailable: {mdlstm_ext.extension_error()}")
    return "cpp"


def _outputs_and_grads(layer: MDLSTM2d, impl: str, x: torch.Tensor):
    layer.impl = impl
    x = x.detach().clone().requires_grad_(True)
    out = layer(x)
    # not randn_like: it copies the output's strides, which differ between implementations
    weights = torch.randn(out.shape, dtype=out.dtype, generator=torch.Generator().manual_seed(1))
    grads = torch.autograd.grad((out * weights).sum(), [x, *layer.parameters()])
    return out.detach(), grads


def _assert_same(layer, impl_a, impl_b, x, tol=1e-5):
    out_a, grads_a = _outputs_and_grads(layer, impl_a, x)
    out_b, grads_b = _outputs_and_grads(layer, impl_b, x)
    torch.testing.assert_close(out_a, out_b, atol=tol, rtol=tol)
    for name, ga, gb in zip(["input", "weight_ih", "weight_hh", "bias"], grads_a, grads_b):
        torch.testing.assert_close(ga, gb, atol=tol, rtol=tol, msg=lambda m: f"{name}: {m}")


def _layer(channels=3, hidden=4, dtype=torch.float32, seed=0):
    torch.manual_seed(seed)
    return MDLSTM2d(channels, hidden, impl="naive").to(dtype)


@pytest.mark.parametrize("batch,height,width", SHAPES)
def test_wavefront_matches_naive(batch, height, width):
    layer = _layer()
    x = torch.randn(batch, 3, height, width)
    _assert_same(layer, "naive", "wavefront", x)


@pytest.mark.parametrize("batch,height,width", SHAPES)
def test_cpp_matches_naive(cpp, batch, height, width):
    layer = _layer()
    x = torch.randn(batch, 3, height, width)
    _assert_same(layer, "naive", cpp, x)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("hidden", [1, 10])  # compile-time and run-time hidden sizes in C++
def test_cpp_matches_wavefront_bigger(cpp, dtype, hidden):
    layer = _layer(channels=6, hidden=hidden, dtype=dtype, seed=3)
    x = torch.randn(3, 6, 8, 21, dtype=dtype)
    _assert_same(layer, "wavefront", cpp, x)


@pytest.mark.parametrize("batch", [1, 3, 4, 5, 8, 9, 12, 13])  # 4 and 8 lanes, padded, several groups
@pytest.mark.parametrize("hidden", [2, 7])
def test_cpp_lock_step_batches_match_the_wavefront(cpp, batch, hidden):
    layer = _layer(channels=5, hidden=hidden, seed=batch)
    x = torch.randn(batch, 5, 3, 6)
    _assert_same(layer, "wavefront", cpp, x)


def test_cpp_wide_layer_matches_the_wavefront(cpp):
    layer = _layer(channels=20, hidden=50, seed=4)  # the Pham top layer (run-time size)
    _assert_same(layer, "wavefront", cpp, torch.randn(6, 20, 2, 9), tol=2e-5)


def test_cpp_lanes_are_the_fewest_padded_images():
    assert [mdlstm.lanes_for(b) for b in (1, 3, 4, 5, 8, 9, 12, 16)] == [4, 4, 4, 8, 8, 4, 4, 8]


def test_cpp_gives_the_same_numbers_on_one_and_two_threads(cpp):
    layer = _layer(channels=4, hidden=10, seed=5)
    x = torch.randn(16, 4, 8, 40)
    threads = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        one = _outputs_and_grads(layer, cpp, x)
        torch.set_num_threads(2)
        two = _outputs_and_grads(layer, cpp, x)
    finally:
        torch.set_num_threads(threads)
    assert torch.equal(one[0], two[0])
    assert all(torch.equal(a, b) for a, b in zip(one[1], two[1]))


def test_build_cache_key_follows_source_flags_and_torch(monkeypatch, tmp_path):
    key = mdlstm_ext.build_key(["-O3"])
    assert key != mdlstm_ext.build_key(["-O3", "-mavx2"])
    changed = tmp_path / "mdlstm.cpp"
    changed.write_bytes(mdlstm_ext.CSRC.read_bytes() + b"// another version\n")
    monkeypatch.setattr(mdlstm_ext, "CSRC", changed)
    assert mdlstm_ext.build_key(["-O3"]) != key


@pytest.mark.parametrize("impl,batch", [("wavefront", 2), ("cpp", 2), ("cpp", 5)])
def test_gradcheck_float64(request, impl, batch):
    if impl == "cpp":
        request.getfixturevalue("cpp")
    layer = _layer(channels=2, hidden=2, dtype=torch.float64, seed=2)
    layer.impl = impl
    x = torch.randn(batch, 2, 3, 4, dtype=torch.float64, requires_grad=True)
    params = list(layer.parameters())

    def fn(inp, w_ih, w_hh, b):
        return torch.func.functional_call(layer, {"weight_ih": w_ih, "weight_hh": w_hh, "bias": b}, (inp,))

    assert torch.autograd.gradcheck(fn, (x, *params), eps=1e-6, atol=1e-6)


@pytest.mark.parametrize("direction", range(4))
def test_each_direction_sees_only_its_quadrant(direction):
    """Output of direction d at (i, j) depends exactly on the cells between (i, j) and d's corner."""
    layer = _layer(channels=2, hidden=3, dtype=torch.float64)
    layer.impl = "wavefront"
    height, width, (i, j) = 4, 5, (1, 2)
    x = torch.randn(1, 2, height, width, dtype=torch.float64, requires_grad=True)
    out = layer(x)[0, direction * 3:(direction + 1) * 3, i, j].sum()
    (grad,) = torch.autograd.grad(out, x)
    touched = grad.abs().sum(1)[0] > 0
    rows = torch.arange(height)[:, None]
    cols = torch.arange(width)[None, :]
    from_top, from_left = direction < 2, direction % 2 == 0
    expected = ((rows <= i) if from_top else (rows >= i)) & ((cols <= j) if from_left else (cols >= j))
    assert torch.equal(touched, expected)


@pytest.mark.parametrize("impl", ["wavefront", "cpp"])
def test_padded_image_matches_its_unpadded_top_left_direction(request, impl):
    """Right/bottom padding cannot change the top-left scan inside the original image."""
    if impl == "cpp":
        request.getfixturevalue("cpp")
    layer = _layer()
    layer.impl = impl
    x = torch.randn(1, 3, 3, 4)
    padded = torch.nn.functional.pad(x, (0, 3, 0, 2))
    out = layer(torch.cat([padded, torch.randn_like(padded)]))
    torch.testing.assert_close(out[:1, :4, :3, :4], layer(x)[:, :4])


def test_output_shape_and_impl_validation():
    layer = MDLSTM2d(3, 5, impl="wavefront")
    assert layer(torch.randn(2, 3, 4, 6)).shape == (2, 20, 4, 6)
    assert layer(torch.randn(0, 3, 4, 6)).shape == (0, 20, 4, 6)
    with pytest.raises(ValueError):
        MDLSTM2d(3, 5, impl="fast")
    with pytest.raises(ValueError):
        layer(torch.randn(2, 4, 4, 6))


def test_inference_mode_then_training():
    """Index tensors first built under inference_mode must not break a later backward."""
    layer = MDLSTM2d(2, 3, impl="wavefront")
    with torch.inference_mode():
        layer(torch.randn(1, 2, 5, 9))
    layer(torch.randn(1, 2, 5, 9)).sum().backward()
    assert layer.weight_hh.grad is not None


def test_auto_uses_cpp_when_it_compiles(cpp):
    layer = MDLSTM2d(3, 4)
    x = torch.randn(2, 3, 3, 5)
    assert layer.resolved_impl(x) == "cpp"
    _assert_same(layer, "auto", "wavefront", x)


def test_auto_falls_back_to_wavefront_with_one_warning(monkeypatch):
    monkeypatch.setattr(mdlstm_ext, "_EXTENSION", None)
    monkeypatch.setattr(mdlstm_ext, "_EXTENSION_ERROR", "RuntimeError: Ninja is required")
    monkeypatch.setattr(mdlstm_ext, "_WARNED", set())
    layer = MDLSTM2d(3, 4)
    x = torch.randn(2, 3, 3, 5)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert layer.resolved_impl(x) == "wavefront"
        out = layer(x)
    assert len(caught) == 1 and "Ninja is required" in str(caught[0].message)
    layer.impl = "wavefront"
    torch.testing.assert_close(out, layer(x))


def test_build_failure_is_reported_in_one_telling_line():
    err = RuntimeError("Error building extension 'x': [1/2] g++ -c a.cpp\nFAILED: a.o\n"
                       "/bin/sh: 1: g++: not found\nninja: build stopped: subcommand failed.")
    assert mdlstm_ext.failure_reason(err) == "RuntimeError: /bin/sh: 1: g++: not found"


def test_auto_uses_wavefront_for_dtypes_the_cpp_scan_lacks():
    layer = MDLSTM2d(2, 3).to(torch.bfloat16)
    x = torch.randn(1, 2, 3, 4, dtype=torch.bfloat16)
    assert layer.resolved_impl(x) == "wavefront"
    assert layer(x).shape == (1, 12, 3, 4)


def test_init_range_bounds_the_starting_weights():
    default = MDLSTM2d(3, 4)  # torch.nn.LSTM's 1/sqrt(cells) = 0.5
    rnnlib = MDLSTM2d(3, 4, init_range=0.1)
    assert max(p.abs().max().item() for p in default.parameters()) > 0.1
    assert max(p.abs().max().item() for p in rnnlib.parameters()) <= 0.1
    assert max(p.abs().max().item() for p in default.parameters()) <= 0.5


@pytest.mark.parametrize("impl", ["naive", "wavefront", "cpp"])
def test_with_a_column_mask_each_image_reads_as_alone(request, impl):
    """Images of a batch padded to the widest: with the mask of their own columns, every
    direction (the right-to-left ones included) gives each image what it gives alone, and the
    padded cells output nothing; without the mask the right-to-left scans start in the padding."""
    if impl == "cpp":
        request.getfixturevalue("cpp")
    layer = _layer(dtype=torch.float64)
    layer.impl = impl
    x = torch.randn(3, 3, 4, 7, dtype=torch.float64)
    valid = torch.tensor([7, 4, 2])
    masked = layer(x, mdlstm.column_mask(valid, 7, torch.float64))
    unmasked = layer(x)
    for b, width in enumerate(valid.tolist()):
        alone = layer(x[b:b + 1, :, :, :width])
        torch.testing.assert_close(masked[b:b + 1, :, :, :width], alone, atol=1e-12, rtol=1e-12)
        if width < 7:
            assert masked[b, :, :, width:].abs().max().item() == 0.0
    assert not torch.allclose(unmasked[1:2, :, :, :4], layer(x[1:2, :, :, :4]))


def _masked_outputs_and_grads(layer: MDLSTM2d, impl: str, x: torch.Tensor, valid: torch.Tensor):
    layer.impl = impl
    layer.zero_grad()
    x = x.detach().clone().requires_grad_(True)
    out = layer(x, mdlstm.column_mask(valid, x.shape[3], x.dtype))
    weights = torch.randn(out.shape, dtype=out.dtype, generator=torch.Generator().manual_seed(1))
    return [out.detach(), *torch.autograd.grad((out * weights).sum(), [x, *layer.parameters()])]


@pytest.mark.parametrize("batch", [3, 5, 9])  # one group of 4 lanes, 8 lanes, several groups
def test_masked_scans_agree_across_implementations_with_their_gradients(cpp, batch):
    layer = _layer(hidden=5, dtype=torch.float64, seed=2)
    x = torch.randn(batch, 3, 3, 6, dtype=torch.float64, generator=torch.Generator().manual_seed(3))
    valid = torch.arange(batch) % 6 + 1
    reference = _masked_outputs_and_grads(layer, "naive", x, valid)
    for impl in ("wavefront", "cpp"):
        for name, a, b in zip(["output", "input", "weight_ih", "weight_hh", "bias"],
                              _masked_outputs_and_grads(layer, impl, x, valid), reference):
            torch.testing.assert_close(a, b, atol=1e-10, rtol=1e-8, msg=lambda m: f"{impl} {name}: {m}")
