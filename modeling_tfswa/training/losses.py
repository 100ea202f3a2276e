"""Training losses of TFSWA-UNet: one home for every loss part and their weighted combination.

All parts take estimates and references of shape `(batch, stems, channels, samples)` and return one
value per stem, shape `(stems,)`, averaged over batch, channels and time (so that logs show which
stem is hard). STFTs and losses are computed in float32, also under autocast: fp16 magnitudes and
logs of small values are not accurate enough.
"""

from __future__ import annotations

import torch
from torch import nn

from data_scripts.pipeline import SILENCE_POWER

from ..metrics import metric_name
from ..spectral import stft
from .config import LossConfig

#: Floor of magnitudes before the log of the log-magnitude loss.
LOG_EPS = 1e-7


def _float32(*tensors: torch.Tensor) -> list[torch.Tensor]:
    return [t.float() for t in tensors]


def _check(estimates: torch.Tensor, references: torch.Tensor) -> None:
    if estimates.shape != references.shape or estimates.ndim != 4:
        raise ValueError(
            "estimates and references must both have shape (batch, stems, channels, samples), got "
            f"{tuple(estimates.shape)} and {tuple(references.shape)}"
        )


def magnitude(waveform: torch.Tensor, n_fft: int, hop_length: int) -> torch.Tensor:
    """Magnitude STFT (Hann window, centred, zero padding), in float32 even under autocast.

    Args:
        waveform (`torch.Tensor` of shape `(..., samples)`).

    Returns:
        `torch.Tensor` of shape `(..., n_fft // 2 + 1, frames)`.
    """
    return stft(waveform, n_fft, hop_length).abs()


def waveform_l1(estimates: torch.Tensor, references: torch.Tensor) -> torch.Tensor:
    """Mean absolute error between waveforms per stem: `(B, S, C, T)` x2 -> `(S,)`."""
    _check(estimates, references)
    with torch.autocast(device_type=estimates.device.type, enabled=False):
        estimates, references = _float32(estimates, references)
        return (estimates - references).abs().mean(dim=(0, 2, 3))


def spectrogram_l1(
    estimates: torch.Tensor, references: torch.Tensor, n_fft: int, hop_length: int
) -> torch.Tensor:
    """Mean absolute error between magnitude spectrograms per stem: `(B, S, C, T)` x2 -> `(S,)`."""
    _check(estimates, references)
    est = magnitude(estimates, n_fft, hop_length)
    ref = magnitude(references, n_fft, hop_length)
    return (est - ref).abs().mean(dim=(0, 2, 3, 4))


def stft_loss(
    estimates: torch.Tensor, references: torch.Tensor, n_fft: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """Spectral convergence and log-magnitude loss at one resolution (hop `n_fft // 4`).

    Spectral convergence is `‖|Y| - |Ŷ|‖_F / ‖|Y|‖_F` over the channels and bins of each example
    and stem, averaged over the examples whose reference is not silent (0 if none is); the
    log-magnitude loss is the mean of
    `|log|Y| - log|Ŷ||` with magnitudes floored at `LOG_EPS`.

    Args:
        estimates, references (`torch.Tensor` of shape `(batch, stems, channels, samples)`).

    Returns:
        `(spectral_convergence, log_magnitude)`, each of shape `(stems,)`.
    """
    _check(estimates, references)
    est = magnitude(estimates, n_fft, n_fft // 4)
    ref = magnitude(references, n_fft, n_fft // 4)
    error_norm = (ref - est).square().sum(dim=(2, 3, 4)).sqrt()  # (B, S)
    ref_norm = ref.square().sum(dim=(2, 3, 4)).sqrt()
    # Undefined for a silent reference (it would explode; silent: below the data pipeline's
    # SILENCE_POWER, -60 dBFS): such examples are left out of this term (the log-magnitude and L1
    # terms still see them).
    audible = references.detach().float().square().mean(dim=(2, 3)) > SILENCE_POWER  # (B, S)
    ratio = torch.where(audible, error_norm / ref_norm.clamp_min(LOG_EPS), 0.0)
    convergence = ratio.sum(dim=0) / audible.sum(dim=0).clamp_min(1)
    log_mag = (ref.clamp_min(LOG_EPS).log() - est.clamp_min(LOG_EPS).log()).abs()
    return convergence, log_mag.mean(dim=(0, 2, 3, 4))


def multi_resolution_stft_loss(
    estimates: torch.Tensor, references: torch.Tensor, fft_sizes=(2048, 1024, 512)
) -> torch.Tensor:
    """Spectral convergence + log-magnitude loss averaged over `fft_sizes`: -> `(stems,)`."""
    total = 0.0
    for n_fft in fft_sizes:
        convergence, log_mag = stft_loss(estimates, references, n_fft)
        total = total + convergence + log_mag
    return total / len(fft_sizes)


class SeparationLoss(nn.Module):
    """Weighted sum of the loss parts whose weight in [`LossConfig`] is positive.

    Args:
        config ([`LossConfig`]): the weights and the multi-resolution FFT sizes.
        stems (`list[str]`): stem names, for the keys of the returned dict.
        n_fft, hop_length (`int`): STFT of the magnitude-spectrogram L1 (the model's).

    Call with estimates and references of shape `(batch, stems, channels, samples)`; returns a dict
    with `"total"` (scalar tensor with gradient: the weighted sum of the stem means) and, detached,
    `"<part>"` (mean over stems) and `"<part>/<stem>"` for every computed part.
    """

    def __init__(self, config: LossConfig, stems: list[str], n_fft: int, hop_length: int):
        super().__init__()
        self.stems = list(stems)
        # One dict from part name to function: adding a part is one entry, no if/elif chain.
        parts = {
            "waveform_l1": waveform_l1,
            "spectrogram_l1": lambda e, r: spectrogram_l1(e, r, n_fft, hop_length),
            "multi_resolution_stft": lambda e, r: multi_resolution_stft_loss(
                e, r, config.fft_sizes
            ),
        }
        self.parts = {name: fn for name, fn in parts.items() if getattr(config, name) > 0}
        self.weights = {name: float(getattr(config, name)) for name in self.parts}

    def forward(self, estimates: torch.Tensor, references: torch.Tensor) -> dict[str, torch.Tensor]:
        if estimates.shape[1] != len(self.stems):
            raise ValueError(
                f"expected {len(self.stems)} stems {self.stems}, got shape {tuple(estimates.shape)}"
            )
        out: dict[str, torch.Tensor] = {}
        total = estimates.new_zeros((), dtype=torch.float32)
        for name, fn in self.parts.items():
            per_stem = fn(estimates, references)
            total = total + self.weights[name] * per_stem.mean()
            out[name] = per_stem.mean().detach()
            for stem, value in zip(self.stems, per_stem.detach()):
                out[metric_name(name, stem)] = value
        out["total"] = total
        return out


__all__ = [
    "SeparationLoss",
    "magnitude",
    "multi_resolution_stft_loss",
    "spectrogram_l1",
    "stft_loss",
    "waveform_l1",
]
