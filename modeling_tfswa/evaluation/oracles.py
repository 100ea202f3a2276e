"""Reference separators that bracket a model's scores: oracle masks, the masking limit of an
STFT-domain separator (ideal ratio / binary masks computed from the true stems) applied by
[`OracleSeparator`], and [`MixtureSeparator`], the mixture as every stem's estimate (the floor)."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from ..spectral import SpectralTransform


def ratio_mask(stem_spectrograms: torch.Tensor, power: float = 1.0, eps: float = 1e-10):
    """Ideal ratio mask `|S_j|^p / Σ_k |S_k|^p` of each stem.

    Args:
        stem_spectrograms (`torch.Tensor` of shape `(stems, ..., freq_bins, frames)`): complex STFTs
            of the true stems.
        power (`float`): 1 for magnitude ratios ("IRM1"), 2 for power ratios ("IRM2", Wiener-like).
        eps (`float`): keeps all-silent bins finite (they get masks of ~0).

    Returns:
        `torch.Tensor` of the same shape, real, in [0, 1].
    """
    weights = stem_spectrograms.abs().pow(power)
    return weights / (weights.sum(dim=0, keepdim=True) + eps)


def binary_mask(stem_spectrograms: torch.Tensor) -> torch.Tensor:
    """Ideal binary mask: 1 for the stem with the largest magnitude in each bin, 0 for the others.

    Args:
        stem_spectrograms (`torch.Tensor` of shape `(stems, ..., freq_bins, frames)`): complex.

    Returns:
        `torch.Tensor` of the same shape, real, one-hot along the stems.
    """
    magnitudes = stem_spectrograms.abs()
    winner = magnitudes.argmax(dim=0, keepdim=True)
    return torch.zeros_like(magnitudes).scatter_(0, winner, 1.0)


#: Oracle masks by name (`--model irm|irm2|ibm` of `tfswa-evaluate`).
ORACLE_MASKS = {
    "irm": lambda specs: ratio_mask(specs, power=1.0),
    "irm2": lambda specs: ratio_mask(specs, power=2.0),
    "ibm": binary_mask,
}


@dataclass
class OracleSeparator:
    """Separates a mixture with masks computed from the true stems: what a model estimating that
    kind of mask could reach at best with these STFT parameters.

    The masks multiply the *mixture's* STFT (on MUSDB18's AAC-coded files the mixture is not exactly
    the sum of the stems, as for a model).

    Args:
        kind (`str`): a key of [`ORACLE_MASKS`]: `"irm"`, `"irm2"` or `"ibm"`.
        stems (`list[str]`): names of the stems, in the order of the references.
        sample_rate (`int`): sample rate in Hz.
        n_fft (`int`) / hop_length (`int`): STFT parameters (use the model's to compare with it).
        audio_channels (`int`): channels of the mixture.
    """

    kind: str
    stems: list[str]
    sample_rate: int = 44100
    n_fft: int = 2048
    hop_length: int = 512
    audio_channels: int = 2

    def __post_init__(self):
        if self.kind not in ORACLE_MASKS:
            raise ValueError(
                f"oracle kind must be one of {sorted(ORACLE_MASKS)}, got {self.kind!r}"
            )
        self.spectral = SpectralTransform(self.n_fft, self.hop_length)

    def settings(self) -> dict:
        """What its estimates depend on (for reusing results)."""
        return {
            "kind": self.kind,
            "n_fft": self.n_fft,
            "hop_length": self.hop_length,
            "sample_rate": self.sample_rate,
        }

    @property
    def name(self) -> str:
        return f"oracle-{self.kind}"

    def separate(self, mixture: torch.Tensor, references: torch.Tensor) -> torch.Tensor:
        """
        Args:
            mixture (`torch.Tensor` of shape `(channels, samples)`).
            references (`torch.Tensor` of shape `(stems, channels, samples)`): the true stems.

        Returns:
            `torch.Tensor` of shape `(stems, channels, samples)`, float32.
        """
        length = mixture.shape[-1]
        estimates = []
        for channel in range(mixture.shape[0]):  # one channel at a time bounds memory
            mixture_spec = self.spectral.stft(mixture[channel].float())  # (F, N)
            masks = ORACLE_MASKS[self.kind](self.spectral.stft(references[:, channel].float()))
            estimates.append(self.spectral.istft(masks * mixture_spec, length))  # (S, T)
        return torch.stack(estimates, dim=1)


@dataclass
class MixtureSeparator:
    """The mixture as the estimate of every stem: the floor any separator must beat.

    Args:
        stems (`list[str]`): names of the stems, in the order of the references.
        sample_rate (`int`): sample rate in Hz.
    """

    stems: list[str]
    sample_rate: int = 44100
    name = "mixture"

    def settings(self) -> dict:
        """What its estimates depend on (nothing: for reusing results)."""
        return {}

    def separate(self, mixture: torch.Tensor, references: torch.Tensor) -> torch.Tensor:
        """`mixture` `(channels, samples)` -> `(stems, channels, samples)`, one copy per stem."""
        return mixture.unsqueeze(0).expand(len(self.stems), *mixture.shape).clone()
