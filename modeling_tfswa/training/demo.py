"""The end of the quickstart: separate a demo mixture with the trained model and write the stems."""

from __future__ import annotations

from pathlib import Path

import torch

from ..audio import load_audio, save_audio
from ..separation import Separator


def separate_demo(
    model: torch.nn.Module, mixture_path: str | Path, out_dir: str | Path
) -> dict[str, Path]:
    """Separate the audio file at `mixture_path` into `out_dir/<stem>.wav` (+ `mixture.wav`) with
    a [`Separator`] (the model's own segment length and overlap; any sample rate and channel
    count the separator accepts).

    Returns:
        `{name: path}` of the written files.
    """
    out_dir = Path(out_dir)
    mixture, sample_rate = load_audio(mixture_path)
    stems = Separator(model, progress=True).separate(mixture, sample_rate)
    out_dir.mkdir(parents=True, exist_ok=True)
    written = {"mixture": out_dir / "mixture.wav"}
    save_audio(written["mixture"], mixture, sample_rate, subtype="FLOAT")
    for name, stem in stems.items():
        written[name] = out_dir / f"{name}.wav"
        save_audio(written[name], stem, sample_rate, subtype="FLOAT")
    return written


__all__ = ["separate_demo"]
