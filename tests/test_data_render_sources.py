"""Training from several sources at once (`data.sources`): sampling weights, config checks."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from torch.utils.data import Dataset

from data_scripts.pipeline import SILENCE_POWER, RemixDataset
from modeling_tfswa.training.config import ConfigError, load_config
from modeling_tfswa.training.data import (
    WeightedSourcesDataset,
    build_datasets,
    resolve_sources,
)

ROOT = Path(__file__).resolve().parents[1]
TINY = ROOT / "configs" / "tiny.yaml"


class Tagged(Dataset):
    """Items that say which dataset they come from; records the epoch it was given."""

    def __init__(self, tag: int, length: int = 4000):
        self.tag, self.length, self.epoch = tag, length, 0

    def set_epoch(self, epoch):
        self.epoch = epoch

    def __len__(self):
        return self.length

    def __getitem__(self, index):
        return {"tag": self.tag, "index": index}


def test_sampling_weights_are_respected_and_reproducible():
    parts = [Tagged(0), Tagged(1), Tagged(2)]
    mixed = WeightedSourcesDataset(parts, [3.0, 1.0, 0.5], samples_per_epoch=4000, seed=5)
    tags = np.array([mixed[i]["tag"] for i in range(4000)])
    shares = np.bincount(tags, minlength=3) / 4000
    np.testing.assert_allclose(shares, [3 / 4.5, 1 / 4.5, 0.5 / 4.5], atol=0.03)
    assert [mixed[i]["index"] for i in range(5)] == list(range(5))  # the source's own item i
    again = WeightedSourcesDataset(parts, [3.0, 1.0, 0.5], samples_per_epoch=4000, seed=5)
    assert [again[i]["tag"] for i in range(200)] == tags[:200].tolist()
    mixed.set_epoch(3)
    assert all(p.epoch == 3 for p in parts)
    assert [mixed[i]["tag"] for i in range(200)] != tags[:200].tolist()  # new epoch, new draws
    with pytest.raises(ValueError, match="weights must be positive"):
        WeightedSourcesDataset(parts, [1.0, 0.0, 1.0], samples_per_epoch=10)
    with pytest.raises(IndexError):
        mixed[4000]


def test_sources_are_checked_by_key(tmp_path):
    base = {"output_dir": str(tmp_path / "run")}

    def check(**overrides):  # the data layer checks the sources it reads
        resolve_sources(load_config(TINY, {**base, **overrides}))

    with pytest.raises(ConfigError, match=r"data.sources\[1\].source: must be one of"):
        check(**{"data.sources": [{"source": "synthetic", "root": "a"},
                                  {"source": "lakh", "root": "b"}]})  # fmt: skip
    with pytest.raises(ConfigError, match=r"data.sources\[0\].weight: must be a positive number"):
        check(**{"data.sources": [{"source": "synthetic", "root": "a", "weight": -1}]})
    with pytest.raises(ConfigError, match=r"data.sources\[0\]: unknown key\(s\) \['songs'\]"):
        check(**{"data.sources": [{"source": "synthetic", "root": "a", "songs": 3}]})
    with pytest.raises(ConfigError, match=r"data.sources\[0\]: expected \{source"):
        check(**{"data.sources": [{"root": "a"}]})
    with pytest.raises(ConfigError, match=r"data.source: must be one of \[.*\], got 'lakh'"):
        check(**{"data.source": "lakh"})
    config = load_config(
        TINY,
        {**base, "data.sources": [
            {"source": "synthetic", "root": "a", "weight": 2, "synthetic_train_songs": 5},
            {"source": "musdb18hq", "root": "b"},
        ]},
    )  # fmt: skip
    (first, w1), (second, w2) = resolve_sources(config)
    assert (first.data.root, first.data.synthetic_train_songs, w1) == ("a", 5, 2)
    assert (second.data.source, second.data.synthetic_train_songs, w2) == ("musdb18hq", 3, 1.0)


def test_two_sources_train_and_validate_together(tmp_path):
    config = load_config(
        TINY,
        {
            "output_dir": str(tmp_path / "run"),
            "data.cache_dir": str(tmp_path / "cache"),
            "data.synthetic_seconds": 1.0,
            "data.samples_per_epoch": 64,
            "data.sources": [
                {"source": "synthetic", "root": str(tmp_path / "a"), "weight": 3},
                {"source": "synthetic", "root": str(tmp_path / "b"), "synthetic_seed": 7},
            ],
        },
    )
    config.validate()
    train, validation, collate = build_datasets(config)
    assert isinstance(train, WeightedSourcesDataset) and len(train) == 64
    assert [len(d.reader) for d in train.datasets] == [3, 3]
    shares = np.bincount([train.source_of(i) for i in range(64)], minlength=2) / 64
    assert shares[0] > shares[1]
    batch = collate([train[i] for i in range(2)])
    assert batch["mixture"].shape == (2, 2, 11025)
    torch.testing.assert_close(batch["mixture"], batch["stems"].sum(1))
    # Validation interleaves the sources' segments (a cap takes some of each).
    first, second = validation[0]["mixture"], validation[1]["mixture"]
    assert not torch.equal(first, second)
    assert len(validation) == 2 * 2  # one 1-s song per source, two 0.5-s segments each


def test_the_augment_section_sets_the_training_datasets_knobs(tmp_path):
    base = {
        "output_dir": str(tmp_path / "run"),
        "data.root": str(tmp_path / "a"),
        "data.cache_dir": str(tmp_path / "cache"),
        "data.synthetic_seconds": 1.0,
    }
    default, _, _ = build_datasets(load_config(TINY, base))
    assert (default.gain_db, default.channel_swap_prob, default.polarity_flip_prob) == (
        (-6.0, 3.0), 0.5, 0.5
    )  # fmt: skip
    assert default._silence_power == pytest.approx(SILENCE_POWER)
    knobs = {"augment.gain_db": [-1, -1], "augment.channel_swap_probability": 0,
             "augment.polarity_flip_probability": 1, "augment.silence_db": -50}  # fmt: skip
    train, _, _ = build_datasets(load_config(TINY, {**base, **knobs}))
    assert (train.gain_db, train.channel_swap_prob, train.polarity_flip_prob) == (
        (-1.0, -1.0), 0.0, 1.0
    )  # fmt: skip
    assert train._silence_power == pytest.approx(1e-5)
    # Same draws, one fixed gain and polarity instead of random ones: the knobs act.
    plain = RemixDataset(
        default.reader._dataset, 0.25, stems=default.stems, samples_per_epoch=16,
        seed=default.seed, gain_db=(0, 0), channel_swap_prob=0, polarity_flip_prob=0,
        silence_db=-50,
    )  # fmt: skip
    torch.testing.assert_close(train[3]["stems"], -(10 ** (-1 / 20)) * plain[3]["stems"])
