"""MUSDB18 evaluation of a separator: museval's BSSEval v4 scores (the reference for published
tables) and the fast SDRs of `modeling_tfswa.metrics`, per track and aggregated, with oracle
masking baselines.

- [`bsseval_track`]: museval scores of one track from arrays (`museval.eval_mus_track` without a
  musdb database); [`save_track_scores`] writes its museval JSON.
- Separators: [`ModelSeparator`] (a trained model through `modeling_tfswa.separation.apply_model`)
  and [`OracleSeparator`] (ideal ratio / binary masks computed from the true stems), both behind
  [`load_separator`].
- [`evaluate_separator`]: separates every track of a dataset split in this process and scores it in
  worker processes, writing per-track museval JSON, `scores.json`, `scores.md` and a box plot.

Waveforms handed to museval are `(samples, channels)` numpy arrays, museval's own layout; tensors
elsewhere are channels-first `(..., channels, samples)`.
"""

from __future__ import annotations

import concurrent.futures
import json
import math
import multiprocessing
import os
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import museval
import numpy as np
import torch
from tqdm.auto import tqdm

from data_scripts.musdb import MIXTURE, STEM_SETS

from .configuration_tfswa import TFSWAConfig
from .fileio import write_text_atomic, write_via_temporary
from .metrics import (
    csdr,
    framewise_sdr,
    mean_ignoring_nan,
    median_over_frames,
    median_over_tracks,
    sdr,
)
from .separation import apply_model
from .spectral import SpectralTransform

#: BSSEval metrics museval reports for every frame.
BSSEVAL_METRICS = ("SDR", "SIR", "ISR", "SAR")


def _check_track_arrays(
    references: Mapping[str, np.ndarray], estimates: Mapping[str, np.ndarray], track_name: str
) -> None:
    for stem, estimate in estimates.items():
        if stem not in references:
            raise ValueError(
                f"track {track_name!r}: estimate {stem!r} has no reference "
                f"(references: {sorted(references)})"
            )
        reference = references[stem]
        if reference.ndim != 2 or np.shape(estimate)[1:] != reference.shape[1:]:
            raise ValueError(
                f"track {track_name!r}, stem {stem!r}: expected (samples, channels) arrays with the "
                f"same channels, got reference {reference.shape} and estimate {np.shape(estimate)}"
            )


def bsseval_track(
    references: Mapping[str, np.ndarray],
    estimates: Mapping[str, np.ndarray],
    sample_rate: int,
    track_name: str,
    win: float = 1.0,
    hop: float = 1.0,
) -> museval.TrackStore:
    """BSSEval v4 scores of one track, exactly as `museval.eval_mus_track` computes them, from arrays
    (no musdb database needed).

    As in museval, the estimated stems are scored jointly (each one's SIR measures leakage of the
    others); when both `"vocals"` and `"accompaniment"` are estimated, that pair is scored as a
    separate two-source scenario, and the other stems jointly among themselves (without
    accompaniment). Estimates are zero-padded or cut to the reference length.

    Args:
        references (`Mapping[str, np.ndarray]`): true stems by name, each `(samples, channels)`;
            their order is the order of the output (musdb's order: vocals, drums, bass, other,
            accompaniment).
        estimates (`Mapping[str, np.ndarray]`): estimated stems by name, each
            `(samples', channels)`; a subset of the references' names.
        sample_rate (`int`): sample rate of both, in Hz.
        track_name (`str`): name stored with the scores (and used in error messages).
        win (`float`): frame length in seconds.
        hop (`float`): hop between frames in seconds.

    Returns:
        `museval.TrackStore`: per-frame SDR/SIR/ISR/SAR of every estimated stem; `.json` is the
        museval JSON document, `.df` a pandas frame.
    """
    _check_track_arrays(references, estimates, track_name)
    targets = [stem for stem in references if stem in estimates]
    store = museval.TrackStore(win=win, hop=hop, track_name=track_name)
    has_accompaniment = "vocals" in targets and "accompaniment" in targets
    joint = [stem for stem in targets if not (has_accompaniment and stem == "accompaniment")]
    scenarios = []
    if len(joint) >= 2:
        scenarios.append((joint, [s for s in joint if not (has_accompaniment and s == "vocals")]))
    elif not has_accompaniment:
        raise ValueError(
            f"track {track_name!r}: BSSEval needs at least two estimated stems, got {targets}"
        )
    if has_accompaniment:
        scenarios.append((["vocals", "accompaniment"], ["vocals", "accompaniment"]))
    for scored, kept in scenarios:
        sdr, isr, sir, sar = museval.evaluate(
            [references[stem] for stem in scored],
            [estimates[stem] for stem in scored],
            win=int(win * sample_rate),
            hop=int(hop * sample_rate),
            mode="v4",
        )
        metrics = {"SDR": sdr, "SIR": sir, "ISR": isr, "SAR": sar}
        for index, stem in enumerate(scored):
            if stem in kept:
                store.add_target(
                    stem, {key: value[index].tolist() for key, value in metrics.items()}
                )
    return store


def save_track_scores(store: museval.TrackStore, path: str | os.PathLike) -> Path:
    """Validate a track's scores against museval's schema and write its JSON document atomically."""
    store.validate()
    return write_text_atomic(path, store.json)


def track_medians(store: museval.TrackStore) -> dict[str, dict[str, float]]:
    """Median over frames (ignoring NaN frames) of every metric: `{stem: {"SDR": ..., ...}}`."""
    medians = {}
    for target in store.scores["targets"]:
        frames = [
            [float(frame["metrics"][m]) for m in BSSEVAL_METRICS] for frame in target["frames"]
        ]
        values = median_over_frames(np.asarray(frames, dtype=np.float64).T).tolist()
        medians[target["name"]] = dict(zip(BSSEVAL_METRICS, values))
    return medians


# ----------------------------------------------------------------------------------------------
# Oracle masks: the masking limit of an STFT-domain separator
# ----------------------------------------------------------------------------------------------
def ratio_mask(stem_spectrograms: torch.Tensor, power: float = 1.0, eps: float = 1e-10):
    """Ideal ratio mask `|S_j|^p / Σ_k |S_k|^p` of each stem.

    Args:
        stem_spectrograms (`torch.Tensor` of shape `(stems, ..., freq_bins, frames)`): complex STFTs
            of the true stems.
        power (`float`): 1 for magnitude ratios ("IRM1"), 2 for power ratios ("IRM2", Wiener-like).
        eps (`float`): keeps all-silent bins finite (they get masks of ~0).

    Returns:
        `torch.Tensor` of the same shape, real, in [0, 1].
    """
    weights = stem_spectrograms.abs().pow(power)
    return weights / (weights.sum(dim=0, keepdim=True) + eps)


def binary_mask(stem_spectrograms: torch.Tensor) -> torch.Tensor:
    """Ideal binary mask: 1 for the stem with the largest magnitude in each bin, 0 for the others.

    Args:
        stem_spectrograms (`torch.Tensor` of shape `(stems, ..., freq_bins, frames)`): complex.

    Returns:
        `torch.Tensor` of the same shape, real, one-hot along the stems.
    """
    magnitudes = stem_spectrograms.abs()
    winner = magnitudes.argmax(dim=0, keepdim=True)
    return torch.zeros_like(magnitudes).scatter_(0, winner, 1.0)


#: Oracle masks by name (`--model irm|irm2|ibm` of `tfswa-evaluate`).
ORACLE_MASKS = {
    "irm": lambda specs: ratio_mask(specs, power=1.0),
    "irm2": lambda specs: ratio_mask(specs, power=2.0),
    "ibm": binary_mask,
}


@dataclass
class OracleSeparator:
    """Separates a mixture with masks computed from the true stems: what a model estimating that
    kind of mask could reach at best with these STFT parameters.

    The masks multiply the *mixture's* STFT (on MUSDB18's AAC-coded files the mixture is not exactly
    the sum of the stems, as for a model).

    Args:
        kind (`str`): a key of [`ORACLE_MASKS`]: `"irm"`, `"irm2"` or `"ibm"`.
        stems (`list[str]`): names of the stems, in the order of the references.
        sample_rate (`int`): sample rate in Hz.
        n_fft (`int`) / hop_length (`int`): STFT parameters (use the model's to compare with it).
        audio_channels (`int`): channels of the mixture.
    """

    kind: str
    stems: list[str]
    sample_rate: int = 44100
    n_fft: int = 2048
    hop_length: int = 512
    audio_channels: int = 2

    def __post_init__(self):
        if self.kind not in ORACLE_MASKS:
            raise ValueError(
                f"oracle kind must be one of {sorted(ORACLE_MASKS)}, got {self.kind!r}"
            )
        self.spectral = SpectralTransform(self.n_fft, self.hop_length)

    @property
    def name(self) -> str:
        return f"oracle-{self.kind}"

    def separate(self, mixture: torch.Tensor, references: torch.Tensor) -> torch.Tensor:
        """
        Args:
            mixture (`torch.Tensor` of shape `(channels, samples)`).
            references (`torch.Tensor` of shape `(stems, channels, samples)`): the true stems.

        Returns:
            `torch.Tensor` of shape `(stems, channels, samples)`, float32.
        """
        length = mixture.shape[-1]
        estimates = []
        for channel in range(mixture.shape[0]):  # one channel at a time bounds memory
            mixture_spec = self.spectral.stft(mixture[channel].float())  # (F, N)
            masks = ORACLE_MASKS[self.kind](self.spectral.stft(references[:, channel].float()))
            estimates.append(self.spectral.istft(masks * mixture_spec, length))  # (S, T)
        return torch.stack(estimates, dim=1)


@dataclass
class ModelSeparator:
    """A trained model run over full tracks with `modeling_tfswa.separation.apply_model`.

    Args:
        model: a [`TFSWAUNet`] (or any model with `config.stems` / `config.sample_rate` /
            `config.audio_channels` that `apply_model` accepts).
        name (`str`): name in the reports (the model's path or Hub id).
        segment_seconds / overlap / shifts / batch_size / device: passed to `apply_model`.
    """

    model: torch.nn.Module
    name: str
    segment_seconds: float | None = None
    overlap: float = 0.25
    shifts: int = 0
    batch_size: int = 4
    device: str | None = None

    @property
    def stems(self) -> list[str]:
        return list(self.model.config.stems)

    @property
    def sample_rate(self) -> int:
        return self.model.config.sample_rate

    @property
    def audio_channels(self) -> int:
        return self.model.config.audio_channels

    def separate(self, mixture: torch.Tensor, references: torch.Tensor) -> torch.Tensor:
        """`(channels, samples)` -> `(stems, channels, samples)`; `references` is not looked at."""
        return apply_model(
            self.model,
            mixture,
            segment_seconds=self.segment_seconds,
            overlap=self.overlap,
            shifts=self.shifts,
            batch_size=self.batch_size,
            device=self.device,
        )


def load_separator(
    name_or_path: str,
    *,
    stems: Sequence[str] | None = None,
    n_fft: int | None = None,
    hop_length: int | None = None,
    **separation_options,
) -> OracleSeparator | ModelSeparator:
    """An oracle (`name_or_path` a key of [`ORACLE_MASKS`]) or a model loaded with
    `AutoModel.from_pretrained(name_or_path)`.

    Args:
        name_or_path (`str`): `"irm"`, `"irm2"`, `"ibm"`, a local model folder or a Hub id.
        stems (`Sequence[str]`, *optional*): oracle stems (defaults to `TFSWAConfig`'s 4 stems).
        n_fft / hop_length (`int`, *optional*): oracle STFT (defaults to `TFSWAConfig`'s).
        separation_options: [`ModelSeparator`] options (segment_seconds, overlap, shifts,
            batch_size, device).
    """
    if name_or_path in ORACLE_MASKS:
        defaults = TFSWAConfig()
        return OracleSeparator(
            kind=name_or_path,
            stems=list(stems) if stems else list(defaults.stems),
            sample_rate=defaults.sample_rate,
            n_fft=n_fft or defaults.n_fft,
            hop_length=hop_length or defaults.hop_length,
        )
    if stems or n_fft or hop_length:
        raise ValueError("stems, n_fft and hop_length only apply to oracles; a model has its own")
    from transformers import AutoModel

    model = AutoModel.from_pretrained(name_or_path).eval()
    return ModelSeparator(model=model, name=name_or_path, **separation_options)


def stem_set_for(stems: Sequence[str]) -> str | dict[str, list[str]]:
    """The `data_scripts.musdb` stem set that provides references for these stems: a named set
    (`STEM_SETS`) with exactly these stems, else a `{stem: [sources]}` grouping of the named sets'
    stems."""
    for name, grouping in STEM_SETS.items():
        if sorted(grouping) == sorted(stems):
            return name
    known = {
        stem: list(sources) for grouping in STEM_SETS.values() for stem, sources in grouping.items()
    }
    unknown = [stem for stem in stems if stem not in known]
    if unknown:
        raise ValueError(
            f"stems {unknown} are not MUSDB18 stems ({sorted(known)}); pass the stem "
            'set explicitly (--stem-set \'{"name": ["drums", ...]}\')'
        )
    return {stem: known[stem] for stem in stems}


# ----------------------------------------------------------------------------------------------
# Scoring
# ----------------------------------------------------------------------------------------------
#: Per-track scores: museval's (medians over frames) and the fast ones of `modeling_tfswa.metrics`.
MUSEVAL_COLUMNS = BSSEVAL_METRICS
FAST_COLUMNS = ("cSDR", "uSDR", "fastSDR")
#: How each column is aggregated over tracks: medians as in published tables, except the global
#: SDR, which the Sound Demixing Challenge averages.
TRACK_AGGREGATION = {
    **{column: "median" for column in (*MUSEVAL_COLUMNS, "cSDR", "fastSDR")},
    "uSDR": "mean",
}


def fast_scores(
    references: torch.Tensor, estimates: torch.Tensor, stems: Sequence[str], frame_length: int
) -> dict[str, dict[str, float]]:
    """cSDR, uSDR and the median of museval's framewise SDR (fast path) of one track.

    Args:
        references (`torch.Tensor` of shape `(stems, channels, samples)`): true stems.
        estimates (`torch.Tensor` of shape `(stems, channels, samples)`): estimates.
        stems (`Sequence[str]`): names along the first axis.
        frame_length (`int`): 1 s in samples.

    Returns:
        `{stem: {"cSDR": ..., "uSDR": ..., "fastSDR": ...}}`.
    """
    columns = {
        "cSDR": csdr(references, estimates, frame_length),
        "uSDR": sdr(references, estimates),
        "fastSDR": median_over_frames(
            framewise_sdr(references, estimates, frame_length, source_dim=0)
        ),
    }
    return {
        stem: {column: float(values[index]) for column, values in columns.items()}
        for index, stem in enumerate(stems)
    }


def _bsseval_job(
    track_name: str,
    references: dict[str, np.ndarray],
    estimates: dict[str, np.ndarray],
    sample_rate: int,
    json_path: str,
    frame_seconds: float,
) -> dict[str, dict[str, float]]:
    """Worker-process job: museval scores of one track, written to `json_path`; returns medians."""
    store = bsseval_track(
        references, estimates, sample_rate, track_name, win=frame_seconds, hop=frame_seconds
    )
    save_track_scores(store, json_path)
    return track_medians(store)


@contextmanager
def _worker_threads(threads: int) -> Iterator[None]:
    """Make worker processes started inside this block use `threads` BLAS/OpenMP threads each (so
    that `--workers N` shares the cores instead of oversubscribing them); this process's libraries
    are already initialised and keep their threads."""
    names = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")
    saved = {name: os.environ.get(name) for name in names}
    os.environ.update({name: str(threads) for name in names})
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


class _InlineExecutor(concurrent.futures.Executor):
    """`workers=0`: run each job at submission, in this process (debugging, tests)."""

    def submit(self, fn, /, *args, **kwargs):
        future = concurrent.futures.Future()
        try:
            future.set_result(fn(*args, **kwargs))
        except BaseException as error:
            future.set_exception(error)
        return future


def _track_file_name(name: str) -> str:
    return name.replace(os.sep, "_") + ".json"


@dataclass
class EvaluationResult:
    """Scores of a separator on a dataset split.

    Args:
        separator (`str`): the separator's name.
        split (`str`): the split's name.
        stems (`list[str]`): evaluated stems.
        tracks (`dict`): `{track: {stem: {column: value}}}` with the columns of
            [`TRACK_AGGREGATION`] (museval's only when it ran).
        aggregate (`dict`): `{stem: {column: value}}` over tracks, plus a `"mean"` entry averaging
            the stems.
        museval (`bool`): whether the museval columns were computed.
        output_dir (`str`): where the files are.
    """

    separator: str
    split: str
    stems: list[str]
    tracks: dict[str, dict[str, dict[str, float]]] = field(default_factory=dict)
    aggregate: dict[str, dict[str, float]] = field(default_factory=dict)
    museval: bool = True
    output_dir: str = ""

    @property
    def columns(self) -> list[str]:
        return [*(MUSEVAL_COLUMNS if self.museval else ()), *FAST_COLUMNS]

    def to_dict(self) -> dict:
        return {
            "separator": self.separator,
            "split": self.split,
            "stems": self.stems,
            "num_tracks": len(self.tracks),
            "museval": self.museval,
            "aggregation": {c: TRACK_AGGREGATION[c] for c in self.columns},
            "aggregate": self.aggregate,
            "tracks": self.tracks,
        }


def aggregate_tracks(
    tracks: Mapping[str, Mapping[str, Mapping[str, float]]], stems: Sequence[str], columns
) -> dict[str, dict[str, float]]:
    """Aggregate per-track scores over tracks (see [`TRACK_AGGREGATION`]), ignoring NaN tracks,
    plus a `"mean"` row: the average of the stems."""
    aggregate = {}
    for stem in stems:
        row = {}
        for column in columns:
            values = np.array([track[stem][column] for track in tracks.values()], dtype=float)
            if TRACK_AGGREGATION[column] == "mean":
                row[column] = mean_ignoring_nan(values)
            else:
                row[column] = float(median_over_tracks(values))
        aggregate[stem] = row
    aggregate["mean"] = {
        column: float(np.mean([aggregate[stem][column] for stem in stems])) for column in columns
    }
    return aggregate


def _columns(stems: Sequence[str]) -> list[str]:
    return ["name", MIXTURE, "sample_rate", *stems]


def _check_dataset(dataset, stems: Sequence[str]) -> None:
    missing = [c for c in _columns(stems) if c not in dataset.column_names]
    if missing:
        raise ValueError(
            f"dataset lacks the columns {missing} (has {dataset.column_names}); build it with the "
            "stem set of the separator's stems"
        )


def _channels_first(array, column: str, track: str) -> torch.Tensor:
    array = np.asarray(array, dtype=np.float32)
    if array.ndim != 2:
        raise ValueError(
            f"track {track!r}: column {column!r} must be (samples, channels), got {array.shape}"
        )
    return torch.from_numpy(array.T.copy())


def evaluate_separator(
    separator: OracleSeparator | ModelSeparator,
    dataset,
    output_dir: str | os.PathLike,
    *,
    split: str = "test",
    fast: bool = False,
    workers: int = 1,
    frame_seconds: float = 1.0,
    tracks: Sequence[str] | None = None,
    progress: bool = True,
) -> EvaluationResult:
    """Separate every track of `dataset` and score it; write the per-track museval JSON
    (`output_dir/<split>/<track>.json`, museval's layout), `scores.json`, `scores.md` and
    `sdr_boxplot.png`.

    Separation runs in this process, one track at a time; museval scoring (the slow part, ~0.6 s of
    CPU per second of audio and stem pair) runs in `workers` processes while the next tracks are
    separated, with at most `2 * workers` tracks waiting so that memory stays bounded.

    Args:
        separator: a [`ModelSeparator`] or [`OracleSeparator`].
        dataset (`datasets.Dataset`): one split of `data_scripts.musdb.load_stem_dataset`, with
            columns `name`, `mixture`, `sample_rate` and one per stem of the separator, audio as
            `(samples, channels)` float arrays.
        output_dir (`str` or `os.PathLike`): folder of the results (created).
        split (`str`): the split's name, for the JSON layout and the reports.
        fast (`bool`): skip museval; only cSDR, uSDR and the fast framewise SDR.
        workers (`int`): scoring processes; 0 scores in this process.
        frame_seconds (`float`): BSSEval frame length (1 s in published tables).
        tracks (`Sequence[str]`, *optional*): evaluate only these track names.
        progress (`bool`): show tqdm progress bars.

    Returns:
        [`EvaluationResult`].
    """
    stems = list(separator.stems)
    _check_dataset(dataset, stems)
    if workers < 0:
        raise ValueError(f"workers must be >= 0, got {workers}")
    if not fast and len(stems) < 2:
        raise ValueError(f"museval scores at least two stems, got {stems}; use fast=True")
    output_dir = Path(output_dir)
    names = [str(name) for name in dataset.select_columns(["name"])["name"]]
    indices = list(range(len(names)))
    if tracks is not None:
        unknown = sorted(set(tracks) - set(names))
        if unknown:
            raise ValueError(f"tracks {unknown} are not in the {split!r} split")
        indices = [i for i in indices if names[i] in set(tracks)]
    rows = dataset.select_columns(_columns(stems)).with_format("numpy")

    result = EvaluationResult(separator.name, split, stems, museval=not fast)
    result.output_dir = str(output_dir)
    pending: dict[concurrent.futures.Future, str] = {}
    separating = tqdm(indices, desc=f"separating ({split})", unit="track", disable=not progress)
    scoring = tqdm(total=len(indices), desc="museval", unit="track", disable=not progress or fast)

    def collect(done) -> None:
        for future in done:
            name = pending.pop(future)
            for stem, values in future.result().items():
                result.tracks[name][stem].update(values)
            scoring.update()

    with _executor(workers) as executor:
        for index in separating:
            row = rows[index]
            name = str(row["name"])
            rate = int(row["sample_rate"])
            if rate != separator.sample_rate:
                raise ValueError(
                    f"track {name!r} is at {rate} Hz, the separator at {separator.sample_rate} Hz"
                )
            mixture = _channels_first(row["mixture"], "mixture", name)
            references = torch.stack([_channels_first(row[s], s, name) for s in stems])
            if references.shape[1:] != mixture.shape:
                raise ValueError(
                    f"track {name!r}: stems {tuple(references.shape)} do not match the mixture "
                    f"{tuple(mixture.shape)}"
                )
            estimates = separator.separate(mixture, references).float().cpu()
            if estimates.shape != references.shape:
                raise ValueError(
                    f"track {name!r}: separator returned {tuple(estimates.shape)}, expected "
                    f"{tuple(references.shape)} (stems, channels, samples)"
                )
            frame_length = int(frame_seconds * rate)
            result.tracks[name] = fast_scores(references, estimates, stems, frame_length)
            if fast:
                continue
            job = executor.submit(
                _bsseval_job,
                name,
                {s: references[i].T.numpy() for i, s in enumerate(stems)},
                {s: estimates[i].T.numpy() for i, s in enumerate(stems)},
                rate,
                str(output_dir / split / _track_file_name(name)),
                frame_seconds,
            )
            pending[job] = name
            while len(pending) > 2 * max(workers, 1) - 1:
                done, _ = concurrent.futures.wait(
                    pending, return_when=concurrent.futures.FIRST_COMPLETED
                )
                collect(done)
        collect(concurrent.futures.wait(pending).done)
    separating.close()
    scoring.close()

    result.aggregate = aggregate_tracks(result.tracks, stems, result.columns)
    write_reports(result, output_dir)
    return result


@contextmanager
def _executor(workers: int) -> Iterator[concurrent.futures.Executor]:
    if workers == 0:
        yield _InlineExecutor()
        return
    # Spawned, not forked: the parent holds torch's thread pools, which a fork would copy mid-state.
    context = multiprocessing.get_context("spawn")
    threads = max(1, (os.cpu_count() or 1) // workers)
    with (
        _worker_threads(threads),
        concurrent.futures.ProcessPoolExecutor(workers, mp_context=context) as executor,
    ):
        yield executor


# ----------------------------------------------------------------------------------------------
# Reports
# ----------------------------------------------------------------------------------------------
def markdown_table(result: EvaluationResult) -> str:
    """The aggregate scores as a Markdown table (one row per stem, then their mean)."""
    columns = result.columns
    lines = [
        f"# {result.separator} on MUSDB18 {result.split} ({len(result.tracks)} tracks)",
        "",
        "| stem | " + " | ".join(columns) + " |",
        "|---|" + "---:|" * len(columns),
    ]
    for stem, row in result.aggregate.items():
        label = f"**{stem}**" if stem == "mean" else stem
        lines.append(f"| {label} | " + " | ".join(f"{row[c]:.3f}" for c in columns) + " |")
    notes = []
    if result.museval:
        notes.append(
            "SDR/SIR/ISR/SAR: museval BSSEval v4, median over 1-s frames, then median over tracks."
        )
    notes += [
        "cSDR: SDR of 1-s chunks, median over chunks, then over tracks.",
        "uSDR: global SDR of the whole track (Sound Demixing Challenge), mean over tracks.",
        "fastSDR: museval's v4 SDR computed directly (median over frames, then tracks).",
        "All in dB.",
    ]
    return "\n".join([*lines, "", *notes]) + "\n"


def plot_sdr_boxplot(result: EvaluationResult, path: str | os.PathLike) -> Path:
    """Box plot of the per-track SDR of every stem (museval's, or the fast one without museval),
    with one dot per track; written atomically as PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    column = "SDR" if result.museval else "fastSDR"
    data = [
        [
            track[stem][column]
            for track in result.tracks.values()
            if not math.isnan(track[stem][column])
        ]
        for stem in result.stems
    ]
    figure, axes = plt.subplots(figsize=(1.6 * len(result.stems) + 2.5, 4.5))
    axes.boxplot(data, showfliers=False)
    axes.set_xticks(range(1, len(result.stems) + 1), result.stems)
    rng = np.random.default_rng(0)
    for position, values in enumerate(data, start=1):
        axes.scatter(position + rng.uniform(-0.12, 0.12, len(values)), values, s=10, alpha=0.6)
    axes.set_ylabel(f"{column} per track (dB)")
    axes.set_title(f"{result.separator}: MUSDB18 {result.split}, {len(result.tracks)} tracks")
    axes.grid(axis="y", alpha=0.3)
    figure.tight_layout()
    try:
        write_via_temporary(
            path, lambda temporary: figure.savefig(temporary, format="png", dpi=120)
        )
    finally:
        plt.close(figure)
    return path


def write_reports(result: EvaluationResult, output_dir: str | os.PathLike) -> None:
    """`scores.json`, `scores.md` and `sdr_boxplot.png` in `output_dir`."""
    output_dir = Path(output_dir)
    write_text_atomic(output_dir / "scores.json", json.dumps(result.to_dict(), indent=2) + "\n")
    write_text_atomic(output_dir / "scores.md", markdown_table(result))
    plot_sdr_boxplot(result, output_dir / "sdr_boxplot.png")


__all__ = [
    "BSSEVAL_METRICS",
    "EvaluationResult",
    "ModelSeparator",
    "ORACLE_MASKS",
    "OracleSeparator",
    "TRACK_AGGREGATION",
    "aggregate_tracks",
    "binary_mask",
    "bsseval_track",
    "evaluate_separator",
    "fast_scores",
    "load_separator",
    "markdown_table",
    "plot_sdr_boxplot",
    "ratio_mask",
    "save_track_scores",
    "stem_set_for",
    "track_medians",
    "write_reports",
]
