"""On-the-fly augmentation of training batches (validation is never augmented).

Works on a batch of stems `(batch, stems, channels, samples)` and returns the model input and the
targets. Stem-level changes (pitch shift, tempo change, mixup) are applied to the stems and
the mixture is summed from them afterwards, so targets and input always agree. Spectrogram masking
is applied to the *input mixture only* (targets stay clean): the model takes waveforms, so the
masked input is made by STFT -> zeroing a band of bins / a run of frames -> inverse STFT, with the
model's own STFT (`n_fft`, `hop_length`), so the masked region is exactly the model's bins/frames.

Pitch and tempo use a phase vocoder (time stretch, on the project's STFT) followed by the project's
resampler (`modeling_tfswa.audio.resample`), in torch: a pitch shift by `p = 2**(semitones / 12)`
and a tempo factor `r` are one stretch by `r / p` then a resampling by `p`. The output keeps the
segment length: a slower tempo is cropped, a faster one is padded with silence at the end
(consistently in all stems).

Why our own phase vocoder (torchaudio has no build for our torch): `benchmarks/library_choices.py`
finds `pedalboard.time_stretch` (Rubber Band, high quality) cleaner, with fewer artefacts on real
music (shift-and-back log-spectral distance 4.5-5.5 dB vs our 7.9-8.4 dB) and sharper transients
when speeding up (-51 dB of click energy outside the clicks vs our -20 dB at +3 semitones x1.1; ours
is better slowing down, -60 vs -50 dB); steady tones are alike (47-48 dB SNR vs 42-50 dB). But it
costs 4x the CPU time (27 vs 6.6 s per minute of 8-channel audio: 2.7 s per 6-s 4-stem example,
in the training loop's process) and runs on NumPy arrays on the CPU, while ours runs on the batch's
device; its fast mode costs 1.7x ours and misses the pitch (tone SNR below 0 dB). Moving pitch and
tempo into the DataLoader workers would hide that cost and make pedalboard the better choice.

Every random choice comes from the `torch.Generator` passed in, so a batch is augmented the same way
whenever the generator is seeded the same way (the trainer seeds it per step, which makes resumed
runs exact).
"""

from __future__ import annotations

import math
from fractions import Fraction

import torch

from ..audio import fit_length, resample
from ..spectral import SpectralTransform, istft, stft
from .config import AugmentConfig

#: Largest denominator of the pitch factor `2**(semitones / 12)` written as a ratio of integers for
#: the resampler (`modeling_tfswa.audio.resample`).
PITCH_RATIO_DENOMINATOR = 64


def _uniform(n: int, low: float, high: float, generator: torch.Generator) -> torch.Tensor:
    return low + (high - low) * torch.rand(n, generator=generator)


def _chosen(n: int, probability: float, generator: torch.Generator) -> torch.Tensor:
    """Boolean `(n,)`: which examples get an augmentation (always drawn, to keep streams aligned)."""
    return torch.rand(n, generator=generator) < probability


def sample_beta(alpha: float, n: int, generator: torch.Generator) -> torch.Tensor:
    """`(n,)` samples of Beta(alpha, alpha) by Jöhnk's rejection method (torch's Beta takes no
    generator)."""
    out = torch.empty(n)
    todo = torch.arange(n)
    while len(todo):
        u = torch.rand(len(todo), generator=generator) ** (1.0 / alpha)
        v = torch.rand(len(todo), generator=generator) ** (1.0 / alpha)
        accept = (u + v <= 1.0) & (u + v > 0)
        out[todo[accept]] = u[accept] / (u[accept] + v[accept])
        todo = todo[~accept]
    return out


def time_stretch(waveform: torch.Tensor, rate: float, n_fft: int = 1024) -> torch.Tensor:
    """Phase-vocoder time stretch: same pitch, `rate` times faster.

    Magnitudes are interpolated between neighbouring STFT frames; phases advance by each bin's
    measured instantaneous frequency, so sinusoids stay continuous.

    Args:
        waveform (`torch.Tensor` of shape `(..., samples)`).
        rate (`float`): > 1 shortens, < 1 lengthens.

    Returns:
        `torch.Tensor` of shape `(..., round(samples / rate))`.
    """
    leading, length = waveform.shape[:-1], waveform.shape[-1]
    hop = n_fft // 4
    spec = stft(waveform.reshape(-1, length), n_fft, hop)  # (M, F, N)
    frames = spec.shape[-1]
    out_length = max(1, round(length / rate))
    out_frames = out_length // hop + 1
    # Two silent frames past the end, so positions up to `frames` interpolate towards silence.
    spec = torch.cat([spec, spec.new_zeros(*spec.shape[:-1], 2)], dim=-1)
    steps = torch.arange(out_frames, device=spec.device, dtype=torch.float64) * rate
    steps = steps.clamp(max=frames)
    index = steps.floor().long()
    alpha = (steps - index).float()
    left, right = spec[..., index], spec[..., index + 1]
    magnitude = (1 - alpha) * left.abs() + alpha * right.abs()
    expected = torch.linspace(0, math.pi * hop, spec.shape[-2], device=spec.device)[:, None]
    deviation = right.angle() - left.angle() - expected
    deviation = deviation - 2 * math.pi * torch.round(deviation / (2 * math.pi))
    advance = expected + deviation  # phase advance per output frame at the local frequency
    phase = torch.cat([spec[..., :1].angle(), advance[..., :-1]], dim=-1).cumsum(dim=-1)
    stretched = torch.polar(magnitude, phase)
    out = istft(stretched, n_fft, hop, out_length)
    return out.reshape(*leading, out_length).to(waveform.dtype)


def pitch_tempo(
    waveform: torch.Tensor, semitones: float, tempo: float, n_fft: int = 1024
) -> torch.Tensor:
    """Shift the pitch by `semitones` and change the tempo by `tempo` (> 1 faster), keeping the
    length: `(..., samples)` -> `(..., samples)`."""
    length = waveform.shape[-1]
    if semitones == 0 and tempo == 1:
        return waveform
    factor = 2.0 ** (semitones / 12.0)
    stretched = time_stretch(waveform, tempo / factor, n_fft)  # length * factor / tempo
    # Resampling from `factor` to 1 brings the length back to length / tempo and multiplies every
    # frequency by `factor`. As a ratio of integers up to PITCH_RATIO_DENOMINATOR the factor is
    # within 1e-4 (0.002 semitones), and the polyphase filter bank stays small.
    ratio = Fraction(factor).limit_denominator(PITCH_RATIO_DENOMINATOR)
    return fit_length(resample(stretched, ratio.numerator, ratio.denominator), length)


class Augmenter:
    """Applies the batch augmentations of an [`AugmentConfig`] to training batches (its gain,
    channel swap, polarity flip and silence level are the training dataset's, `RemixDataset`).

    Args:
        config ([`AugmentConfig`]): probabilities and ranges.
        n_fft, hop_length (`int`): the model's STFT, for input masking.

    Call with `stems` `(batch, stems, channels, samples)` and a `torch.Generator` (CPU); returns
    `(mixture, stems)`: the model input `(batch, channels, samples)` and the targets
    `(batch, stems, channels, samples)`.
    """

    def __init__(self, config: AugmentConfig, n_fft: int, hop_length: int):
        self.config = config
        self.spectral = SpectralTransform(n_fft, hop_length)

    @property
    def enabled(self) -> bool:
        return any(
            getattr(self.config, name) > 0
            for name in (
                "pitch_probability",
                "tempo_probability",
                "frequency_mask_probability",
                "time_mask_probability",
                "mixup_probability",
            )
        )

    @torch.no_grad()
    def __call__(
        self, stems: torch.Tensor, generator: torch.Generator
    ) -> tuple[torch.Tensor, torch.Tensor]:
        if stems.ndim != 4:
            raise ValueError(f"stems must be (batch, stems, channels, samples), got {stems.shape}")
        c = self.config
        batch = stems.shape[0]
        stems = stems.clone()

        # Pitch and tempo, per example, identical for all its stems.
        pitch_chosen = _chosen(batch, c.pitch_probability, generator)
        semitones = _uniform(batch, -c.pitch_semitones, c.pitch_semitones, generator)
        tempo_chosen = _chosen(batch, c.tempo_probability, generator)
        tempi = _uniform(batch, *c.tempo_range, generator)
        for i in range(batch):
            shift = semitones[i].item() if pitch_chosen[i] else 0.0
            tempo = tempi[i].item() if tempo_chosen[i] else 1.0
            if shift != 0.0 or tempo != 1.0:
                stems[i] = pitch_tempo(stems[i], shift, tempo, c.vocoder_n_fft)

        # Mixup: blend all stems of an example with those of another example of the batch.
        mix_chosen = _chosen(batch, c.mixup_probability, generator)
        partners = torch.randperm(batch, generator=generator)
        weights = sample_beta(c.mixup_alpha, batch, generator)
        if mix_chosen.any() and batch > 1:
            w = torch.where(mix_chosen, weights, torch.ones_like(weights)).view(batch, 1, 1, 1)
            w = w.to(stems.device, stems.dtype)
            stems = w * stems + (1 - w) * stems[partners.to(stems.device)]

        mixture = stems.sum(dim=1)
        return self._mask_input(mixture, generator), stems

    def _mask_input(self, mixture: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        """Zero a random band of 1..max STFT bins and/or run of 1..max frames of the input
        `(B, C, T)` (a maximum of 0 disables that mask)."""
        c = self.config
        batch, _, length = mixture.shape
        bins = self.spectral.n_fft // 2 + 1
        frames = self.spectral.num_frames(length)
        freq_chosen = _chosen(batch, c.frequency_mask_probability, generator)
        freq_chosen &= c.max_frequency_bins > 0
        widths = torch.randint(1, max(c.max_frequency_bins, 1) + 1, (batch,), generator=generator)
        starts = torch.rand(batch, generator=generator)
        time_chosen = _chosen(batch, c.time_mask_probability, generator)
        time_chosen &= c.max_time_frames > 0
        lengths = torch.randint(1, max(c.max_time_frames, 1) + 1, (batch,), generator=generator)
        offsets = torch.rand(batch, generator=generator)
        if not (freq_chosen.any() or time_chosen.any()):
            return mixture
        keep = torch.ones(batch, 1, bins, frames, dtype=torch.bool)
        for i in range(batch):
            if freq_chosen[i]:
                width = min(int(widths[i]), bins)
                start = int(starts[i] * (bins - width + 1))
                keep[i, :, start : start + width] = False
            if time_chosen[i]:
                run = min(int(lengths[i]), frames)
                start = int(offsets[i] * (frames - run + 1))
                keep[i, :, :, start : start + run] = False
        spectral = self.spectral.to(mixture.device)
        spec = spectral.stft(mixture) * keep.to(mixture.device)
        masked = spectral.istft(spec, length).to(mixture.dtype)
        chosen = (freq_chosen | time_chosen).view(batch, 1, 1).to(mixture.device)
        return torch.where(chosen, masked, mixture)


__all__ = ["Augmenter", "pitch_tempo", "sample_beta", "time_stretch"]
