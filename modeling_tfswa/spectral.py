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
    if window is None:
        window = torch.hann_window(n_fft, device=spectrogram.device)
    with torch.autocast(device_type=spectrogram.device.type, enabled=False):
        wave = torch.istft(
            spectrogram.reshape(-1, *spectrogram.shape[-2:]).to(torch.complex64),
            n_fft=n_fft,
            hop_length=hop_length,
            window=window.float(),
            center=True,
            length=length,
        )
    return wave.reshape(*leading, length)


__all__ = ["SpectralTransform", "istft", "stft"]
