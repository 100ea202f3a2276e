"""[`evaluate_separator`]: separate every track of a split, score it, and write the reports; a
broken track is reported and the others scored; a rerun reuses the finished tracks.

Layout of `output_dir`:

    evaluation.json             the settings the results belong to (separator, split, stems...)
    results/<split>/<track>.json   finished per-track scores (reused by a rerun with equal settings)
    <split>/<track>.json        museval's per-track JSON (frames)
    scores.json, scores.md, sdr_boxplot.png   the reports
"""

from __future__ import annotations

import concurrent.futures
import hashlib
import json
import os
import shutil
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm

from data_scripts.musdb import MIXTURE

from ..fileio import child_path, safe_name, write_text_atomic
from .oracles import OracleSeparator
from .reports import write_reports
from .scoring import EvaluationResult, aggregate_tracks, fast_scores
from .separators import ModelSeparator
from .workers import bsseval_job, scoring_pool

SETTINGS_NAME = "evaluation.json"
RESULTS_FOLDER = "results"


class TrackError(ValueError):
    """A problem with one track (reported in the results; the other tracks are still scored)."""


def _columns(stems: Sequence[str]) -> list[str]:
    """The dataset columns evaluation reads."""
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
        raise TrackError(
            f"track {track!r}: column {column!r} must be (samples, channels), got {array.shape}"
        )
    return torch.from_numpy(array.T.copy())


def _check_finite(waveform: torch.Tensor, what: str, track: str) -> None:
    bad = int((~torch.isfinite(waveform)).sum())
    if bad:
        raise TrackError(f"track {track!r}: {what} holds {bad} NaN or infinite sample(s)")


def track_inputs(row, stems: Sequence[str], sample_rate: int) -> tuple[torch.Tensor, torch.Tensor]:
    """`(mixture (C, T), references (S, C, T))` of a dataset row, checked: [`TrackError`] for a
    wrong rate, shapes that disagree, or NaN/inf samples (which would score NaN and silently drop
    the track from the medians)."""
    name = str(row["name"])
    rate = int(row["sample_rate"])
    if rate != sample_rate:
        raise TrackError(f"track {name!r} is at {rate} Hz, the separator at {sample_rate} Hz")
    mixture = _channels_first(row["mixture"], "mixture", name)
    references = torch.stack([_channels_first(row[s], s, name) for s in stems])
    if references.shape[1:] != mixture.shape:
        raise TrackError(
            f"track {name!r}: stems {tuple(references.shape)} do not match the mixture "
            f"{tuple(mixture.shape)}"
        )
    _check_finite(mixture, "the mixture", name)
    for stem, reference in zip(stems, references):
        _check_finite(reference, f"stem {stem!r}", name)
    return mixture, references


def run_settings(separator, dataset, split: str, fast: bool, frame_seconds: float) -> dict:
    """What per-track results depend on: reused only when all of it is equal."""
    return {
        "separator": separator.name,
        "separator_settings": separator.settings(),
        "split": split,
        "stems": list(separator.stems),
        "museval": not fast,
        "frame_seconds": frame_seconds,
        "data": getattr(dataset, "_fingerprint", None),  # datasets' hash of the table's content
    }


def _prepare_output(output_dir: Path, settings: dict, split: str, force: bool) -> Path:
    """The per-track results folder of `split`; refuses results of other settings unless `force`
    (which removes them). Writes nothing."""
    results = output_dir / RESULTS_FOLDER / split
    saved_path = output_dir / SETTINGS_NAME
    if force:
        shutil.rmtree(results, ignore_errors=True)
        return results
    if saved_path.is_file():
        saved = json.loads(saved_path.read_text())
        differing = sorted(k for k in saved.keys() | settings.keys() if saved.get(k) != settings[k])
        if differing:
            raise ValueError(
                f"{output_dir} holds results of other settings (differing: "
                f"{', '.join(differing)}); pass --force to redo them, or choose another --out"
            )
    elif (output_dir / "scores.json").exists():
        raise ValueError(f"{output_dir} holds results of unknown settings; pass --force")
    return results


def _load_track(path: Path, key: str) -> dict | None:
    try:
        document = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return document["scores"] if document.get("settings") == key else None


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
    force: bool = False,
    broken: dict[str, str] | None = None,
) -> EvaluationResult:
    """Separate every track of `dataset` and score it; write the per-track results, museval JSON
    (`output_dir/<split>/<track>.json`, museval's layout), `scores.json`, `scores.md` and
    `sdr_boxplot.png` (layout in the module docstring).

    Separation runs in this process, one track at a time; museval scoring (the slow part, ~0.6 s of
    CPU per second of audio and stem pair) runs in `workers` processes while the next tracks are
    separated, with at most `2 * workers` tracks waiting so that memory stays bounded.

    A track that cannot be scored (wrong rate or shape, NaN/inf samples in the mixture or a stem,
    a separator output with NaN, museval failing on it) is reported in `result.broken` and left
    out of the aggregate; the others are scored. Each finished track is saved at once, and a rerun
    with the same settings ([`run_settings`]) reuses it (`force=True` redoes every track).

    Args:
        separator: a [`ModelSeparator`] or [`OracleSeparator`].
        dataset (`datasets.Dataset`): one split of `data_scripts.musdb.load_stem_split` /
            `load_stem_dataset`, with columns `name`, `mixture`, `sample_rate` and one per stem
            of the separator, audio as `(samples, channels)` float arrays.
        output_dir (`str` or `os.PathLike`): folder of the results (created).
        split (`str`): the split's name, for the JSON layout and the reports.
        fast (`bool`): skip museval; only cSDR, uSDR and the fast framewise SDR.
        workers (`int`): scoring processes; 0 scores in this process.
        frame_seconds (`float`): BSSEval frame length (1 s in published tables).
        tracks (`Sequence[str]`, *optional*): evaluate only these track names.
        progress (`bool`): show tqdm progress bars.
        force (`bool`): recompute every track, replacing results of other settings.
        broken (`dict[str, str]`, *optional*): tracks already found broken (not in `dataset`),
            `{name: problem}`, counted and reported with the others.

    Returns:
        [`EvaluationResult`].

    Raises:
        ValueError: bad arguments, a dataset without the needed columns, results of other
            settings in `output_dir` (without `force`), or no track could be scored.
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
        unknown = sorted(set(tracks) - set(names) - set(broken or {}))
        if unknown:
            raise ValueError(f"tracks {unknown} are not in the {split!r} split")
        indices = [i for i in indices if names[i] in set(tracks)]
    rows = dataset.select_columns(_columns(stems)).with_format("numpy")
    settings = run_settings(separator, dataset, split, fast, frame_seconds)
    key = hashlib.sha256(json.dumps(settings, sort_keys=True).encode()).hexdigest()
    results_dir = _prepare_output(output_dir, settings, split, force)

    result = EvaluationResult(separator.name, split, stems, museval=not fast)
    result.output_dir = str(output_dir)
    result.broken = {
        name: problem
        for name, problem in (broken or {}).items()
        if tracks is None or name in tracks
    }
    result.num_tracks_total = len(indices) + len(result.broken)
    pending: dict[concurrent.futures.Future, str] = {}
    separating = tqdm(indices, desc=f"separating ({split})", unit="track", disable=not progress)
    scoring = tqdm(total=len(indices), desc="museval", unit="track", disable=not progress or fast)

    def report(name: str, problem: str) -> None:
        result.broken[name] = problem
        result.tracks.pop(name, None)
        tqdm.write(f"broken track: {problem}")

    settings_written = False

    def finish(name: str, scores: dict) -> None:
        nonlocal settings_written
        result.tracks[name] = scores
        if not settings_written:  # with the first result: nothing is written for nothing scored
            write_text_atomic(output_dir / SETTINGS_NAME, json.dumps(settings, indent=1))
            settings_written = True
        document = {"track": name, "settings": key, "scores": scores}
        write_text_atomic(child_path(results_dir, f"{safe_name(name)}.json"), json.dumps(document))

    def collect(done) -> None:
        for future in done:
            name, scores = pending.pop(future)
            try:
                medians = future.result()
            except Exception as error:  # noqa: BLE001 - one track's museval failure is reported
                report(name, f"track {name!r}: museval failed ({type(error).__name__}: {error})")
            else:
                for stem, values in medians.items():
                    scores[stem].update(values)
                finish(name, scores)
            scoring.update()

    with scoring_pool(0 if fast else workers) as executor:  # fast: nothing for workers to do
        for index in separating:
            name = names[index]
            path = child_path(results_dir, f"{safe_name(name)}.json")
            reused = _load_track(path, key) if path.is_file() else None
            if reused is not None:
                result.tracks[name] = reused
                scoring.update()
                continue
            try:
                mixture, references = track_inputs(rows[index], stems, separator.sample_rate)
                estimates = separator.separate(mixture, references).float().cpu()
                if estimates.shape != references.shape:
                    raise TrackError(
                        f"track {name!r}: separator returned {tuple(estimates.shape)}, expected "
                        f"{tuple(references.shape)} (stems, channels, samples)"
                    )
                _check_finite(estimates, "the separator's output", name)
            except TrackError as error:
                report(name, str(error))
                scoring.update()
                continue
            rate = separator.sample_rate
            scores = fast_scores(references, estimates, stems, int(frame_seconds * rate))
            if fast:
                finish(name, scores)
                continue
            job = executor.submit(
                bsseval_job,
                name,
                {s: references[i].T.numpy() for i, s in enumerate(stems)},
                {s: estimates[i].T.numpy() for i, s in enumerate(stems)},
                rate,
                str(child_path(output_dir / split, f"{safe_name(name)}.json")),
                frame_seconds,
            )
            pending[job] = (name, scores)
            while len(pending) > 2 * max(workers, 1) - 1:
                done, _ = concurrent.futures.wait(
                    pending, return_when=concurrent.futures.FIRST_COMPLETED
                )
                collect(done)
        collect(concurrent.futures.wait(pending).done)
    separating.close()
    scoring.close()

    if not result.tracks:
        problems = "; ".join(result.broken.values()) or "no tracks"
        raise ValueError(f"no track of the {split!r} split could be scored: {problems}")
    result.tracks = {name: result.tracks[name] for name in names if name in result.tracks}
    result.aggregate = aggregate_tracks(result.tracks, stems, result.columns)
    write_reports(result, output_dir)
    return result


__all__ = ["TrackError", "evaluate_separator", "run_settings", "track_inputs"]
