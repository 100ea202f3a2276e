"""From `config.data` to the training and validation datasets (the data layer lives in data_scripts).

Sources are a dict from `data.source` to a function giving the dataset root; adding one is one
entry. Every source is read through `data_scripts.musdb.load_stem_dataset` (a cached `datasets`
dataset with the stems of `TrainingConfig.stem_set()`) and cut by `data_scripts.pipeline`: random
remixed segments for training, sequential segments for validation. With `data.sources`, every source gets
its own remixing dataset and [`WeightedSourcesDataset`] draws each example's source by weight;
validation segments of all sources are interleaved.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
from torch.utils.data import ConcatDataset, Dataset, Subset

from data_scripts.musdb import CHANNELS

from ..configuration_tfswa import TFSWAConfig
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


def _rendered_root(config: TrainingConfig) -> Path:
    """Songs of the project's composer (or `data.render_midi_dir`'s MIDI files) rendered through
    SoundFonts with production into `data.root` on first use (idempotent, resumable)."""
    from data_scripts.render import RenderError, RenderSpec, ensure_rendered_dataset

    d = config.data
    spec = RenderSpec(
        num_train=d.synthetic_train_songs,
        num_validation=d.synthetic_validation_songs,
        num_test=d.synthetic_test_songs,
        seconds=d.synthetic_seconds,
        seed=d.synthetic_seed,
        soundfonts=tuple(d.render_soundfonts),
        drum_soundfonts=tuple(d.render_drum_soundfonts),
        mapping=dict(d.render_mapping),
        vocal_engines=tuple(d.render_vocal_engines),
        midi_dir=d.render_midi_dir,
    )
    try:
        return ensure_rendered_dataset(d.root, spec, workers=d.render_workers)
    except RenderError as error:
        raise ConfigError(f"data (rendered songs in {d.root}): {error}") from None


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
    "rendered": _rendered_root,
    "synthetic": _synthetic_root,
    "musdb18hq": _existing_root,
}


def _check_source(source: str, key: str) -> None:
    if source not in DATASET_ROOTS:
        raise ConfigError(f"{key}: must be one of {sorted(DATASET_ROOTS)}, got {source!r}")


def dataset_root(config: TrainingConfig) -> Path:
    """The root of `config.data.source` (generated first when the source generates)."""
    _check_source(config.data.source, "data.source")
    return DATASET_ROOTS[config.data.source](config)


def check_data(config: TrainingConfig, model_config: TFSWAConfig | None = None) -> None:
    """What the data layer needs of a config, checked before anything is read, generated or
    written: known sources ([`resolve_sources`]), and stereo models, since the datasets and the
    training pipeline are stereo (`data_scripts.musdb.CHANNELS`; wiring other channel counts
    through them is not done: mono training takes datasets passed to `train()`).
    Raises `ConfigError` naming the key."""
    resolve_sources(config)
    channels = (model_config or config.model_config()).audio_channels
    if channels != CHANNELS:
        raise ConfigError(
            f"model.audio_channels: training on data.source reads stereo audio, so it must be "
            f"{CHANNELS}, got {channels}"
        )


def resolve_sources(config: TrainingConfig) -> list[tuple[TrainingConfig, float]]:
    """One `(config whose data section describes that source, weight)` per entry of
    `data.sources`, or `[(config, 1.0)]` without it: the check of `data.source` / `data.sources`
    (known sources, keys and weights; nothing is read or generated). Raises `ConfigError` naming
    the bad key."""
    entries = config.data.sources
    if not entries:
        _check_source(config.data.source, "data.source")
        return [(config, 1.0)]
    known = {f.name for f in dataclasses.fields(config.data)} - {"sources"}
    out = []
    for i, entry in enumerate(entries):
        where = f"data.sources[{i}]"
        if not isinstance(entry, dict) or "source" not in entry or "root" not in entry:
            raise ConfigError(f"{where}: expected {{source: name, root: folder, weight: w}}")
        entry = dict(entry)
        weight = entry.pop("weight", 1.0)
        if isinstance(weight, bool) or not isinstance(weight, (int, float)) or weight <= 0:
            raise ConfigError(f"{where}.weight: must be a positive number, got {weight!r}")
        _check_source(entry["source"], f"{where}.source")
        unknown = sorted(set(entry) - known)
        if unknown:
            raise ConfigError(f"{where}: unknown key(s) {unknown}; known: {sorted(known)}")
        out.append(
            (dataclasses.replace(config, data=dataclasses.replace(config.data, **entry)), weight)
        )
    return out


class WeightedSourcesDataset(Dataset):
    """Training examples drawn from several datasets: item i of epoch e comes from dataset k with
    probability `weights[k] / sum(weights)` (drawn from `(seed, epoch, i)`, so reproducible), as
    that dataset's item i (each is random per index already).

    Args:
        datasets: map-style datasets with `set_epoch` (e.g. `RemixDataset`), each at least
            `samples_per_epoch` long.
        weights: positive sampling weights, one per dataset.
        samples_per_epoch: items per epoch.
        seed: base seed of the source draws.
    """

    def __init__(
        self,
        datasets: Sequence[Dataset],
        weights: Sequence[float],
        samples_per_epoch: int,
        seed: int = 0,
    ):
        if len(datasets) != len(weights) or not datasets:
            raise ValueError("one weight per dataset, at least one dataset")
        if any(w <= 0 for w in weights):
            raise ValueError(f"weights must be positive, got {list(weights)}")
        self.datasets = list(datasets)
        self.probabilities = np.asarray(weights, dtype=np.float64) / float(sum(weights))
        self.samples_per_epoch = int(samples_per_epoch)
        self.seed = int(seed)
        self.epoch = 0
        self.sample_rate = getattr(self.datasets[0], "sample_rate", None)

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)
        for dataset in self.datasets:
            dataset.set_epoch(epoch)

    def __len__(self) -> int:
        return self.samples_per_epoch

    def source_of(self, index: int) -> int:
        rng = np.random.default_rng([self.seed, self.epoch, int(index), 7])
        return int(rng.choice(len(self.datasets), p=self.probabilities))

    def __getitem__(self, index: int) -> dict:
        if not 0 <= index < self.samples_per_epoch:
            raise IndexError(f"index {index} out of range for {self.samples_per_epoch} items")
        return self.datasets[self.source_of(index)][index]


def _interleaved(datasets: Sequence[Dataset]) -> Dataset:
    """All items of all datasets, alternating between them (so a cap on the count takes some of
    every source)."""
    if len(datasets) == 1:
        return datasets[0]
    offsets = np.cumsum([0] + [len(d) for d in datasets])
    order = sorted(
        (position, k, offsets[k] + position)
        for k, d in enumerate(datasets)
        for position in range(len(d))
    )
    return Subset(ConcatDataset(datasets), [int(index) for _, _, index in order])


def build_datasets(
    config: TrainingConfig, model_config: TFSWAConfig | None = None
) -> tuple[Dataset, Dataset, Callable]:
    """Training (`RemixDataset`, or [`WeightedSourcesDataset`] over one per source) and validation
    (`SequentialSegmentDataset`s) datasets, and the collate function, with stems in the order of
    `model.stems`, read with the stem set `config.stem_set()`.

    Args:
        config: the validated training config.
        model_config: the run's model config when already built (default: `config.model_config()`).

    Items: `{"mixture": (C, T), "stems": (S, C, T), ...}`; batches add a leading batch axis.
    """
    from data_scripts.musdb import load_stem_dataset
    from data_scripts.pipeline import (
        RemixDataset,
        SequentialSegmentDataset,
        collate_segments,
        stem_columns,
    )

    d, augment = config.data, config.augment
    model_config = model_config or config.model_config()
    check_data(config, model_config)
    stem_set = config.stem_set(model_config)
    trains, validations, weights = [], [], []
    for k, (source_config, weight) in enumerate(resolve_sources(config)):
        sd = source_config.data
        splits = load_stem_dataset(
            dataset_root(source_config), stem_set, d.cache_dir, splits=("train", "validation")
        )
        available = stem_columns(splits["train"])
        if sorted(available) != sorted(model_config.stems):
            raise ConfigError(
                f"data.stem_set {stem_set!r} gives stems {available}, but model.stems is "
                f"{model_config.stems}; make them name the same stems"
            )
        train = RemixDataset(
            splits["train"],
            d.segment_seconds,
            stems=model_config.stems,
            samples_per_epoch=d.samples_per_epoch,
            seed=config.seed + 1000 * k,
            remix=sd.remix,
            silence_db=augment.silence_db,
            gain_db=(augment.gain_db[0], augment.gain_db[1]),
            channel_swap_prob=augment.channel_swap_probability,
            polarity_flip_prob=augment.polarity_flip_probability,
        )
        if train.sample_rate != model_config.sample_rate:
            raise ConfigError(
                f"data ({sd.root}): the audio is at {train.sample_rate} Hz but model.sample_rate "
                f"is {model_config.sample_rate}"
            )
        trains.append(train)
        weights.append(weight)
        if "validation" in splits:
            validations.append(
                SequentialSegmentDataset(
                    splits["validation"],
                    d.validation_segment_seconds,
                    d.validation_overlap,
                    stems=model_config.stems,
                )
            )
    if not validations:
        raise ConfigError("data: no source has a validation split")
    train = (
        trains[0]
        if len(trains) == 1
        else WeightedSourcesDataset(trains, weights, d.samples_per_epoch, seed=config.seed)
    )
    return train, _interleaved(validations), collate_segments


def demo_mixture_path(config: TrainingConfig) -> Path:
    """The mixture file of the first test track (else validation track) of the first source."""
    root = dataset_root(resolve_sources(config)[0][0])
    for split in ("test", "validation"):
        found = sorted((root / split).glob("*/mixture.wav"))
        if found:
            return found[0]
    raise ConfigError(f"data.root: no {root}/test/*/mixture.wav to separate as the demo")


__all__ = [
    "DATASET_ROOTS",
    "WeightedSourcesDataset",
    "build_datasets",
    "check_data",
    "dataset_root",
    "demo_mixture_path",
    "resolve_sources",
]
