"""Synthetic multitrack generator: determinism, layout, levels, idempotence."""

import json

import numpy as np
import pytest
import soundfile as sf

from data_scripts.synthetic import (
    MANIFEST_NAME,
    SAMPLE_RATE,
    SOURCES,
    ensure_synthetic_dataset,
    generate_song,
    track_name,
)


def _rms_db(x):
    return 20 * np.log10(np.sqrt(np.mean(np.square(x, dtype=np.float64))) + 1e-12)


def test_song_is_deterministic_and_seed_dependent():
    a = generate_song(3, "train", 1, 2.0)
    b = generate_song(3, "train", 1, 2.0)
    c = generate_song(4, "train", 1, 2.0)
    for name in (*SOURCES, "mixture"):
        assert a[name].shape == (2 * SAMPLE_RATE, 2) and a[name].dtype == np.float32
        np.testing.assert_array_equal(a[name], b[name])
    assert not np.allclose(a["mixture"], c["mixture"])


def test_song_mixture_is_sum_and_levels_are_realistic():
    song = generate_song(0, "test", 0, 4.0)
    total = np.zeros_like(song["mixture"])
    for name in SOURCES:
        total += song[name]
    np.testing.assert_array_equal(song["mixture"], total)
    assert np.abs(song["mixture"]).max() <= 0.96
    assert -30 < _rms_db(song["mixture"]) < -8
    for name in ("drums", "bass", "other"):
        assert _rms_db(song[name]) > -50, name
        # Stereo: both channels carry signal.
        assert _rms_db(song[name][:, 0]) > -60 and _rms_db(song[name][:, 1]) > -60


def test_songs_vary():
    """Different songs differ in level balance and spectral content, not only in phase."""
    centroids = []
    for i in range(4):
        v = generate_song(0, "train", i, 3.0)["other"][:, 0]
        spec = np.abs(np.fft.rfft(v))
        freqs = np.fft.rfftfreq(v.size, 1 / SAMPLE_RATE)
        centroids.append((spec * freqs).sum() / spec.sum())
    assert np.ptp(centroids) > 50


def test_vocals_have_silences_and_pitch():
    song = generate_song(1, "train", 2, 8.0)
    v = song["vocals"].mean(1)
    frames = v[: v.size // 2048 * 2048].reshape(-1, 2048)
    energy = 10 * np.log10((frames**2).mean(1) + 1e-12)
    assert (energy < energy.max() - 40).any(), "vocals never pause"
    # Voiced frames are periodic: strong autocorrelation peak at a lag in the singing range.
    loud = frames[np.argmax(energy)]
    ac = np.correlate(loud, loud, "full")[loud.size - 1 :]
    lo, hi = SAMPLE_RATE // 1000, SAMPLE_RATE // 80
    assert ac[lo:hi].max() > 0.5 * ac[0]


def test_bad_arguments():
    with pytest.raises(ValueError, match="split"):
        generate_song(0, "dev", 0, 1.0)
    with pytest.raises(ValueError, match="seconds"):
        ensure_synthetic_dataset("/nonexistent-never-created", seconds=0)


def test_ensure_dataset_layout_and_idempotence(tmp_path):
    root = ensure_synthetic_dataset(tmp_path, 2, 1, 1, seconds=1.5, seed=7, progress=False)
    manifest = json.loads((root / MANIFEST_NAME).read_text())
    assert manifest["tracks"]["validation"] == [track_name("validation", 0)]
    for split, n in (("train", 2), ("validation", 1), ("test", 1)):
        dirs = sorted(p.name for p in (root / split).iterdir())
        assert dirs == [track_name(split, i) for i in range(n)]
    track = root / "train" / track_name("train", 1)
    audio, sr = sf.read(track / "vocals.wav", dtype="float32")
    assert sr == SAMPLE_RATE and audio.shape == (int(1.5 * SAMPLE_RATE), 2)
    np.testing.assert_array_equal(audio, generate_song(7, "train", 1, 1.5)["vocals"])
    assert sf.info(str(track / "mixture.wav")).subtype == "FLOAT"

    # Second call: nothing rewritten.
    mtime = (track / "vocals.wav").stat().st_mtime_ns
    ensure_synthetic_dataset(tmp_path, 2, 1, 1, seconds=1.5, seed=7, progress=False)
    assert (track / "vocals.wav").stat().st_mtime_ns == mtime

    # A damaged track is re-rendered identically; other tracks stay untouched.
    (track / "bass.wav").unlink()
    other = root / "train" / track_name("train", 0) / "bass.wav"
    other_mtime = other.stat().st_mtime_ns
    ensure_synthetic_dataset(tmp_path, 2, 1, 1, seconds=1.5, seed=7, progress=False)
    bass, _ = sf.read(track / "bass.wav", dtype="float32")
    np.testing.assert_array_equal(bass, generate_song(7, "train", 1, 1.5)["bass"])
    assert other.stat().st_mtime_ns == other_mtime

    # A smaller spec removes the surplus tracks; no temp folders are left anywhere.
    ensure_synthetic_dataset(tmp_path, 1, 1, 1, seconds=1.5, seed=7, progress=False)
    assert sorted(p.name for p in (root / "train").iterdir()) == [track_name("train", 0)]
    assert not [p for p in root.rglob(".*")]
