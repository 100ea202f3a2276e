"""STFT / inverse STFT of TFSWA-UNet. Imports nothing of this project, so a saved model folder stands alone.

The forward transform is `torch.stft`. The inverse is written out (inverse FFT, window,
[`overlap_add`], envelope) instead of calling `torch.istft`, which it equals to float32 rounding:
on the CPU `torch.istft` overlap-adds with a scatter (`unfold_backward`). For the separated stems
of one 6-s segment (8 signals, n_fft 2048, one thread) it took 0.199 CPU s per minute of audio at
hop 1024 against 0.103 written out, 0.449 against 0.234 at hop 512
(`benchmarks/library_choices.py`), and `tfswa-unet` of the quality benchmark separates in
0.85-0.91x the CPU time (`benchmarks/separation_speed.py`).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
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


ISTFT_CHUNK_BYTES = 4 * 2**20
"""Time-domain frames (float32) per chunk of signals in [`istft`] on the CPU."""


def overlap_add(frames: torch.Tensor, hop_length: int) -> torch.Tensor:
    """Sum of frames placed `hop_length` samples apart.

    Each frame is cut into pieces of `hop_length` samples (the last zero-padded), and piece `i` of
    every frame is padded by `i` hops in front: adding the padded pieces overlap-adds the frames
    without a scatter, with only constant padding amounts (so a traced graph keeps any number of
    frames).

    Args:
        frames (`torch.Tensor` of shape `(..., frames, frame_length)`).
        hop_length (`int`): distance between the starts of successive frames.

    Returns:
        `torch.Tensor` of shape `(..., (frames + r - 1) * hop_length)` with
        `r = ceil(frame_length / hop_length)`: the overlap-added signal, zero past its end.
    """
    frame_length = frames.shape[-1]
    r = -(-frame_length // hop_length)
    if r * hop_length != frame_length:
        frames = F.pad(frames, (0, r * hop_length - frame_length))
    pieces = frames.unflatten(-1, (r, hop_length))  # (..., frames, r, hop)
    out = F.pad(pieces[..., 0, :], (0, 0, 0, r - 1))
    for i in range(1, r):
        out = out + F.pad(pieces[..., i, :], (0, 0, i, r - 1 - i))
    return out.flatten(-2)


def istft(
    spectrogram: torch.Tensor,
    n_fft: int,
    hop_length: int,
    length: int,
    window: torch.Tensor | None = None,
) -> torch.Tensor:
    """Inverse of [`stft`] (same window and hop), cropped or padded to `length` samples: the
    inverse FFT of every frame, the synthesis window, [`overlap_add`], division by the overlap-added
    squared window, as `torch.istft` computes it (equal to float32 rounding).

    Args:
        spectrogram (`torch.Tensor` of shape `(..., n_fft // 2 + 1, frames)`): complex.
        n_fft, hop_length (`int`): those of the forward transform; `hop_length` at most
            `n_fft // 2`, so that the squared windows overlap-add to a positive envelope over the
            whole signal.
        length (`int`): number of output samples.
        window (`torch.Tensor` of shape `(n_fft,)`, *optional*): defaults to a Hann window.

    Returns:
        `torch.Tensor` of shape `(..., length)`, float32.
    """
    leading = spectrogram.shape[:-2]
    if leading.numel() == 0:  # no signals
        return torch.zeros(*leading, length, device=spectrogram.device)
    if window is None:
        window = torch.hann_window(n_fft, device=spectrogram.device)
    window = window.float()
    signals = spectrogram.reshape(-1, *spectrogram.shape[-2:])
    # The time-domain frames of a batch of separated segments (4 stems x 2 channels x a few
    # segments) spill out of the CPU's cache: chunks of ISTFT_CHUNK_BYTES of frames keep them in
    # (8 signals of 6 s at hop 1024: 9-11 ms in chunks of 1-4 signals, 14 ms in one). Not while
    # tracing: a traced graph would keep the example's number of chunks and fail on other shapes.
    parts = [signals]
    if spectrogram.device.type == "cpu" and not torch.jit.is_tracing():
        parts = signals.split(max(1, ISTFT_CHUNK_BYTES // (4 * n_fft * spectrogram.shape[-1])))
    with torch.autocast(device_type=spectrogram.device.type, enabled=False):
        waves = [
            overlap_add(
                torch.fft.irfft(part.to(torch.complex64).transpose(-1, -2), n=n_fft) * window,
                hop_length,
            )
            for part in parts
        ]
        wave = waves[0] if len(waves) == 1 else torch.cat(waves)
        envelope = overlap_add((window * window).expand(signals.shape[-1], n_fft), hop_length)
        start = n_fft // 2  # the centring padding of `stft`
        wave = wave[:, start : start + length] / envelope[start : start + length]
        if wave.shape[-1] < length:
            wave = F.pad(wave, (0, length - wave.shape[-1]))
    return wave.reshape(*leading, length)


__all__ = ["SpectralTransform", "istft", "stft"]
