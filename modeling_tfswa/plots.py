"""Pictures of a separation: the spectrograms of a mixture and its stems, one panel each.

`tfswa-separate --plot` writes `<track>/spectrograms.png`, and the web demo shows the same image.
The STFT is the model's own ([`SpectralTransform`]); colours share one dB scale across the
panels, so a stem that is quieter than the mixture looks quieter.
"""

from __future__ import annotations

import math
import os
from pathlib import Path

import numpy as np
import soundfile as sf
import torch

from .fileio import write_via_temporary
from .spectral import SpectralTransform

#: STFT size of the pictures, and the most time columns drawn (the hop grows for long tracks).
PLOT_N_FFT = 2048
PLOT_MAX_FRAMES = 3000
#: Dynamic range shown below the loudest bin of all panels, in dB.
PLOT_RANGE_DB = 80.0


def plot_spectrograms(
    signals: dict[str, np.ndarray | str | os.PathLike], sample_rate: int, path: str | os.PathLike
) -> Path:
    """Write a PNG with one spectrogram panel per signal (time in seconds, frequency in Hz).

    Args:
        signals (`dict`): panel title -> waveform `(channels, samples)` or `(samples,)`, or an
            audio file; multichannel signals are drawn as their channel average.
        sample_rate (`int`): the waveforms' sample rate in Hz (files use their own).
        path: the PNG written (atomically).

    Returns:
        `path` as a `Path`.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    panels = {}
    for name, signal in signals.items():
        rate = sample_rate
        if isinstance(signal, (str, os.PathLike)):
            signal, rate = sf.read(signal, dtype="float32", always_2d=True)
            signal = signal.T
        mono = torch.from_numpy(np.asarray(signal, dtype=np.float32))
        mono = mono.mean(0) if mono.ndim == 2 else mono
        hop = max(PLOT_N_FFT // 4, math.ceil(mono.shape[-1] / PLOT_MAX_FRAMES))
        magnitude = SpectralTransform(PLOT_N_FFT, hop).stft(mono).abs()
        panels[name] = (20 * torch.log10(magnitude + 1e-8)).numpy(), rate, hop
    top = max(float(db.max()) for db, _, _ in panels.values())
    figure, axes = plt.subplots(
        len(panels), 1, figsize=(10, 2.2 * len(panels)), sharex=True, squeeze=False
    )
    for axis, (name, (db, rate, hop)) in zip(axes[:, 0], panels.items()):
        extent = (0, db.shape[1] * hop / rate, 0, rate / 2)
        image = axis.imshow(
            db,
            origin="lower",
            aspect="auto",
            extent=extent,
            vmin=top - PLOT_RANGE_DB,
            vmax=top,
            cmap="magma",
            interpolation="nearest",
        )
        axis.set_title(name)
        axis.set_ylabel("frequency (Hz)")
    axes[-1, 0].set_xlabel("time (s)")
    figure.colorbar(image, ax=axes[:, 0], label="dB", shrink=0.8)
    path = Path(path)
    write_via_temporary(path, lambda temporary: figure.savefig(temporary, format="png", dpi=80))
    plt.close(figure)
    return path


__all__ = ["plot_spectrograms"]
