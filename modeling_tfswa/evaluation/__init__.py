"""MUSDB18 evaluation of a separator: museval's BSSEval v4 scores (the reference for published
tables) and the fast SDRs of `modeling_tfswa.metrics`, per track and aggregated, with oracle
masking baselines. One module per concern:

- `bsseval`: the museval adapter ([`bsseval_track`], [`save_track_scores`], [`track_medians`]).
- `oracles`: ideal ratio / binary masks, [`OracleSeparator`] and [`MixtureSeparator`] (the floor).
- `separators`: [`ModelSeparator`] (a trained model through `Separator`) and [`load_separator`].
- `scoring`: per-track scores ([`fast_scores`]), their aggregation, [`EvaluationResult`].
- `workers`: the museval worker processes, which end with their parent.
- `runner`: [`evaluate_separator`] (broken tracks reported, finished tracks reused on a rerun).
- `reports`: `scores.json`, `scores.md`, `sdr_boxplot.png`.

Waveforms handed to museval are `(samples, channels)` numpy arrays, museval's own layout; tensors
elsewhere are channels-first `(..., channels, samples)`. The stem set giving references for a
model's stems is `data_scripts.musdb.stem_set_for` (re-exported here).
"""

from data_scripts.musdb import stem_set_for

from .bsseval import BSSEVAL_METRICS, bsseval_track, save_track_scores, track_medians
from .oracles import ORACLE_MASKS, MixtureSeparator, OracleSeparator, binary_mask, ratio_mask
from .reports import markdown_table, plot_sdr_boxplot, write_reports
from .runner import TrackError, evaluate_separator, run_settings
from .scoring import (
    FAST_COLUMNS,
    MUSEVAL_COLUMNS,
    TRACK_AGGREGATION,
    EvaluationResult,
    aggregate_tracks,
    fast_scores,
)
from .separators import ModelSeparator, load_separator

__all__ = [
    "BSSEVAL_METRICS",
    "EvaluationResult",
    "FAST_COLUMNS",
    "MUSEVAL_COLUMNS",
    "MixtureSeparator",
    "ModelSeparator",
    "ORACLE_MASKS",
    "OracleSeparator",
    "TRACK_AGGREGATION",
    "TrackError",
    "aggregate_tracks",
    "binary_mask",
    "bsseval_track",
    "evaluate_separator",
    "fast_scores",
    "load_separator",
    "markdown_table",
    "plot_sdr_boxplot",
    "ratio_mask",
    "run_settings",
    "save_track_scores",
    "stem_set_for",
    "track_medians",
    "write_reports",
]
