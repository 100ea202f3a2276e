"""From `config.data` to the training and validation datasets (the data layer lives in data_scripts).

Sources are a dict from `data.source` to a function giving the dataset root; adding one is one
entry. Every source is read through `data_scripts.musdb.load_stem_dataset` (a cached `datasets`
dataset with the stems of `data.stem_set`) and cut by `data_scripts.pipeline`: random remixed
segments for training, sequential segments for validation.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from torch.utils.data import Dataset

from .config import ConfigError, TrainingConfig


def _synthetic_root(config: TrainingConfig) -> Path:
    """The project's synthetic songs, generated into `data.root` on first use (idempotent)."""
    from data_scripts.synthetic import ensure_synthetic_dataset

    d = config.data
    return ensure_synthetic_dataset(
        d.root,
        num_train=d.synthetic_train_songs,
        num_validation=d.synthetic_validation_songs,
        num_test=d.synthetic_test_songs,
        seconds=d.synthetic_seconds,
        seed=d.synthetic_seed,
    )


def _existing_root(config: TrainingConfig) -> Path:
    """A dataset you downloaded (MUSDB18-HQ layout) at `data.root`."""
    root = Path(config.data.root).expanduser()
    if not (root / "train").is_dir():
        raise ConfigError(
            f"data.root: {root} has no train/ folder; point --data.root at your MUSDB18-HQ copy"
        )
    return root


#: `data.source` -> function returning the dataset root.
DATASET_ROOTS: dict[str, Callable[[TrainingConfig], Path]] = {
    "synthetic": _synthetic_root,
    "musdb18hq": _existing_root,
}


def dataset_root(config: TrainingConfig) -> Path:
    try:
        make_root = DATASET_ROOTS[config.data.source]
    except KeyError:
        raise ConfigError(
            f"data.source: unknown source {config.data.source!r}; known: {sorted(DATASET_ROOTS)}"
        ) from None
    return make_root(config)


def build_datasets(config: TrainingConfig) -> tuple[Dataset, Dataset, Callable]:
    """Training (`RemixDataset`) and validation (`SequentialSegmentDataset`) datasets, and the
    collate function, with stems in the order of `config.model["stems"]`.

    Items: `{"mixture": (C, T), "stems": (S, C, T), ...}`; batches add a leading batch axis.
    """
    from data_scripts.musdb import load_stem_dataset
    from data_scripts.pipeline import (
        RemixDataset,
        SequentialSegmentDataset,
        collate_segments,
        stem_columns,
    )

    d = config.data
    model_config = config.model_config()
    splits = load_stem_dataset(
        dataset_root(config), d.stem_set, d.cache_dir, splits=("train", "validation")
    )
    available = stem_columns(splits["train"])
    if sorted(available) != sorted(model_config.stems):
        raise ConfigError(
            f"data.stem_set {d.stem_set!r} gives stems {available}, but model.stems is "
            f"{model_config.stems}; make them name the same stems"
        )
    train = RemixDataset(
        splits["train"],
        d.segment_seconds,
        stems=model_config.stems,
        samples_per_epoch=d.samples_per_epoch,
        seed=config.seed,
        remix=d.remix,
    )
    if train.sample_rate != model_config.sample_rate:
        raise ConfigError(
            f"data: the audio is at {train.sample_rate} Hz but model.sample_rate is "
            f"{model_config.sample_rate}"
        )
    validation = SequentialSegmentDataset(
        splits["validation"],
        d.validation_segment_seconds,
        d.validation_overlap,
        stems=model_config.stems,
    )
    return train, validation, collate_segments


def demo_mixture_path(config: TrainingConfig) -> Path:
    """The mixture file of the first test track (else validation track) of the data root."""
    root = dataset_root(config)
    for split in ("test", "validation"):
        found = sorted((root / split).glob("*/mixture.wav"))
        if found:
            return found[0]
    raise ConfigError(f"data.root: no {root}/test/*/mixture.wav to separate as the demo")


__all__ = ["DATASET_ROOTS", "build_datasets", "dataset_root", "demo_mixture_path"]
