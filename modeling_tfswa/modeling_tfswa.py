"""TFSWA-UNet: a U-Net of time-frequency shifted-window attention blocks over complex spectrograms.

Imports nothing of this project but its own configuration and spectral ops, and the
`music-source-separation` pipeline (relative imports that `save_pretrained` copies), so a saved model
folder loads with `trust_remote_code=True` on its own, and `pipeline()` runs from it.

Token grids are laid out `(batch, time, frequency, dim)` everywhere in this file.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn
from transformers import PreTrainedModel
from transformers import initialization as init
from transformers.modeling_layers import GradientCheckpointingLayer
from transformers.utils import ModelOutput

from .configuration_tfswa import TFSWAConfig
from .pipeline_tfswa import custom_pipelines
from .spectral import SpectralTransform

# Additive attention bias that keeps tokens of other shift regions / padding out of a window; finite
# (not -inf) so a fully padded window stays NaN-free, and small enough for float16.
_MASKED = -1e4


# ----------------------------------------------------------------------------------------------
# Outputs
# ----------------------------------------------------------------------------------------------
@dataclass
class TFSWASeparationOutput(ModelOutput):
    """Output of [`TFSWAUNet`].

    Args:
        loss (`torch.FloatTensor` of shape `()`, *optional*):
            Mean absolute error between `waveforms` and the `labels`, when labels are given (the
            plain waveform L1; see [`TFSWAUNet.forward`]).
        waveforms (`torch.FloatTensor` of shape `(batch, stems, channels, samples)`):
            Separated stems, in the order of `config.stems`, as long as the input.
        spectrograms (`torch.ComplexTensor` of shape `(batch, stems, channels, freq_bins, frames)`):
            Complex STFT of every separated stem: the masked mixture spectrogram, plus an equal
            share of the residual when `config.mixture_consistency` is set.
        masks (`torch.Tensor` of shape `(batch, stems, channels, freq_bins, frames)`):
            The masks: complex for `mask_type="complex"` (with mixture consistency, already the
            consistent masks, summing to one over the stems), real in [0, 1] for
            `mask_type="ratio"` (mixture consistency then adds the residual's share to the
            spectrograms).
    """

    loss: torch.FloatTensor | None = None
    waveforms: torch.FloatTensor | None = None
    spectrograms: torch.Tensor | None = None
    masks: torch.Tensor | None = None


# ----------------------------------------------------------------------------------------------
# Window helpers: small pure functions on (batch, time, freq, dim) grids
# ----------------------------------------------------------------------------------------------
def pad_grid(grid: torch.Tensor, multiple: tuple[int, int]) -> torch.Tensor:
    """Zero-pad a `(batch, time, freq, dim)` grid at the end of time and frequency up to multiples.

    Pads unconditionally (possibly by zero) so that traced and exported graphs stay valid for
    every input size, not only for sizes that needed the same padding as the example.
    """
    pad_t = -grid.shape[1] % multiple[0]
    pad_f = -grid.shape[2] % multiple[1]
    return F.pad(grid, (0, 0, 0, pad_f, 0, pad_t))


def window_partition(grid: torch.Tensor, window: tuple[int, int]) -> torch.Tensor:
    """Split a `(batch, time, freq, dim)` grid, whose sizes are multiples of `window`, into windows.

    Returns:
        `torch.Tensor` of shape `(batch, num_windows, window[0] * window[1], dim)`, windows in
        time-major order.
    """
    b, t, f, d = grid.shape
    wt, wf = window
    grid = grid.view(b, t // wt, wt, f // wf, wf, d).permute(0, 1, 3, 2, 4, 5)
    return grid.reshape(b, (t // wt) * (f // wf), wt * wf, d)


def window_reverse(windows: torch.Tensor, window: tuple[int, int], size: tuple[int, int]):
    """Inverse of [`window_partition`]: `(batch, num_windows, wt * wf, dim)` -> `(batch, t, f, dim)`."""
    b, _, _, d = windows.shape
    wt, wf = window
    t, f = size
    grid = windows.view(b, t // wt, f // wf, wt, wf, d).permute(0, 1, 3, 2, 4, 5)
    return grid.reshape(b, t, f, d)


def relative_position_index(window: tuple[int, int]) -> torch.Tensor:
    """Index into a `((2 wt - 1) * (2 wf - 1))`-row bias table for every pair of tokens in a window.

    Returns:
        `torch.LongTensor` of shape `(wt * wf, wt * wf)`.
    """
    wt, wf = window
    coords = torch.stack(torch.meshgrid(torch.arange(wt), torch.arange(wf), indexing="ij")).flatten(
        1
    )
    relative = coords[:, :, None] - coords[:, None, :]  # (2, L, L)
    return (relative[0] + wt - 1) * (2 * wf - 1) + (relative[1] + wf - 1)


def window_attention_mask(
    size: tuple[int, int],
    valid: tuple[int, int],
    window: tuple[int, int],
    shift: tuple[int, int],
    device: torch.device,
) -> torch.Tensor:
    """Additive mask keeping attention inside each shifted region and away from padding.

    Args:
        size: padded grid size `(t, f)`, multiples of `window`.
        valid: unpadded grid size; tokens beyond it are padding.
        window: window size `(wt, wf)`.
        shift: cyclic shift `(st, sf)` applied to the grid before partitioning.

    Returns:
        `torch.BoolTensor` of shape `(num_windows, wt * wf, wt * wf)`, `True` where attention is
        blocked (the attention puts `_MASKED` there in place of its position bias: one pass, where
        adding a float mask took three over the largest tensor of the block). Built for every
        input, even where it blocks nothing, so that exported graphs do not depend on whether the
        example input needed padding.
    """
    t, f = size
    labels = torch.zeros(t, f, dtype=torch.long, device=device)
    # Regions that the cyclic shift brings next to each other (Swin's shift mask), in shifted frame.
    region = 0
    for ts in _shift_slices(t, window[0], shift[0]):
        for fs in _shift_slices(f, window[1], shift[1]):
            labels[ts, fs] = region
            region += 1
    # Padding, marked in the unshifted frame and shifted like the grid.
    padding = torch.ones(t, f, dtype=torch.bool, device=device)
    padding[: valid[0], : valid[1]] = False
    padding = torch.roll(padding, shifts=(-shift[0], -shift[1]), dims=(0, 1))
    labels = labels + region * padding.long()
    windows = window_partition(labels[None, :, :, None], window)[0, :, :, 0]  # (nW, L)
    return windows[:, :, None] != windows[:, None, :]


def _shift_slices(length: int, window: int, shift: int) -> list[slice]:
    if shift == 0:
        return [slice(0, length)]
    return [
        slice(0, length - window),
        slice(length - window, length - shift),
        slice(length - shift, length),
    ]


# ----------------------------------------------------------------------------------------------
# Layers
# ----------------------------------------------------------------------------------------------
class TFSWADropPath(nn.Module):
    """Stochastic depth: drops the whole residual branch of a sample with probability `rate`."""

    def __init__(self, rate: float):
        super().__init__()
        self.rate = rate

    def forward(self, branch: torch.Tensor) -> torch.Tensor:
        if not self.training or self.rate == 0.0:
            return branch
        keep = 1.0 - self.rate
        shape = (branch.shape[0],) + (1,) * (branch.ndim - 1)
        return branch * branch.new_empty(shape).bernoulli_(keep) / keep


class TFSWAAttention(nn.Module):
    """Multi-head self-attention over the second-to-last axis of `(..., tokens, dim)`."""

    def __init__(self, config: TFSWAConfig, dim: int, num_heads: int):
        super().__init__()
        self.num_heads = num_heads
        self.qkv = nn.Linear(dim, 3 * dim, bias=config.qkv_bias)
        self.proj = nn.Linear(dim, dim)
        self.attention_dropout = config.attention_probs_dropout_prob
        self.proj_dropout = nn.Dropout(config.hidden_dropout_prob)

    def forward(self, tokens: torch.Tensor, bias: torch.Tensor | None = None) -> torch.Tensor:
        """
        Args:
            tokens (`torch.Tensor` of shape `(..., tokens, dim)`).
            bias (`torch.Tensor` broadcastable to `(..., heads, tokens, tokens)`, *optional*):
                additive attention bias.

        Returns:
            `torch.Tensor` of shape `(..., tokens, dim)`.
        """
        *lead, length, dim = tokens.shape
        qkv = self.qkv(tokens).view(*lead, length, 3, self.num_heads, dim // self.num_heads)
        q, k, v = qkv.movedim(-3, 0).transpose(-3, -2).unbind(0)  # each (..., heads, L, d)
        dropout = self.attention_dropout if self.training else 0.0
        # Fused attention (torch's SDPA), which wants exactly 4-D inputs: the leading axes fold
        # into one without a bias; with one, the batch stays first and the other leading axes
        # (windows) fold with the heads, so the bias broadcasts over the batch without a copy per
        # example. Measured on the CPU against explicit softmax weights: 2.7x faster forward.
        # The folded sizes are spelled out, not inferred with -1: under the ONNX exporter's
        # symbolic frame counts, inferring one divides a symbolic element count, which took most
        # of the export's time (582 s against 175 s for the default config).
        if bias is None:
            q, k, v = (x.reshape(math.prod(lead), *x.shape[-3:]) for x in (q, k, v))
            out = F.scaled_dot_product_attention(q, k, v, dropout_p=dropout)
        else:
            bias = bias.to(q.dtype).expand(*lead[1:], *q.shape[-3:-1], length)
            folded = math.prod(lead[1:]) * self.num_heads
            q, k, v = (x.reshape(lead[0], folded, *x.shape[-2:]) for x in (q, k, v))
            bias = bias.reshape(1, folded, length, length)
            if bias.requires_grad and q.device.type == "cpu":
                out = self.explicit_attention(q, k, v, bias, dropout)
            else:
                out = F.scaled_dot_product_attention(q, k, v, attn_mask=bias, dropout_p=dropout)
        out = out.view(*lead, self.num_heads, length, dim // self.num_heads)
        out = out.transpose(-3, -2).reshape(*lead, length, dim)
        return self.proj_dropout(self.proj(out))

    @staticmethod
    def explicit_attention(q, k, v, bias: torch.Tensor, dropout: float) -> torch.Tensor:
        """Softmax attention with an additive bias that is trained (the window attention's position
        bias), for the CPU: torch's fused CPU kernel cannot differentiate its mask, so SDPA falls
        back to its reference path there, which adds passes of its own (a check for fully masked
        rows, the bias expanded over the batch). This one ran the window attention's training
        step (forward and backward) in 0.78 of the time (`tfswa-unet`'s first stage).

        Args:
            q, k, v (`torch.Tensor` of shape `(batch, heads, L, d)`).
            bias (`torch.Tensor` of shape `(1, heads, L, L)`).

        Returns:
            `torch.Tensor` of shape `(batch, heads, L, d)`.
        """
        length, depth = q.shape[-2:]
        scores = torch.bmm(
            (q * depth**-0.5).reshape(-1, length, depth), k.reshape(-1, length, depth).mT
        )
        weights = (scores.view(q.shape[0], -1, length, length) + bias).softmax(-1)
        weights = F.dropout(weights, dropout).view(-1, length, length)
        return torch.bmm(weights, v.reshape(-1, length, depth)).view(q.shape)


class TFSWAWindowAttention(nn.Module):
    """Swin-style (shifted) window attention with a learned relative position bias.

    The grid is padded to a multiple of the window (padding masked out of attention) and cropped
    back, so any number of frames and frequency patches works.
    """

    def __init__(self, config: TFSWAConfig, dim: int, num_heads: int, shifted: bool):
        super().__init__()
        self.window = tuple(config.window_size)
        self.shift = tuple(w // 2 for w in self.window) if shifted else (0, 0)
        self.attention = TFSWAAttention(config, dim, num_heads)
        wt, wf = self.window
        self.relative_position_bias_table = nn.Parameter(
            torch.zeros((2 * wt - 1) * (2 * wf - 1), num_heads)
        )
        # Derived from the window size, so not saved; `_init_weights` refills it after loading.
        self.register_buffer(
            "relative_position_index", relative_position_index(self.window), persistent=False
        )

    def forward(self, grid: torch.Tensor) -> torch.Tensor:
        """`(batch, time, freq, dim)` -> `(batch, time, freq, dim)`."""
        b, t, f, d = grid.shape
        padded = pad_grid(grid, self.window)
        size = (padded.shape[1], padded.shape[2])
        if self.shift != (0, 0):
            padded = torch.roll(padded, shifts=(-self.shift[0], -self.shift[1]), dims=(1, 2))
        windows = window_partition(padded, self.window)  # (b, nW, L, d)
        length = windows.shape[2]
        bias = self.relative_position_bias_table[self.relative_position_index.view(-1)]
        bias = bias.view(length, length, -1).permute(2, 0, 1)  # (heads, L, L)
        mask = window_attention_mask(size, (t, f), self.window, self.shift, grid.device)
        bias = torch.where(mask[:, None], _MASKED, bias[None])  # (nW, heads, L, L)
        out = window_reverse(self.attention(windows, bias), self.window, size)
        if self.shift != (0, 0):
            out = torch.roll(out, shifts=self.shift, dims=(1, 2))
        return out[:, :t, :f]


class TFSWAAxisAttention(nn.Module):
    """Full attention along one axis of the grid: time (each frequency row attends along time) or
    frequency (each frame attends along frequency)."""

    def __init__(self, config: TFSWAConfig, dim: int, num_heads: int, axis: str):
        super().__init__()
        if axis not in ("time", "frequency"):
            raise ValueError(f"axis must be 'time' or 'frequency', got {axis!r}")
        self.along_time = axis == "time"
        self.attention = TFSWAAttention(config, dim, num_heads)

    def forward(self, grid: torch.Tensor) -> torch.Tensor:
        """`(batch, time, freq, dim)` -> `(batch, time, freq, dim)`."""
        if self.along_time:
            return self.attention(grid.transpose(1, 2)).transpose(1, 2)
        return self.attention(grid)


class TFSWAMLP(nn.Module):
    """The block's feed-forward: token-wise, or with `config.mlp_conv_kernel_size` a depthwise
    convolution over the grid added to the hidden features before the activation."""

    def __init__(self, config: TFSWAConfig, dim: int):
        super().__init__()
        hidden = int(dim * config.mlp_ratio)
        self.fc1 = nn.Linear(dim, hidden)
        self.fc2 = nn.Linear(hidden, dim)
        self.dropout = nn.Dropout(config.hidden_dropout_prob)
        k = config.mlp_conv_kernel_size
        self.conv = nn.Conv2d(hidden, hidden, k, padding=k // 2, groups=hidden) if k else None

    def forward(self, grid: torch.Tensor) -> torch.Tensor:
        """`(batch, time, freq, dim)` -> `(batch, time, freq, dim)`."""
        hidden = self.fc1(grid)
        if self.conv is not None:
            hidden = hidden + self.conv(hidden.permute(0, 3, 1, 2)).permute(0, 2, 3, 1)
        return self.dropout(self.fc2(self.dropout(F.gelu(hidden))))


class TFSWABlock(GradientCheckpointingLayer):
    """One TFSWA block (pre-norm residual branches):

    1. (shifted) window attention over local time × frequency windows;
    2. if `tf_attention`: temporal attention along the whole time axis of each frequency row, then
       frequency attention along the whole frequency axis of each frame;
    3. a feed-forward layer (token-wise, or with a depthwise convolution over the grid:
       `mlp_conv_kernel_size`).
    """

    def __init__(
        self,
        config: TFSWAConfig,
        dim: int,
        num_heads: int,
        shifted: bool,
        tf_attention: bool,
        drop_path: float,
    ):
        super().__init__()
        eps = config.layer_norm_eps
        self.window_norm = nn.LayerNorm(dim, eps=eps)
        self.window_attention = TFSWAWindowAttention(config, dim, num_heads, shifted)
        self.tf_attention = tf_attention
        if tf_attention:
            self.time_norm = nn.LayerNorm(dim, eps=eps)
            self.time_attention = TFSWAAxisAttention(config, dim, num_heads, "time")
            self.frequency_norm = nn.LayerNorm(dim, eps=eps)
            self.frequency_attention = TFSWAAxisAttention(config, dim, num_heads, "frequency")
        self.mlp_norm = nn.LayerNorm(dim, eps=eps)
        self.mlp = TFSWAMLP(config, dim)
        self.drop_path = TFSWADropPath(drop_path)

    def forward(self, hidden_states: torch.Tensor) -> torch.Tensor:
        """`(batch, time, freq, dim)` -> `(batch, time, freq, dim)`."""
        x = hidden_states
        x = x + self.drop_path(self.window_attention(self.window_norm(x)))
        if self.tf_attention:
            x = x + self.drop_path(self.time_attention(self.time_norm(x)))
            x = x + self.drop_path(self.frequency_attention(self.frequency_norm(x)))
        return x + self.drop_path(self.mlp(self.mlp_norm(x)))


class TFSWAStage(nn.Module):
    """Blocks of one U-Net level, alternating unshifted and shifted windows."""

    def __init__(self, config: TFSWAConfig, level: int, depth: int, drop_paths: list[float]):
        super().__init__()
        self.blocks = nn.ModuleList(
            TFSWABlock(
                config,
                dim=config.dims[level],
                num_heads=config.num_heads[level],
                shifted=i % 2 == 1,
                tf_attention=config.tf_attention_stages[level],
                drop_path=drop_paths[i],
            )
            for i in range(depth)
        )

    def forward(self, grid: torch.Tensor) -> torch.Tensor:
        for block in self.blocks:
            grid = block(grid)
        return grid


class TFSWAPatchMerging(nn.Module):
    """Halves time and frequency (zero-padding odd sizes): 2×2 neighbours -> one token."""

    def __init__(self, config: TFSWAConfig, dim: int, out_dim: int):
        super().__init__()
        self.norm = nn.LayerNorm(4 * dim, eps=config.layer_norm_eps)
        self.reduction = nn.Linear(4 * dim, out_dim, bias=False)

    def forward(self, grid: torch.Tensor) -> torch.Tensor:
        """`(batch, t, f, dim)` -> `(batch, ceil(t / 2), ceil(f / 2), out_dim)`."""
        grid = pad_grid(grid, (2, 2))
        b, t, f, d = grid.shape
        grid = grid.view(b, t // 2, 2, f // 2, 2, d).permute(0, 1, 3, 2, 4, 5)
        return self.reduction(self.norm(grid.reshape(b, t // 2, f // 2, 4 * d)))


class TFSWAPatchExpanding(nn.Module):
    """Doubles time and frequency, crops to the skip connection's grid and fuses it.

    The upsampled and the skip features are normalised separately before fusing: with one norm
    over both, the skip's larger activations drown the deep path (its gradients were ~100x smaller
    than the first stage's at initialisation).
    """

    def __init__(self, config: TFSWAConfig, dim: int, out_dim: int):
        super().__init__()
        self.expand = nn.Linear(dim, 4 * out_dim)
        self.up_norm = nn.LayerNorm(out_dim, eps=config.layer_norm_eps)
        self.skip_norm = nn.LayerNorm(out_dim, eps=config.layer_norm_eps)
        self.fuse = nn.Linear(2 * out_dim, out_dim)

    def forward(self, grid: torch.Tensor, skip: torch.Tensor) -> torch.Tensor:
        """`(batch, t, f, dim)` and skip `(batch, t2, f2, out_dim)` -> `(batch, t2, f2, out_dim)`,
        with `t2 <= 2 t` and `f2 <= 2 f`."""
        b, t, f, _ = grid.shape
        d = skip.shape[-1]
        grid = self.expand(grid).view(b, t, f, 2, 2, d).permute(0, 1, 3, 2, 4, 5)
        grid = grid.reshape(b, 2 * t, 2 * f, d)[:, : skip.shape[1], : skip.shape[2]]
        return self.fuse(torch.cat([self.up_norm(grid), self.skip_norm(skip)], dim=-1))


class TFSWAPatchEmbedding(nn.Module):
    """Spectrogram features -> token grid: non-overlapping patches, `patch_size[0]` frames by the
    width of their frequency band (`config.frequency_patches`; one band of `patch_size[1]` bins by
    default), one embedding per band, plus a learned embedding of the frequency position (attention
    is otherwise blind to absolute frequency)."""

    def __init__(self, config: TFSWAConfig):
        super().__init__()
        self.frames_per_patch = config.patch_size[0]
        self.bands = config.frequency_patches
        in_channels = config.num_input_features
        self.projections = nn.ModuleList(
            nn.Conv2d(
                in_channels,
                config.dims[0],
                (self.frames_per_patch, width),
                (self.frames_per_patch, width),
            )
            for _, _, width in self.bands
        )
        num_patches = sum(band_tokens(self.bands))
        self.frequency_embedding = nn.Parameter(torch.zeros(num_patches, config.dims[0]))
        self.norm = nn.LayerNorm(config.dims[0], eps=config.layer_norm_eps)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        """`(batch, num_input_features, frames, freq_bins)` -> `(batch, time, freq, dims[0])`."""
        pad_t = -features.shape[2] % self.frames_per_patch
        grids = [
            projection(F.pad(features[..., start:stop], (0, -(stop - start) % width, 0, pad_t)))
            for (start, stop, width), projection in zip(self.bands, self.projections)
        ]
        grid = torch.cat(grids, dim=3) if len(grids) > 1 else grids[0]
        return self.norm(grid.permute(0, 2, 3, 1) + self.frequency_embedding)


def band_tokens(bands: list[tuple[int, int, int]]) -> list[int]:
    """Tokens per frame of each `(start, stop, width)` frequency band."""
    return [-(-(stop - start) // width) for start, stop, width in bands]


class TFSWAMaskHead(nn.Linear):
    """Final projection of the tokens to the mask values of their patch (its own class so that
    `_init_weights` can start it at the even split of the mixture).

    Output features are ordered `(patch_time, patch_freq, stems, channels, real/imag)`. With
    `consistent=(stems, channels)` (mixture consistency with complex masks) the weight and bias are
    projected on the fly so that the stems' masks of every bin sum to one: the consistent estimate
    `X m_i + (X - sum_j X m_j) / S = X (m_i + (1 - sum_j m_j) / S)` is affine in the head's output,
    so the projection costs a pass over the head's few parameters per step instead of passes over
    every spectrogram bin, and the head returns the masks that are applied.
    """

    def __init__(self, in_features: int, out_features: int, consistent: tuple[int, int] | None):
        super().__init__(in_features, out_features)
        self.consistent = consistent

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        if self.consistent is None:
            return super().forward(tokens)
        stems, channels = self.consistent
        weight = self.weight.view(-1, stems, channels * 2, self.in_features)
        weight = weight - weight.mean(dim=1, keepdim=True)
        bias = self.bias.view(-1, stems, channels, 2)
        one = bias.new_tensor([1.0 / stems, 0.0])  # the even split, real part
        bias = bias - bias.mean(dim=1, keepdim=True) + one
        return F.linear(tokens, weight.reshape_as(self.weight), bias.reshape_as(self.bias))


class TFSWAMaskEstimator(nn.Module):
    """The network proper: mixture spectrogram in, masks out. Holds no STFT so it exports alone.

    The input is normalised per frequency bin (instance normalisation over channels and frames of
    each example; with `config.log_power_input` the log power per channel joins it), embedded as
    patches (per frequency band: `config.frequency_patches`), passed
    through the encoder stages (TFSWA blocks, then patch merging), the bottleneck stage and decoder
    stages (patch expanding fused with the encoder's skip connection, then TFSWA blocks), and
    projected back to one mask value per STFT bin, stem, channel and real/imaginary part.
    """

    def __init__(self, config: TFSWAConfig):
        super().__init__()
        self.config = config
        levels = config.num_stages
        self.patch_embedding = TFSWAPatchEmbedding(config)
        rates = torch.linspace(0, config.drop_path_rate, sum(config.depths)).tolist()
        starts = [sum(config.depths[:i]) for i in range(levels)]
        self.encoder = nn.ModuleList(
            TFSWAStage(config, i, depth, rates[starts[i] : starts[i] + depth])
            for i, depth in enumerate(config.depths)
        )
        self.merges = nn.ModuleList(
            TFSWAPatchMerging(config, config.dims[i], config.dims[i + 1]) for i in range(levels - 1)
        )
        self.expands = nn.ModuleList(
            TFSWAPatchExpanding(config, config.dims[i + 1], config.dims[i])
            for i in range(levels - 1)
        )
        self.decoder = nn.ModuleList(
            TFSWAStage(config, i, depth, [0.0] * depth)
            for i, depth in enumerate(config.decoder_depths)
        )
        self.head_norm = nn.LayerNorm(config.dims[0], eps=config.layer_norm_eps)
        consistent = config.mixture_consistency and config.mask_type == "complex"
        self.bands = config.frequency_patches
        self.heads = nn.ModuleList(  # one per frequency band
            TFSWAMaskHead(
                config.dims[0],
                config.patch_size[0] * width * config.num_mask_channels,
                (config.num_stems, config.audio_channels) if consistent else None,
            )
            for _, _, width in self.bands
        )
        self.band_tokens = band_tokens(self.bands)

    def normalize(self, features: torch.Tensor) -> torch.Tensor:
        """Per-example, per-frequency-bin instance normalisation over channels and frames.

        Args:
            features (`torch.FloatTensor` of shape `(batch, 2 * channels, frames, freq_bins)`).

        Two passes over the frames-outer layout (mean, then the mean square of the centred
        values): 3-4x faster on the CPU than `Tensor.var` over the bins-outer view it replaced.
        """
        centred = features - features.mean(dim=(1, 2), keepdim=True)
        var = centred.square().mean(dim=(1, 2), keepdim=True)
        return centred * torch.rsqrt(var + self.config.spectrogram_norm_eps)

    def log_power(self, features: torch.Tensor) -> torch.Tensor:
        """Log power per audio channel, centred per frequency bin and scaled per example
        (`config.log_power_input`).

        Args:
            features (`torch.FloatTensor` of shape `(batch, 2 * channels, frames, freq_bins)`):
                real and imaginary parts, un-normalised.

        Returns:
            `torch.FloatTensor` of shape `(batch, channels, frames, freq_bins)`.
        """
        power = features.unflatten(1, (-1, 2)).square().sum(dim=2)
        floor = 1e-6 * power.mean(dim=(1, 2, 3), keepdim=True)  # 60 dB below the mean power
        logs = torch.log(power + floor + torch.finfo(power.dtype).tiny)
        centred = logs - logs.mean(dim=(1, 2), keepdim=True)  # a fixed equalisation cancels
        var = centred.square().mean(dim=(1, 2, 3), keepdim=True)
        return centred * torch.rsqrt(var + self.config.spectrogram_norm_eps)

    def forward(self, spectrogram: torch.Tensor) -> torch.Tensor:
        """
        Args:
            spectrogram (`torch.FloatTensor` of shape `(batch, 2 * channels, freq_bins, frames)`):
                the mixture STFT as real and imaginary parts, ordered
                `[ch0.real, ch0.imag, ch1.real, ch1.imag, ...]`.

        Returns:
            `torch.FloatTensor` of shape `(batch, stems, channels, freq_bins, frames, 2)` for complex
            masks (real and imaginary part last, as `torch.view_as_real` gives them) or
            `(batch, stems, channels, freq_bins, frames)` for ratio masks (before the sigmoid).
            Frames are the outer axis in memory, as in `torch.stft`'s output (a transposed view),
            so that the masks multiply the STFT and feed the inverse STFT without copies.
        """
        b, _, _, frames = spectrogram.shape
        spectrogram = spectrogram.transpose(2, 3)  # (b, 2C, frames, bins)
        features = self.normalize(spectrogram)
        if self.config.log_power_input:
            features = torch.cat([features, self.log_power(spectrogram)], dim=1)
        grid = self.patch_embedding(features)
        skips = []
        for level, stage in enumerate(self.encoder):
            grid = stage(grid)
            if level < len(self.merges):
                skips.append(grid)
                grid = self.merges[level](grid)
        for level in reversed(range(len(self.decoder))):
            grid = self.decoder[level](self.expands[level](grid, skips[level]))
        config = self.config
        pt = config.patch_size[0]
        stems, channels = config.num_stems, config.audio_channels
        tokens = self.head_norm(grid)
        # Per band: (b, t, f_band, pt * width * M), M = stems x channels x parts, arranged as
        # (b, stems, channels, frames, bins, parts) and concatenated along the bins: that writes
        # every mask value once in the order in which the masks multiply the STFT and the product
        # feeds the inverse STFT, as dense work without further copies (left as a strided view,
        # the multiply and the inverse STFT each copied instead: 6.69 against 4.79 CPU s per
        # minute of audio for the quality benchmark's `tfswa-unet`). With one frame per patch the
        # arrangement is a view (otherwise `reshape` copies: frames and bins interleave).
        masks, first = [], 0
        for (start, stop, width), head, n in zip(self.bands, self.heads, self.band_tokens):
            out = head(tokens[:, :, first : first + n])
            first += n
            t = out.shape[1]
            out = out.view(b, t, n, pt, width, stems, channels, -1).permute(0, 5, 6, 1, 3, 2, 4, 7)
            out = out.reshape(b, stems, channels, t * pt, n * width, out.shape[-1])
            masks.append(out[:, :, :, :frames, : stop - start])
        out = torch.cat(masks, dim=4)  # a copy also for one band
        out = out.transpose(3, 4)  # (b, stems, channels, bins, frames, parts): a view
        return out if config.mask_type == "complex" else out.squeeze(-1)


# ----------------------------------------------------------------------------------------------
# Pretrained model
# ----------------------------------------------------------------------------------------------
class TFSWAPreTrainedModel(PreTrainedModel):
    config_class = TFSWAConfig
    base_model_prefix = "tfswa"
    main_input_name = "input_values"
    input_modalities = "audio"
    supports_gradient_checkpointing = True
    _no_split_modules = ["TFSWABlock"]
    #: Weight names of folders saved before the frequency bands (one patch embedding and one mask
    #: projection, now the first of one per band): renamed on loading, so such folders load as
    #: they were instead of starting those layers from random weights.
    _LEGACY_WEIGHT_NAMES = {
        r"patch_embedding\.projection\.": "patch_embedding.projections.0.",
        r"mask_estimator\.head\.": "mask_estimator.heads.0.",
    }

    @classmethod
    def from_pretrained(cls, *args, **kwargs):
        """`PreTrainedModel.from_pretrained`, also reading folders saved before the frequency bands
        (`_LEGACY_WEIGHT_NAMES`; a `key_mapping` passed in is applied as well)."""
        kwargs["key_mapping"] = {**cls._LEGACY_WEIGHT_NAMES, **(kwargs.get("key_mapping") or {})}
        return super().from_pretrained(*args, **kwargs)

    def _init_weights(self, module: nn.Module):
        std = self.config.initializer_range
        if isinstance(module, TFSWAMaskHead):
            # Start from masks that split the mixture evenly between the stems: the estimates then
            # sum to the mixture from step 0, and training learns deviations from that.
            init.zeros_(module.weight)
            if self.config.mask_type == "complex":
                bias = torch.zeros(module.bias.shape[0] // 2, 2)
                bias[:, 0] = 1.0 / self.config.num_stems
                init.copy_(module.bias, bias.flatten())
            else:
                init.zeros_(module.bias)
        elif isinstance(module, (nn.Linear, nn.Conv2d)):
            init.trunc_normal_(module.weight, std=std)
            if module.bias is not None:
                init.zeros_(module.bias)
        elif isinstance(module, nn.LayerNorm):
            init.ones_(module.weight)
            init.zeros_(module.bias)
        elif isinstance(module, TFSWAWindowAttention):
            init.trunc_normal_(module.relative_position_bias_table, std=std)
            init.copy_(module.relative_position_index, relative_position_index(module.window))
        elif isinstance(module, TFSWAPatchEmbedding):
            init.trunc_normal_(module.frequency_embedding, std=std)
        elif isinstance(module, SpectralTransform):
            init.copy_(module.window, module.make_window())


class TFSWAUNet(TFSWAPreTrainedModel):
    r"""TFSWA-UNet music source separator: waveform mixture in, one waveform per stem out.

    The mixture's STFT (float32, `n_fft`/`hop_length` of the config) feeds the
    [`TFSWAMaskEstimator`], which predicts one mask per stem and audio channel; the masks multiply
    the *un-normalised* mixture STFT and the inverse STFT gives the stems.

    How the blocks see time and frequency: patches of `patch_size` STFT bins (default 2 frames × 8
    bins; with `frequency_bands`, narrower patches at low frequencies and wider ones above) become
    tokens on a time × frequency grid that halves in both axes at each deeper stage.
    Every block attends within local time × frequency windows (`window_size`, shifted by half a
    window in every other block, so information crosses window borders; a learned relative position
    bias tells each token where the others sit in time and frequency). In the stages flagged by
    `tf_attention_stages` (by default the coarse half of the U-Net, where it is cheap), each block
    also attends along the whole time axis of each frequency row (temporal attention: rhythm and
    repetition) and along the whole frequency axis of each frame (frequency attention: harmonics
    and timbre). A learned embedding of the frequency position makes the attention aware of absolute
    frequency, which the windowed attention alone is not.

    Example:

    ```python
    >>> import torch
    >>> from modeling_tfswa import TFSWAConfig, TFSWAUNet
    >>> model = TFSWAUNet(TFSWAConfig(stems=["vocals", "accompaniment"])).eval()
    >>> mixture = torch.randn(1, 2, 44100)  # (batch, channels, samples)
    >>> model(mixture).waveforms.shape  # (batch, stems, channels, samples)
    torch.Size([1, 2, 2, 44100])
    ```
    """

    def __init__(self, config: TFSWAConfig):
        super().__init__(config)
        self.spectral = SpectralTransform(config.n_fft, config.hop_length)
        self.mask_estimator = TFSWAMaskEstimator(config)
        self.post_init()

    def save_pretrained(self, save_directory, *args, **kwargs):
        """`PreTrainedModel.save_pretrained`, also naming the `music-source-separation` pipeline in
        `config.json` (`custom_pipelines`; its code is copied beside the model's), so that
        `pipeline("music-source-separation", model=folder, trust_remote_code=True)` works."""
        self.config.custom_pipelines = custom_pipelines()
        return super().save_pretrained(save_directory, *args, **kwargs)

    @staticmethod
    def spectrogram_features(mixture_spec: torch.Tensor) -> torch.Tensor:
        """The mask estimator's input: the mixture STFT as real and imaginary parts.

        Args:
            mixture_spec (`torch.Tensor` of shape `(batch, channels, freq_bins, frames)`): complex,
                as `self.spectral.stft` gives it.

        Returns:
            `torch.FloatTensor` of shape `(batch, 2 * channels, freq_bins, frames)`, ordered
            `[ch0.real, ch0.imag, ch1.real, ch1.imag, ...]`; frames outer in memory, like the STFT.
        """
        batch, channels, bins, frames = mixture_spec.shape
        features = torch.view_as_real(mixture_spec).permute(0, 1, 4, 3, 2)  # (B, C, 2, N, F)
        return features.reshape(batch, 2 * channels, frames, bins).transpose(2, 3)

    def forward(
        self,
        input_values: torch.Tensor,
        labels: torch.Tensor | None = None,
        return_dict: bool | None = None,
        output_attentions: bool | None = None,
        output_hidden_states: bool | None = None,
    ) -> TFSWASeparationOutput | tuple:
        r"""
        Args:
            input_values (`torch.FloatTensor` of shape `(batch, channels, samples)`):
                The mixture waveform at `config.sample_rate`, any number of samples.
            labels (`torch.FloatTensor` of shape `(batch, stems, channels, samples)`, *optional*):
                The true stems, in the order of `config.stems`; gives `loss`, the plain waveform L1
                (mean absolute error over batch, stems, channels and samples). It is kept because
                it is the same definition as the project's training loss with its default weights
                (`modeling_tfswa.training.losses.SeparationLoss` with only `waveform_l1: 1`, a
                test holds them equal), so `model(x, labels=y).loss` is what a plain transformers
                loop or a quick check expects. Training itself uses `SeparationLoss`, which adds
                the spectral parts of its config and logs every part per stem.
            return_dict (`bool`, *optional*): return a tuple when `False`.
            output_attentions, output_hidden_states (`bool`, *optional*): the flags transformers
                utilities may pass; the model returns neither, so only `None` / `False` are
                accepted (`True` is a `ValueError`, not silently ignored).

        Any other keyword is a `TypeError` (no argument is swallowed).

        Returns:
            [`TFSWASeparationOutput`].
        """
        for flag, value in (
            ("output_attentions", output_attentions),
            ("output_hidden_states", output_hidden_states),
        ):
            if value:
                raise ValueError(f"{flag}=True: TFSWAUNet returns no attentions or hidden states")
        config = self.config
        if input_values.ndim != 3 or input_values.shape[1] != config.audio_channels:
            raise ValueError(
                "input_values must have shape (batch, channels, samples) with "
                f"channels={config.audio_channels}, got {tuple(input_values.shape)}"
            )
        num_samples = input_values.shape[-1]
        # Spectrograms keep torch.stft's memory order (frames outer, bins inner) all the way to
        # the inverse STFT: the masking is then dense elementwise work, with no transposing copy.
        mixture_spec = self.spectral.stft(input_values)  # (B, C, F, N) complex64
        masks = self.mask_estimator(self.spectrogram_features(mixture_spec))
        with torch.autocast(device_type=input_values.device.type, enabled=False):
            masks = masks.float()
            if config.mask_type == "complex":  # (B, S, C, F, N, 2) -> complex (B, S, C, F, N)
                masks = torch.view_as_complex(masks)
            else:
                masks = torch.sigmoid(masks)
            spectrograms = masks * mixture_spec.unsqueeze(1)  # (B, S, C, F, N)
            # the residual shared equally, unless the mask head already did (complex masks: see
            # TFSWAMaskHead)
            if config.mixture_consistency and self.mask_estimator.heads[0].consistent is None:
                residual = mixture_spec - spectrograms.sum(dim=1)
                spectrograms = spectrograms + (residual / config.num_stems).unsqueeze(1)
            waveforms = self.spectral.istft(spectrograms, num_samples)
            loss = None
            if labels is not None:
                if labels.shape != waveforms.shape:
                    raise ValueError(
                        f"labels must have shape {tuple(waveforms.shape)} (batch, stems, channels, "
                        f"samples), got {tuple(labels.shape)}"
                    )
                loss = F.l1_loss(waveforms, labels.float())
        output = TFSWASeparationOutput(
            loss=loss, waveforms=waveforms, spectrograms=spectrograms, masks=masks
        )
        return output if return_dict is not False else output.to_tuple()


__all__ = [
    "TFSWAMaskEstimator",
    "TFSWAPreTrainedModel",
    "TFSWASeparationOutput",
    "TFSWAUNet",
    "pad_grid",
    "relative_position_index",
    "window_attention_mask",
    "window_partition",
    "window_reverse",
]
