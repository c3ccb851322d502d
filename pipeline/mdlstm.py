"""Multi-directional 2D LSTM layer (Graves 2008), as used by Pham et al. 2014.

A 2D LSTM cell at (i, j) sees the input x_ij and the states of its upper (i-1, j) and left
(i, j-1) neighbours (zero outside the image)::

    a = W x_ij + U [h_up, h_left] + b            gates, in the order [i, f_up, f_left, o, g]
    c = i * g + f_up * c_up + f_left * c_left    i, f_up, f_left, o = sigmoid(.), g = tanh(.)
    h = o * tanh(c)

Four such scans run over the image, one from each corner (flip the image, scan from the top
left, flip back); each direction has its own weights and the output stacks the four hidden
states direction-major: channels [dir0 h..., dir1 h..., dir2 h..., dir3 h...] with dir0 from
the top-left, dir1 from the top-right, dir2 from the bottom-left, dir3 from the bottom-right.

The scan is sequential in two dimensions, so three interchangeable implementations share one
parameter layout and give the same numbers:

- ``naive``: cell-by-cell Python loops; the readable reference, for tests only.
- ``wavefront``: every cell of an anti-diagonal i + j = k depends only on diagonal k - 1, so
  each diagonal is one batched matmul for all directions and images; CPU and GPU.
- ``cpp``: the whole layer with its backward written out in C++ (pipeline/csrc/mdlstm.cpp):
  the images of a batch advance in lock step (batch innermost, groups of 4 or 8 lanes), the
  input projection runs inside the scan, OpenMP over direction x lane group; compiled on
  first use with torch.utils.cpp_extension and cached under a key of the source, the flags
  and the torch version (pipeline/mdlstm_ext.py).  It also takes the lanes layout directly
  (:func:`to_lanes`), which the MDLSTM network keeps between layers.

``auto`` picks ``cpp`` for float32/float64 CPU tensors when the extension compiles, else
``wavefront`` (a failed compile warns once, with the reason).  In the wavefront the input
projection W x + b is one matmul over the whole image; only the recurrent part runs inside
the scan.  The C++ layer walks each direction from its own corner instead of flipping.
"""
from __future__ import annotations

import functools
import math
import time

import torch
from torch import Tensor, nn

from pipeline.mdlstm_ext import cpp_available, extension_error, load_extension, warn_once

DIRECTIONS = 4
GATES = 5  # i, f_up, f_left, o, g
IMPLS = ("auto", "naive", "wavefront", "cpp")


# ----------------------------------------------------------------------------- directions
def _flip_scan(t: Tensor, direction: int, h_dim: int, w_dim: int) -> Tensor:
    """Flip ``t`` so that ``direction``'s start corner becomes the top-left (its own inverse)."""
    dims = [d for d, flip in ((h_dim, direction >= 2), (w_dim, direction % 2 == 1)) if flip]
    return t.flip(dims) if dims else t


def _to_scan_order(per_dir: Tensor) -> Tensor:
    """(4, B, H, W, F): flip each direction so it scans from its top-left (and back again)."""
    # unbind, not per_dir[d]: the backward of indexing zero-fills the whole tensor each time
    return torch.stack([_flip_scan(t, d, 1, 2) for d, t in enumerate(per_dir.unbind(0))])


# ----------------------------------------------------------------------------- naive
def naive_mdlstm(x: Tensor, weight_ih: Tensor, weight_hh: Tensor, bias: Tensor,
                 columns: Tensor | None = None) -> Tensor:
    """Reference: every cell of every direction computed one after the other (slow).
    ``columns`` (B, W), 1 on each line's own columns and 0 on the batch's padding: the padded
    cells hold no state (see :func:`column_mask`)."""
    batch, _, height, width = x.shape
    hidden = weight_hh.shape[-1] // 2
    zero = x.new_zeros(batch, hidden)
    outputs = []
    for d in range(DIRECTIONS):
        xd = _flip_scan(x, d, 2, 3)
        keep = None if columns is None else _flip_scan(columns[:, None, None, :], d, 2, 3)[:, 0, 0, :]
        h = [[zero] * width for _ in range(height)]
        c = [[zero] * width for _ in range(height)]
        for i in range(height):
            for j in range(width):
                h_up, c_up = (h[i - 1][j], c[i - 1][j]) if i > 0 else (zero, zero)
                h_left, c_left = (h[i][j - 1], c[i][j - 1]) if j > 0 else (zero, zero)
                gates = (xd[:, :, i, j] @ weight_ih[d].T + bias[d]
                         + torch.cat([h_up, h_left], 1) @ weight_hh[d].T)
                in_g, f_up, f_left, out_g = torch.sigmoid(gates[:, :4 * hidden]).chunk(4, 1)
                cand = torch.tanh(gates[:, 4 * hidden:])
                c[i][j] = in_g * cand + f_up * c_up + f_left * c_left
                if keep is not None:
                    c[i][j] = c[i][j] * keep[:, j:j + 1]
                h[i][j] = out_g * torch.tanh(c[i][j])
        grid = torch.stack([torch.stack(row, -1) for row in h], -2)  # (B, hidden, H, W)
        outputs.append(_flip_scan(grid, d, 2, 3))
    return torch.cat(outputs, 1)


# ----------------------------------------------------------------------------- wavefront
@functools.lru_cache(maxsize=128)  # bounded: width bucketing gives many distinct sizes
def _diagonal_indices(height: int, width: int, device: torch.device) -> tuple[Tensor, Tensor, Tensor]:
    """Index tensors that skew an (H, W) grid into (diagonal, row) slots and back.

    Slot (k, i) holds cell (i, k - i); slots outside the image point at index H * W (a zero
    row appended to the input) and have mask 0.  Built outside inference mode (an inference
    tensor cached here would break a later training step).
    """
    with torch.inference_mode(False):
        diagonals = height + width - 1
        k = torch.arange(diagonals).unsqueeze(1)
        i = torch.arange(height).unsqueeze(0)
        j = k - i
        inside = (j >= 0) & (j < width)
        skew = torch.where(inside, i * width + j, torch.full_like(j, height * width))
        rows, cols = torch.meshgrid(torch.arange(height), torch.arange(width), indexing="ij")
        unskew = ((rows + cols) * height + rows).reshape(-1)
        return skew.reshape(-1).to(device), unskew.to(device), inside.to(device)


def wavefront_scan(xp: Tensor, weight_hh: Tensor, cells: Tensor | None = None) -> Tensor:
    """Scan all directions and images at once, one anti-diagonal per step.

    xp: (4, B, H, W, 5h) input pre-activations in scan order; weight_hh: (4, 5h, 2h); cells:
    (4, B, H, W, 1) in scan order, 0 for cells that hold no state (a batch's padding), or None.
    Returns the hidden states (4, B, H, W, h) in scan order.
    """
    dirs, batch, height, width, n_gates = xp.shape
    hidden = n_gates // GATES
    n = dirs * batch
    skew, unskew, inside = _diagonal_indices(height, width, xp.device)
    diagonals = height + width - 1
    flat = torch.cat([xp.reshape(n, height * width, n_gates), xp.new_zeros(n, 1, n_gates)], 1)
    # one (diagonal, n, row, gate) tensor, read through a single unbind: indexing a big tensor
    # per step would make autograd zero-fill its full gradient at every step (quadratic).
    skewed = flat.index_select(1, skew).view(n, diagonals, height, n_gates).transpose(0, 1)
    steps = skewed.contiguous().unbind(0)
    masks = inside.to(xp.dtype).view(diagonals, 1, height, 1).unbind(0)
    if cells is not None:  # the image's own mask times the padding mask, skewed like xp
        flat_cells = torch.cat([cells.reshape(n, height * width, 1), cells.new_zeros(n, 1, 1)], 1)
        skewed_cells = flat_cells.index_select(1, skew).view(n, diagonals, height, 1).transpose(0, 1)
        masks = tuple(mask * step_cells for mask, step_cells in zip(masks, skewed_cells.unbind(0)))
    u_t = weight_hh.transpose(1, 2)  # (4, 2h, 5h)
    zero_row = xp.new_zeros(n, 1, hidden)
    h_pad = c_pad = xp.new_zeros(n, height + 1, hidden)  # row 0 = the zero state above row 0
    states = []
    for step, mask in zip(steps, masks):
        # slot i of diagonal k: up neighbour is slot i - 1 of diagonal k - 1, left is slot i
        prev = torch.cat([h_pad[:, :-1], h_pad[:, 1:]], 2).view(dirs, batch * height, 2 * hidden)
        gates = torch.baddbmm(step.view(dirs, batch * height, n_gates), prev, u_t)
        gates = gates.view(n, height, n_gates)
        in_g, f_up, f_left, out_g = torch.sigmoid(gates[..., :4 * hidden]).chunk(4, 2)
        cand = torch.tanh(gates[..., 4 * hidden:])
        c = torch.addcmul(torch.addcmul(in_g * cand, f_up, c_pad[:, :-1]), f_left, c_pad[:, 1:]) * mask
        h = out_g * torch.tanh(c)  # zero outside the image because c is
        states.append(h)
        h_pad = torch.cat([zero_row, h], 1)
        c_pad = torch.cat([zero_row, c], 1)
    out = torch.stack(states, 1).view(n, diagonals * height, hidden).index_select(1, unskew)
    return out.view(dirs, batch, height, width, hidden)


# ----------------------------------------------------------------------------- C++ (build: pipeline/mdlstm_ext.py)
def lanes_for(batch: int) -> int:
    """Lanes per group of images scanned in lock step: the fewest padded images, then wider."""
    return min((4, 8), key=lambda lanes: (-batch % lanes, -lanes))


class _CppLayer(torch.autograd.Function):
    """The C++ layer with its hand-written backward (layouts in pipeline/csrc/mdlstm.cpp)."""

    @staticmethod
    def forward(ctx, x: Tensor, weight_ih: Tensor, weight_hh: Tensor, bias: Tensor,
                mask: Tensor | None = None) -> Tensor:
        weights = torch.cat([weight_ih, weight_hh], 2).contiguous()  # (4, 5h, C + 2h)
        mask = x.new_empty(0) if mask is None else mask.to(x.dtype).contiguous()  # (ng, W, L) or empty
        h, c, act = load_extension().forward(x.contiguous(), weights, bias.contiguous(), mask)
        ctx.save_for_backward(x, h, c, act, weights)
        return h

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad_h: Tensor):
        x, h, c, act, weights = ctx.saved_tensors
        dx, dw, db = load_extension().backward(grad_h.contiguous(), x, h, c, act, weights.transpose(1, 2).contiguous())
        dw = dw.sum(1)  # per (direction, lane group) -> per direction
        channels = x.shape[0]
        return dx.sum(0), dw[..., :channels], dw[..., channels:], db.sum(1), None


def to_lanes(x: Tensor) -> Tensor:
    """(B, C, H, W) -> (C, groups, H, W, lanes), the batch padded with empty images to whole
    groups of lanes and moved innermost: the C++ layer's input layout."""
    batch, channels, height, width = x.shape
    lanes = lanes_for(batch)
    groups = -(-batch // lanes)
    if groups * lanes != batch:
        x = torch.cat([x, x.new_zeros(groups * lanes - batch, channels, height, width)])
    return x.view(groups, lanes, channels, height, width).permute(2, 0, 3, 4, 1).contiguous()


def from_lanes(t: Tensor, batch: int) -> Tensor:
    """(C, groups, H, W, lanes) (or (4, h, groups, H, W, lanes)) -> (batch, C, H, W)."""
    channels, groups, height, width, lanes = t.reshape(-1, *t.shape[-4:]).shape
    out = t.reshape(channels, groups, height, width, lanes).permute(1, 4, 0, 2, 3)
    return out.reshape(groups * lanes, channels, height, width)[:batch]


def cpp_scan(x: Tensor, weight_ih: Tensor, weight_hh: Tensor, bias: Tensor,
             columns: Tensor | None = None) -> Tensor:
    """The whole layer with the C++ scan: (B, C, H, W) -> (B, 4h, H, W); the input
    projection runs inside the scan.  ``columns``: see :func:`column_mask`."""
    mask = None if columns is None else lanes_mask(columns)
    return from_lanes(_CppLayer.apply(to_lanes(x), weight_ih, weight_hh, bias, mask), x.shape[0])


def column_mask(valid: Tensor, width: int, dtype: torch.dtype = torch.float32) -> Tensor:
    """(B, W): 1 on the first ``valid[b]`` columns of image b, 0 on the rest (the padding that
    makes a batch of lines of different widths one tensor).  The 2D-LSTM gives a padded cell
    no state, so every line's right-to-left scans start at its own right edge and it reads
    the same in any batch as alone."""
    return (torch.arange(width, device=valid.device)[None, :] < valid[:, None]).to(dtype)


def lanes_mask(columns: Tensor) -> Tensor:
    """(B, W) column mask -> (groups, W, lanes), the C++ layer's mask layout (empty images
    that fill the last group of lanes are all padding)."""
    batch, width = columns.shape
    return to_lanes(columns.view(batch, 1, 1, width)).view(-1, width, lanes_for(batch))


# ----------------------------------------------------------------------------- module
class MDLSTM2d(nn.Module):
    """Four-direction 2D LSTM: (B, C, H, W) -> (B, 4 * hidden, H, W).

    Parameters (shared by every implementation): ``weight_ih`` (4, 5h, C), ``weight_hh``
    (4, 5h, 2h) acting on [h_up, h_left], ``bias`` (4, 5h); gate blocks [i, f_up, f_left, o, g].
    """

    def __init__(self, in_channels: int, hidden: int, impl: str = "auto", init_range: float = 0.0,
                 forget_bias: float = 0.0):
        super().__init__()
        self.init_range, self.forget_bias = init_range, forget_bias
        if impl not in IMPLS:
            raise ValueError(f"impl must be one of {IMPLS}, got {impl!r}")
        self.in_channels, self.hidden, self.impl = in_channels, hidden, impl
        g = GATES * hidden
        self.weight_ih = nn.Parameter(torch.empty(DIRECTIONS, g, in_channels))
        self.weight_hh = nn.Parameter(torch.empty(DIRECTIONS, g, 2 * hidden))
        self.bias = nn.Parameter(torch.empty(DIRECTIONS, g))
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Uniform(-r, r): r = ``init_range``, or 1/sqrt(h) as torch.nn.LSTM when it is 0;
        then the biases of both forget gates shifted by ``forget_bias``.

        Why the shift: a 2D cell adds *two* forgotten states, c = i g + f_up c_up + f_left c_left.
        With f near 0.5 or more, as any zero-centred init gives, f_up + f_left >= 1 and the cell
        state grows along the scan (exponentially once the sum passes 1): on Copiste lines at
        the default init, the first layer's |c| has a median of 95 and 76% of its cells have
        |tanh c| > 0.99.  A shift of -1 (f about 0.27, sum about 0.54) keeps |c| below 1."""
        bound = self.init_range or 1.0 / math.sqrt(self.hidden)
        for p in self.parameters():
            nn.init.uniform_(p, -bound, bound)
        if self.forget_bias:
            with torch.no_grad():
                self.bias[:, self.hidden:3 * self.hidden] += self.forget_bias

    def extra_repr(self) -> str:
        return f"{self.in_channels}, {self.hidden}, impl={self.impl!r}"

    def resolved_impl(self, x: Tensor) -> str:
        """The implementation that will run on ``x`` (auto/cpp fall back to wavefront)."""
        if self.impl in ("naive", "wavefront"):
            return self.impl
        if x.device.type != "cpu" or x.dtype not in (torch.float32, torch.float64):
            if self.impl == "cpp":
                warn_once(f"MDLSTM2d: the C++ scan takes float32/float64 CPU tensors; "
                          f"using the wavefront for {x.dtype} on {x.device}")
            return "wavefront"
        if not cpp_available():
            warn_once(f"MDLSTM2d: C++ scan unavailable ({extension_error()}); using the wavefront")
            return "wavefront"
        return "cpp"

    def forward(self, x: Tensor, columns: Tensor | None = None) -> Tensor:
        """(B, C, H, W) -> (B, 4h, H, W); or, C++ only, the lanes layout (C, groups, H, W,
        lanes) -> (4, h, groups, H, W, lanes) (see :func:`to_lanes`), for networks that keep
        their activations in that layout between layers.  ``columns``: None, or which columns
        of each image are its own (:func:`column_mask`, (B, W); in the lanes layout already
        as :func:`lanes_mask`); the others hold no state."""
        if x.dim() == 5 and x.shape[0] == self.in_channels:
            return _CppLayer.apply(x, self.weight_ih, self.weight_hh, self.bias, columns)
        if x.dim() != 4 or x.shape[1] != self.in_channels:
            raise ValueError(f"MDLSTM2d expects (B, {self.in_channels}, H, W), got {tuple(x.shape)}")
        batch, _, height, width = x.shape
        if batch == 0 or height == 0 or width == 0:
            return x.new_zeros(batch, DIRECTIONS * self.hidden, height, width)
        impl = self.resolved_impl(x)
        if impl == "naive":
            return naive_mdlstm(x, self.weight_ih, self.weight_hh, self.bias, columns)
        if impl == "cpp":
            return cpp_scan(x, self.weight_ih, self.weight_hh, self.bias, columns)
        # input projection of all directions at once: (B*H*W, C) x (C, 4*5h)
        pixels = x.permute(0, 2, 3, 1).reshape(-1, self.in_channels)
        xp = torch.addmm(self.bias.reshape(-1), pixels, self.weight_ih.reshape(-1, self.in_channels).T)
        xp = xp.view(batch, height, width, DIRECTIONS, -1)
        cells = None
        if columns is not None:
            cells = _to_scan_order(columns.to(xp.dtype)[None, :, None, :, None].expand(DIRECTIONS, batch, height, width, 1))
        h = wavefront_scan(_to_scan_order(xp.permute(3, 0, 1, 2, 4)), self.weight_hh, cells)
        h = _to_scan_order(h)  # flipping back
        return h.permute(1, 0, 4, 2, 3).reshape(batch, DIRECTIONS * self.hidden, height, width)


# ----------------------------------------------------------------------------- benchmark
# Layer shapes of the Pham network on 64 px high lines of 800 px (2x2 input blocks, then
# 2 (width) x 4 (height) subsampling twice): (name, in_channels, hidden, height, width).
PHAM_LAYERS = [("lstm1", 4, 2, 32, 400), ("lstm2", 6, 10, 8, 200), ("lstm3", 20, 50, 2, 100)]


def benchmark_layers(impls: list[str], batch: int = 8, reps: int = 3) -> dict[str, dict[str, dict[str, float]]]:
    """Best-of-``reps`` lines/s (train = forward + backward, infer = forward under inference
    mode) of each Pham-network MDLSTM layer per implementation.  ``naive`` runs on 1/16 of
    the width and is scaled up."""

    def best(fn) -> float:
        fn()
        times = []
        for _ in range(reps):
            start = time.perf_counter()
            fn()
            times.append(time.perf_counter() - start)
        return min(times)

    results: dict[str, dict[str, dict[str, float]]] = {}
    for name, channels, hidden, height, width in PHAM_LAYERS:
        layer = MDLSTM2d(channels, hidden)
        for impl in impls:
            layer.impl = impl
            w = max(2, width // 16) if impl == "naive" else width
            scale = width / w  # the naive cost is linear in the number of columns
            x = torch.randn(batch, channels, height, w)

            def train():
                layer.zero_grad()
                layer(x).square().mean().backward()

            def infer():
                with torch.inference_mode():
                    layer(x)

            results.setdefault(name, {})[impl] = {
                "train_lines_per_s": batch / (best(train) * scale),
                "infer_lines_per_s": batch / (best(infer) * scale)}
    return results


def main(argv: list[str] | None = None) -> int:
    """``python -m pipeline.mdlstm``: lines/s of one layer per implementation."""
    import argparse

    parser = argparse.ArgumentParser(description=main.__doc__ + " " + (benchmark_layers.__doc__ or ""))
    parser.add_argument("--impls", default="naive,wavefront,cpp", help="comma-separated implementations")
    parser.add_argument("--batch", type=int, default=8, help="lines per batch")
    parser.add_argument("--reps", type=int, default=3, help="timed repetitions (best one counts)")
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: leave as is)")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    impls = args.impls.split(",")
    results = benchmark_layers(impls, args.batch, args.reps)
    totals = {impl: [0.0, 0.0] for impl in impls}
    print(f"threads={torch.get_num_threads()} batch={args.batch}   train lines/s   infer lines/s")
    for (name, channels, hidden, height, width), per_impl in zip(PHAM_LAYERS, results.values()):
        for impl, r in per_impl.items():
            print(f"{name} {channels}->{hidden} @{height}x{width} {impl:9s} "
                  f"{r['train_lines_per_s']:10.1f} {r['infer_lines_per_s']:12.1f}")
            totals[impl][0] += 1 / r["train_lines_per_s"]
            totals[impl][1] += 1 / r["infer_lines_per_s"]
    for impl, (train, infer) in totals.items():
        print(f"3 layers              {impl:9s} {1 / train:10.1f} {1 / infer:12.1f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
