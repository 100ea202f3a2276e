"""The training configuration: one dataclass tree filled from a YAML file plus command-line overrides.

Every value has exactly one home. The `model` section is a plain mapping handed unchanged to
[`TFSWAConfig`] (the single source of truth for the model, which validates it); every other section
is a dataclass below. A YAML file (`--config configs/name.yaml`) is applied over the defaults, then
the overrides in command-line order:

    --optim.lr 3e-4  --model.dims [16,32]  --output_dir runs/a  --push_to_hub  --data.root=/data

Values are parsed as YAML (`[16,32]` is a list, `true` a bool, `3e-4` a float) and checked against
the field's type. An unknown key, a wrong type or a bad value raises [`ConfigError`] naming the key
(and the file it came from).

The data sources (`data.source`, `data.sources`) are checked where they are used, by
`modeling_tfswa.training.data.resolve_sources` (the trainer calls it before it writes anything):
this module does not import the data layer.

Why our loader and not OmegaConf structured configs or transformers' `HfArgumentParser`
(`benchmarks/training_libraries.py`, omegaconf 2.4, transformers 5.24): over these same dataclasses,
OmegaConf refuses the same bad values (unknown key, wrong type, null) but in 3-4-line messages, and
accepts an unknown key of the free `model` section (TFSWAConfig's keys need our check anyway); our
`--key value` grammar and the file named in errors would stay ours, and it is a new dependency
(a load of the 4-stem recipe: 31 ms vs our 12 ms, both negligible). `HfArgumentParser` has no
`--section.key`: a nested section is one flag whose text becomes the section's first field
(`--data '{root: x}'` gives `DataConfig(source='{root: x}', ...)`). Either would replace only
`_coerce` / `_set` (about 80 lines), so the loader stays.
"""

from __future__ import annotations

import dataclasses
import re
import textwrap
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from data_scripts.musdb import StemDatasetError, parse_stem_set, resolve_stem_set, stem_set_for
from data_scripts.pipeline import SILENCE_DB

from ..configuration_tfswa import TFSWAConfig
from ..fileio import write_text_atomic


class ConfigError(ValueError):
    """A training configuration value is unknown, of the wrong type or out of range."""


# --------------------------------------------------------------------------------------------------
# Sections
# --------------------------------------------------------------------------------------------------
@dataclass
class DataConfig:
    """Where the audio comes from and how training / validation segments are cut.

    Attributes:
        source: `"rendered"` (songs of the project's composer rendered through SoundFont
            instruments with production, `data_scripts.render`, created in `root` on first use),
            `"synthetic"` (the project's additive-synthesis songs, created in `root` on first use)
            or `"musdb18hq"` (a MUSDB18-HQ folder at `root`); the registry is
            `modeling_tfswa.training.data.DATASET_ROOTS`. Ignored when `sources` is given.
        root: dataset folder.
        sources: several datasets at once, each `{source: name, root: folder, weight: w}` plus any
            other `data` key for that source alone (e.g. `synthetic_train_songs: 40`); a training
            example comes from source i with probability w_i / sum(w); validation uses all. E.g.
            `sources: [{source: musdb18hq, root: data/musdb18hq, weight: 1}, {source: rendered,
            root: data/rendered, weight: 1}]`. Empty: `source` and `root` alone.
        stem_set: how the dataset composes the model's stems. None (the default): derived from
            `model.stems`, so a recipe states its stems once (`vocals-accompaniment` or `4stems`
            when `model.stems` names one of those presets' stems, else a grouping of the MUSDB18
            stems; `data_scripts.musdb.stem_set_for`). Give it only for a grouping the model's
            stem names do not say, e.g. `{vocals: [vocals], rhythm: [drums, bass], other:
            [other]}` or, in the `--stem-set` grammar of the commands,
            `vocals=vocals,rhythm=drums+bass,other=other`; its stem names must then equal
            `model.stems` (checked at start-up). See [`TrainingConfig.stem_set`].
        cache_dir: `datasets` cache folder (None: the library default).
        synthetic_train_songs, synthetic_validation_songs, synthetic_test_songs: songs per split
            of a generated dataset, synthetic or rendered (the demo mixture is the first test song).
        synthetic_seconds: length of each generated song.
        synthetic_seed: seed of the generated songs.
        render_soundfonts: SoundFonts of rendered songs (paths, or names in /usr/share/sounds/sf2 or
            /usr/share/sounds/sf3), one drawn per song.
        render_drum_soundfonts: drum-kit SoundFonts (their kit at preset 0:0, e.g. the AVL kits
            `Black_Pearl_4_LV2.sf2`, `Red_Zeppelin_4_LV2.sf2`): each rendered song's drums play
            on a kit drawn from these and its SoundFont's own (empty: its own).
        render_vocal_engines: vocal engines of rendered songs (`data_scripts.vocals`), one drawn
            per song.
        render_mapping: changes to the rendered songs' General-MIDI-family -> stem mapping, e.g.
            `{synth_lead: vocals}` (`data_scripts.render.resolve_mapping`).
        render_midi_dir: render the `.mid` files of this folder instead of composed songs.
        render_workers: rendering processes.
        segment_seconds: length of a training segment.
        samples_per_epoch: training segments drawn per epoch (segments are random: any number works).
        batch_size: training segments per batch and process.
        remix: draw each stem of a training example from its own song and offset (Demucs-style).
        validation_segment_seconds: length of the sequential validation segments.
        validation_overlap: overlap of consecutive validation segments, as a fraction.
        validation_batch_size: validation segments per batch and process.
        max_validation_segments: cap on the validation segments (None: all), to bound its cost.
        num_workers: DataLoader worker processes.
    """

    source: str = "synthetic"
    root: str = "data/synthetic"
    sources: list[dict[str, Any]] = field(default_factory=list)
    stem_set: Any = None
    cache_dir: str | None = None
    synthetic_train_songs: int = 12
    synthetic_validation_songs: int = 3
    synthetic_test_songs: int = 1
    synthetic_seconds: float = 10.0
    synthetic_seed: int = 0
    render_soundfonts: list[str] = field(default_factory=lambda: ["FluidR3_GM.sf2"])
    render_drum_soundfonts: list[str] = field(default_factory=list)
    render_vocal_engines: list[str] = field(default_factory=lambda: ["soundfont"])
    render_mapping: dict[str, str] = field(default_factory=dict)
    render_midi_dir: str | None = None
    render_workers: int = 2
    segment_seconds: float = 6.0
    samples_per_epoch: int = 4000
    batch_size: int = 4
    remix: bool = True
    validation_segment_seconds: float = 6.0
    validation_overlap: float = 0.0
    validation_batch_size: int = 4
    max_validation_segments: int | None = None
    num_workers: int = 0


@dataclass
class OptimConfig:
    """AdamW with a cosine schedule after a linear warm-up.

    Attributes:
        lr: peak learning rate.
        weight_decay: AdamW weight decay (not applied to biases, norms and embeddings).
        betas: AdamW betas.
        eps: AdamW epsilon.
        warmup_steps: optimizer steps of linear warm-up from 0 to `lr`.
        max_grad_norm: gradient clipping norm (0 disables clipping).
    """

    lr: float = 1e-3
    weight_decay: float = 1e-4
    betas: list[float] = field(default_factory=lambda: [0.9, 0.999])
    eps: float = 1e-8
    warmup_steps: int = 500
    max_grad_norm: float = 1.0


@dataclass
class LossConfig:
    """Weights of the parts of the training loss (a part with weight 0 is not computed).

    Attributes:
        waveform_l1: L1 between estimated and true waveforms.
        spectrogram_l1: L1 between magnitude spectrograms (the model's `n_fft` / `hop_length`).
        multi_resolution_stft: spectral convergence + log-magnitude loss averaged over `fft_sizes`.
        fft_sizes: FFT sizes of the multi-resolution STFT loss (hop = size / 4, Hann window).
    """

    waveform_l1: float = 1.0
    spectrogram_l1: float = 0.0
    multi_resolution_stft: float = 0.0
    fft_sizes: list[int] = field(default_factory=lambda: [2048, 1024, 512])


@dataclass
class AugmentConfig:
    """Augmentation of training examples (never of validation).

    Two places apply it, each knob in one of them. The training dataset
    (`data_scripts.pipeline.RemixDataset`, in the DataLoader workers) gives every example, per
    stem, a random gain, a channel swap and a polarity flip, and redraws near-silent stem windows;
    the stems are then summed into the mixture. [`Augmenter`](augment.py) then changes training
    batches in the loop, each change with a probability: pitch, tempo and mixup change the stems and
    the mixture is re-summed from them, so the targets stay consistent with the input; masking
    changes only the input mixture. (Datasets passed to `train()` directly get only the second.)

    Attributes:
        gain_db: `[low, high]`: every stem of every training example is scaled by a gain drawn
            uniformly in this range, in dB (`[0, 0]` disables it). The one random gain.
        channel_swap_probability: per stem, probability of swapping left and right.
        polarity_flip_probability: per stem, probability of negating it.
        silence_db: a stem window quieter than this (RMS, dBFS) is redrawn, a bounded number of
            times (default: the project's silence level, `data_scripts.pipeline.SILENCE_DB`);
            `-.inf` keeps every draw.
        pitch_probability: per example, probability of a pitch shift of all its stems.
        pitch_semitones: maximum shift in semitones (uniform in `[-s, s]`).
        tempo_probability: per example, probability of a tempo change of all its stems.
        tempo_range: tempo factor bounds (>1 is faster).
        frequency_mask_probability: per example, probability of masking a band of input STFT bins.
        max_frequency_bins: maximum width of that band.
        time_mask_probability: per example, probability of masking a run of input STFT frames.
        max_time_frames: maximum length of that run.
        mixup_probability: per example, probability of blending its stems with another example's.
        mixup_alpha: the blend weight is drawn from Beta(alpha, alpha).
        vocoder_n_fft: FFT size of the phase vocoder used by pitch and tempo changes.
    """

    gain_db: list[float] = field(default_factory=lambda: [-6.0, 3.0])
    channel_swap_probability: float = 0.5
    polarity_flip_probability: float = 0.5
    silence_db: float = SILENCE_DB
    pitch_probability: float = 0.0
    pitch_semitones: float = 2.0
    tempo_probability: float = 0.0
    tempo_range: list[float] = field(default_factory=lambda: [0.9, 1.1])
    frequency_mask_probability: float = 0.0
    max_frequency_bins: int = 80
    time_mask_probability: float = 0.0
    max_time_frames: int = 40
    mixup_probability: float = 0.0
    mixup_alpha: float = 0.4
    vocoder_n_fft: int = 1024


@dataclass
class TrainingConfig:
    """Everything a training run needs. See the section classes for their fields.

    Attributes:
        model: keyword arguments of [`TFSWAConfig`], passed unchanged (see `model_config()`).
        output_dir: checkpoints (`checkpoints/step_*`), logs (`logs/`), and the trained model
            (`best/`, `last/`, in `save_pretrained` form) go here.
        seed: seed of the model initialisation, the data order and the augmentations.
        max_steps: optimizer steps of the whole run (the cosine schedule ends there).
        gradient_accumulation_steps: batches per optimizer step.
        mixed_precision: `"no"`, `"fp16"` or `"bf16"` (the STFTs and losses stay in float32);
            None takes it from `accelerate launch` (its `--mixed_precision` or config file).
        cpu_threads: torch threads of each process for CPU work: an integer; `"auto"` (when
            training on the CPU: the cores this process may run on, shared evenly by this
            machine's processes); None leaves what the launcher set. On a machine without a GPU
            `accelerate launch` sets one thread per process unless given
            `--num_cpu_threads_per_process`: 1.7x slower steps than two threads on two cores.
        gradient_checkpointing: recompute activations in the backward pass to save memory.
        ema_decay: decay of the exponential moving average of the weights (0 disables EMA; the
            EMA weights are validated and saved as the model).
        log_every: optimizer steps between loss logs.
        eval_every: optimizer steps between validations (and at the end).
        save_every: optimizer steps between resumable checkpoints (and at the end).
        keep_last: resumable checkpoints kept (older ones are deleted).
        resume: `None`, `"latest"` (the newest checkpoint in `output_dir`, or a fresh start when
            there is none) or a checkpoint folder.
        init_from: fine-tuning: a saved model folder or Hub id whose weights start the run (not its
            optimizer or schedule); with other stems, its trunk is loaded and the mask head is new.
        push_to_hub: push the saved model folder to the Hub at each checkpoint (in the background).
        hub_model_id: Hub repository `user/name` to push to.
        hub_private: create the Hub repository as private (the default; `--hub_private false`
            for a public one). The token comes from `HF_TOKEN` or `huggingface-cli login`.
        demo: after training, separate a demo mixture and write its stems under `output_dir/demo`.
    """

    model: dict[str, Any] = field(default_factory=dict)
    data: DataConfig = field(default_factory=DataConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    loss: LossConfig = field(default_factory=LossConfig)
    augment: AugmentConfig = field(default_factory=AugmentConfig)
    output_dir: str = "outputs/run"
    seed: int = 42
    max_steps: int = 100_000
    gradient_accumulation_steps: int = 1
    mixed_precision: str | None = None
    cpu_threads: int | str | None = None
    gradient_checkpointing: bool = False
    ema_decay: float = 0.999
    log_every: int = 50
    eval_every: int = 2000
    save_every: int = 2000
    keep_last: int = 3
    resume: str | None = None
    init_from: str | None = None
    push_to_hub: bool = False
    hub_model_id: str | None = None
    hub_private: bool = True
    demo: bool = False

    def model_config(self) -> TFSWAConfig:
        """The model configuration, built (and validated) from the `model` section, with the
        separation segment length set to the training segment length (`data.segment_seconds`)."""
        try:
            return TFSWAConfig(**self.model, segment_seconds=self.data.segment_seconds)
        except (TypeError, ValueError) as error:
            raise ConfigError(f"model: {error}") from error

    def stem_set(self, model_config: TFSWAConfig | None = None) -> str | dict[str, list[str]]:
        """The stem set the data is read with: `data.stem_set` when given (a preset name, a
        grouping, or a grouping in the `--stem-set` grammar), else the one of `model.stems`.

        Args:
            model_config: the run's [`TFSWAConfig`] when already built (default: built from the
                `model` section).

        Raises [`ConfigError`] naming `data.stem_set` when it is invalid or not derivable.
        """
        stem_set = self.data.stem_set
        if stem_set is None:
            stems = (model_config or self.model_config()).stems
            try:
                return stem_set_for(stems)
            except StemDatasetError as error:
                raise ConfigError(
                    f"data.stem_set: not given, and model.stems does not name it ({error}); set "
                    "data.stem_set to a grouping {stem: [MUSDB18 stems]}"
                ) from None
        try:
            if isinstance(stem_set, str):
                stem_set = parse_stem_set(stem_set)
            resolve_stem_set(stem_set)
        except StemDatasetError as error:
            raise ConfigError(f"data.stem_set: {error}") from None
        return stem_set

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def validate(self) -> TrainingConfig:
        """Check ranges and cross-field rules; returns self. Raises [`ConfigError`] naming the key."""

        def fail(key: str, problem: str):
            raise ConfigError(f"{key}: {problem}")

        _check_model_keys(self.model)
        model_config = self.model_config()
        for key in ("max_steps", "gradient_accumulation_steps", "log_every", "eval_every"):
            if getattr(self, key) < 1:
                fail(key, f"must be >= 1, got {getattr(self, key)}")
        for key in ("save_every", "keep_last"):
            if getattr(self, key) < 1:
                fail(key, f"must be >= 1, got {getattr(self, key)}")
        if self.mixed_precision not in (None, "no", "fp16", "bf16"):
            fail("mixed_precision", f"must be 'no', 'fp16' or 'bf16', got {self.mixed_precision!r}")
        threads = self.cpu_threads
        if threads is not None and threads != "auto":
            if isinstance(threads, bool) or not isinstance(threads, int) or threads < 1:
                fail("cpu_threads", f"must be an integer >= 1, 'auto' or null, got {threads!r}")
        if not 0.0 <= self.ema_decay < 1.0:
            fail("ema_decay", f"must be in [0, 1), got {self.ema_decay}")
        if self.push_to_hub and not self.hub_model_id:
            fail("hub_model_id", "is required with push_to_hub (e.g. --hub_model_id user/name)")
        data = self.data
        _check_stem_set(self.stem_set(model_config), data.stem_set, model_config.stems)
        for key in ("segment_seconds", "validation_segment_seconds", "synthetic_seconds"):
            if getattr(data, key) <= 0:
                fail(f"data.{key}", f"must be positive, got {getattr(data, key)}")
        for key in ("samples_per_epoch", "batch_size", "validation_batch_size"):
            if getattr(data, key) < 1:
                fail(f"data.{key}", f"must be >= 1, got {getattr(data, key)}")
        if not 0.0 <= data.validation_overlap < 1.0:
            fail("data.validation_overlap", f"must be in [0, 1), got {data.validation_overlap}")
        optim = self.optim
        if optim.lr <= 0:
            fail("optim.lr", f"must be positive, got {optim.lr}")
        if len(optim.betas) != 2:
            fail("optim.betas", f"must have 2 entries, got {optim.betas}")
        if optim.warmup_steps < 0 or optim.max_grad_norm < 0 or optim.weight_decay < 0:
            fail("optim", "warmup_steps, max_grad_norm and weight_decay must be >= 0")
        loss = self.loss
        weights = {k: getattr(loss, k) for k in ("waveform_l1", "spectrogram_l1")}
        weights["multi_resolution_stft"] = loss.multi_resolution_stft
        if any(w < 0 for w in weights.values()) or not any(w > 0 for w in weights.values()):
            fail("loss", f"weights must be >= 0 with at least one positive, got {weights}")
        if not loss.fft_sizes or any(n < 16 for n in loss.fft_sizes):
            fail("loss.fft_sizes", f"must be FFT sizes >= 16, got {loss.fft_sizes}")
        aug = self.augment
        for f in dataclasses.fields(aug):
            if f.name.endswith("_probability") and not 0.0 <= getattr(aug, f.name) <= 1.0:
                fail(f"augment.{f.name}", f"must be in [0, 1], got {getattr(aug, f.name)}")
        if len(aug.tempo_range) != 2 or not 0 < aug.tempo_range[0] <= aug.tempo_range[1]:
            fail(
                "augment.tempo_range",
                f"must be [low, high] with 0 < low <= high, got {aug.tempo_range}",
            )
        if len(aug.gain_db) != 2 or not aug.gain_db[0] <= aug.gain_db[1]:
            fail(
                "augment.gain_db", f"must be [low, high] in dB with low <= high, got {aug.gain_db}"
            )
        if not aug.silence_db <= 0:
            fail("augment.silence_db", f"must be a level in dBFS (<= 0), got {aug.silence_db}")
        if aug.pitch_semitones < 0 or aug.max_frequency_bins < 0 or aug.max_time_frames < 0:
            fail("augment", "pitch_semitones, max_frequency_bins, max_time_frames must be >= 0")
        if aug.mixup_alpha <= 0:
            fail("augment.mixup_alpha", f"must be positive, got {aug.mixup_alpha}")
        return self


# --------------------------------------------------------------------------------------------------
# Loading: YAML + overrides -> TrainingConfig
# --------------------------------------------------------------------------------------------------
class _YamlLoader(yaml.SafeLoader):
    """SafeLoader that also reads `1e-3` as a float (YAML 1.1 wants `1.0e-3`)."""


_YamlLoader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(
        r"""^(?:[-+]?(?:[0-9][0-9_]*)\.[0-9_]*(?:[eE][-+]?[0-9]+)?
        |[-+]?(?:[0-9][0-9_]*)(?:[eE][-+]?[0-9]+)
        |\.[0-9_]+(?:[eE][-+][0-9]+)?
        |[-+]?\.(?:inf|Inf|INF)
        |\.(?:nan|NaN|NAN))$""",
        re.X,
    ),
    list("-+0123456789."),
)


def parse_value(text: str) -> Any:
    """A command-line value parsed as YAML: `[16,32]` -> list, `3e-4` -> float, `none` -> None."""
    value = yaml.load(text, Loader=_YamlLoader)
    if isinstance(value, str) and value.lower() == "none":
        return None
    return value


def _check_model_keys(model: dict[str, Any], where: str = "model") -> None:
    accepted = TFSWAConfig.argument_names()
    if "segment_seconds" in model:
        raise ConfigError(
            f"{where}.segment_seconds: set data.segment_seconds (the model's is the training length)"
        )
    unknown = sorted(set(model) - accepted)
    if unknown:
        raise ConfigError(
            f"{where}: unknown key(s) {unknown} for TFSWAConfig; accepted: {sorted(accepted)}"
        )


def _check_stem_set(stem_set: str | dict, given: Any, stems: list[str]) -> None:
    """The resolved stem set must name exactly `model.stems` (checked with the config, before a
    run writes or generates anything); `given` is `data.stem_set` as written, for the message."""
    _, grouping = resolve_stem_set(stem_set)
    if sorted(grouping) != sorted(stems):
        raise ConfigError(
            f"data.stem_set {given!r} gives stems {list(grouping)}, but model.stems is "
            f"{stems}; make them name the same stems (or leave data.stem_set out: it follows "
            "model.stems)"
        )


def _strip_optional(tp):
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        return (args[0] if len(args) == 1 else Any), True
    return tp, False


def _coerce(key: str, value: Any, tp) -> Any:
    """Check `value` against the annotation `tp`, converting ints to floats where floats are due."""
    tp, optional = _strip_optional(tp)
    if value is None:
        if optional or tp is Any:
            return None
        raise ConfigError(f"{key}: must not be null")
    if tp is Any:
        return value
    origin = typing.get_origin(tp)
    if origin is list:
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{key}: expected a list, got {value!r}")
        (item_type,) = typing.get_args(tp) or (Any,)
        return [_coerce(f"{key}[{i}]", v, item_type) for i, v in enumerate(value)]
    if origin is dict:
        if not isinstance(value, dict):
            raise ConfigError(f"{key}: expected a mapping, got {value!r}")
        return dict(value)
    if tp is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{key}: expected true/false, got {value!r}")
        return value
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{key}: expected an integer, got {value!r}")
        return value
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"{key}: expected a number, got {value!r}")
        return float(value)
    if tp is str:
        if not isinstance(value, str):
            raise ConfigError(f"{key}: expected a string, got {value!r}")
        return value
    raise ConfigError(f"{key}: unsupported field type {tp!r}")  # a bug in this module, not input


def _set(node, path: list[str], value: Any, full_key: str) -> None:
    """Set `value` at the dotted `path` under the dataclass `node`, type-checked."""
    name, rest = path[0], path[1:]
    if isinstance(node, dict):  # the model section: checked by TFSWAConfig as a whole
        if rest:
            raise ConfigError(f"{full_key}: model values are not nested")
        _check_model_keys({name: value}, where=full_key)
        node[name] = value
        return
    hints = typing.get_type_hints(type(node))
    if name not in hints:
        known = ", ".join(f.name for f in dataclasses.fields(node))
        raise ConfigError(f"{full_key}: unknown key {name!r}; known here: {known}")
    current = getattr(node, name)
    if dataclasses.is_dataclass(current) or isinstance(current, dict) and name == "model":
        if rest:
            _set(current, rest, value, full_key)
            return
        if not isinstance(value, dict):
            raise ConfigError(f"{full_key}: expected a mapping of keys, got {value!r}")
        for sub_key, sub_value in value.items():
            _set(current, [str(sub_key)], sub_value, f"{full_key}.{sub_key}")
        return
    if rest:
        raise ConfigError(f"{full_key}: {name!r} has no sub-keys")
    setattr(node, name, _coerce(full_key, value, hints[name]))


def apply_mapping(config: TrainingConfig, mapping: dict[str, Any], source: str = "") -> None:
    """Apply a (possibly nested) mapping of values to `config`; `source` names it in errors."""
    for key, value in mapping.items():
        try:
            _set(config, str(key).split("."), value, str(key))
        except ConfigError as error:
            raise ConfigError(f"{source}: {error}" if source else str(error)) from None


def load_yaml(path: str | Path) -> dict[str, Any]:
    """Read a YAML config file (a mapping) with clear errors naming the file."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"config file {path} does not exist")
    try:
        data = yaml.load(path.read_text(), Loader=_YamlLoader)
    except yaml.YAMLError as error:
        raise ConfigError(f"{path}: invalid YAML: {error}") from error
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping of config keys, got {type(data).__name__}")
    return data


def split_overrides(argv: list[str]) -> tuple[str | None, dict[str, Any]]:
    """`["--config", "a.yaml", "--optim.lr", "3e-4", "--push_to_hub"]` -> ("a.yaml", {...}).

    `--key value`, `--key=value`, and a bare `--flag` (true) are accepted; dashes inside keys may be
    written as underscores or dashes (`--output-dir`).
    """
    config_path, overrides = None, {}
    i = 0
    while i < len(argv):
        token = argv[i]
        if not token.startswith("--") or token == "--":
            raise ConfigError(f"expected --key value, got {token!r}")
        key, has_value, value_text = token[2:].partition("=")
        key = key.replace("-", "_")
        if not has_value:
            if i + 1 < len(argv) and not argv[i + 1].startswith("--"):
                value_text, i = argv[i + 1], i + 1
            else:
                value_text = "true"
        i += 1
        if key == "config":
            config_path = value_text
            continue
        try:
            overrides[key] = parse_value(value_text)
        except yaml.YAMLError as error:
            problem = " ".join(str(getattr(error, "problem", None) or error).split())
            raise ConfigError(f"--{key}: cannot parse {value_text!r} ({problem})") from None
    return config_path, overrides


def load_config(
    path: str | Path | None = None, overrides: dict[str, Any] | None = None
) -> TrainingConfig:
    """Defaults <- YAML file at `path` <- `overrides` (dotted keys), validated."""
    config = TrainingConfig()
    if path is not None:
        apply_mapping(config, load_yaml(path), source=str(path))
    apply_mapping(config, overrides or {}, source="command line")
    return config.validate()


def config_from_argv(argv: list[str], default_config: str | Path | None = None) -> TrainingConfig:
    """Parse a command line (`--config FILE` plus `--key value` overrides) into a config."""
    path, overrides = split_overrides(argv)
    return load_config(path if path is not None else default_config, overrides)


def _attribute_docs(cls, heading: str = "Attributes:") -> dict[str, str]:
    """The first sentence of each entry of a docstring's `Attributes:` (or `Args:`) section, in
    either style, `name: text` or transformers' `name (`type`, ...):` with the text below; an
    entry naming several fields, `a, b, c: ...`, documents each of them."""
    docs, names, text = {}, None, []
    lines = (cls.__doc__ or "").partition(heading)[2].splitlines()
    for line in [*lines, ""]:
        entry = re.match(r"^ {8}([a-z_][a-z0-9_, ]*)(?: \(.*\))?:(.*)$", line)
        if entry or not line.strip():
            if names:
                text = " ".join(text).strip()
                end = r"(?<!e\.g\.)(?<!i\.e\.)(?<=\.)\s+(?=[A-Z`(])"  # a sentence's end
                sentence = re.split(end, text, maxsplit=1)[0]
                docs.update(dict.fromkeys(names, sentence))
            names, text = None, []
        if entry:
            names = [n.strip() for n in entry.group(1).split(",")]
            text = [entry.group(2).strip()]
        elif names:
            text.append(line.strip())
    return docs


def config_help(argv: list[str], default_config: str | Path | None = None) -> str:
    """`--help` of the training command: every key with the value the run would take (the
    defaults, the YAML file of `--config` or `default_config`, then the other overrides of `argv`;
    for `model`, every [`TFSWAConfig`] argument) and the first sentence of its documentation.
    Raises [`ConfigError`] like [`config_from_argv`]."""
    path, overrides = split_overrides(argv)
    path = path if path is not None else default_config
    config = load_config(path, overrides)
    out = [
        "usage: accelerate launch train_accelerate.py [--config FILE] [--KEY VALUE ...] [--debug]",
        "",
        "Every key below is an option, dotted for sections (--optim.lr 3e-4); values are YAML",
        "([16,32] is a list, true a bool). The values shown are those this command line trains",
        "with" + (f" ({path} over the defaults)." if path else " (the defaults)."),
        "--debug shows the traceback of an error.",
    ]

    def show(key: str, value: Any, doc: str | None) -> None:
        shown = yaml.safe_dump(value, default_flow_style=True, width=10**6).strip()
        out.append(f"  --{key} {shown.removesuffix('...').strip()}")
        if doc:
            out.extend(textwrap.wrap(doc, 100, initial_indent=" " * 6, subsequent_indent=" " * 6))

    model = config.model_config()
    out.extend(["", "model: the TFSWAConfig arguments (the `model:` section of a recipe)"])
    for key, doc in _attribute_docs(TFSWAConfig, "Args:").items():
        if key != "segment_seconds":  # set from data.segment_seconds
            show(f"model.{key}", getattr(model, key), doc)
    run_docs = _attribute_docs(TrainingConfig)
    sections = [f.name for f in dataclasses.fields(config) if f.name != "model"]
    for name in [n for n in sections if dataclasses.is_dataclass(getattr(config, n))]:
        node = getattr(config, name)
        out.extend(["", f"{name}: {(type(node).__doc__ or '').splitlines()[0]}"])
        docs = _attribute_docs(type(node))
        for f in dataclasses.fields(node):
            show(f"{name}.{f.name}", getattr(node, f.name), docs.get(f.name))
    out.extend(["", "run: the rest of the run"])
    for name in [n for n in sections if not dataclasses.is_dataclass(getattr(config, n))]:
        show(name, getattr(config, name), run_docs.get(name))
    return "\n".join(out)


def save_config(
    config: TrainingConfig, path: str | Path, model_config: TFSWAConfig | None = None
) -> None:
    """Write the resolved config as YAML (atomically), so a run records exactly what it used.

    The model section is written complete, every TFSWAConfig argument with the value it took
    (defaults included; `segment_seconds` stays with `data`), so that a later change of a
    default cannot change what a resume of this run compares against. `model_config` is the
    run's [`TFSWAConfig`] when already built (default: `config.model_config()`)."""
    data = config.to_dict()
    model = (model_config or config.model_config()).to_dict()
    names = TFSWAConfig.argument_names()
    data["model"] = {k: v for k, v in model.items() if k in names and k != "segment_seconds"}
    write_text_atomic(path, yaml.safe_dump(data, sort_keys=False))


__all__ = [
    "AugmentConfig",
    "ConfigError",
    "DataConfig",
    "LossConfig",
    "OptimConfig",
    "TrainingConfig",
    "config_from_argv",
    "load_config",
    "parse_value",
    "save_config",
    "split_overrides",
]
