import json
import re

import pytest

from modeling_tfswa import TFSWAConfig
from modeling_tfswa.configuration_tfswa import default_frequency_bands


def test_defaults_and_derived_properties():
    config = TFSWAConfig()
    assert config.stems == ["vocals", "drums", "bass", "other"]
    assert config.num_stems == 4
    assert config.num_mask_channels == 4 * 2 * 2
    assert config.num_freq_bins == 1025
    assert TFSWAConfig(stems=["vocals", "accompaniment"], mask_type="ratio").num_mask_channels == 4


def test_default_frequency_bands_follow_n_fft_and_are_saved_as_a_list(tmp_path):
    assert TFSWAConfig().frequency_bands == [[32, 2], [128, 4], [512, 8], [1025, 16]]
    assert TFSWAConfig(n_fft=1024, hop_length=256).frequency_bands == [
        [16, 2],
        [64, 4],
        [256, 8],
        [513, 16],
    ]
    assert TFSWAConfig(n_fft=32, hop_length=8).frequency_bands is None  # too few bins for bands
    assert default_frequency_bands(4096)[-1] == [2049, 16]
    TFSWAConfig(n_fft=1024, hop_length=256).save_pretrained(tmp_path / "bands")
    saved = json.loads((tmp_path / "bands" / "config.json").read_text())
    assert saved["frequency_bands"] == [[16, 2], [64, 4], [256, 8], [513, 16]]
    # uniform patches (None) stay uniform through a save and a load
    TFSWAConfig(frequency_bands=None).save_pretrained(tmp_path / "uniform")
    assert TFSWAConfig.from_pretrained(tmp_path / "uniform").frequency_bands is None
    with pytest.raises(ValueError, match=r"TFSWAConfig\.frequency_bands"):
        TFSWAConfig(frequency_bands="wide")


def test_the_default_is_five_stages_and_a_folder_holds_every_argument(tmp_path):
    config = TFSWAConfig()
    assert (config.num_stages, config.hop_length, config.patch_size) == (5, 1024, [1, 8])
    assert config.tf_attention_stages == [False, True, True, True, True]
    assert config.decoder_depths == [1, 1, 1, 1]
    # the hop follows n_fft (frames overlapping by half) unless given
    assert (
        TFSWAConfig(n_fft=1024).hop_length,
        TFSWAConfig(n_fft=1024, hop_length=256).hop_length,
    ) == (512, 256)
    with pytest.raises(ValueError, match=r"TFSWAConfig\.n_fft"):
        TFSWAConfig(n_fft="2048")
    # without a value, temporal and frequency attention run in every stage but the first
    assert TFSWAConfig(
        dims=[8, 16, 32], depths=[1, 1, 1], num_heads=[1, 1, 1]
    ).tf_attention_stages == [
        False,
        True,
        True,
    ]
    # Every argument is saved, defaults included, so a model saved under an earlier default (four
    # stages at hop 512 until 2026-12-06) loads as it was trained after the defaults change.
    config.save_pretrained(tmp_path)
    saved = json.loads((tmp_path / "config.json").read_text())
    assert TFSWAConfig.argument_names() <= saved.keys()


def test_derived_values_are_not_saved(tmp_path):
    TFSWAConfig(stems=["a", "b", "c"]).save_pretrained(tmp_path)
    saved = json.loads((tmp_path / "config.json").read_text())
    assert saved["stems"] == ["a", "b", "c"]
    for derived in ("num_stems", "num_mask_channels", "num_freq_bins", "num_stages"):
        assert derived not in saved
    assert TFSWAConfig.from_pretrained(tmp_path).num_stems == 3


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("stems", []),
        ("stems", ["vocals", "vocals"]),
        ("stems", ["vocals", ""]),
        ("stems", "vocals"),
        ("audio_channels", 0),
        ("sample_rate", -1),
        ("n_fft", 0),
        ("n_fft", 2),
        ("hop_length", 0),
        ("hop_length", 2048),
        ("patch_size", [2]),
        ("patch_size", [0, 8]),
        ("frequency_bands", []),
        ("frequency_bands", [[64, 2], [1025]]),
        ("frequency_bands", [[64, 2], [1000, 16]]),  # the last stop short of the 1025 bins
        ("frequency_bands", [[256, 2], [64, 8], [1025, 16]]),  # stops not increasing
        ("frequency_bands", [[1025, 2], [2048, 16]]),  # a band past the bins
        ("frequency_bands", [[64, 0], [1025, 16]]),
        ("window_size", [8, 8, 8]),
        ("window_size", [8, -1]),
        ("dims", []),
        ("dims", [32, 64.5, 128, 256]),
        ("depths", [2, 2, 6]),
        ("depths", [2, 0, 6, 2]),
        ("decoder_depths", [1, 1]),
        ("num_heads", [1, 2, 4]),
        ("num_heads", [3, 2, 4, 8]),
        ("tf_attention_stages", [True]),
        ("tf_attention_stages", [0, 0, 1, 1]),
        ("mlp_ratio", 0),
        ("mlp_conv_kernel_size", 2),  # even: the grid would grow
        ("mlp_conv_kernel_size", -3),
        ("mlp_conv_kernel_size", 3.0),
        ("hidden_dropout_prob", 1.0),
        ("attention_probs_dropout_prob", -0.1),
        ("drop_path_rate", 1.5),
        ("mask_type", "magnitude"),
        ("mixture_consistency", "yes"),
        ("layer_norm_eps", 0),
        ("spectrogram_norm_eps", -1e-5),
        ("initializer_range", 0),
        ("waveform_refiner_channels", [8, 16, 32, 64]),  # removed: refused, not ignored
    ],
)
def test_invalid_field_raises_value_error_naming_it(field, value):
    with pytest.raises(ValueError, match=rf"TFSWAConfig\.{field}"):
        TFSWAConfig(**{field: value})


def test_a_folder_saved_before_the_refiner_was_removed_loads(tmp_path):
    """Configs saved while the waveform refiner existed hold `"waveform_refiner_channels": null`:
    they load as before (only a folder saved with a refiner is refused, above)."""
    TFSWAConfig(stems=["vocals", "accompaniment"]).save_pretrained(tmp_path)
    path = tmp_path / "config.json"
    path.write_text(path.read_text().replace("{", '{\n  "waveform_refiner_channels": null,', 1))
    loaded = TFSWAConfig.from_pretrained(tmp_path)
    assert loaded.stems == ["vocals", "accompaniment"]
    assert not hasattr(loaded, "waveform_refiner_channels")


def test_every_argument_is_documented_once():
    # the config is the single source of truth: each argument has one entry in its Args
    entries = re.findall(r"^        (\w+) \(`", TFSWAConfig.__doc__, re.M)
    assert sorted(entries) == sorted(TFSWAConfig.argument_names())
