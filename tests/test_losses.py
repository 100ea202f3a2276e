"""Each loss part on known inputs: zero for identical signals, known values for simple cases."""

import math

import numpy as np
import pytest
import torch

from modeling_tfswa.training.config import LossConfig
from modeling_tfswa.training.losses import (
    SeparationLoss,
    multi_resolution_stft_loss,
    spectrogram_l1,
    stft_loss,
    waveform_l1,
)


@pytest.fixture
def noise():
    generator = torch.Generator().manual_seed(0)
    return torch.randn(2, 3, 2, 4096, generator=generator)  # (B, S, C, T)


def test_identical_signals_give_zero(noise):
    assert torch.equal(waveform_l1(noise, noise), torch.zeros(3))
    assert torch.equal(spectrogram_l1(noise, noise, 256, 64), torch.zeros(3))
    convergence, log_mag = stft_loss(noise, noise, 512)
    assert torch.equal(convergence, torch.zeros(3)) and torch.equal(log_mag, torch.zeros(3))
    assert torch.equal(multi_resolution_stft_loss(noise, noise), torch.zeros(3))


def test_waveform_l1_known_value(noise):
    shifted = noise.clone()
    shifted[:, 1] += 0.5
    torch.testing.assert_close(waveform_l1(shifted, noise), torch.tensor([0.0, 0.5, 0.0]))


def test_spectrogram_l1_of_doubled_signal_is_mean_magnitude(noise):
    # |STFT(2x)| - |STFT(x)| = |STFT(x)|; reference magnitudes computed independently with numpy.
    x = noise[:1, :1, :1].double().numpy()[0, 0, 0]
    n_fft, hop = 256, 64
    padded = np.pad(x, n_fft // 2)
    window = np.hanning(n_fft + 1)[:-1]  # periodic Hann, as torch.hann_window
    frames = [padded[i : i + n_fft] * window for i in range(0, len(padded) - n_fft + 1, hop)]
    expected = np.abs(np.fft.rfft(np.stack(frames), axis=-1)).mean()
    value = spectrogram_l1(2 * noise[:1, :1, :1], noise[:1, :1, :1], n_fft, hop)
    assert value.item() == pytest.approx(expected, rel=1e-4)


def test_stft_loss_known_values(noise):
    # Estimate 0: spectral convergence exactly 1.  Estimate 2x: convergence 1, log-magnitude log 2
    # (white noise has no bins near the LOG_EPS floor).
    convergence, _ = stft_loss(torch.zeros_like(noise), noise, 512)
    torch.testing.assert_close(convergence, torch.ones(3))
    convergence, log_mag = stft_loss(2 * noise, noise, 512)
    torch.testing.assert_close(convergence, torch.ones(3))
    torch.testing.assert_close(log_mag, torch.full((3,), math.log(2.0)), rtol=1e-4, atol=1e-4)
    mr = multi_resolution_stft_loss(2 * noise, noise, fft_sizes=(1024, 512))
    torch.testing.assert_close(mr, torch.full((3,), 1 + math.log(2.0)), rtol=1e-4, atol=1e-4)


def test_spectral_convergence_ignores_silent_references(noise):
    references = noise.clone()
    references[0, 1] = 1e-4 * noise[0, 1]  # stem 1 at -80 dBFS (a noise floor) in example 0: only
    # example 1 counts for it
    convergence, _ = stft_loss(torch.zeros_like(noise), references, 512)
    torch.testing.assert_close(convergence, torch.ones(3))
    references[:, 2] = 0.0  # silent everywhere: no defined value, contributes 0
    convergence, _ = stft_loss(torch.ones_like(noise), references, 512)
    assert convergence[2] == 0 and torch.isfinite(convergence).all()


def test_combined_loss_weights_and_keys(noise):
    config = LossConfig(waveform_l1=2.0, spectrogram_l1=0.0, multi_resolution_stft=0.5)
    config.fft_sizes = [512, 256]
    loss = SeparationLoss(config, ["a", "b", "c"], n_fft=256, hop_length=64)
    estimates = (2 * noise).requires_grad_()
    out = loss(estimates, noise)
    assert "spectrogram_l1" not in out  # weight 0: not computed
    assert set(out) == {
        "total",
        "waveform_l1",
        "multi_resolution_stft",
        *(f"{p}/{s}" for p in ("waveform_l1", "multi_resolution_stft") for s in "abc"),
    }
    expected = 2.0 * noise.abs().mean() + 0.5 * (1 + math.log(2.0))
    assert out["total"].item() == pytest.approx(expected.item(), rel=1e-4)
    out["total"].backward()
    assert estimates.grad is not None and torch.isfinite(estimates.grad).all()


def test_stft_stays_float32_under_autocast(noise):
    with torch.autocast("cpu", dtype=torch.bfloat16):
        value = multi_resolution_stft_loss(noise.bfloat16(), noise.bfloat16(), fft_sizes=(512,))
    assert value.dtype == torch.float32


def test_shape_mismatch_is_a_clear_error(noise):
    with pytest.raises(ValueError, match="batch, stems, channels, samples"):
        waveform_l1(noise, noise[:, :2])


def test_loss_spectrograms_are_the_model_stft(noise):
    """The losses and the model share one STFT (`modeling_tfswa.spectral.stft`), also under
    autocast, and only spectral.py calls torch's STFT."""
    from pathlib import Path

    from modeling_tfswa.spectral import SpectralTransform
    from modeling_tfswa.training.losses import magnitude

    with torch.autocast("cpu", dtype=torch.bfloat16):
        loss_view = magnitude(noise, 256, 64)
    assert loss_view.dtype == torch.float32
    assert torch.equal(loss_view, SpectralTransform(256, 64).stft(noise).abs())
    package = Path(__file__).resolve().parents[1] / "modeling_tfswa"
    calls = ("torch." + "stft(", "torch." + "istft(")  # split, so that grep finds only spectral.py
    callers = {
        path.name
        for path in package.rglob("*.py")
        if any(call in path.read_text() for call in calls)
    }
    assert callers == {"spectral.py"}
