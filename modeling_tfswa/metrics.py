"""Signal-to-distortion ratios for source separation: fast, batched, torch-only.

Three numbers, all in dB and all computed on waveforms laid out `(..., channels, samples)`:

- [`sdr`]: the *global* SDR of the Music Demixing / Sound Demixing Challenges ("uSDR"),
  `10 log10((Σ s² + eps) / (Σ (s - ŝ)² + eps))` summed over channels and the whole track.
- [`chunk_sdr`] / [`csdr`]: the same ratio on consecutive 1-s chunks, and its median over the chunks
  ("cSDR", the chunk-level SDR of the Sound Demixing Challenge 2023).
- [`framewise_sdr`]: BSSEval v4's SDR per frame, as `museval` computes it. In BSSEval v4 the four
  error terms of an estimate add up to `ŝ - s` exactly, so its SDR is `10 log10(Σ s² / Σ (s - ŝ)²)`
  over both channels of each frame; only its framing and silence rules need reproducing: frames of
  `frame_length` samples every `hop` samples, the last partial frame dropped (one frame of the whole
  signal when it is shorter than a frame), NaN where the reference or the estimate is silent (every
  sample's channel sum is zero) and where the estimate is perfect (museval's +inf is stored as
  NaN). Published MUSDB18 tables take the median over frames (ignoring NaN), then over tracks:
  [`median_over_frames`] and [`median_over_tracks`].

`museval` stays the reference for published numbers (see `modeling_tfswa.evaluation`); these
functions agree with its SDR to ~1e-6 dB and serve validation during training, where museval's
~0.6 s of CPU per second of audio is too slow. Every function takes torch tensors or numpy arrays
(any float dtype, any device) and returns a `torch.Tensor` on the input's device, computed in
`dtype` (float64 by default: sums of squares over millions of samples need it).
"""

from __future__ import annotations

import numpy as np
import torch

#: Stabiliser of the challenge SDRs (the value of the Music Demixing Challenge's reference code).
SDR_EPS = 1e-7


def _as_pair(references, estimates, dtype: torch.dtype) -> tuple[torch.Tensor, torch.Tensor]:
    references = torch.as_tensor(references)
    estimates = torch.as_tensor(estimates, device=references.device)
    if references.shape != estimates.shape:
        raise ValueError(
            "references and estimates must have the same shape (..., channels, samples), got "
            f"{tuple(references.shape)} and {tuple(estimates.shape)}"
        )
    if references.ndim < 2:
        raise ValueError(
            f"expected waveforms of shape (..., channels, samples), got {tuple(references.shape)}"
        )
    return references.to(dtype), estimates.to(dtype)


def _ratio_db(signal_energy: torch.Tensor, error_energy: torch.Tensor) -> torch.Tensor:
    return 10.0 * torch.log10(signal_energy / error_energy)


def sdr(
    references, estimates, eps: float = SDR_EPS, dtype: torch.dtype = torch.float64
) -> torch.Tensor:
    """Global SDR ("uSDR") of the Sound Demixing Challenge, over channels and the whole signal.

    Args:
        references (`torch.Tensor` or `np.ndarray` of shape `(..., channels, samples)`): true stems.
        estimates (same shape as `references`): estimated stems.
        eps (`float`): added to both energies, so silent references and perfect estimates give
            finite values.
        dtype (`torch.dtype`): precision of the computation.

    Returns:
        `torch.Tensor` of shape `(...)`: SDR in dB.
    """
    references, estimates = _as_pair(references, estimates, dtype)
    signal = references.square().sum(dim=(-2, -1))
    error = (references - estimates).square().sum(dim=(-2, -1))
    return _ratio_db(signal + eps, error + eps)


def num_frames(num_samples: int, frame_length: int, hop: int | None = None) -> int:
    """Frames museval evaluates in a signal of `num_samples` samples (last partial frame dropped;
    one frame when the signal is not longer than a frame)."""
    hop = frame_length if hop is None else hop
    if frame_length <= 0 or hop <= 0:
        raise ValueError(f"frame_length and hop must be positive, got {frame_length} and {hop}")
    if num_samples <= frame_length:
        return 1
    return (num_samples - frame_length + hop) // hop


def _frames(waveform: torch.Tensor, frame_length: int, hop: int) -> torch.Tensor:
    """`(..., C, T)` -> `(..., n_frames, C, frame)`, a view where possible."""
    num_samples = waveform.shape[-1]
    if num_samples <= frame_length:
        return waveform.unsqueeze(-3)
    count = num_frames(num_samples, frame_length, hop)
    if hop == frame_length:
        framed = waveform[..., : count * frame_length].unflatten(-1, (count, frame_length))
    else:
        framed = waveform.unfold(-1, frame_length, hop)[..., :count, :]
    return framed.transpose(-3, -2)


def _frame_energies(
    references, estimates, frame_length: int, hop: int | None, dtype: torch.dtype
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Per-frame signal energy, error energy and silence flags, each `(..., n_frames)`."""
    references, estimates = _as_pair(references, estimates, dtype)
    hop = frame_length if hop is None else hop
    num_frames(references.shape[-1], frame_length, hop)  # validates frame_length and hop
    ref = _frames(references, frame_length, hop)  # (..., n, C, L)
    est = _frames(estimates, frame_length, hop)
    signal = ref.square().sum(dim=(-2, -1))
    error = (ref - est).square().sum(dim=(-2, -1))
    # museval's silence test: the sum over channels is zero at every sample of the frame.
    ref_silent = (ref.sum(dim=-2) == 0).all(dim=-1)
    est_silent = (est.sum(dim=-2) == 0).all(dim=-1)
    return signal, error, ref_silent, est_silent


def framewise_sdr(
    references,
    estimates,
    frame_length: int,
    hop: int | None = None,
    source_dim: int | None = None,
    dtype: torch.dtype = torch.float64,
) -> torch.Tensor:
    """BSSEval v4 SDR per frame, as museval computes it (see the module docstring).

    Args:
        references (`torch.Tensor` or `np.ndarray` of shape `(..., channels, samples)`): true stems.
        estimates (same shape as `references`): estimated stems.
        frame_length (`int`): frame length in samples (museval: one second, `sample_rate`).
        hop (`int`, *optional*): hop between frames in samples; defaults to `frame_length`.
        source_dim (`int`, *optional*): the dimension of the leading `...` that indexes sources
            scored together. museval scores all stems of a track jointly and gives NaN to *every*
            stem in a frame where *any* reference or estimate is silent; pass the stem dimension to
            reproduce that. By default each signal's frames are judged on their own.
        dtype (`torch.dtype`): precision of the computation.

    Returns:
        `torch.Tensor` of shape `(..., n_frames)`: SDR in dB, NaN for silent or perfect frames, with
        `n_frames = num_frames(samples, frame_length, hop)`.
    """
    signal, error, ref_silent, est_silent = _frame_energies(
        references, estimates, frame_length, hop, dtype
    )
    invalid = ref_silent | est_silent
    if source_dim is not None:
        leading = signal.ndim - 1
        if not -leading <= source_dim < leading:
            raise ValueError(
                f"source_dim={source_dim} is not a leading dimension of waveforms with "
                f"{leading} leading dimensions"
            )
        source_dim = source_dim % leading
        invalid = invalid.any(dim=source_dim, keepdim=True).expand_as(invalid)
    invalid = invalid | (error == 0)
    return _ratio_db(signal, error).masked_fill(invalid, float("nan"))


def chunk_sdr(
    references,
    estimates,
    chunk_length: int,
    eps: float = SDR_EPS,
    dtype: torch.dtype = torch.float64,
) -> torch.Tensor:
    """The challenge SDR of [`sdr`] on consecutive chunks (framed like [`framewise_sdr`]).

    Args:
        references (`torch.Tensor` or `np.ndarray` of shape `(..., channels, samples)`): true stems.
        estimates (same shape as `references`): estimated stems.
        chunk_length (`int`): chunk length in samples (one second: `sample_rate`).
        eps (`float`): added to both energies of every chunk.
        dtype (`torch.dtype`): precision of the computation.

    Returns:
        `torch.Tensor` of shape `(..., n_chunks)`: finite SDR in dB per chunk.
    """
    signal, error, _, _ = _frame_energies(references, estimates, chunk_length, None, dtype)
    return _ratio_db(signal + eps, error + eps)


def csdr(
    references,
    estimates,
    chunk_length: int,
    eps: float = SDR_EPS,
    dtype: torch.dtype = torch.float64,
) -> torch.Tensor:
    """Chunk-level SDR ("cSDR"): the median over chunks of [`chunk_sdr`].

    Returns:
        `torch.Tensor` of shape `(...)`: SDR in dB.
    """
    return median_over_frames(chunk_sdr(references, estimates, chunk_length, eps, dtype))


def median_over_frames(scores) -> torch.Tensor:
    """Median over the last dimension ignoring NaN (numpy's `nanmedian`: the mean of the two middle
    values for an even count; NaN when every frame is NaN).

    Args:
        scores (`torch.Tensor` or `np.ndarray` of shape `(..., n_frames)`).

    Returns:
        `torch.Tensor` of shape `(...)`.
    """
    scores = torch.as_tensor(scores)
    if not scores.is_floating_point():
        scores = scores.double()
    return torch.nanquantile(scores, 0.5, dim=-1)


def median_over_tracks(per_track) -> torch.Tensor:
    """Aggregate per-track scores (already medians over frames) the way MUSDB18 tables do: the
    median over tracks, ignoring tracks whose score is NaN.

    Args:
        per_track (`torch.Tensor`, `np.ndarray` or sequence of shape `(tracks, ...)`).

    Returns:
        `torch.Tensor` of shape `(...)`.
    """
    if not isinstance(per_track, torch.Tensor):
        per_track = torch.as_tensor(np.asarray(per_track, dtype=np.float64))
    return median_over_frames(per_track.movedim(0, -1))


def metric_name(metric: str, stem: str | None = None) -> str:
    """The one spelling of a logged metric: `metric` for a value over all stems, `metric/stem` for
    one stem (`"sdr/vocals"`, `"sdr_gain/bass"`, `"waveform_l1/drums"`).

    Args:
        metric (`str`): what is measured (`"sdr"`, `"sdr_mixture"`, `"sdr_gain"`, a loss part).
        stem (`str`, *optional*): the stem; `None` for the value over all stems.
    """
    return metric if stem is None else f"{metric}/{stem}"


def mean_ignoring_nan(values) -> float:
    """Mean of the values that are not NaN (numpy's `nanmean`), NaN when all are (without numpy's
    warning): averages over stems or tracks where a silent stem has no score.

    Args:
        values (sequence, `np.ndarray` or `torch.Tensor` of numbers, any shape): flattened.

    Returns:
        `float`.
    """
    values = np.asarray(values, dtype=np.float64).ravel()
    finite = values[~np.isnan(values)]
    return float(finite.mean()) if finite.size else float("nan")


__all__ = [
    "SDR_EPS",
    "chunk_sdr",
    "csdr",
    "framewise_sdr",
    "mean_ignoring_nan",
    "median_over_frames",
    "median_over_tracks",
    "metric_name",
    "num_frames",
    "sdr",
]
