"""Audio edges of separation: resampling, sample formats, channels, file I/O, clipping."""

import math

import numpy as np
import pytest
import soundfile as sf
import torch

from modeling_tfswa import audio
from modeling_tfswa.audio import (
    AudioError,
    find_audio_files,
    load_audio,
    match_channels,
    prevent_clipping,
    resample,
    restore_channels,
    save_audio,
    to_float,
    write_stems,
)


def tone(frequency, sample_rate, num_samples, phase=0.0):
    time = torch.arange(num_samples, dtype=torch.float64) / sample_rate
    return torch.sin(2 * math.pi * frequency * time + phase).float()


@pytest.mark.parametrize(
    "orig, new, frequency",
    [
        (48000, 44100, 1000.0),
        (44100, 48000, 15000.0),
        (22050, 44100, 5000.0),
        (44100, 8000, 3000.0),
    ],
)
def test_resample_keeps_in_band_tones(orig, new, frequency):
    signal = torch.stack([tone(frequency, orig, orig // 4), tone(frequency, orig, orig // 4, 1.0)])
    out = resample(signal, orig, new)
    assert out.shape == (2, math.ceil(signal.shape[-1] * new / orig))
    expected = torch.stack(
        [tone(frequency, new, out.shape[-1]), tone(frequency, new, out.shape[-1], 1.0)]
    )
    edge = 200  # the signal starts and stops abruptly: compare away from its ends
    assert (out - expected)[:, edge:-edge].abs().max() < 1e-4


def test_resample_removes_what_the_new_rate_cannot_hold():
    above_nyquist = tone(23000.0, 48000, 12000)  # above 22.05 kHz: must not alias into 44.1 kHz
    assert resample(above_nyquist, 48000, 44100)[300:-300].abs().max() < 1e-3


def test_resample_same_rate_and_impossible_ratio():
    signal = torch.randn(2, 100)
    assert resample(signal, 44100, 44100) is signal
    with pytest.raises(AudioError, match="44101"):
        resample(signal, 44100, 44101)


@pytest.mark.parametrize(
    "array, expected",
    [
        (np.array([-32768, 0, 16384], dtype=np.int16), [-1.0, 0.0, 0.5]),
        (np.array([-(2**31), 2**30], dtype=np.int32), [-1.0, 0.5]),
        (np.array([0, 128, 192], dtype=np.uint8), [-1.0, 0.0, 0.5]),
        (np.array([0.25, -1.5], dtype=np.float64), [0.25, -1.5]),
        (torch.tensor([-16384], dtype=torch.int16), [-0.5]),
    ],
)
def test_to_float_scales_integer_pcm(array, expected):
    converted = to_float(array)
    assert converted.dtype == torch.float32
    assert converted.tolist() == expected


def test_to_float_rejects_other_types():
    with pytest.raises(AudioError, match="bool"):
        to_float(np.array([True, False]))


def test_channels_there_and_back():
    mono = torch.randn(1, 50)
    stereo = match_channels(mono, 2)
    assert stereo.shape == (2, 50) and torch.equal(stereo[1], mono[0])
    assert torch.allclose(restore_channels(torch.stack([stereo, stereo]), 1)[0], mono)
    assert torch.allclose(
        match_channels(torch.ones(2, 5) * torch.tensor([[1.0], [3.0]]), 1), 2 * torch.ones(1, 5)
    )
    assert restore_channels(torch.ones(3, 1, 5), 2).shape == (3, 2, 5)
    with pytest.raises(AudioError, match="6-channel"):
        match_channels(torch.randn(6, 10), 2)


@pytest.mark.parametrize("extension", [".wav", ".flac", ".ogg", ".mp3"])
def test_load_audio_roundtrip(tmp_path, extension):
    data = (0.5 * np.sin(np.linspace(0, 200, 4000))[:, None] * [1.0, -1.0]).astype(np.float32)
    path = tmp_path / f"x{extension}"
    sf.write(path, data, 16000)
    waveform, rate = load_audio(path)
    assert rate == 16000 and waveform.shape == (2, 4000) and waveform.dtype == np.float32
    tolerance = 0.05 if extension in (".ogg", ".mp3") else 1e-4  # lossy codecs
    assert np.abs(waveform - data.T).max() < tolerance


def test_load_audio_errors_name_the_file(tmp_path):
    empty = tmp_path / "empty.wav"
    empty.write_bytes(b"")
    no_samples = tmp_path / "zero.wav"
    sf.write(no_samples, np.zeros((0, 2), dtype=np.float32), 8000)
    nan = tmp_path / "nan.wav"
    sf.write(nan, np.array([[0.0, np.nan], [0.1, 0.2]], dtype=np.float32), 8000, subtype="FLOAT")
    text = tmp_path / "notes.txt"
    text.write_text("not audio")
    cases = {
        tmp_path / "missing.wav": "no such file",
        tmp_path: "not a file",
        empty: "cannot read",
        no_samples: "no samples",
        nan: "NaN or infinite",
        text: "unsupported format",
    }
    for path, message in cases.items():
        with pytest.raises(AudioError, match=message) as error:
            load_audio(path)
        assert str(path) in str(error.value)


def test_save_audio_is_atomic_and_checks_the_subtype(tmp_path):
    save_audio(tmp_path / "a.flac", np.zeros((2, 100), dtype=np.float32), 8000, "PCM_16")
    assert sf.info(tmp_path / "a.flac").subtype == "PCM_16"
    with pytest.raises(ValueError, match="FLOAT"):
        save_audio(tmp_path / "b.flac", np.zeros((2, 100)), 8000, "FLOAT")
    with pytest.raises(ValueError, match="channels, samples"):
        save_audio(tmp_path / "c.wav", np.zeros(100), 8000)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.flac"]


def test_write_stems_all_or_nothing(tmp_path, monkeypatch):
    stems = {"vocals": np.zeros((2, 10)), "drums": np.ones((2, 10)) * 0.5}
    written = write_stems(tmp_path / "song", stems, 8000)
    assert [p.name for p in written] == ["vocals.wav", "drums.wav"]
    with pytest.raises(FileExistsError, match="vocals.wav"):
        write_stems(tmp_path / "song", stems, 8000)
    calls = []

    def failing_save(path, *args, **kwargs):
        calls.append(path)
        if len(calls) % 2 == 0:  # the second stem of each write
            raise OSError("disk full")
        return sf_save(path, *args, **kwargs)

    sf_save = audio.save_audio
    monkeypatch.setattr(audio, "save_audio", failing_save)
    with pytest.raises(OSError, match="disk full"):
        write_stems(tmp_path / "other", stems, 8000)
    with pytest.raises(OSError, match="disk full"):
        write_stems(
            tmp_path / "song", {**stems, "vocals": np.full((2, 10), 0.25)}, 8000, overwrite=True
        )
    assert sorted(p.name for p in tmp_path.iterdir()) == ["song"]  # no "other", no staging folder
    assert sf.read(tmp_path / "song" / "vocals.wav")[0].max() == 0.0  # untouched
    monkeypatch.undo()
    write_stems(tmp_path / "song", {"vocals": np.full((2, 10), 0.25)}, 8000, overwrite=True)
    assert abs(sf.read(tmp_path / "song" / "vocals.wav")[0].max() - 0.25) < 1e-6


def test_prevent_clipping_modes():
    stems = {"a": np.array([[0.5, -2.0]]), "b": np.array([[1.5, 0.0]])}
    assert prevent_clipping({"a": np.array([[0.5]])}, "rescale") == ({"a": np.array([[0.5]])}, None)
    rescaled, report = prevent_clipping(stems, "rescale")
    assert np.isclose(np.abs(rescaled["a"]).max(), audio.CLIP_LIMIT)
    assert np.allclose(rescaled["a"] / stems["a"], rescaled["b"][0, 0] / 1.5)  # one gain for all
    assert "rescaled by -6.03 dB" in report
    clamped, report = prevent_clipping(stems, "clamp")
    assert clamped["a"].tolist() == [[0.5, -1.0]] and "2 sample(s) clamped" in report
    unchanged, report = prevent_clipping(stems, "none")
    assert unchanged is stems and "left as is" in report
    with pytest.raises(ValueError, match="clip mode"):
        prevent_clipping(stems, "soft")


def test_find_audio_files(tmp_path):
    (tmp_path / "album").mkdir()
    for name in ("b.flac", "a.wav", "cover.jpg"):
        (tmp_path / "album" / name).write_bytes(b"")
    (tmp_path / "nothing").mkdir()
    found = find_audio_files([tmp_path / "album", tmp_path / "nothing", tmp_path / "x.mp3"])
    assert [(p.name, e is None) for p, e in found] == [
        ("a.wav", True),
        ("b.flac", True),
        ("nothing", False),
        ("x.mp3", False),
    ]
