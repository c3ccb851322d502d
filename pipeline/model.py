"""Optical models: the Graves/Pham MDLSTM network and a CNN + 1D BLSTM baseline.

Both map a batch of normalised line images ``(B, 1, H, W)`` (ink = 1, background = 0)
and their true widths to CTC log-probabilities ``(T, B, N)`` plus the number of valid
frames of each line.  Both reduce the width 8x by default, so a line of width ``W``
gives ``ceil(W / 8)`` frames; :meth:`frames` says how many, so training can skip lines
too short for their label before running the network.

Dropout (Pham et al. 2014) is applied to the *outputs* of the chosen LSTM layers,
before the next feed-forward (conv or linear) layer, never on recurrent connections:
``none``, ``top`` (last LSTM layer only) or ``all`` (every LSTM layer).

Model folders (``model.json`` + ``weights.pt``, or an ensemble of them) are written and read by
:mod:`pipeline.model_folder`.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field, fields

import torch
import torch.nn.functional as F
from torch import nn

from common.cliconfig import CliConfig
from pipeline.data import LINE_NORMS

ARCHS = ("mdlstm", "crnn")
DROPOUT_PLACES = ("none", "top", "all")


def int_list(text: str) -> list[int]:
    """'2,10,50' -> [2, 10, 50]; raises ValueError with the offending text."""
    try:
        values = [int(part) for part in str(text).split(",") if part.strip()]
    except ValueError as error:
        raise ValueError(f"expected comma-separated integers, got {text!r}") from error
    if not values or min(values) <= 0:
        raise ValueError(f"expected positive comma-separated integers, got {text!r}")
    return values


@dataclass
class ModelConfig(CliConfig):
    """Network layout and the image normalisation it expects (saved in model.json)."""

    arch: str = field(default="mdlstm", metadata={"help": "network: mdlstm (Graves/Pham) or crnn (CNN + 1D BLSTM)", "choices": ARCHS})
    height: int = field(default=64, metadata={"help": "line images are scaled to this height (px)"})
    max_width: int = field(default=2048, metadata={"help": "wider normalised lines are squeezed to this width (px)"})
    line_norm: str = field(default="median-peak", metadata={"help": "grey levels of a line image (inverted, ink high): median-peak (the median, i.e. the background, subtracted and the darkest ink stretched to 1), median (subtracted only), peak (stretched only), none (as scanned)", "choices": LINE_NORMS})
    mdlstm_hidden: str = field(default="2,10,50", metadata={"help": "MDLSTM layer sizes (cells per direction)"})
    mdlstm_conv: str = field(default="6,20", metadata={"help": "features of the subsampling conv layers between MDLSTM layers"})
    block_width: int = field(default=2, metadata={"help": "input block width (space-to-depth)"})
    block_height: int = field(default=2, metadata={"help": "input block height (space-to-depth)"})
    sub_width: int = field(default=2, metadata={"help": "subsampling window/stride width of each conv layer"})
    sub_height: int = field(default=4, metadata={"help": "subsampling window/stride height of each conv layer"})
    sub_widths: str = field(default="", metadata={"help": "subsampling widths, one per conv layer, instead of sub-width for all (e.g. 2,1: the top layer sees twice the columns, so CTC gets twice the frames per character, for the cost of the top layer only)"})
    mdlstm_init: float = field(default=0.0, metadata={"help": "MDLSTM weights start uniform in [-r, r] (RNNLIB, used by Graves and Pham: 0.1); 0: 1/sqrt(cells), as torch.nn.LSTM"})
    mdlstm_forget_bias: float = field(default=0.0, metadata={"help": "shift of the initial biases of the two forget gates of every MDLSTM cell (negative: the cell state stays bounded at the start)"})
    mdlstm_impl: str = field(default="auto", metadata={"help": "2D-LSTM implementation", "choices": ("auto", "naive", "wavefront", "cpp")})
    mdlstm_mask_padding: bool = field(default=True, metadata={"help": "MDLSTM: the padding that makes a batch of lines of different widths one tensor holds no state, so every line's right-to-left scans start at its own right edge and a line reads the same in any batch as alone (model folders saved before this flag existed read as --no-mdlstm-mask-padding)"})
    crnn_conv: str = field(default="16,32,48,64", metadata={"help": "CRNN conv channels (3x3, batch norm, leaky ReLU)"})
    crnn_pools: int = field(default=3, metadata={"help": "CRNN: the first N conv layers are followed by 2x2 max pooling"})
    crnn_keep_width: int = field(default=0, metadata={"help": "CRNN: the last N of those poolings halve the height only (2x1), so CTC gets 2^N times the output frames per character"})
    crnn_lstm_hidden: int = field(default=128, metadata={"help": "CRNN: BLSTM cells per direction"})
    crnn_lstm_layers: int = field(default=2, metadata={"help": "CRNN: number of BLSTM layers"})
    crnn_mask_padding: bool = field(default=True, metadata={"help": "CRNN: the columns past each line's right edge are zeroed after every conv block, so the next conv sees there what it sees at the edge of the line alone and a line reads the same in any batch (model folders saved before this flag existed read as --no-crnn-mask-padding)"})
    dropout: float = field(default=0.5, metadata={"help": "dropout probability on LSTM outputs"})
    dropout_where: str = field(default="all", metadata={"help": "LSTM layers whose outputs get dropout", "choices": DROPOUT_PLACES})
    dropout_layers: str = field(default="", metadata={"help": "dropout probability on each LSTM layer's outputs, from the input up (e.g. 0.1,0.25,0.5: less on the narrow low layers), instead of --dropout and --dropout-where"})

    def check(self) -> None:
        """Raise ValueError on an inconsistent layout (caught by the CLI as a message)."""
        if self.arch not in ARCHS:
            raise ValueError(f"arch must be one of {ARCHS}, got {self.arch!r}")
        if self.line_norm not in LINE_NORMS:
            raise ValueError(f"line_norm must be one of {LINE_NORMS}, got {self.line_norm!r}")
        if self.dropout_where not in DROPOUT_PLACES:
            raise ValueError(f"dropout_where must be one of {DROPOUT_PLACES}, got {self.dropout_where!r}")
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {self.dropout}")
        if len(int_list(self.mdlstm_conv)) != len(int_list(self.mdlstm_hidden)) - 1:
            raise ValueError("mdlstm_conv needs one entry fewer than mdlstm_hidden "
                             f"(got {self.mdlstm_conv!r} and {self.mdlstm_hidden!r})")
        if self.sub_widths and len(int_list(self.sub_widths)) != len(int_list(self.mdlstm_conv)):
            raise ValueError(f"sub_widths needs one width per conv layer ({len(int_list(self.mdlstm_conv))}), "
                             f"got {self.sub_widths!r}")
        if self.arch == "crnn" and self.crnn_pools > len(int_list(self.crnn_conv)):
            raise ValueError("crnn_pools cannot exceed the number of conv layers")
        if self.arch == "crnn" and not 0 <= self.crnn_keep_width <= self.crnn_pools:
            raise ValueError(f"crnn_keep_width must be between 0 and crnn_pools ({self.crnn_pools}), "
                             f"got {self.crnn_keep_width}")
        if self.height < 1 or self.max_width < 8:
            raise ValueError("height must be >= 1 and max_width >= 8")
        if self.dropout_layers:
            dropout_probs(self)  # raises on a malformed list


# Layout flags added after model folders were saved without them, with the value that keeps
# those folders (and checkpoints, and saved training configs) computing what they did.
LEGACY_DEFAULTS = {"mdlstm_mask_padding": False, "crnn_mask_padding": False}


def with_legacy_defaults(saved: dict) -> dict:
    """A saved model (or training) config with the flags it predates set as it ran."""
    return {**LEGACY_DEFAULTS, **saved}


def model_config_of(config: ModelConfig) -> ModelConfig:
    """The plain ModelConfig part of a subclass (e.g. the training config)."""
    return ModelConfig(**{item.name: getattr(config, item.name) for item in fields(ModelConfig)})


def conv_widths(config: ModelConfig) -> list[int]:
    """The subsampling width of each conv layer of the MDLSTM network."""
    convs = len(int_list(config.mdlstm_conv))
    return int_list(config.sub_widths) if config.sub_widths else [config.sub_width] * convs


def frame_width(config: ModelConfig) -> int:
    """Image columns per output frame (CTC gets ceil(W / this) frames for a line W px wide)."""
    if config.arch == "crnn":
        return 2 ** (config.crnn_pools - config.crnn_keep_width)
    return config.block_width * math.prod(conv_widths(config))


def dropout_flags(layers: int, where: str) -> list[bool]:
    """Which of ``layers`` LSTM layers get dropout on their outputs."""
    return [where == "all" or (where == "top" and i == layers - 1) for i in range(layers)]


def lstm_layers(config: ModelConfig) -> int:
    """The number of (2D or 1D) LSTM layers of the network."""
    return config.crnn_lstm_layers if config.arch == "crnn" else len(int_list(config.mdlstm_hidden))


def dropout_probs(config: ModelConfig) -> list[float]:
    """The dropout probability on each LSTM layer's outputs, from the input up: the list
    ``dropout_layers`` when given, else ``dropout`` on the layers ``dropout_where`` names."""
    layers = lstm_layers(config)
    if not config.dropout_layers:
        return [config.dropout if drop else 0.0 for drop in dropout_flags(layers, config.dropout_where)]
    try:
        probs = [float(part) for part in str(config.dropout_layers).split(",")]
    except ValueError as error:
        raise ValueError(f"dropout_layers: expected comma-separated probabilities, got {config.dropout_layers!r}") from error
    if len(probs) != layers:
        raise ValueError(f"dropout_layers needs one probability per LSTM layer ({layers}), got {config.dropout_layers!r}")
    if not all(0.0 <= p < 1.0 for p in probs):
        raise ValueError(f"dropout_layers: every probability must be in [0, 1), got {config.dropout_layers!r}")
    return probs


def pad_to_multiple(x: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """Zero-pad (= background) bottom/right so H and W are multiples of the given sizes."""
    pad_h = -x.shape[2] % height
    pad_w = -x.shape[3] % width
    return F.pad(x, (0, pad_w, 0, pad_h)) if pad_h or pad_w else x


class FastDropout(nn.Module):
    """Inverted dropout (as nn.Dropout) with its mask drawn four 16-bit numbers per 64-bit
    random draw: p is rounded to a multiple of 1/65536.  nn.Dropout's bernoulli_ draws one
    number per element and took more time than the three MDLSTM layers of a training forward
    (13 ms for one 8x8x32x400 output on 2 cores, this: 4 ms)."""

    def __init__(self, p: float):
        super().__init__()
        self.threshold = round(p * 65536) - 32768  # keep where the 16-bit draw >= this
        self.scale = 1.0 / (1.0 - (self.threshold + 32768) / 65536)
        self.p = p

    def extra_repr(self) -> str:
        return f"p={self.p}"

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or self.p == 0:
            return x
        n = x.numel()
        draws = torch.randint(-2 ** 63, 2 ** 63 - 1, ((n + 3) // 4,), dtype=torch.int64, device=x.device)
        keep = draws.view(torch.int16)[:n].view(x.shape) >= self.threshold
        return x * keep * self.scale


def dropout_layer(p: float) -> nn.Module:
    return FastDropout(p) if p > 0 else nn.Identity()


def blocks_times(conv: nn.Conv2d, t: torch.Tensor) -> torch.Tensor:
    """A conv whose kernel equals its stride, on the lanes layout: (4, h, groups, H, W,
    lanes) -> (C', groups, H / kh, W / kw, lanes), as one GEMM of the conv weight with the
    space-to-depth blocks."""
    kh, kw = conv.kernel_size
    channels, groups, height, width, lanes = t.reshape(-1, *t.shape[-4:]).shape
    blocks = t.reshape(channels, groups, height // kh, kh, width // kw, kw, lanes).permute(0, 3, 5, 1, 2, 4, 6)
    out = torch.addmm(conv.bias[:, None], conv.weight.reshape(conv.out_channels, -1), blocks.reshape(channels * kh * kw, -1))
    return out.view(conv.out_channels, groups, height // kh, width // kw, lanes)


class LanesConv(nn.Module):
    """A subsampling conv applied in the lanes layout (:func:`blocks_times`).  It uses the
    parameters of the wrapped conv and holds none itself (state dicts are unchanged); it is a
    module so that hooks (``htr bench``'s layer timer) see it."""

    def __init__(self, conv: nn.Conv2d):
        super().__init__()
        object.__setattr__(self, "conv", conv)  # not a submodule: no second copy of its weights

    def forward(self, t: torch.Tensor) -> torch.Tensor:
        return blocks_times(self.conv, t)


class LanesLinear(nn.Module):
    """The output layer in the lanes layout: (C, groups, H, W, lanes) -> (N, groups, H, W,
    lanes), bias added; parameters those of the wrapped linear (see LanesConv)."""

    def __init__(self, linear: nn.Linear):
        super().__init__()
        object.__setattr__(self, "linear", linear)

    def forward(self, t: torch.Tensor) -> torch.Tensor:
        channels, groups, height, width, lanes = t.reshape(-1, *t.shape[-4:]).shape
        out = torch.addmm(self.linear.bias[:, None], self.linear.weight, t.reshape(channels, -1))
        return out.view(-1, groups, height, width, lanes)


class MDLSTMNet(nn.Module):
    """2x2 blocks -> [MDLSTM -> dropout -> conv subsampling -> tanh]* -> MDLSTM -> dropout
    -> linear (over the 4 directions concatenated, i.e. the sum of per-direction linears)
    -> sum over height -> log-softmax."""

    def __init__(self, config: ModelConfig, num_classes: int):
        super().__init__()
        from pipeline.mdlstm import MDLSTM2d  # the 2D-LSTM layer (naive / wavefront / C++)

        self.config = config
        hidden, convs = int_list(config.mdlstm_hidden), int_list(config.mdlstm_conv)
        self.lstms, self.drops, self.convs = nn.ModuleList(), nn.ModuleList(), nn.ModuleList()
        channels = config.block_width * config.block_height
        widths = conv_widths(config)
        for i, (size, drop) in enumerate(zip(hidden, dropout_probs(config))):
            self.lstms.append(MDLSTM2d(channels, size, impl=config.mdlstm_impl, init_range=config.mdlstm_init,
                                       forget_bias=config.mdlstm_forget_bias))
            self.drops.append(dropout_layer(drop))
            if i < len(convs):
                window = (config.sub_height, widths[i])
                self.convs.append(nn.Conv2d(4 * size, convs[i], kernel_size=window, stride=window))
                channels = convs[i]
        self.output = nn.Linear(4 * hidden[-1], num_classes)
        self.lanes_convs = nn.ModuleList(LanesConv(conv) for conv in self.convs)
        self.lanes_output = LanesLinear(self.output)
        self.reduce_w = frame_width(config)
        self.reduce_h = config.block_height * config.sub_height ** len(convs)
        # image columns per output frame at each 2D-LSTM layer's input
        self.columns_per_frame = [math.prod(widths[i:]) for i in range(len(hidden))]

    def blocks(self, x: torch.Tensor) -> torch.Tensor:
        """Space-to-depth: each bh x bw block of pixels becomes one bh*bw-vector."""
        bh, bw = self.config.block_height, self.config.block_width
        b, c, h, w = x.shape
        x = x.reshape(b, c, h // bh, bh, w // bw, bw).permute(0, 1, 3, 5, 2, 4)
        return x.reshape(b, c * bh * bw, h // bh, w // bw)

    def layer_columns(self, widths: torch.Tensor, padded_width: int) -> list[torch.Tensor] | None:
        """Per 2D-LSTM layer, each line's own columns (:func:`pipeline.mdlstm.column_mask`): as
        many as the line alone would have (its frames times the layer's columns per frame);
        None where no line of the batch is padded (or the model predates the masking)."""
        frames = self.frames(widths)
        if not self.config.mdlstm_mask_padding or bool((frames * self.reduce_w >= padded_width).all()):
            return None
        from pipeline.mdlstm import column_mask

        first = padded_width // self.config.block_width
        return [column_mask(frames * per_frame, first * per_frame // self.columns_per_frame[0])
                for per_frame in self.columns_per_frame]

    def forward(self, images: torch.Tensor, widths: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x = self.blocks(pad_to_multiple(images, self.reduce_h, self.reduce_w))
        columns = self.layer_columns(widths.to(x.device), x.shape[3] * self.config.block_width) if x.shape[0] else None
        if x.shape[0] and all(lstm.resolved_impl(x) == "cpp" for lstm in self.lstms):
            return self.forward_lanes(x, columns), self.frames(widths)
        for i, (lstm, drop) in enumerate(zip(self.lstms, self.drops)):
            x = drop(lstm(x, None if columns is None else columns[i]))
            if i < len(self.convs):
                x = torch.tanh(self.convs[i](x))
        logits = self.output(x.permute(0, 2, 3, 1)).sum(dim=1)  # (B, W', N): sum over height
        return F.log_softmax(logits, dim=-1).transpose(0, 1), self.frames(widths)

    def forward_lanes(self, x: torch.Tensor, columns: list[torch.Tensor] | None = None) -> torch.Tensor:
        """The same network with every activation in the C++ layer's lanes layout (C, groups,
        H, W, lanes): each subsampling conv (kernel = stride) is one GEMM over space-to-depth
        blocks that writes the next layer's input layout, and the output layer one GEMM, so
        no activation goes back to (B, C, H, W) in between (the convs and layout copies
        took a fifth of a training step)."""
        from pipeline.mdlstm import lanes_mask, to_lanes

        t = to_lanes(x)
        masks = None if columns is None else [lanes_mask(layer) for layer in columns]
        for i, (lstm, drop) in enumerate(zip(self.lstms, self.drops)):
            t = drop(lstm(t, None if masks is None else masks[i]))  # (4, h, groups, H, W, lanes)
            if i < len(self.convs):
                t = torch.tanh(self.lanes_convs[i](t))
        logits = self.lanes_output(t).sum(2)  # (N, groups, W, lanes): summed over height
        _, groups, width, lanes = logits.shape
        logits = logits.permute(2, 1, 3, 0).reshape(width, groups * lanes, -1)[:, :x.shape[0]]
        return F.log_softmax(logits, dim=-1)

    def frames(self, widths: torch.Tensor | int):
        """Valid output frames for lines of the given widths: ceil(W / reduction)."""
        if isinstance(widths, torch.Tensor):
            return torch.div(widths + self.reduce_w - 1, self.reduce_w, rounding_mode="floor")
        return math.ceil(widths / self.reduce_w)


class CRNN(nn.Module):
    """CNN + 1D BLSTM (Puigcerver 2017 / PyLaia style, small): conv blocks (3x3, batch
    norm, leaky ReLU, 2x2 max pooling on the first ``crnn_pools``, 2x1 on the last
    ``crnn_keep_width`` of those), columns flattened to vectors, BLSTM layers over the width,
    linear, log-softmax."""

    def __init__(self, config: ModelConfig, num_classes: int):
        super().__init__()
        self.config = config
        channels, layers = int_list(config.crnn_conv), []
        previous = 1
        self.block_ends: list[int] = []  # index in self.conv of each block's last module
        for i, size in enumerate(channels):
            layers += [nn.Conv2d(previous, size, 3, padding=1), nn.BatchNorm2d(size), nn.LeakyReLU(0.01)]
            if i < config.crnn_pools:
                height_only = i >= config.crnn_pools - config.crnn_keep_width
                layers.append(nn.MaxPool2d((2, 1) if height_only else 2))
            self.block_ends.append(len(layers) - 1)
            previous = size
        self.conv = nn.Sequential(*layers)
        self.reduce_h = 2 ** config.crnn_pools
        self.reduce_w = frame_width(config)
        features = previous * math.ceil(config.height / self.reduce_h)
        hidden = config.crnn_lstm_hidden
        self.lstms = nn.ModuleList(
            nn.LSTM(features if i == 0 else 2 * hidden, hidden, bidirectional=True)
            for i in range(config.crnn_lstm_layers))
        self.drops = nn.ModuleList(dropout_layer(p) for p in dropout_probs(config))
        self.output = nn.Linear(2 * hidden, num_classes)

    def forward(self, images: torch.Tensor, widths: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        if images.shape[2] != self.config.height:
            raise ValueError(f"CRNN expects lines {self.config.height} px high, got {images.shape[2]}")
        x = pad_to_multiple(images, self.reduce_h, self.reduce_w)
        lengths = self.frames(widths)
        x = self.convolve(x, lengths * self.reduce_w)
        b, c, h, w = x.shape
        x = x.permute(3, 0, 1, 2).reshape(w, b, c * h)  # (T, B, features)
        for lstm, drop in zip(self.lstms, self.drops):
            x = drop(padded_bilstm(lstm, x, lengths))
        return F.log_softmax(self.output(x), dim=-1), lengths

    def frames(self, widths: torch.Tensor | int):
        if isinstance(widths, torch.Tensor):
            return torch.div(widths + self.reduce_w - 1, self.reduce_w, rounding_mode="floor")
        return math.ceil(widths / self.reduce_w)

    def convolve(self, x: torch.Tensor, own_widths: torch.Tensor) -> torch.Tensor:
        """The conv blocks on a batch padded to its widest line; ``own_widths``: each line's
        width padded to whole output frames, as it would be alone.  Past that edge a conv block
        leaves bias activations where the line alone has the next conv's zero padding; with
        ``crnn_mask_padding`` they are zeroed after every block but the last (whose extra
        columns lie past the line's frames and are never read)."""
        if not self.config.crnn_mask_padding or bool((own_widths >= x.shape[3]).all()):
            return self.conv(x)
        from pipeline.mdlstm import column_mask
        full_width, masked_after = x.shape[3], self.block_ends[:-1]
        for index, module in enumerate(self.conv):
            x = module(x)
            if index in masked_after:
                columns = own_widths.to(x.device) * x.shape[3] // full_width  # the widths at this block's scale
                x = x * column_mask(columns, x.shape[3], x.dtype)[:, None, None, :]
        return x


def padded_bilstm(lstm: nn.LSTM, x: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
    """A one-layer bidirectional ``lstm`` over right-padded sequences ``x`` (T, B, F) of
    ``lengths``: the same outputs as packing them, zeros past each end.

    Each direction runs on the plain padded tensor (torch's fused CPU kernel; a packed
    sequence takes a per-step path about 3.5x slower on one thread, forward + backward):
    the forward direction reaches the padding only after a line's last frame, and the
    reverse direction reads each line reversed within its own length."""
    if lstm.num_layers != 1 or not lstm.bidirectional:
        raise ValueError("padded_bilstm runs one bidirectional layer")
    steps = torch.arange(x.shape[0], device=x.device).unsqueeze(1)
    lengths = lengths.to(x.device).unsqueeze(0)
    inside = steps < lengths  # (T, B)
    # frame t of a line of length L is frame L-1-t reversed; the padding stays where it is
    flip = torch.where(inside, lengths - 1 - steps, steps).unsqueeze(2)
    forward = _one_direction(lstm, x, "")
    backward = _one_direction(lstm, x.gather(0, flip.expand(-1, -1, x.shape[2])), "_reverse")
    backward = backward.gather(0, flip.expand(-1, -1, backward.shape[2]))
    return torch.cat([forward, backward], dim=2) * inside.unsqueeze(2)


def _one_direction(lstm: nn.LSTM, x: torch.Tensor, suffix: str) -> torch.Tensor:
    weights = [getattr(lstm, f"{name}_l0{suffix}") for name in ("weight_ih", "weight_hh", "bias_ih", "bias_hh")]
    zeros = x.new_zeros(1, x.shape[1], lstm.hidden_size)
    return torch.lstm(x, (zeros, zeros), weights, True, 1, 0.0, lstm.training, False, False)[0]


def build_model(config: ModelConfig, num_classes: int) -> nn.Module:
    """The network named by ``config.arch`` with ``num_classes`` outputs (alphabet + blank)."""
    config = model_config_of(config)
    config.check()
    return (MDLSTMNet if config.arch == "mdlstm" else CRNN)(config, num_classes)


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())
