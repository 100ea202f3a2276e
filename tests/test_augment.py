"""Augmentations: deterministic per generator, consistent targets, and doing what they say."""

import math

import pytest
import torch

from modeling_tfswa.audio import resample
from modeling_tfswa.training.augment import Augmenter, pitch_tempo, time_stretch
from modeling_tfswa.training.config import AugmentConfig

SR = 8000


def sine(freq, seconds=1.0, sr=SR):
    t = torch.arange(int(seconds * sr)) / sr
    return torch.sin(2 * math.pi * freq * t)


def peak_hz(x, sr=SR):
    spectrum = torch.fft.rfft(x * torch.hann_window(x.shape[-1]))
    return spectrum.abs().argmax().item() * sr / x.shape[-1]


def batch(seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(4, 2, 2, 4000, generator=g) * 0.1  # (B, S, C, T)


ALL_ON = AugmentConfig(
    pitch_probability=1.0,
    tempo_probability=1.0,
    frequency_mask_probability=1.0,
    time_mask_probability=1.0,
    mixup_probability=1.0,
    vocoder_n_fft=256,
)


def test_disabled_augmenter_is_identity():
    augmenter = Augmenter(AugmentConfig(), n_fft=256, hop_length=64)
    stems = batch()
    assert not augmenter.enabled
    mixture, targets = augmenter(stems, torch.Generator().manual_seed(0))
    assert torch.equal(targets, stems) and torch.allclose(mixture, stems.sum(1))


def test_deterministic_given_generator():
    augmenter = Augmenter(ALL_ON, n_fft=256, hop_length=64)
    a = augmenter(batch(), torch.Generator().manual_seed(5))
    b = augmenter(batch(), torch.Generator().manual_seed(5))
    c = augmenter(batch(), torch.Generator().manual_seed(6))
    assert all(torch.equal(x, y) for x, y in zip(a, b))
    assert not torch.equal(a[1], c[1])


def test_stem_augmentations_keep_mixture_equal_to_sum_of_targets():
    config = AugmentConfig(**{**ALL_ON.__dict__, "frequency_mask_probability": 0.0})
    config.time_mask_probability = 0.0
    mixture, targets = Augmenter(config, 256, 64)(batch(), torch.Generator().manual_seed(1))
    assert targets.shape == batch().shape
    torch.testing.assert_close(mixture, targets.sum(1))
    assert not torch.allclose(targets, batch())


def test_masking_changes_the_input_only():
    config = AugmentConfig(frequency_mask_probability=1.0, max_frequency_bins=20)
    augmenter = Augmenter(config, n_fft=256, hop_length=64)
    stems = batch()
    mixture, targets = augmenter(stems, torch.Generator().manual_seed(3))
    assert torch.equal(targets, stems)
    before = augmenter.spectral.stft(stems.sum(1)).abs()
    after = augmenter.spectral.stft(mixture).abs()
    # Some band of bins lost most of its energy in every example (nearly all of it, unless the
    # band drawn is a bin or two wide: the inverse STFT leaks neighbours' energy back into a
    # narrow band); the rest barely changed.
    ratio = after.square().mean(dim=(1, 3)) / before.square().mean(dim=(1, 3))  # (B, F)
    lowest = ratio.min(dim=1).values
    assert (lowest < 0.5).all() and (lowest < 0.05).sum() >= 3
    assert (ratio.median(dim=1).values > 0.9).all()


@pytest.mark.parametrize("semitones", [-2.0, 2.0])
def test_pitch_shift_moves_a_sine_and_keeps_length(semitones):
    x = sine(440.0)[None]
    y = pitch_tempo(x, semitones, 1.0, n_fft=512)
    assert y.shape == x.shape
    expected = 440.0 * 2 ** (semitones / 12)
    assert peak_hz(y[0]) == pytest.approx(expected, abs=3.0)


def test_time_stretch_keeps_pitch_and_changes_length():
    x = sine(500.0)[None]
    y = time_stretch(x, 1.1, n_fft=512)
    assert y.shape[-1] == round(x.shape[-1] / 1.1)
    assert peak_hz(y[0]) == pytest.approx(500.0, abs=3.0)
    # A steady sine keeps its level (the phase vocoder keeps phases coherent).
    middle = slice(1000, 6000)
    assert y[0, 1000:6000].square().mean() == pytest.approx(x[0, middle].square().mean(), rel=0.1)


def test_tempo_moves_an_onset():
    x = torch.zeros(1, 8000)
    x[0, 4000:4400] = sine(300.0, 0.05)
    y = pitch_tempo(x, 0.0, 1.25, n_fft=256)
    assert y.shape == x.shape
    onset = (y[0].abs() > 0.1).nonzero()[0].item()
    assert onset == pytest.approx(4000 / 1.25, abs=150)


def test_resample_is_band_limited():
    x = sine(1000.0)[None]
    y = resample(x, 2, 1)  # half the length: 1 kHz becomes 2 kHz at the original rate
    assert peak_hz(y[0], sr=SR) == pytest.approx(2000.0, abs=5.0)
