"""Files separated as a stream (segments read, regions written as they finish) equal the in-memory
separation; clipping, two stems, mono, bad samples mid-file and the spectrogram plot."""

import numpy as np
import pytest
import soundfile as sf
import torch
from conftest import make_tiny_config

from modeling_tfswa import TFSWAUNet
from modeling_tfswa.audio import AudioError, prevent_clipping
from modeling_tfswa.cli.separate import main
from modeling_tfswa.separation import Separator, separate_file

SR = 8000


@pytest.fixture(scope="module")
def separator():
    torch.manual_seed(0)
    model = TFSWAUNet(make_tiny_config(sample_rate=SR, segment_seconds=0.25)).eval()
    # 0.25-s segments and 2 per batch: a 3-s track streams through dozens of regions.
    return Separator(model, batch_size=2, shifts=1)


def write(path, data, rate=SR, subtype="FLOAT"):
    sf.write(path, data.T, rate, subtype=subtype)
    return path


def reseeded(separator, seed=0):
    torch.manual_seed(seed)  # the shifts' random offsets
    return separator


@pytest.mark.parametrize("channels", [2, 1])
def test_streamed_file_equals_in_memory_separation(tmp_path, separator, channels):
    mixture = np.random.default_rng(0).uniform(-0.4, 0.4, (channels, 3 * SR + 123))
    mixture = mixture.astype(np.float32)
    path = write(tmp_path / "song.wav", mixture)
    result = separate_file(reseeded(separator), path, tmp_path / "out", subtype="FLOAT")
    expected = reseeded(separator).separate(mixture, SR)
    assert [p.name for p in result.paths] == ["vocals.wav", "accompaniment.wav"]
    for stem, wave in expected.items():
        written, rate = sf.read(tmp_path / "out" / "song" / f"{stem}.wav", always_2d=True)
        assert rate == SR and written.shape == (mixture.shape[1], channels)
        assert np.abs(written.T - wave).max() < 1e-6


def test_streamed_two_stems_and_rescaled_pcm(tmp_path, separator):
    mixture = np.random.default_rng(1).uniform(-1.0, 1.0, (2, 2 * SR)).astype(np.float32)
    mixture[:, 100] = 3.0  # stems beyond full scale: rescaled by one gain for all stems
    path = write(tmp_path / "loud.wav", mixture)
    result = separate_file(
        reseeded(separator), path, tmp_path / "out", two_stems="vocals", subtype="PCM_24"
    )
    stems = reseeded(separator).separate(mixture, SR, two_stems="vocals")
    expected, report = prevent_clipping(stems, "rescale")
    assert report is not None and result.clipping == report
    for stem, wave in expected.items():
        written, _ = sf.read(tmp_path / "out" / "loud" / f"{stem}.wav", always_2d=True)
        assert np.abs(written.T - wave).max() < 2e-7 + 1e-6  # PCM_24 rounding
    assert sorted(p.name for p in (tmp_path / "out" / "loud").iterdir()) == [
        "no_vocals.wav",
        "vocals.wav",
    ]


def test_bad_samples_mid_file_leave_nothing_behind(tmp_path, separator):
    mixture = np.zeros((2, 2 * SR), dtype=np.float32)
    mixture[1, SR + 7] = np.nan
    path = write(tmp_path / "bad.wav", mixture)
    with pytest.raises(AudioError, match=r"bad\.wav: 1 NaN"):
        separate_file(separator, path, tmp_path / "out")
    assert not (tmp_path / "out").exists() or list((tmp_path / "out").iterdir()) == []


def test_plot_has_one_panel_per_stem_and_the_mixture(tmp_path):
    torch.manual_seed(0)
    model_dir = tmp_path / "model"
    TFSWAUNet(make_tiny_config(sample_rate=SR, segment_seconds=0.25)).save_pretrained(model_dir)
    write(tmp_path / "song.wav", np.random.default_rng(2).uniform(-0.3, 0.3, (2, SR)))
    out = tmp_path / "out"
    argv = [str(tmp_path / "song.wav"), "--model", str(model_dir), "--out", str(out)]
    assert main([*argv, "--plot", "--no-progress", "--two-stems", "vocals"]) == 0
    assert main([*argv, "--plot", "--no-progress", "--stems", "vocals", "--force"]) == 0
    plot = out / "song" / "spectrograms.png"
    assert sorted(p.name for p in plot.parent.iterdir()) == [
        "no_vocals.wav",
        "spectrograms.png",
        "vocals.wav",
    ]
    import matplotlib.image

    height = matplotlib.image.imread(plot).shape[0]
    assert height == round(2.2 * 2 * 80)  # 2 panels (mixture, vocals) at 80 dpi, 2.2 in each
