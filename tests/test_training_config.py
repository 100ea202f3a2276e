"""Training config: YAML + command-line overrides feed one dataclass tree; bad keys name themselves."""

import dataclasses
import os
from pathlib import Path

import pytest
import torch

from data_scripts.musdb import resolve_stem_set
from modeling_tfswa import TFSWAConfig
from modeling_tfswa.training.config import (
    ConfigError,
    TrainingConfig,
    config_from_argv,
    load_config,
    save_config,
    split_overrides,
)
from modeling_tfswa.training.data import resolve_sources
from modeling_tfswa.training.trainer import set_cpu_threads

ROOT = Path(__file__).resolve().parents[1]
CONFIGS = ROOT / "configs"


def test_yaml_then_overrides(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text(
        "optim:\n  lr: 1e-3\nmodel:\n  dims: [8, 16]\n  depths: [1, 1]\n  num_heads: [1, 2]\n"
        "  tf_attention_stages: [false, true]\n  stems: [vocals, other]\n"
    )
    config = config_from_argv(
        ["--config", str(path), "--optim.lr", "3e-4", "--model.dims", "[16,32]",
         "--output_dir=runs/x", "--push_to_hub", "--hub_model_id", "me/m", "--data.stem_set",
         "{vocals: [vocals], other: [drums, bass, other]}"]
    )  # fmt: skip
    assert config.optim.lr == 3e-4 and isinstance(config.optim.lr, float)
    assert config.model["dims"] == [16, 32] and config.model["stems"] == ["vocals", "other"]
    assert config.output_dir == "runs/x" and config.push_to_hub is True
    assert config.data.stem_set == {"vocals": ["vocals"], "other": ["drums", "bass", "other"]}
    assert isinstance(config.model_config(), TFSWAConfig)


def test_int_is_accepted_for_float_and_strings_are_not():
    assert load_config(overrides={"optim.lr": 1}).optim.lr == 1.0
    with pytest.raises(ConfigError, match="optim.lr"):
        load_config(overrides={"optim.lr": "fast"})


@pytest.mark.parametrize(
    "overrides, key",
    [
        ({"optim.lrr": 1.0}, "lrr"),
        ({"model.dimz": [8]}, "dimz"),
        ({"nope": 1}, "nope"),
        ({"data.batch_size": 0}, "data.batch_size"),
        ({"model.dims": [8, 16, 32]}, "depths"),  # TFSWAConfig's own validation, named
        ({"push_to_hub": True}, "hub_model_id"),
        ({"augment.gain_probability": 0.5}, "gain_probability"),  # one gain: augment.gain_db
        ({"augment.gain_db": [3, -6]}, "augment.gain_db"),
        ({"augment.channel_swap_probability": 2}, "augment.channel_swap_probability"),
        ({"augment.silence_db": 10}, "augment.silence_db"),
        ({"cpu_threads": 0}, "cpu_threads"),
        ({"cpu_threads": "many"}, "cpu_threads"),
    ],
)
def test_bad_keys_are_named(overrides, key):
    with pytest.raises(ConfigError, match=key):
        load_config(overrides=overrides)


def test_bad_yaml_names_the_file(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("optim:\n  lr_typo: 1\n")
    with pytest.raises(ConfigError, match=r"bad\.yaml.*lr_typo"):
        load_config(path)
    with pytest.raises(ConfigError, match="does not exist"):
        load_config(tmp_path / "missing.yaml")


def test_flag_parsing():
    path, overrides = split_overrides(["--resume", "latest", "--demo", "--seed", "3"])
    assert path is None and overrides == {"resume": "latest", "demo": True, "seed": 3}
    with pytest.raises(ConfigError, match="expected --key value"):
        split_overrides(["lr", "3"])


@pytest.mark.parametrize("name", sorted(p.name for p in CONFIGS.glob("*.yaml")))
def test_shipped_configs_load(name):
    config = load_config(CONFIGS / name)
    assert config.model_config().num_stems >= 2
    # Stems are stated once: the data's stem set follows model.stems.
    assert config.data.stem_set is None
    assert sorted(resolve_stem_set(config.stem_set())[1]) == sorted(config.model["stems"])
    assert resolve_sources(config)  # every data source is known and complete
    # A SoundFont a recipe renders with is one whose Debian package the error of its absence names
    # (and that .ci/run installs).
    from data_scripts.render import SOUNDFONT_PACKAGES

    fonts = {
        font
        for source, _ in resolve_sources(config)
        if source.data.source == "rendered"
        for font in (*source.data.render_soundfonts, *source.data.render_drum_soundfonts)
    }
    assert fonts <= set(SOUNDFONT_PACKAGES)
    for package in {SOUNDFONT_PACKAGES[name] for name in fonts}:
        assert package in (ROOT / ".ci" / "run").read_text()


def test_the_stem_set_follows_model_stems_unless_given():
    def stem_set(**overrides):
        return load_config(overrides=overrides).stem_set()

    assert stem_set(**{"model.stems": ["accompaniment", "vocals"]}) == "vocals-accompaniment"
    assert stem_set() == "4stems"  # TFSWAConfig's default stems
    assert stem_set(**{"model.stems": ["drums", "vocals"]}) == {
        "drums": ["drums"],
        "vocals": ["vocals"],
    }
    # A grouping the stem names do not say is given once, in either grammar, and checked.
    custom = {"model.stems": ["vocals", "rhythm", "other"]}
    with pytest.raises(ConfigError, match="data.stem_set: not given.*rhythm"):
        load_config(overrides=custom)
    grouping = {"vocals": ["vocals"], "rhythm": ["drums", "bass"], "other": ["other"]}
    for given in ("vocals=vocals,rhythm=drums+bass,other=other", grouping):
        assert stem_set(**custom, **{"data.stem_set": given}) == grouping
    with pytest.raises(ConfigError, match="gives stems.*make them name the same stems"):
        load_config(overrides={**custom, "data.stem_set": "4stems"})
    with pytest.raises(ConfigError, match="data.stem_set: unknown stem set 'five'"):
        load_config(overrides={"data.stem_set": "five"})


def test_saved_config_round_trips(tmp_path):
    config = load_config(overrides={"optim.lr": 2e-4, "model.n_fft": 1024})
    save_config(config, tmp_path / "config.yaml")
    again = load_config(tmp_path / "config.yaml")
    assert isinstance(again, TrainingConfig) and again.model_config() == config.model_config()
    assert dataclasses.replace(again, model={}) == dataclasses.replace(config, model={})
    # The model section is written complete: a later default change cannot change it.
    assert set(again.model) == TFSWAConfig.argument_names() - {"segment_seconds"}


@pytest.fixture
def restore_threads():
    threads = torch.get_num_threads()
    yield
    torch.set_num_threads(threads)


class _Accelerator:
    """What `set_cpu_threads` reads of an Accelerator."""

    def __init__(self, device: str, num_processes: int = 1):
        self.device = torch.device(device)
        self.num_processes = num_processes


@pytest.mark.usefixtures("restore_threads")
def test_cpu_threads_auto_shares_the_cores_between_local_processes(monkeypatch):
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: set(range(8)), raising=False)
    monkeypatch.delenv("LOCAL_WORLD_SIZE", raising=False)
    torch.set_num_threads(1)  # what `accelerate launch` leaves on a machine without a GPU
    auto = load_config(overrides={"cpu_threads": "auto"})
    assert set_cpu_threads(auto, _Accelerator("cpu")) == 8
    monkeypatch.setenv("LOCAL_WORLD_SIZE", "2")
    assert set_cpu_threads(auto, _Accelerator("cpu", num_processes=4)) == 4
    torch.set_num_threads(1)
    assert set_cpu_threads(auto, _Accelerator("meta")) == 1  # not on the CPU: left alone
    assert set_cpu_threads(load_config(), _Accelerator("cpu")) == 1  # null: left alone
    assert set_cpu_threads(load_config(overrides={"cpu_threads": 3}), _Accelerator("meta")) == 3


def test_the_cpu_configs_use_every_core():
    for name in ("quickstart.yaml", "cpu-4stems.yaml"):
        assert load_config(CONFIGS / name).cpu_threads == "auto"


def test_help_lists_every_key_with_this_runs_value_and_its_doc(tmp_path, capsys):
    from modeling_tfswa.training.cli import main

    argv = ["--config", str(CONFIGS / "cpu-4stems.yaml"), "--optim.lr", "3e-4", "--help"]
    assert main(argv) == 0
    text = capsys.readouterr().out
    config = config_from_argv(argv[:4])
    lines = text.splitlines()
    for section in ("data", "optim", "loss", "augment"):
        for f in dataclasses.fields(getattr(config, section)):
            key = f"  --{section}.{f.name} "
            [i] = [i for i, line in enumerate(lines) if line.startswith(key)]
            assert lines[i + 1].startswith("      "), f"{key.strip()} has no documentation"
    for f in dataclasses.fields(config):
        if not dataclasses.is_dataclass(getattr(config, f.name)) and f.name != "model":
            [i] = [i for i, line in enumerate(lines) if line.startswith(f"  --{f.name} ")]
            assert lines[i + 1].startswith("      "), f"--{f.name} has no documentation"
    # The values are the run's: the file's over the defaults, then the command line's.
    assert "  --optim.lr 0.0003" in lines and "  --max_steps 8000" in lines
    assert "  --model.frequency_bands [[32, 2], [128, 4], [512, 8], [1025, 16]]" in lines
    assert "  --model.mask_type complex" in lines  # a TFSWAConfig default the file does not set
    assert "      STFT size; the spectrogram has `n_fft // 2 + 1` frequency bins." in lines
    assert "--data.sources [{root: data/rendered-4stems" in text
    # A bad value is still one line, even with --help.
    assert main(["--optim.lr", "-1", "-h"]) == 2
    assert capsys.readouterr().err.strip() == "error: optim.lr: must be positive, got -1.0"
