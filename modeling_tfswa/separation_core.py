"""The standalone half of separation: overlap-add over segments, resampling, channels, devices.

Everything here depends on torch, numpy and tqdm only and imports nothing else of this project,
because the `music-source-separation` pipeline ([`pipeline_tfswa`]) is saved into every model folder
with this module beside it: `pipeline("music-source-separation", model=DIR, trust_remote_code=True)`
then runs in a process that never installed this package. `modeling_tfswa.separation` (the
[`Separator`], files) and `modeling_tfswa.audio` (file I/O) build on it and re-export its names.

- [`iter_separated`]: the one overlap-add loop. Segments (views of the mixture, or blocks read from a
  file, always inside the track: no padding) go through the model a batch at a time on its device,
  are weighted by a triangular window, and each region of the output is yielded, normalised by the
  summed weights, as soon as no later segment reaches it: memory is a few segments, whatever the
  track's length. Optional random-shift test-time augmentation.
- [`apply_model`]: that loop collected into one tensor, for in-memory use.
- [`resample`]: Kaiser-windowed sinc polyphase resampling written in torch (also used by the
  pitch-shift augmentation). Why our own: torchaudio has no build for the torch we run (its
  releases stop at torch 2.11), it keeps the saved folder free of other audio libraries, and
  `benchmarks/library_choices.py` finds the libraries no better at this job: on a sine sweep
  against the exact sweep at the new rate, ours keeps 103-106 dB SNR up to 20 kHz for
  44.1 <-> 48 kHz, where `soxr` VHQ gives 82-104 dB (HQ: 78-93 dB) and `julius` 60-77 dB. soxr
  rejects what lies above the new Nyquist frequency better (-154 dB vs our -96 dB, both inaudible)
  at about the same speed (0.06-0.09 s of CPU per minute of stereo audio, ours 0.08), but works on
  NumPy arrays on the CPU, while ours runs on the tensor's device.
- [`match_channels`] / [`restore_channels`], [`to_float`], [`check_finite`]: input conversion.
- [`resolve_device`] / [`resolve_dtype`]: `"auto"` (CUDA, else Apple MPS, else CPU) and the
  inference precision (autocast; the STFT stays float32).
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Callable, Iterator

import numpy as np
import torch
from torch import nn
from tqdm.auto import tqdm


class AudioError(ValueError):
    """An audio input that cannot be separated (unreadable, empty, non-finite, wrong shape...)."""


def check_finite(waveform: np.ndarray | torch.Tensor, name: str) -> None:
    """Raise [`AudioError`] naming `name` if `waveform` holds NaN or infinite samples."""
    finite = (
        torch.isfinite(waveform) if isinstance(waveform, torch.Tensor) else np.isfinite(waveform)
    )
    if not bool(finite.all()):
        bad = int((~finite).sum())
        raise AudioError(f"{name}: {bad} NaN or infinite sample(s)")


def to_float(audio: np.ndarray | torch.Tensor) -> torch.Tensor:
    """Audio samples as a float32 tensor, integer PCM scaled to [-1, 1).

    Signed integers are divided by their full scale (`2**15` for int16, `2**31` for int32), uint8
    (8-bit WAV's unsigned PCM) is centred on 128 first; floats are only cast.

    Args:
        audio (`np.ndarray` or `torch.Tensor` of any shape): samples.

    Returns:
        `torch.Tensor` of the same shape, float32 (sharing memory with a float32 input).
    """
    tensor = torch.from_numpy(np.asarray(audio)) if not isinstance(audio, torch.Tensor) else audio
    if tensor.is_floating_point():
        return tensor.float()
    if tensor.dtype == torch.uint8:
        return (tensor.float() - 128.0) / 128.0
    if tensor.dtype in (torch.int8, torch.int16, torch.int32, torch.int64):
        return (tensor.double() / (-torch.iinfo(tensor.dtype).min)).float()
    raise AudioError(f"unsupported sample type {tensor.dtype} (use float or integer PCM)")


def match_channels(waveform: torch.Tensor, channels: int) -> torch.Tensor:
    """Adapt a mixture to a model's channel count: mono is copied to every channel, and a model
    with one channel gets the average of the input channels.

    Args:
        waveform (`torch.Tensor` of shape `(in_channels, samples)`).
        channels (`int`): channels the model expects.

    Returns:
        `torch.Tensor` of shape `(channels, samples)`.
    """
    in_channels = waveform.shape[0]
    if in_channels == channels:
        return waveform
    if in_channels == 1:
        return waveform.expand(channels, -1)
    if channels == 1:
        return waveform.mean(0, keepdim=True)
    raise AudioError(
        f"cannot separate {in_channels}-channel audio with a {channels}-channel model "
        "(mono, or the model's channel count, are supported)"
    )


def restore_channels(stems: torch.Tensor, channels: int) -> torch.Tensor:
    """Inverse of [`match_channels`] on separated stems: back to the input's channel count.

    Args:
        stems (`torch.Tensor` of shape `(stems, model_channels, samples)`).
        channels (`int`): channels of the original input.

    Returns:
        `torch.Tensor` of shape `(stems, channels, samples)` (a mono input gets the average of the
        model's channels; a mono model's output is copied to every input channel).
    """
    model_channels = stems.shape[1]
    if model_channels == channels:
        return stems
    if channels == 1:
        return stems.mean(1, keepdim=True)
    if model_channels == 1:
        return stems.expand(-1, channels, -1)
    raise AudioError(f"cannot map {model_channels} model channels to {channels} channels")


#: Zero crossings of the sinc on each side of the resampling filter, Kaiser window shape, and the
#: passband edge as a fraction of the lower Nyquist frequency: 64 zeros and beta 8.6 give about
#: 85 dB of stopband attenuation and a transition band that ends below the lower Nyquist frequency.
RESAMPLE_ZEROS = 64
RESAMPLE_BETA = 8.6
RESAMPLE_ROLLOFF = 0.945
#: Largest polyphase filter bank built (phases × taps); coprime rates like 44100 -> 44101 would need
#: tens of millions of taps.
MAX_RESAMPLE_FILTER = 1 << 23


def resample_filter(orig_freq: int, new_freq: int) -> tuple[torch.Tensor, int, int, int]:
    """Polyphase Kaiser-windowed sinc low-pass filter bank resampling `orig_freq` to `new_freq`.

    Output sample `n = m * up + p` sits at input position `n * down / up`; phase `p` of the filter
    holds the weights of the input samples around it, so a strided convolution computes all phases.

    Returns:
        `(filters, up, down, pad)`: `filters` of shape `(up, taps)` float32, the reduced ratio
        `up / down`, and the left zero padding `pad` the convolution needs.
    """
    divisor = math.gcd(orig_freq, new_freq)
    up, down = new_freq // divisor, orig_freq // divisor
    cutoff = 0.5 * RESAMPLE_ROLLOFF * min(1.0, up / down)  # cycles per input sample
    half_width = RESAMPLE_ZEROS / (2 * cutoff)  # in input samples
    pad = math.ceil(half_width)
    taps = down + 2 * pad + 1
    if up * taps > MAX_RESAMPLE_FILTER:
        raise AudioError(
            f"cannot resample {orig_freq} Hz to {new_freq} Hz: the reduced ratio {up}/{down} needs "
            f"a {up}x{taps} filter bank; resample to a common rate first"
        )
    phase = torch.arange(up, dtype=torch.float64)[:, None] * down / up
    offset = phase + pad - torch.arange(taps, dtype=torch.float64)[None, :]  # position - input
    inside = (offset / half_width).clamp(-1, 1)
    window = torch.special.i0(RESAMPLE_BETA * torch.sqrt(1 - inside**2)) / torch.special.i0(
        torch.tensor(RESAMPLE_BETA, dtype=torch.float64)
    )
    filters = 2 * cutoff * torch.sinc(2 * cutoff * offset) * window
    filters = torch.where(offset.abs() <= half_width, filters, 0.0)
    return filters.float(), up, down, pad


def resample(waveform: torch.Tensor, orig_freq: int, new_freq: int) -> torch.Tensor:
    """Band-limited resampling by a windowed-sinc polyphase filter (anti-aliased when downsampling).

    Args:
        waveform (`torch.Tensor` of shape `(..., samples)`): float signal at `orig_freq`.
        orig_freq (`int`): its sample rate in Hz.
        new_freq (`int`): the wanted sample rate in Hz.

    Returns:
        `torch.Tensor` of shape `(..., ceil(samples * new_freq / orig_freq))`, float32 (the input
        itself when the rates are equal).
    """
    if orig_freq == new_freq:
        return waveform
    if orig_freq <= 0 or new_freq <= 0:
        raise ValueError(f"sample rates must be positive, got {orig_freq} and {new_freq}")
    filters, up, down, pad = resample_filter(orig_freq, new_freq)
    leading, num_samples = waveform.shape[:-1], waveform.shape[-1]
    num_out = math.ceil(num_samples * up / down)
    frames = math.ceil(num_out / up)  # strided convolution steps (each gives `up` samples)
    right = (frames - 1) * down + filters.shape[1] - (num_samples + pad)
    signal = waveform.reshape(-1, 1, num_samples).float()
    signal = torch.nn.functional.pad(signal, (pad, max(right, 0)))
    phases = torch.nn.functional.conv1d(
        signal, filters.to(signal.device)[:, None, :], stride=down
    )  # (N, up, frames)
    out = phases[..., :frames].transpose(1, 2).reshape(-1, frames * up)[:, :num_out]
    return out.reshape(*leading, num_out)


def fit_length(waveform: torch.Tensor, length: int) -> torch.Tensor:
    """Crop or zero-pad the last axis of `waveform` (`(..., samples)`) to `length` samples."""
    if waveform.shape[-1] >= length:
        return waveform[..., :length]
    return torch.nn.functional.pad(waveform, (0, length - waveform.shape[-1]))


#: Inference precisions by name (`--dtype`); other than float32, they run under `torch.autocast`.
DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}


def resolve_device(device: str | torch.device | None = "auto") -> torch.device:
    """The device to run on: `"auto"` (or `None`) picks CUDA, else Apple MPS, else the CPU; a named
    device must exist.

    Raises:
        ValueError: the device is not a valid name or is not available on this machine (one line).
    """
    if device is None or device == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    try:
        device = torch.device(device)
    except (RuntimeError, TypeError) as error:
        raise ValueError(f"device {str(device)!r} is not a device name ({error})") from None
    if device.type == "cuda":
        count = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if count == 0 or (device.index or 0) >= count:
            raise ValueError(f"device {str(device)!r}: this machine has {count} CUDA device(s)")
    elif device.type == "mps" and not torch.backends.mps.is_available():
        raise ValueError(f"device {str(device)!r}: Apple MPS is not available on this machine")
    elif device.type not in ("cpu", "cuda", "mps"):
        raise ValueError(f"device {str(device)!r}: use auto, cpu, cuda, cuda:N or mps")
    return device


def resolve_dtype(dtype: str | torch.dtype | None) -> torch.dtype:
    """`torch.dtype` of a [`DTYPES`] name (`None`: float32)."""
    if dtype is None:
        return torch.float32
    if isinstance(dtype, torch.dtype) and dtype in DTYPES.values():
        return dtype
    if dtype not in DTYPES:
        raise ValueError(f"dtype must be one of {sorted(DTYPES)}, got {dtype!r}")
    return DTYPES[dtype]


#: Defaults of the separation options that are not the model's (segment and overlap are: config).
DEFAULT_SHIFTS = 0
DEFAULT_BATCH_SIZE = 4

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


def _summed_weights(lo: int, hi: int, starts: list[int], window: torch.Tensor) -> torch.Tensor:
    """Sum of the blending weights of all segments over samples `lo:hi`.

    Recomputed per block from the sorted segment `starts` rather than accumulated in a buffer as
    long as the track, so that memory stays independent of the track's length.

    Returns:
        `torch.Tensor` of shape `(hi - lo,)`, positive wherever a segment covers the block.
    """
    segment = window.shape[0]
    total = torch.zeros(hi - lo, device=window.device)
    for start in starts[bisect.bisect_right(starts, lo - segment) : bisect.bisect_left(starts, hi)]:
        a, b = max(lo, start), min(hi, start + segment)
        total[a - lo : b - lo] += window[a - start : b - start]
    return total


def _check_options(config, segment_seconds, overlap, shifts, batch_size) -> tuple[float, float]:
    """Validated `(segment_seconds, overlap)`, defaulting to the model config's values."""
    if segment_seconds is None:
        segment_seconds = getattr(config, "segment_seconds", None)
    if overlap is None:
        overlap = getattr(config, "overlap", None)
    if segment_seconds is None or overlap is None:
        raise ValueError(
            "the model's config has no segment_seconds / overlap: pass them explicitly"
        )
    if segment_seconds <= 0:
        raise ValueError(f"segment_seconds must be > 0, got {segment_seconds}")
    if not 0 <= overlap < 1:
        raise ValueError(f"overlap must be in [0, 1), got {overlap}")
    if shifts < 0:
        raise ValueError(f"shifts must be >= 0, got {shifts}")
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    return float(segment_seconds), float(overlap)


SegmentReader = Callable[[int, int, int], torch.Tensor]


def iter_separated(
    model: nn.Module,
    read_segment: SegmentReader,
    num_tracks: int,
    num_samples: int,
    *,
    segment_seconds: float | None = None,
    overlap: float | None = None,
    shifts: int = DEFAULT_SHIFTS,
    batch_size: int = DEFAULT_BATCH_SIZE,
    device: str | torch.device | None = None,
    dtype: str | torch.dtype | None = None,
    progress: bool = False,
    generator: torch.Generator | None = None,
    output_device: torch.device | str = "cpu",
) -> Iterator[tuple[int, int, torch.Tensor]]:
    """The overlap-add loop: yields the separated track region by region, in order.

    The segment grid (moved `shifts` times by a random offset of up to [`MAX_SHIFT_SECONDS`] when
    `shifts > 0`) is run through the model `batch_size` segments at a time. Every segment lies
    inside the track: the grid's starts are clamped to `[0, samples - segment]`, so a track's last
    segment ends at its last sample and overlaps the one before by more than `overlap` (and a
    shifted pass's first segment starts at sample 0). Zero padding would shift a model's
    per-segment input statistics (TFSWA-UNet's per-bin instance normalisation; HTDemucs normalises
    each segment too): in the quality benchmark, the clamped grid raised `tfswa-unet`'s mean over the
    15 unseen tracks by +0.06 / +0.08 / +0.05 dB in three seeds, the real MUSDB18 sample even
    (docs/quality-log.md, "Segments without padding"). Each prediction is weighted by
    [`blend_window`] and added to an accumulator that spans only the segments in flight; once no
    remaining segment reaches a region, that region is divided by the summed weights of all the
    segments (and shifts) covering it and yielded. Every output sample is therefore the weighted
    average of all predictions covering it, exactly, and a model that returns its input gives the
    input back.

    The model runs in eval mode (its previous mode restored afterwards) under
    `torch.inference_mode`, on `device` (moved there if needed), under `torch.autocast` for a
    `dtype` other than float32.

    Args:
        model (`nn.Module`): `model(input_values=(b, C, L)).waveforms` is `(b, S, C, L)`, with
            `C == model.config.audio_channels`, `S == len(model.config.stems)`.
        read_segment (`Callable[[int, int, int], torch.Tensor]`): `(track, start, length)` ->
            float `(C, length)` mixture samples `start:start + length` of track `track` (always
            `0 <= start` and `start + length <= num_samples`).
        num_tracks (`int`) / num_samples (`int`): how many tracks of how many samples.
        segment_seconds (`float`, *optional*): segment length in seconds (defaults to
            `model.config.segment_seconds`, the length the model was trained on); tracks shorter
            than a segment run as one segment of their own length.
        overlap (`float`, *optional*): fraction of a segment shared with the next one, in `[0, 1)`
            (defaults to `model.config.overlap`).
        shifts (`int`, *optional*, defaults to 0): random-shift passes (0: one pass, no shift).
        batch_size (`int`, *optional*, defaults to 4): segments per forward call.
        device (`str` or `torch.device`, *optional*): where the model runs (defaults to the
            model's device; `"auto"`: see [`resolve_device`]).
        dtype (`str` or `torch.dtype`, *optional*): inference precision, one of [`DTYPES`]
            (defaults to float32).
        progress (`bool`, *optional*, defaults to `False`): a tqdm bar over segments.
        generator (`torch.Generator`, *optional*): source of the random shifts.
        output_device: where the yielded blocks live (defaults to the CPU).

    Yields:
        `(lo, hi, block)`: `block` of shape `(num_tracks, stems, C, hi - lo)`, float32, the
        separated samples `lo:hi`; consecutive blocks tile `0:num_samples`.
    """
    config = model.config
    segment_seconds, overlap = _check_options(config, segment_seconds, overlap, shifts, batch_size)
    dtype = resolve_dtype(dtype)
    channels, sample_rate, num_stems = config.audio_channels, config.sample_rate, len(config.stems)
    if device is None:
        device = _model_device(model, torch.device(output_device))
    else:
        device = resolve_device(device)
    if _model_device(model, device) != device:
        model.to(device)

    max_shift = int(MAX_SHIFT_SECONDS * sample_rate) if shifts else 0
    leads = [0]
    if shifts:
        leads = torch.randint(0, max_shift + 1, (shifts,), generator=generator).tolist()
    segment = max(1, min(round(segment_seconds * sample_rate), num_samples))
    stride = max(1, segment - round(overlap * segment))
    window = blend_window(segment).to(output_device)
    # Segment starts of all passes, each pass's grid clamped into the track: no segment holds
    # padding, which would shift the model's per-segment input statistics.
    last = num_samples - segment
    starts = sorted(
        start
        for lead in leads
        for start in {min(max(s, 0), last) for s in range(-lead, num_samples, stride)}
    )
    jobs = [(track, start) for start in starts for track in range(num_tracks)]

    # The accumulator covers samples base:base + its length, the regions still receiving segments.
    base = 0
    pending = torch.zeros(num_tracks, num_stems, channels, 0, device=output_device)
    autocast = torch.autocast(device.type, dtype=dtype, enabled=dtype != torch.float32)
    was_training = model.training
    model.eval()
    try:
        with (
            torch.inference_mode(),
            tqdm(total=len(jobs), unit="segment", disable=not progress, leave=False) as bar,
        ):
            for first in range(0, len(jobs), batch_size):
                batch_jobs = jobs[first : first + batch_size]
                batch = torch.stack([read_segment(t, s, segment) for t, s in batch_jobs])
                batch = batch.to(device=device, dtype=torch.float32)
                with autocast:
                    estimates = model(input_values=batch).waveforms  # (b, S, C, L)
                expected = (len(batch_jobs), num_stems, channels, segment)
                if tuple(estimates.shape) != expected:
                    raise ValueError(
                        f"model returned waveforms of shape "
                        f"{tuple(estimates.shape)}, expected {expected}"
                    )
                estimates = estimates.to(device=output_device, dtype=torch.float32)
                end = batch_jobs[-1][1] + segment
                if end - base > pending.shape[-1]:
                    grow = end - base - pending.shape[-1]
                    pending = nn.functional.pad(pending, (0, grow))
                for estimate, (track, start) in zip(estimates, batch_jobs):
                    pending[track, ..., start - base : start + segment - base] += estimate * window
                bar.update(len(batch_jobs))
                # Samples before the next segment's start receive nothing more.
                done = (
                    jobs[first + batch_size][1] if first + batch_size < len(jobs) else num_samples
                )
                if done > base:
                    block = pending[..., : done - base] / _summed_weights(
                        base, done, starts, window
                    )
                    pending = pending[..., done - base :].clone()
                    yield base, done, block
                    base = done
    finally:
        model.train(was_training)


def apply_model(
    model: nn.Module,
    mixture: torch.Tensor,
    *,
    segment_seconds: float | None = None,
    overlap: float | None = None,
    shifts: int = DEFAULT_SHIFTS,
    batch_size: int = DEFAULT_BATCH_SIZE,
    device: str | torch.device | None = None,
    dtype: str | torch.dtype | None = None,
    progress: bool = False,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Separate mixtures held in memory: [`iter_separated`] collected into one tensor.

    The mixture stays where it is (usually CPU memory); each batch of segments is copied to
    `device`, separated, and blended back on the mixture's device.

    Args:
        model (`nn.Module`): see [`iter_separated`].
        mixture (`torch.Tensor` of shape `(channels, samples)` or `(batch, channels, samples)`):
            floating-point mixture at `model.config.sample_rate`.
        segment_seconds / overlap / shifts / batch_size / device / dtype / progress / generator:
            see [`iter_separated`].

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
    _check_options(config, segment_seconds, overlap, shifts, batch_size)

    unbatched = mixture.ndim == 2
    tracks = mixture.unsqueeze(0) if unbatched else mixture  # (B, C, T)
    num_tracks, channels, num_samples = tracks.shape
    output = torch.empty(num_tracks, len(config.stems), channels, num_samples, device=tracks.device)
    blocks = iter_separated(
        model,
        lambda track, start, length: tracks[track, :, start : start + length],
        num_tracks,
        num_samples,
        segment_seconds=segment_seconds,
        overlap=overlap,
        shifts=shifts,
        batch_size=batch_size,
        device=device,
        dtype=dtype,
        progress=progress,
        generator=generator,
        output_device=tracks.device,
    )
    for lo, hi, block in blocks:
        output[..., lo:hi] = block
    output = output.to(mixture.dtype)
    return output[0] if unbatched else output
