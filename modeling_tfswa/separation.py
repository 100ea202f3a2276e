"""Separate full tracks of any length with a TFSWA-UNet (or any model with the same interface).

- [`apply_model`]: the one overlap-add loop. A track is cut into overlapping segments (lazy views of
  the mixture, zero-padded only at the track's ends), several segments run through the model per
  forward batch on the model's device, and the stems are blended back on the mixture's device by a
  triangular weight window normalised by the summed weights, so the blend is exact at every sample
  (including the first and the last, short, segment). Optional random-shift test-time augmentation.
  Memory: the output buffer plus one batch of segments, whatever the track's length.

A model is anything whose `forward(input_values)` takes a float `(batch, channels, samples)` mixture
and returns an object with `.waveforms` of shape `(batch, stems, channels, samples)`, and whose
`config` has `stems`, `sample_rate` and `audio_channels` ([`TFSWAUNet`] does).
"""

from __future__ import annotations

import torch
from torch import nn
from tqdm.auto import tqdm

#: Segment length when none is given: the training segment length of the default recipe, so that
#: the model sees contexts as long as those it was trained on.
DEFAULT_SEGMENT_SECONDS = 6.0

#: Largest random shift of the shift test-time augmentation, in seconds (as Demucs does).
MAX_SHIFT_SECONDS = 0.5


def blend_window(length: int) -> torch.Tensor:
    """Triangular blending weights of a segment, highest in its middle, never zero.

    Samples near a segment's borders saw less context, so they weigh less where segments overlap;
    the `+ 1` floor keeps every weight positive, so a sample covered by one segment only (the
    track's first and last samples) is still recovered exactly after normalisation.

    Args:
        length (`int`): segment length in samples.

    Returns:
        `torch.Tensor` of shape `(length,)`, float32, in `(0, 1]`.
    """
    position = torch.arange(length, dtype=torch.float32)
    ramp = torch.minimum(position + 1, length - position)
    return ramp / ramp.max()


def _model_device(model: nn.Module, fallback: torch.device) -> torch.device:
    """Device of the model's first parameter or buffer (`fallback` for a model holding neither)."""
    for tensor in model.parameters():
        return tensor.device
    for tensor in model.buffers():
        return tensor.device
    return fallback


def _segment(track: torch.Tensor, start: int, length: int) -> torch.Tensor:
    """`track[..., start:start + length]`, zero-padded where the range leaves the track.

    Args:
        track (`torch.Tensor` of shape `(channels, samples)`): one mixture.
        start (`int`): first sample, may be negative.
        length (`int`): segment length.

    Returns:
        `torch.Tensor` of shape `(channels, length)` (a view when no padding is needed).
    """
    num_samples = track.shape[-1]
    lo, hi = max(start, 0), min(start + length, num_samples)
    view = track[..., lo:hi]
    if lo - start or start + length - hi:
        view = nn.functional.pad(view, (lo - start, start + length - hi))
    return view


def apply_model(
    model: nn.Module,
    mixture: torch.Tensor,
    *,
    segment_seconds: float | None = None,
    overlap: float = 0.25,
    shifts: int = 0,
    batch_size: int = 4,
    device: str | torch.device | None = None,
    progress: bool = False,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Separate mixtures of any length by overlap-add of model outputs on overlapping segments.

    The mixture stays where it is (usually CPU memory); each batch of segments is copied to
    `device`, separated, and copied back into an output buffer on the mixture's device, weighted by
    [`blend_window`]. Every output sample is the weighted average of the predictions of all the
    segments (and shifts) covering it, divided by the sum of their weights, so a model that returns
    its input gives the input back at every sample.

    With `shifts > 0`, the segment grid is moved `shifts` times by a random offset of up to
    [`MAX_SHIFT_SECONDS`] (the track is virtually preceded by zeros), each shifted pass is
    separated, and all predictions are averaged (test-time augmentation against segment-border
    artefacts; costs `shifts` times the compute of one pass).

    The model runs in eval mode (its previous mode is restored afterwards) under
    `torch.inference_mode`; when `device` differs from the model's device, the model is moved there.

    Args:
        model (`nn.Module`): separation model; `model(input_values=(b, C, L)).waveforms` is
            `(b, S, C, L)`, with `C == model.config.audio_channels`, `S == len(model.config.stems)`.
        mixture (`torch.Tensor` of shape `(channels, samples)` or `(batch, channels, samples)`):
            floating-point mixture at `model.config.sample_rate`.
        segment_seconds (`float`, *optional*): segment length in seconds (defaults to
            [`DEFAULT_SEGMENT_SECONDS`]); tracks shorter than a segment run as one segment of their
            own length.
        overlap (`float`, *optional*, defaults to 0.25): fraction of a segment shared with the next
            one, in `[0, 1)`.
        shifts (`int`, *optional*, defaults to 0): number of random-shift passes (0: one pass, no
            shift).
        batch_size (`int`, *optional*, defaults to 4): segments per forward call.
        device (`str` or `torch.device`, *optional*): where the model runs (defaults to the
            model's device).
        progress (`bool`, *optional*, defaults to `False`): show a tqdm bar over segments.
        generator (`torch.Generator`, *optional*): source of the random shifts (for reproducible
            test-time augmentation); the global generator when not given.

    Returns:
        `torch.Tensor` of shape `(stems, channels, samples)` or `(batch, stems, channels, samples)`
        (following `mixture`), on the mixture's device, in the mixture's dtype.
    """
    config = model.config
    if not isinstance(mixture, torch.Tensor) or mixture.ndim not in (2, 3):
        shape = tuple(mixture.shape) if isinstance(mixture, torch.Tensor) else type(mixture)
        raise ValueError(
            f"mixture must be a (channels, samples) or (batch, channels, samples) "
            f"tensor, got {shape}"
        )
    if not mixture.is_floating_point():
        raise ValueError(
            f"mixture must be floating point, got {mixture.dtype} (convert integer "
            "PCM with modeling_tfswa.audio.to_float first)"
        )
    if mixture.shape[-2] != config.audio_channels:
        raise ValueError(
            f"mixture has {mixture.shape[-2]} channels, the model expects "
            f"{config.audio_channels} (shape {tuple(mixture.shape)})"
        )
    if mixture.shape[-1] == 0:
        raise ValueError("mixture has no samples")
    if not 0 <= overlap < 1:
        raise ValueError(f"overlap must be in [0, 1), got {overlap}")
    if shifts < 0:
        raise ValueError(f"shifts must be >= 0, got {shifts}")
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    if segment_seconds is None:
        segment_seconds = DEFAULT_SEGMENT_SECONDS
    if segment_seconds <= 0:
        raise ValueError(f"segment_seconds must be > 0, got {segment_seconds}")

    unbatched = mixture.ndim == 2
    tracks = mixture.unsqueeze(0) if unbatched else mixture  # (B, C, T)
    num_tracks, channels, num_samples = tracks.shape
    sample_rate = config.sample_rate
    num_stems = len(config.stems)
    device = torch.device(device) if device is not None else _model_device(model, tracks.device)
    if _model_device(model, device) != device:
        model.to(device)

    # Each pass covers the track, preceded by `lead` zeros when shifted.
    max_shift = int(MAX_SHIFT_SECONDS * sample_rate) if shifts else 0
    leads = [0]
    if shifts:
        leads = torch.randint(0, max_shift + 1, (shifts,), generator=generator).tolist()
    segment = max(1, min(round(segment_seconds * sample_rate), num_samples + max_shift))
    stride = max(1, segment - round(overlap * segment))
    window = blend_window(segment).to(tracks.device)
    # Segment starts relative to the track (negative: reaches into the leading zeros); lazy jobs.
    jobs = [
        (track, start)
        for lead in leads
        for start in range(-lead, num_samples, stride)
        for track in range(num_tracks)
    ]

    output = torch.zeros(num_tracks, num_stems, channels, num_samples, device=tracks.device)
    weight_sum = torch.zeros(num_tracks, num_samples, device=tracks.device)
    was_training = model.training
    model.eval()
    try:
        with (
            torch.inference_mode(),
            tqdm(total=len(jobs), unit="segment", disable=not progress, leave=False) as bar,
        ):
            for first in range(0, len(jobs), batch_size):
                batch_jobs = jobs[first : first + batch_size]
                batch = torch.stack([_segment(tracks[t], s, segment) for t, s in batch_jobs])
                batch = batch.to(device=device, dtype=torch.float32)
                estimates = model(input_values=batch).waveforms  # (b, S, C, L)
                expected = (len(batch_jobs), num_stems, channels, segment)
                if tuple(estimates.shape) != expected:
                    raise ValueError(
                        f"model returned waveforms of shape "
                        f"{tuple(estimates.shape)}, expected {expected}"
                    )
                estimates = estimates.to(device=tracks.device, dtype=torch.float32)
                for estimate, (track, start) in zip(estimates, batch_jobs):
                    lo, hi = max(start, 0), min(start + segment, num_samples)
                    weights = window[lo - start : hi - start]
                    output[track, ..., lo:hi] += estimate[..., lo - start : hi - start] * weights
                    weight_sum[track, lo:hi] += weights
                bar.update(len(batch_jobs))
            output /= weight_sum[:, None, None, :]
    finally:
        model.train(was_training)
    output = output.to(mixture.dtype)
    return output[0] if unbatched else output
