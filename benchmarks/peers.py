"""Peer separators from their pip packages, behind the model contract of the project's training
loop and separation API: `model(input_values=(batch, channels, samples)).waveforms` is
`(batch, stems, channels, samples)`, and `model.config` has `stems`, `sample_rate` and
`audio_channels`. Random weights only (no pretrained weights, no network).

Peers and how they are sized for the quality benchmark (4-6M parameters, 4 stems, stereo, 44.1 kHz):

- `open-unmix` (`openunmix`): one `OpenUnmix` per stem (hidden 128, n_fft 4096 / hop 1024, 16 kHz
  bandwidth, bidirectional LSTMs) in its `Separator` with no Wiener iteration (ratio of the
  estimated magnitudes on the mixture phase: the EM steps are an inference-time post-process).
- `htdemucs` (`demucs`): `HTDemucs` with 24 channels, depth 4, 2 cross-domain transformer layers
  (the released model: 48 channels, 5 layers, 42M).
- `bs-roformer` (`bs-roformer`): `BSRoformer` dim 96, depth 3 (1 time + 1 frequency transformer
  per layer), the package's default 62 bands, one-layer mask estimators (the default two-layer
  ones alone hold 22M parameters at this width), no hyper-connection streams.
- `mel-roformer` (`bs-roformer`): `MelBandRoformer` dim 32, depth 3, 60 mel bands, n_fft 1024 /
  hop 512 (the hop of BS-RoFormer's default; at hop 256 one training step of batch 4 x 2 s needs
  15 GB), one-layer mask estimators: its per-band mask MLPs (a fixed 4x hidden width over
  overlapping mel bands) hold most parameters, so the width is what fits the 4-6M budget.

Why a torchaudio stand-in: `openunmix` imports torchaudio at module level (its STFT module and its
file utilities), but the model classes used here never call it; torchaudio has no build for this
torch, so [`import_openunmix`] puts an empty module in `sys.modules` of this process only, before
importing openunmix. Install the peers with
`pip install demucs openunmix einops julius --no-deps` and
`pip install bs-roformer beartype einx hyper-connections pope-pytorch rotary-embedding-torch
torch-einops-utils frozendict librosa --no-deps` (never torchaudio, never another torch).
"""

from __future__ import annotations

import importlib.util
import sys
import types
from collections.abc import Callable
from dataclasses import asdict, dataclass, field

import torch
import torch.nn.functional as F
from torch import nn

SAMPLE_RATE = 44100
MUSDB_STEMS = ["vocals", "drums", "bass", "other"]


@dataclass
class PeerConfig:
    """What the loop and the separation API read of a model's config."""

    stems: list[str]
    sample_rate: int = SAMPLE_RATE
    audio_channels: int = 2
    segment_seconds: float = 6.0  # separation defaults, as TFSWAConfig's (build_peer sets the
    overlap: float = 0.25  # length the peer was trained on)
    settings: dict = field(default_factory=dict)  # how the peer was built, for the reports

    def to_diff_dict(self) -> dict:
        """The config as a dict (what the evaluation records of a model's config)."""
        return asdict(self)


@dataclass
class PeerOutput:
    """`waveforms`: `(batch, stems, channels, samples)`, as long as the input."""

    waveforms: torch.Tensor


class WaveformSeparator(nn.Module):
    """Adapts a peer network (`net(mixture (B, C, T)) -> (B, S, C, T')`) to the model contract;
    outputs are cropped or zero-padded to the input length (some peers' inverse STFT is not)."""

    def __init__(self, net: nn.Module, config: PeerConfig):
        super().__init__()
        self.net = net
        self.config = config

    def forward(self, input_values: torch.Tensor) -> PeerOutput:
        length = input_values.shape[-1]
        waveforms = self.net(input_values)
        waveforms = waveforms[..., :length]
        return PeerOutput(waveforms=F.pad(waveforms, (0, length - waveforms.shape[-1])))


class Float32Output(nn.Module):
    """Runs `module` and returns its output as float32. The RoFormers multiply their STFT by the
    mask estimators' output through `torch.view_as_complex`, which refuses bfloat16: under CUDA
    bf16 autocast their Linear layers return bfloat16 (seen on an H200), so the adapter hands the
    complex multiply a float32 mask, as their STFT is."""

    def __init__(self, module: nn.Module):
        super().__init__()
        self.module = module

    def forward(self, *args, **kwargs) -> torch.Tensor:
        return self.module(*args, **kwargs).float()


def float32_masks(net: nn.Module) -> nn.Module:
    """`net` with each of its `mask_estimators` wrapped in [`Float32Output`]."""
    net.mask_estimators = nn.ModuleList(Float32Output(m) for m in net.mask_estimators)
    return net


def import_openunmix() -> types.ModuleType:
    """`openunmix.model`, importable without torchaudio (see the module docstring)."""
    sys.modules.setdefault("torchaudio", types.ModuleType("torchaudio"))
    from openunmix import model

    return model


def build_open_unmix(stems: list[str], segment_seconds: float) -> WaveformSeparator:
    model = import_openunmix()
    from openunmix.utils import bandwidth_to_max_bin

    settings = dict(hidden_size=128, n_fft=4096, n_hop=1024, bandwidth_hz=16000, niter=0)
    max_bin = int(bandwidth_to_max_bin(SAMPLE_RATE, 4096, 16000))
    targets = {
        stem: model.OpenUnmix(nb_bins=2049, nb_channels=2, hidden_size=128, max_bin=max_bin)
        for stem in stems
    }
    net = model.Separator(targets, niter=0, n_fft=4096, n_hop=1024, nb_channels=2)
    return WaveformSeparator(net, PeerConfig(stems, settings=settings))


def build_htdemucs(stems: list[str], segment_seconds: float) -> WaveformSeparator:
    from demucs.htdemucs import HTDemucs

    settings = dict(channels=24, depth=4, t_layers=2, segment=segment_seconds)
    net = HTDemucs(stems, audio_channels=2, samplerate=SAMPLE_RATE, **settings)
    return WaveformSeparator(net, PeerConfig(stems, settings=settings))


def build_bs_roformer(stems: list[str], segment_seconds: float) -> WaveformSeparator:
    from bs_roformer import BSRoformer

    settings = dict(
        dim=96, depth=3, time_transformer_depth=1, freq_transformer_depth=1,
        mask_estimator_depth=1, num_residual_streams=1,
    )  # fmt: skip
    net = float32_masks(BSRoformer(stereo=True, num_stems=len(stems), **settings))
    return WaveformSeparator(net, PeerConfig(stems, settings=settings))


def build_mel_roformer(stems: list[str], segment_seconds: float) -> WaveformSeparator:
    from bs_roformer import MelBandRoformer

    settings = dict(
        dim=32, depth=3, time_transformer_depth=1, freq_transformer_depth=1, num_bands=60,
        mask_estimator_depth=1, num_residual_streams=1, attn_dropout=0.0, ff_dropout=0.0,
        dim_freqs_in=513, stft_n_fft=1024, stft_win_length=1024, stft_hop_length=512,
        match_input_audio_length=True,
    )  # fmt: skip
    net = MelBandRoformer(stereo=True, num_stems=len(stems), sample_rate=SAMPLE_RATE, **settings)
    net = float32_masks(net)
    return WaveformSeparator(net, PeerConfig(stems, settings=settings))


@dataclass(frozen=True)
class Peer:
    """A peer architecture: the pip package it needs and how to build it."""

    package: str  # the importable module that must be installed
    pip_name: str
    build: Callable[[list[str], float], WaveformSeparator]

    def available(self) -> bool:
        return importlib.util.find_spec(self.package) is not None


PEERS: dict[str, Peer] = {
    "open-unmix": Peer("openunmix", "openunmix", build_open_unmix),
    "htdemucs": Peer("demucs", "demucs", build_htdemucs),
    "bs-roformer": Peer("bs_roformer", "bs-roformer", build_bs_roformer),
    "mel-roformer": Peer("bs_roformer", "bs-roformer", build_mel_roformer),
}


def build_peer(name: str, stems: list[str], segment_seconds: float) -> WaveformSeparator:
    """Build the peer `name` (a key of [`PEERS`]) for `stems`, trained on `segment_seconds`."""
    if name not in PEERS:
        raise ValueError(f"unknown peer {name!r}; known: {sorted(PEERS)}")
    model = PEERS[name].build(list(stems), segment_seconds)
    model.config.segment_seconds = segment_seconds  # separates as it was trained, like TFSWA-UNet
    return model


__all__ = [
    "MUSDB_STEMS",
    "PEERS",
    "Peer",
    "PeerConfig",
    "PeerOutput",
    "WaveformSeparator",
    "build_peer",
    "import_openunmix",
]
