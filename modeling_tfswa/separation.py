"""Separate full tracks of any length with a TFSWA-UNet (or any model with the same interface).

- [`apply_model`]: the one overlap-add loop. A track is cut into overlapping segments (lazy views of
  the mixture, all inside the track: the last one ends at the track's last sample, no padding),
  several segments run through the model per forward batch on the model's device, and the stems are
  blended back on the mixture's device by a triangular weight window normalised by the summed
  weights, so the blend is exact at every sample. Optional random-shift test-time augmentation.
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

import contextlib
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile as sf
import torch
from torch import nn

from .audio import (
    AUDIO_FORMATS,
    CLIP_LIMIT,
    CLIP_MODES,
    audio_info,
    clipping_report,
    load_audio,
    prevent_clipping,
    save_audio,
    staged_folder,
)
from .fileio import child_path, safe_name, write_via_temporary
from .separation_core import (
    DEFAULT_BATCH_SIZE,
    DEFAULT_SHIFTS,
    AudioError,
    apply_model,
    check_finite,
    fit_length,
    iter_separated,
    match_channels,
    resample,
    resolve_device,
    resolve_dtype,
    restore_channels,
    to_float,
)

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
        segment_seconds / overlap / shifts / batch_size / dtype / progress: options of
            [`apply_model`] (`None`: the model config's `segment_seconds` and `overlap`).
        device (`str` or `torch.device`, *optional*): where the model runs, `"auto"` (CUDA, else
            MPS, else CPU) or a device that must exist; `None` leaves the model where it is.
    """

    def __init__(
        self,
        model: nn.Module,
        *,
        segment_seconds: float | None = None,
        overlap: float | None = None,
        shifts: int = DEFAULT_SHIFTS,
        batch_size: int = DEFAULT_BATCH_SIZE,
        device: str | torch.device | None = None,
        dtype: str | torch.dtype | None = None,
        progress: bool = False,
    ):
        self.model = model.eval()
        if device is not None:
            device = resolve_device(device)
            self.model.to(device)
        self.options = dict(
            segment_seconds=segment_seconds,
            overlap=overlap,
            shifts=shifts,
            batch_size=batch_size,
            device=device,
            dtype=resolve_dtype(dtype),
        )
        self.progress = progress

    @classmethod
    def from_pretrained(
        cls, name_or_path: str | os.PathLike, *, revision: str | None = None, **options
    ) -> Separator:
        """Load a model with `AutoModel.from_pretrained(name_or_path, revision=revision)` (a local
        folder written by `save_pretrained` or a Hub id) and wrap it; `options` are those of
        [`Separator`].

        Raises:
            ValueError: the folder or Hub id holds no TFSWA-UNet (one line naming it).
        """
        # Importing this package registered the "tfswa" model type with AutoConfig / AutoModel.
        from transformers import AutoModel

        try:
            model = AutoModel.from_pretrained(str(name_or_path), revision=revision)
        except (OSError, ValueError, KeyError) as error:
            first_line = str(error).strip().splitlines()[0] if str(error).strip() else error
            raise ValueError(f"{name_or_path}: not a TFSWA-UNet model ({first_line})") from error
        return cls(model, **options)

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
        plot (`Path`, *optional*): the spectrogram PNG, when asked for.
    """

    track: str
    paths: list[Path]
    clipping: str | None = None
    plot: Path | None = None


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
    plot: bool = False,
) -> FileSeparation:
    """Separate an audio file into `out_dir/<track>/<stem><extension>`, at the file's sample rate
    and channel count.

    A file at the model's sample rate is streamed: read a segment at a time and each stem written
    as the overlap-add finishes each region (through soundfile), so memory stays that of a few
    segments whatever the track's length. A file at another rate is resampled in memory.

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
        plot (`bool`, *optional*, defaults to `False`): also write `<track>/spectrograms.png`
            (see [`modeling_tfswa.plots.plot_spectrograms`]).

    Raises:
        AudioError: the input cannot be separated (missing, unreadable, empty, NaN/inf...).
        FileExistsError: an output exists and `overwrite` is `False` (checked before separating).
    """
    path = Path(path)
    folder = child_path(out_dir, track_folder_name(path))
    names = separator.output_stems(stems, two_stems)
    files = [f"{name}{extension}" for name in names] + (["spectrograms.png"] if plot else [])
    if clip is None:
        clip = "none" if subtype == "FLOAT" else "rescale"
    if clip not in CLIP_MODES:
        raise ValueError(f"clip mode must be one of {sorted(CLIP_MODES)}, got {clip!r}")
    sample_rate = audio_info(path).samplerate
    with staged_folder(folder, files, overwrite=overwrite) as staging:
        if sample_rate == separator.sample_rate:
            clipping = _separate_streamed(
                separator, path, staging, names, two_stems, extension, subtype, clip
            )
        else:
            waveform, sample_rate = load_audio(path)
            separated = separator.separate_waveform(
                torch.from_numpy(waveform), sample_rate, str(path), stems=stems, two_stems=two_stems
            )
            separated = {stem: wave.numpy() for stem, wave in separated.items()}
            separated, clipping = prevent_clipping(separated, clip)
            for stem, wave in separated.items():
                save_audio(staging / f"{stem}{extension}", wave, sample_rate, subtype)
        if plot:
            from .plots import plot_spectrograms

            signals = {"mixture": path, **{name: staging / f"{name}{extension}" for name in names}}
            plot_spectrograms(signals, sample_rate, staging / files[-1])
    return FileSeparation(
        track=folder.name,
        paths=[folder / name for name in files[: len(names)]],
        clipping=clipping,
        plot=folder / files[-1] if plot else None,
    )


#: Frames read or copied at a time by the streamed file path's second (rescaling) pass.
COPY_BLOCK_FRAMES = 1 << 18


def _separate_streamed(
    separator: Separator,
    path: Path,
    staging: Path,
    names: list[str],
    two_stems: str | None,
    extension: str,
    subtype: str,
    clip: str,
) -> str | None:
    """[`separate_file`] for a file at the model's rate: segments read from the file, regions
    written as soon as [`iter_separated`] finishes them. Returns the clipping report.

    `"rescale"` needs the peak of the whole track before it can scale: the stems are first written
    as float WAV, then copied block by block into the final format with the gain."""
    config = separator.model.config
    file_format = AUDIO_FORMATS[extension]
    interim = clip == "rescale"
    with sf.SoundFile(path) as source:
        channels, frames, rate = source.channels, source.frames, source.samplerate

        def read(start: int, length: int) -> torch.Tensor:  # (channels, length), inside the file
            source.seek(start)
            block = torch.from_numpy(source.read(length, dtype="float32", always_2d=True).T.copy())
            check_finite(block, str(path))
            return block

        def read_segment(track: int, start: int, length: int) -> torch.Tensor:
            try:
                return match_channels(read(start, length), config.audio_channels)
            except AudioError as error:
                raise AudioError(f"{path}: {error}") from error

        targets = {name: staging / f"{name}{'.wav' if interim else extension}" for name in names}
        peak, clamped = 0.0, 0
        with contextlib.ExitStack() as stack:
            writers = {
                name: stack.enter_context(
                    sf.SoundFile(
                        target,
                        "w",
                        rate,
                        channels,
                        "FLOAT" if interim else subtype,
                        format="WAV" if interim else file_format,
                    )
                )
                for name, target in targets.items()
            }
            blocks = iter_separated(
                separator.model,
                read_segment,
                1,
                frames,
                progress=separator.progress,
                **separator.options,
            )
            for lo, hi, block in blocks:
                by_name = dict(zip(separator.stems, restore_channels(block[0], channels)))
                if two_stems is not None:
                    by_name[COMPLEMENT_PREFIX + two_stems] = read(lo, hi - lo) - by_name[two_stems]
                for name in names:
                    data = by_name[name].numpy()
                    peak = max(peak, float(np.abs(data).max()))
                    if clip == "clamp":
                        clamped += int((np.abs(data) > 1.0).sum())
                        data = np.clip(data, -1.0, 1.0)
                    writers[name].write(data.T)
    if interim:  # second pass: the gain is known now
        gain = CLIP_LIMIT / peak if peak > 1.0 else 1.0
        for name, target in targets.items():

            def copy(temporary: str, target: Path = target) -> None:
                with (
                    sf.SoundFile(target) as reader,
                    sf.SoundFile(
                        temporary, "w", rate, channels, subtype, format=file_format
                    ) as out,
                ):
                    for data in reader.blocks(COPY_BLOCK_FRAMES, dtype="float32", always_2d=True):
                        out.write(data * gain if gain != 1.0 else data)

            final = staging / f"{name}{extension}"
            write_via_temporary(final, copy)
            if target != final:
                target.unlink()
    return clipping_report(clip, peak, clamped) if peak > 1.0 else None


def track_folder_name(path: str | os.PathLike) -> str:
    """The output folder name of an input file: its name without extension, made a plain folder
    name ([`modeling_tfswa.fileio.safe_name`]: `..wav` gives `_`, not the parent folder)."""
    return safe_name(Path(path).stem)
