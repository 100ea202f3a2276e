"""The end of the quickstart: separate a demo mixture with the trained model and write the stems."""

from __future__ import annotations

from pathlib import Path

import soundfile as sf
import torch

from ..audio import save_audio
from ..separation import apply_model


def separate_demo(
    model: torch.nn.Module, mixture_path: str | Path, out_dir: str | Path
) -> dict[str, Path]:
    """Separate the WAV/FLAC mixture at `mixture_path` into `out_dir/<stem>.wav` (+ `mixture.wav`).

    The file must have the model's sample rate and channel count (the demo mixture comes from the
    training data, so it does).

    Returns:
        `{name: path}` of the written files.
    """
    mixture_path, out_dir = Path(mixture_path), Path(out_dir)
    config = model.config
    audio, sample_rate = sf.read(mixture_path, dtype="float32", always_2d=True)  # (T, C)
    if sample_rate != config.sample_rate or audio.shape[1] != config.audio_channels:
        raise ValueError(
            f"{mixture_path}: {sample_rate} Hz x {audio.shape[1]} channels, the model wants "
            f"{config.sample_rate} Hz x {config.audio_channels} channels"
        )
    mixture = torch.from_numpy(audio.T.copy())  # (C, T)
    stems = apply_model(model, mixture, progress=True)  # (S, C, T)
    out_dir.mkdir(parents=True, exist_ok=True)
    written = {"mixture": out_dir / "mixture.wav"}
    save_audio(written["mixture"], mixture, sample_rate, subtype="FLOAT")
    for name, stem in zip(config.stems, stems):
        written[name] = out_dir / f"{name}.wav"
        save_audio(written[name], stem, sample_rate, subtype="FLOAT")
    return written


__all__ = ["separate_demo"]
