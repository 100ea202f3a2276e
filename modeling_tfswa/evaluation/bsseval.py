"""museval adapter: BSSEval v4 scores of one track from arrays (`museval.eval_mus_track` without a
musdb database), their museval JSON document, and their medians over frames.

Waveforms handed to museval are `(samples, channels)` numpy arrays, museval's own layout.

museval (the `eval` extra) is imported where BSSEval runs, not with the package: fastSDR scoring,
training and the quality benchmark need neither it nor the musdb/stempeg stack it pulls in.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from ..fileio import write_text_atomic
from ..metrics import median_over_frames

if TYPE_CHECKING:
    import museval

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
    import museval

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
