"""`Separator` / `separate`: inputs of any kind, rate and channel count, mapped back exactly."""

from types import SimpleNamespace

import numpy as np
import pytest
import soundfile as sf
import torch
from conftest import make_tiny_config
from torch import nn

from modeling_tfswa import TFSWAUNet
from modeling_tfswa.audio import AudioError
from modeling_tfswa.separation import Separator, separate


class SplitModel(nn.Module):
    """Stereo model at 8 kHz: stem "low" = mixture / 4, stem "high" = 3 * mixture / 4."""

    def __init__(self, sample_rate=8000, channels=2):
        super().__init__()
        self.config = SimpleNamespace(
            stems=["low", "high"],
            sample_rate=sample_rate,
            audio_channels=channels,
            segment_seconds=0.5,
            overlap=0.25,
        )
        self.register_buffer("gains", torch.tensor([0.25, 0.75]))

    def forward(self, input_values):
        return SimpleNamespace(waveforms=input_values[:, None] * self.gains[None, :, None, None])


def separator(**options):
    return Separator(SplitModel(), segment_seconds=0.5, **options)


def test_numpy_stereo_at_the_model_rate_is_exact():
    mixture = np.random.default_rng(0).standard_normal((2, 9000)).astype(np.float32)
    stems = separator().separate(mixture, sample_rate=8000)
    assert list(stems) == ["low", "high"]
    assert all(isinstance(wave, np.ndarray) and wave.shape == (2, 9000) for wave in stems.values())
    assert np.abs(stems["low"] - mixture / 4).max() < 1e-5
    assert np.abs(stems["low"] + stems["high"] - mixture).max() < 1e-5


def test_int16_mono_is_scaled_and_returned_mono():
    mixture = (np.random.default_rng(1).standard_normal(5000) * 4000).astype(np.int16)
    stems = separator().separate(mixture, sample_rate=8000)
    assert stems["high"].shape == (5000,) and stems["high"].dtype == np.float32
    assert np.abs(stems["high"] - 0.75 * mixture / 32768).max() < 1e-5


def test_other_sample_rate_is_resampled_there_and_back():
    time = np.arange(12000) / 48000
    mixture = np.stack([np.sin(2 * np.pi * 440 * time), np.cos(2 * np.pi * 1000 * time)])
    stems = separator().separate(mixture.astype(np.float32), sample_rate=48000)
    assert stems["low"].shape == (2, 12000)  # the input's length, exactly
    # Band-limited (< 4 kHz at the model's 8 kHz) content survives 48k -> 8k -> 48k.
    assert np.abs(stems["low"] - mixture / 4)[:, 300:-300].max() < 1e-3


def test_tensor_in_tensor_out_and_two_stems():
    mixture = torch.randn(2, 3000)
    stems = separator().separate(mixture, sample_rate=8000, two_stems="low")
    assert list(stems) == ["low", "no_low"]
    assert all(isinstance(wave, torch.Tensor) for wave in stems.values())
    assert torch.allclose(stems["low"] + stems["no_low"], mixture, atol=1e-6)
    assert torch.allclose(stems["no_low"], 0.75 * mixture, atol=1e-5)
    assert list(separator().separate(mixture, 8000, stems=["high"])) == ["high"]


def test_path_input(tmp_path):
    mixture = np.random.default_rng(2).uniform(-0.5, 0.5, (4000, 2)).astype(np.float32)
    sf.write(tmp_path / "song.flac", mixture, 16000, subtype="PCM_24")
    stems = separator().separate(tmp_path / "song.flac")
    assert stems["low"].shape == (2, 4000)
    with pytest.raises(ValueError, match="read from the file"):
        separator().separate(str(tmp_path / "song.flac"), sample_rate=16000)


@pytest.mark.parametrize(
    "audio, kwargs, error, message",
    [
        (np.array([[0.0, np.nan, 1.0]] * 2), {"sample_rate": 8000}, AudioError, "NaN"),
        (np.full((2, 10), np.inf), {"sample_rate": 8000}, AudioError, "infinite"),
        (np.zeros((44100, 2)), {"sample_rate": 8000}, AudioError, r"array\.T"),
        (np.zeros((2, 0)), {"sample_rate": 8000}, AudioError, "no samples"),
        (np.zeros((3, 100)), {"sample_rate": 8000}, AudioError, "3-channel"),
        (np.zeros((2, 100)), {}, ValueError, "sample_rate is required"),
        (np.zeros((2, 100)), {"sample_rate": 0}, ValueError, "positive"),
        (np.zeros((2, 100)), {"sample_rate": 8000, "stems": ["voice"]}, ValueError, "voice"),
        (np.zeros((2, 100)), {"sample_rate": 8000, "two_stems": "x"}, ValueError, "two_stems"),
        ([0.0, 1.0], {"sample_rate": 8000}, TypeError, "path, numpy array or tensor"),
        ("missing.wav", {}, AudioError, "missing.wav: no such file"),
    ],
)
def test_bad_inputs_raise_clear_errors(audio, kwargs, error, message):
    with pytest.raises(error, match=message):
        separator().separate(audio, **kwargs)


def test_from_pretrained_and_module_level_separate(tmp_path):
    torch.manual_seed(0)
    model = TFSWAUNet(make_tiny_config(sample_rate=8000)).eval()
    model.save_pretrained(tmp_path / "model")
    mixture = torch.randn(1, 6000)  # mono, at 16 kHz
    loaded = Separator.from_pretrained(tmp_path / "model", segment_seconds=0.5, shifts=1)
    assert loaded.stems == ["vocals", "accompaniment"] and loaded.sample_rate == 8000
    assert not loaded.model.training
    stems = separate(mixture.numpy(), model=str(tmp_path / "model"), sample_rate=16000)
    assert {name: wave.shape for name, wave in stems.items()} == {
        "vocals": (1, 6000),
        "accompaniment": (1, 6000),
    }
    # The same model as a module gives the same result (loading changed nothing).
    direct = separate(mixture, model=model, sample_rate=16000, two_stems="vocals")
    assert np.allclose(direct["vocals"].numpy(), stems["vocals"], atol=1e-5)
    with pytest.raises(ValueError, match="existing Separator"):
        separate(mixture, model=loaded, sample_rate=16000, shifts=2)
