"""Separate full tracks of any length with a TFSWA-UNet (or any model with the same interface).

- [`apply_model`]: the one overlap-add loop. A track is cut into overlapping segments (lazy views of
  the mixture, zero-padded only at the track's ends), several segments run through the model per
  forward batch on the model's device, and the stems are blended back on the mixture's device by a
  triangular weight window normalised by the summed weights, so the blend is exact at every sample
  (including the first and the last, short, segment). Optional random-shift test-time augmentation.
  Memory: the output buffer plus one batch of segments, whatever the track's length.
- [`Separator`]: the user-facing entry point, `transformers` style: `Separator.from_pretrained(name)`
  loads a model with `AutoModel.from_pretrained`, and `separator.separate(audio)` takes a file path,
  a numpy array or a tensor at any sample rate, mono or with the model's channels, integer or float,
  and returns a dict stem -> waveform at the input's sample rate and channel count.
- [`separate`]: one-call convenience, `separate("song.flac", model="path/or/hub-id")`.
- [`separate_file`]: one file to `DIR/<track>/<stem>.<ext>` (clipping handled, all-or-nothing
  writes), what the `tfswa-separate` command runs per file.

A model is anything whose `forward(input_values)` takes a float `(batch, channels, samples)` mixture
and returns an object with `.waveforms` of shape `(batch, stems, channels, samples)`, and whose
`config` has `stems`, `sample_rate` and `audio_channels` ([`TFSWAUNet`] does).
"""

from __future__ import annotations

import bisect
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn
from tqdm.auto import tqdm

from .audio import (
    AudioError,
    check_finite,
    fit_length,
    load_audio,
    match_channels,
    prevent_clipping,
    resample,
    restore_channels,
    to_float,
    write_stems,
)
from .fileio import child_path, safe_name

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
    # Segment starts relative to the track (negative: reaches into the leading zeros), all passes.
    starts = sorted(start for lead in leads for start in range(-lead, num_samples, stride))
    jobs = [(track, start) for start in starts for track in range(num_tracks)]

    output = torch.zeros(num_tracks, num_stems, channels, num_samples, device=tracks.device)
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
                bar.update(len(batch_jobs))
            for lo in range(0, num_samples, segment):  # normalise one block at a time
                hi = min(lo + segment, num_samples)
                output[..., lo:hi] /= _summed_weights(lo, hi, starts, window)
    finally:
        model.train(was_training)
    output = output.to(mixture.dtype)
    return output[0] if unbatched else output


#: Name of the complement written by `two_stems` (`"no_vocals"` for `"vocals"`).
COMPLEMENT_PREFIX = "no_"

AudioInput = str | os.PathLike | np.ndarray | torch.Tensor


class Separator:
    """Separate songs into stems with a trained model: the user-facing API.

    Inputs are converted at the edges: integer PCM to float, mono to the model's channels (and the
    stems back to mono), any sample rate to the model's (and the stems back, cropped to the input's
    exact length); inside, [`apply_model`] runs the overlap-add.

    Example:

    ```python
    >>> from modeling_tfswa.separation import Separator
    >>> separator = Separator.from_pretrained("path/to/model")  # or a Hub id
    >>> stems = separator.separate("song.flac")  # {"vocals": (channels, samples) array, ...}
    >>> karaoke = separator.separate(audio, sample_rate=48000, two_stems="vocals")
    ```

    Args:
        model (`nn.Module`): a [`TFSWAUNet`] or any model [`apply_model`] accepts.
        segment_seconds / overlap / shifts / batch_size / device / progress: options of
            [`apply_model`].
    """

    def __init__(
        self,
        model: nn.Module,
        *,
        segment_seconds: float | None = None,
        overlap: float = 0.25,
        shifts: int = 0,
        batch_size: int = 4,
        device: str | torch.device | None = None,
        progress: bool = False,
    ):
        self.model = model.eval()
        self.options = dict(
            segment_seconds=segment_seconds,
            overlap=overlap,
            shifts=shifts,
            batch_size=batch_size,
            device=device,
        )
        self.progress = progress
        if device is not None:
            self.model.to(device)

    @classmethod
    def from_pretrained(
        cls,
        name_or_path: str | os.PathLike,
        *,
        device: str | torch.device | None = None,
        segment_seconds: float | None = None,
        overlap: float = 0.25,
        shifts: int = 0,
        batch_size: int = 4,
        progress: bool = False,
        **from_pretrained_kwargs,
    ) -> Separator:
        """Load a model with `AutoModel.from_pretrained(name_or_path, **from_pretrained_kwargs)`
        (a local folder written by `save_pretrained` or a Hub id, e.g. with `revision=`) and wrap
        it; the other arguments are those of [`Separator`]."""
        # Importing this package registered the "tfswa" model type with AutoConfig / AutoModel.
        from transformers import AutoModel

        model = AutoModel.from_pretrained(str(name_or_path), **from_pretrained_kwargs)
        return cls(
            model,
            segment_seconds=segment_seconds,
            overlap=overlap,
            shifts=shifts,
            batch_size=batch_size,
            device=device,
            progress=progress,
        )

    @property
    def stems(self) -> list[str]:
        """Names of the model's stems, in output order."""
        return list(self.model.config.stems)

    @property
    def sample_rate(self) -> int:
        """Sample rate the model runs at (inputs at other rates are resampled)."""
        return self.model.config.sample_rate

    def separate(
        self,
        audio: AudioInput,
        sample_rate: int | None = None,
        *,
        stems: Sequence[str] | None = None,
        two_stems: str | None = None,
    ) -> dict[str, np.ndarray] | dict[str, torch.Tensor]:
        """Separate one track.

        Args:
            audio: a file path (read with soundfile), or an array / tensor of shape
                `(channels, samples)` or `(samples,)` (mono), float or integer PCM.
            sample_rate (`int`, *optional*): the array's sample rate in Hz (required for arrays,
                taken from the file for paths).
            stems (`Sequence[str]`, *optional*): return only these stems (default: all).
            two_stems (`str`, *optional*): return this stem and its complement
                `"no_<stem>"` = mixture - stem (so that the two add up to the input exactly).

        Returns:
            `dict` stem name -> waveform of the input's shape (`(channels, samples)` or
            `(samples,)`) and sample rate, float32: `np.ndarray` for paths and arrays,
            `torch.Tensor` (on the input's device) for tensors.

        Raises:
            AudioError: unreadable file, NaN/inf samples, empty input, unsupported channels.
            ValueError: unknown stem names or a missing sample rate.
        """
        mixture, rate, name = self._read(audio, sample_rate)
        result = self.separate_waveform(mixture, rate, name, stems=stems, two_stems=two_stems)
        if isinstance(audio, torch.Tensor):
            return result
        return {stem: wave.numpy() for stem, wave in result.items()}

    def separate_waveform(
        self,
        mixture: torch.Tensor,
        sample_rate: int,
        name: str = "input",
        *,
        stems: Sequence[str] | None = None,
        two_stems: str | None = None,
    ) -> dict[str, torch.Tensor]:
        """[`separate`] on a float tensor; errors name the input `name`.

        Args:
            mixture (`torch.Tensor` of shape `(channels, samples)` or `(samples,)`): float.
            sample_rate (`int`): its sample rate in Hz.
            name (`str`): what error messages call the input (e.g. its file).
            stems / two_stems: as in [`separate`].

        Returns:
            `dict` stem name -> `torch.Tensor` of the mixture's shape, on its device.
        """
        wanted = self.output_stems(stems, two_stems)
        squeeze = mixture.ndim == 1
        if squeeze:
            mixture = mixture[None]
        if mixture.ndim != 2:
            raise AudioError(
                f"{name}: expected (channels, samples) or (samples,), got {tuple(mixture.shape)}"
            )
        channels, num_samples = mixture.shape
        if channels > 16 and num_samples <= 16:
            raise AudioError(
                f"{name}: shape {tuple(mixture.shape)} looks like (samples, "
                "channels); pass channels first (e.g. array.T)"
            )
        if num_samples == 0:
            raise AudioError(f"{name}: no samples")
        check_finite(mixture, name)
        try:
            model_input = match_channels(mixture.cpu(), self.model.config.audio_channels)
        except AudioError as error:
            raise AudioError(f"{name}: {error}") from error

        model_input = resample(model_input, sample_rate, self.sample_rate)
        separated = apply_model(
            self.model, model_input.contiguous(), progress=self.progress, **self.options
        )  # (S, C_model, T_model)
        separated = fit_length(resample(separated, self.sample_rate, sample_rate), num_samples)
        separated = restore_channels(separated, channels).to(mixture.device)  # (S, C, T)
        by_name = dict(zip(self.stems, separated))
        if two_stems is not None:
            stem = by_name[two_stems]
            by_name = {two_stems: stem, COMPLEMENT_PREFIX + two_stems: mixture - stem}
        result = {stem: by_name[stem] for stem in wanted}
        if squeeze:
            result = {stem: wave[0] for stem, wave in result.items()}
        return result

    __call__ = separate

    def output_stems(
        self, stems: Sequence[str] | None = None, two_stems: str | None = None
    ) -> list[str]:
        """Names of the stems [`separate`] returns for these options, validated against the
        model's stems."""
        if two_stems is not None:
            if stems is not None:
                raise ValueError("pass either stems or two_stems, not both")
            if two_stems not in self.stems:
                raise ValueError(
                    f"two_stems: unknown stem {two_stems!r}; the model separates {self.stems}"
                )
            return [two_stems, COMPLEMENT_PREFIX + two_stems]
        if stems is None:
            return self.stems
        unknown = [stem for stem in stems if stem not in self.stems]
        if unknown or not stems:
            raise ValueError(
                f"stems: unknown {unknown or 'empty list'}; the model separates {self.stems}"
            )
        return list(dict.fromkeys(stems))

    @staticmethod
    def _read(audio: AudioInput, sample_rate: int | None) -> tuple[torch.Tensor, int, str]:
        """`(float32 waveform tensor, sample rate, name for errors)` of any accepted input."""
        if isinstance(audio, (str, os.PathLike)):
            if sample_rate is not None:
                raise ValueError("sample_rate is read from the file; do not pass it with a path")
            waveform, rate = load_audio(audio)
            return torch.from_numpy(waveform), rate, str(audio)
        if not isinstance(audio, (np.ndarray, torch.Tensor)):
            raise TypeError(f"audio must be a path, numpy array or tensor, got {type(audio)}")
        if sample_rate is None:
            raise ValueError("sample_rate is required for array and tensor inputs")
        if not isinstance(sample_rate, (int, np.integer)) or sample_rate <= 0:
            raise ValueError(f"sample_rate must be a positive integer, got {sample_rate!r}")
        return to_float(audio), int(sample_rate), "input"


def separate(
    audio: AudioInput,
    *,
    model: str | os.PathLike | nn.Module | Separator,
    sample_rate: int | None = None,
    stems: Sequence[str] | None = None,
    two_stems: str | None = None,
    **options,
) -> dict[str, np.ndarray] | dict[str, torch.Tensor]:
    """Separate one track in one call: `separate("song.flac", model="path/or/hub-id")`.

    Args:
        audio, sample_rate, stems, two_stems: as in [`Separator.separate`].
        model: a [`Separator`], a model module, or a name / path for
            [`Separator.from_pretrained`] (loaded on every call: keep a [`Separator`] to separate
            many tracks).
        options: [`Separator`] options (segment_seconds, overlap, shifts, batch_size, device,
            progress).

    Returns:
        `dict` stem name -> waveform, as [`Separator.separate`].
    """
    if isinstance(model, Separator):
        if options:
            raise ValueError(f"options {sorted(options)} cannot change an existing Separator")
        separator = model
    elif isinstance(model, nn.Module):
        separator = Separator(model, **options)
    else:
        separator = Separator.from_pretrained(model, **options)
    return separator.separate(audio, sample_rate, stems=stems, two_stems=two_stems)


@dataclass
class FileSeparation:
    """What [`separate_file`] wrote.

    Args:
        track (`str`): the track's folder name ([`track_folder_name`] of the input file).
        paths (`list[Path]`): the stem files written.
        clipping (`str`, *optional*): what was done about samples beyond full scale, if any.
    """

    track: str
    paths: list[Path]
    clipping: str | None = None


def separate_file(
    separator: Separator,
    path: str | os.PathLike,
    out_dir: str | os.PathLike,
    *,
    stems: Sequence[str] | None = None,
    two_stems: str | None = None,
    extension: str = ".wav",
    subtype: str = "PCM_24",
    clip: str | None = None,
    overwrite: bool = False,
) -> FileSeparation:
    """Separate an audio file into `out_dir/<track>/<stem><extension>`, at the file's sample rate
    and channel count.

    Args:
        separator ([`Separator`]): the model and its separation options.
        path: the input file (WAV, FLAC, MP3, OGG, AIFF).
        out_dir: the output root; `<track>` is the input's file name without extension, made a
            safe folder name ([`track_folder_name`]); every path written stays inside `out_dir`.
        stems / two_stems: as in [`Separator.separate`].
        extension (`str`, *optional*, defaults to `".wav"`): output format.
        subtype (`str`, *optional*, defaults to `"PCM_24"`): `"PCM_16"`, `"PCM_24"` or `"FLOAT"`.
        clip (`str`, *optional*): `"rescale"`, `"clamp"` or `"none"` (see
            [`modeling_tfswa.audio.prevent_clipping`]); defaults to `"rescale"` for PCM subtypes and
            `"none"` for `"FLOAT"`, which stores values beyond full scale.
        overwrite (`bool`, *optional*, defaults to `False`): replace existing stem files.

    Raises:
        AudioError: the input cannot be separated (missing, unreadable, empty, NaN/inf...).
        FileExistsError: an output exists and `overwrite` is `False` (checked before separating).
    """
    path = Path(path)
    folder = child_path(out_dir, track_folder_name(path))
    names = separator.output_stems(stems, two_stems)
    existing = [str(child_path(folder, f"{name}{extension}")) for name in names]
    existing = [target for target in existing if os.path.exists(target)]
    if existing and not overwrite:
        raise FileExistsError(f"{path}: {', '.join(existing)} exist(s); use --force to overwrite")
    waveform, sample_rate = load_audio(path)
    separated = separator.separate_waveform(
        torch.from_numpy(waveform), sample_rate, str(path), stems=stems, two_stems=two_stems
    )
    separated = {stem: wave.numpy() for stem, wave in separated.items()}
    if clip is None:
        clip = "none" if subtype == "FLOAT" else "rescale"
    separated, clipping = prevent_clipping(separated, clip)
    paths = write_stems(
        folder, separated, sample_rate, extension=extension, subtype=subtype, overwrite=overwrite
    )
    return FileSeparation(track=folder.name, paths=paths, clipping=clipping)


def track_folder_name(path: str | os.PathLike) -> str:
    """The output folder name of an input file: its name without extension, made a plain folder
    name ([`modeling_tfswa.fileio.safe_name`]: `..wav` gives `_`, not the parent folder)."""
    return safe_name(Path(path).stem)
