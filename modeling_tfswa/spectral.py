"""STFT / inverse STFT of TFSWA-UNet. Imports nothing of this project, so a saved model folder stands alone."""

from __future__ import annotations

import torch
from torch import nn


class SpectralTransform(nn.Module):
    """Hann-window STFT and its exact inverse, always computed in float32 (also under autocast).

    Frames are centred with zero padding (not reflection), so any input length works, down to one
    sample, and `istft(stft(x), length=T)` returns `x` to float32 precision.

    Args:
        n_fft (`int`): FFT size; spectrograms have `n_fft // 2 + 1` frequency bins.
        hop_length (`int`): hop between frames in samples, at most `n_fft // 2` so that the Hann
            windows overlap-add to a non-zero envelope everywhere (perfect reconstruction).
    """

    def __init__(self, n_fft: int, hop_length: int):
        super().__init__()
        self.n_fft = n_fft
        self.hop_length = hop_length
        # Derived from n_fft, so not saved with the weights; `_init_weights` refills it after loading.
        self.register_buffer("window", self.make_window(), persistent=False)

    def make_window(self) -> torch.Tensor:
        return torch.hann_window(self.n_fft, dtype=torch.float32)

    def num_frames(self, num_samples: int) -> int:
        """Frames of the STFT of a signal of `num_samples` samples."""
        return num_samples // self.hop_length + 1

    def stft(self, waveform: torch.Tensor) -> torch.Tensor:
        """Complex spectrogram of a waveform: [`stft`] with this transform's window and hop.

        Args:
            waveform (`torch.Tensor` of shape `(..., samples)`): real signal.

        Returns:
            `torch.Tensor` of shape `(..., n_fft // 2 + 1, frames)`, complex64, with
            `frames = samples // hop_length + 1`.
        """
        return stft(waveform, self.n_fft, self.hop_length, self.window)

    def istft(self, spectrogram: torch.Tensor, length: int) -> torch.Tensor:
        """Waveform of a complex spectrogram, cropped or padded to `length` samples ([`istft`]).

        Args:
            spectrogram (`torch.Tensor` of shape `(..., n_fft // 2 + 1, frames)`): complex.
            length (`int`): number of output samples.

        Returns:
            `torch.Tensor` of shape `(..., length)`, float32.
        """
        return istft(spectrogram, self.n_fft, self.hop_length, length, self.window)


def stft(
    waveform: torch.Tensor, n_fft: int, hop_length: int, window: torch.Tensor | None = None
) -> torch.Tensor:
    """The project's one STFT: Hann window, centred frames with zero padding, float32 (also under
    autocast).

    Args:
        waveform (`torch.Tensor` of shape `(..., samples)`): real signal.
        n_fft (`int`): FFT size.
        hop_length (`int`): hop between frames in samples.
        window (`torch.Tensor` of shape `(n_fft,)`, *optional*): defaults to a Hann window.

    Returns:
        `torch.Tensor` of shape `(..., n_fft // 2 + 1, samples // hop_length + 1)`, complex64.
    """
    leading, num_samples = waveform.shape[:-1], waveform.shape[-1]
    if window is None:
        window = torch.hann_window(n_fft, device=waveform.device)
    with torch.autocast(device_type=waveform.device.type, enabled=False):
        spec = torch.stft(
            waveform.reshape(-1, num_samples).float(),
            n_fft=n_fft,
            hop_length=hop_length,
            window=window.float(),
            center=True,
            pad_mode="constant",
            return_complex=True,
        )
    return spec.reshape(*leading, *spec.shape[-2:])


ISTFT_CHUNK_BYTES = 16 * 2**20
"""Time-domain frames (float32) per `torch.istft` call on the CPU: see [`istft`]."""


def istft(
    spectrogram: torch.Tensor,
    n_fft: int,
    hop_length: int,
    length: int,
    window: torch.Tensor | None = None,
) -> torch.Tensor:
    """Inverse of [`stft`] (same window and hop), cropped or padded to `length` samples.

    Args:
        spectrogram (`torch.Tensor` of shape `(..., n_fft // 2 + 1, frames)`): complex.
        n_fft, hop_length (`int`): those of the forward transform.
        length (`int`): number of output samples.
        window (`torch.Tensor` of shape `(n_fft,)`, *optional*): defaults to a Hann window.

    Returns:
        `torch.Tensor` of shape `(..., length)`, float32.
    """
    leading = spectrogram.shape[:-2]
    if leading.numel() == 0:  # no signals (torch.istft refuses an empty batch)
        return torch.zeros(*leading, length, device=spectrogram.device)
    if window is None:
        window = torch.hann_window(n_fft, device=spectrogram.device)
    signals = spectrogram.reshape(-1, *spectrogram.shape[-2:])
    # `torch.istft` holds every frame of every signal in the time domain at once (window,
    # overlap-add): on the CPU a batch of a few separated segments (4 stems x 2 channels x 4
    # segments of 2 s at n_fft 2048: 45 MB) spills out of the cache, and signals in chunks of
    # ISTFT_CHUNK_BYTES of frames ran in 0.43-0.57 of the CPU time on a 32-MiB-L3 CPU. A GPU
    # gets all signals in one call.
    chunk = len(signals)
    if spectrogram.device.type == "cpu":
        chunk = max(1, ISTFT_CHUNK_BYTES // (4 * n_fft * spectrogram.shape[-1]))
    with torch.autocast(device_type=spectrogram.device.type, enabled=False):
        waves = [
            torch.istft(
                part.to(torch.complex64),
                n_fft=n_fft,
                hop_length=hop_length,
                window=window.float(),
                center=True,
                length=length,
            )
            for part in signals.split(chunk)
        ]
    wave = waves[0] if len(waves) == 1 else torch.cat(waves)
    return wave.reshape(*leading, length)


__all__ = ["SpectralTransform", "istft", "stft"]
