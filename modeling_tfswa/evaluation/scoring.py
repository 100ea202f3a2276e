"""Per-track scores (museval's medians over frames and the fast SDRs of `modeling_tfswa.metrics`),
their aggregation over tracks, and [`EvaluationResult`], what an evaluation returns and reports."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import torch

from ..metrics import (
    csdr,
    framewise_sdr,
    mean_ignoring_nan,
    median_over_frames,
    median_over_tracks,
    sdr,
)
from .bsseval import BSSEVAL_METRICS

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
        broken (`dict`): `{track: problem}` of the tracks that could not be scored.
        num_tracks_total (`int`): tracks asked for, scored or broken.
    """

    separator: str
    split: str
    stems: list[str]
    tracks: dict[str, dict[str, dict[str, float]]] = field(default_factory=dict)
    aggregate: dict[str, dict[str, float]] = field(default_factory=dict)
    museval: bool = True
    output_dir: str = ""
    broken: dict[str, str] = field(default_factory=dict)
    num_tracks_total: int = 0

    @property
    def tracks_label(self) -> str:
        """`"50 tracks"`, or `"49 of 50 tracks"` when some could not be scored."""
        total = max(self.num_tracks_total, len(self.tracks))
        if total == len(self.tracks):
            return f"{total} tracks"
        return f"{len(self.tracks)} of {total} tracks"

    @property
    def columns(self) -> list[str]:
        return [*(MUSEVAL_COLUMNS if self.museval else ()), *FAST_COLUMNS]

    def to_dict(self) -> dict:
        return {
            "separator": self.separator,
            "split": self.split,
            "stems": self.stems,
            "num_tracks": len(self.tracks),
            "num_tracks_total": max(self.num_tracks_total, len(self.tracks)),
            "broken": self.broken,
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
