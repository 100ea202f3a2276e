"""Reports of an evaluation: `scores.json`, the Markdown table `scores.md` and the per-track SDR box
plot `sdr_boxplot.png`."""

from __future__ import annotations

import json
import math
import os
from pathlib import Path

import numpy as np

from ..fileio import write_text_atomic, write_via_temporary
from .scoring import EvaluationResult


def markdown_table(result: EvaluationResult) -> str:
    """The aggregate scores as a Markdown table (one row per stem, then their mean)."""
    columns = result.columns
    lines = [
        f"# {result.separator} on MUSDB18 {result.split} ({result.tracks_label})",
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
    if result.broken:
        notes += ["", f"Not scored ({len(result.broken)} broken track(s)):"]
        notes += [f"- {problem}" for problem in result.broken.values()]
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
    axes.set_title(f"{result.separator}: MUSDB18 {result.split}, {result.tracks_label}")
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
