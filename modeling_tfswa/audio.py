"""Audio at the edges of separation: file I/O, integer/float conversion, channels and resampling.

Everything inside the project is float32, channels-first `(channels, samples)` at the model's
sample rate; this module converts what users have (files, int16 arrays, mono, 48 kHz, ...) to
that and back. Files are read and written with soundfile (WAV, FLAC, MP3, OGG, AIFF); writes go to a
temporary name in the target folder and are renamed into place, so no half-written file is ever
left behind. The conversions the saved model folder also needs (channels, resampling, integer PCM)
live in `separation_core` and are re-exported here.
"""

from __future__ import annotations

import contextlib
import math
import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import soundfile as sf
import torch

from .fileio import child_path, publish_folder, staging_folder, write_via_temporary

# The standalone conversions, re-exported (see __all__) from their home, which the saved model
# folder carries.
from .separation_core import (
    MAX_RESAMPLE_FILTER,
    RESAMPLE_BETA,
    RESAMPLE_ROLLOFF,
    RESAMPLE_ZEROS,
    AudioError,
    check_finite,
    fit_length,
    match_channels,
    resample,
    resample_filter,
    restore_channels,
    to_float,
)

#: File extensions read and written (soundfile / libsndfile formats).
AUDIO_FORMATS = {
    ".wav": "WAV",
    ".flac": "FLAC",
    ".mp3": "MP3",
    ".ogg": "OGG",
    ".aiff": "AIFF",
    ".aif": "AIFF",
}

#: Output subtypes offered to users, by name.
SUBTYPES = ("PCM_16", "PCM_24", "FLOAT")


def _check_audio_path(path: str | os.PathLike) -> Path:
    """`path` as a `Path`, if it names an existing file of a format we read (else [`AudioError`])."""
    path = Path(path)
    if not path.exists():
        raise AudioError(f"{path}: no such file")
    if not path.is_file():
        raise AudioError(f"{path}: not a file")
    if path.suffix.lower() not in AUDIO_FORMATS:
        raise AudioError(
            f"{path}: unsupported format {path.suffix!r} (supported: "
            f"{', '.join(sorted(AUDIO_FORMATS))})"
        )
    return path


def audio_info(path: str | os.PathLike) -> sf._SoundFileInfo:
    """soundfile's header information (`samplerate`, `channels`, `frames`...) of an audio file.

    Raises:
        AudioError: as [`load_audio`] for a missing, unsupported, unreadable or empty file.
    """
    path = _check_audio_path(path)
    try:
        info = sf.info(path)
    except (sf.LibsndfileError, RuntimeError, ValueError, TypeError) as error:
        raise AudioError(f"{path}: cannot read audio ({error})") from error
    if info.frames == 0:
        raise AudioError(f"{path}: the file has no samples")
    return info


def load_audio(path: str | os.PathLike) -> tuple[np.ndarray, int]:
    """Read an audio file as float32, channels first.

    Args:
        path: a WAV, FLAC, MP3, OGG or AIFF file.

    Returns:
        `(waveform, sample_rate)`: `np.ndarray` of shape `(channels, samples)`, float32 in [-1, 1]
        for PCM files, and the file's sample rate in Hz.

    Raises:
        AudioError: the file is missing, not an audio format we read, unreadable, has no samples or
            holds NaN/inf samples; the message names the file.
    """
    path = _check_audio_path(path)
    try:
        data, sample_rate = sf.read(path, dtype="float32", always_2d=True)  # (T, C)
    except (sf.LibsndfileError, RuntimeError, ValueError, TypeError) as error:
        raise AudioError(f"{path}: cannot read audio ({error})") from error
    if data.shape[0] == 0:
        raise AudioError(f"{path}: the file has no samples")
    waveform = np.ascontiguousarray(data.T)
    check_finite(waveform, str(path))
    return waveform, int(sample_rate)


def save_audio(
    path: str | os.PathLike,
    waveform: np.ndarray | torch.Tensor,
    sample_rate: int,
    subtype: str = "PCM_24",
) -> None:
    """Write a waveform atomically: to a temporary file beside `path`, then renamed to `path`.

    Args:
        path: output file; its extension picks the format (`.wav`, `.flac`, ...).
        waveform (`np.ndarray` or `torch.Tensor` of shape `(channels, samples)`): float audio;
            PCM subtypes clip values outside [-1, 1] (see [`prevent_clipping`]).
        sample_rate (`int`): in Hz.
        subtype (`str`, *optional*, defaults to `"PCM_24"`): one of [`SUBTYPES`] that the format
            supports (FLAC has no `FLOAT`).
    """
    path = Path(path)
    file_format = AUDIO_FORMATS.get(path.suffix.lower())
    if file_format is None:
        raise ValueError(f"{path}: unsupported output format {path.suffix!r}")
    if not sf.check_format(file_format, subtype):
        raise ValueError(f"{path}: format {file_format} cannot store subtype {subtype}")
    data = waveform.detach().cpu().numpy() if isinstance(waveform, torch.Tensor) else waveform
    if data.ndim != 2:
        raise ValueError(f"{path}: waveform must be (channels, samples), got {data.shape}")
    try:
        write_via_temporary(
            path,
            lambda temporary: sf.write(temporary, data.T, sample_rate, subtype, format=file_format),
        )
    except sf.LibsndfileError as error:  # libsndfile's report of a failed write (disk full...)
        raise OSError(f"{path}: cannot write audio ({error})") from error


#: Peak kept below full scale when rescaling, so that PCM rounding never clips.
CLIP_LIMIT = 0.999


def prevent_clipping(
    stems: dict[str, np.ndarray], mode: str
) -> tuple[dict[str, np.ndarray], str | None]:
    """Keep stems within [-1, 1] for PCM files.

    Args:
        stems (`dict[str, np.ndarray]`): stem name -> `(channels, samples)` float waveform.
        mode (`str`): `"rescale"`: one gain for all the stems of a track (their balance and their
            sum are kept) bringing the loudest peak to [`CLIP_LIMIT`]; `"clamp"`: clip each
            sample; `"none"`: leave as is.

    Returns:
        `(stems, report)`: the processed stems and a sentence saying what was done, or `None`
        when nothing exceeded full scale.
    """
    if mode not in CLIP_MODES:
        raise ValueError(f"clip mode must be one of {sorted(CLIP_MODES)}, got {mode!r}")
    peak = max(float(np.abs(wave).max()) for wave in stems.values())
    if peak <= 1.0:
        return stems, None
    return CLIP_MODES[mode](stems, peak)


def clipping_report(mode: str, peak: float, clamped: int = 0) -> str:
    """The sentence saying what [`prevent_clipping`]'s `mode` did to stems whose peak exceeded full
    scale (`clamped`: samples clamped, for `"clamp"`)."""
    if mode == "rescale":
        return f"peak {peak:.3f}: all stems rescaled by {20 * math.log10(CLIP_LIMIT / peak):.2f} dB"
    if mode == "clamp":
        return f"peak {peak:.3f}: {clamped} sample(s) clamped to full scale"
    return f"peak {peak:.3f} exceeds full scale, left as is"


def _rescale(stems: dict[str, np.ndarray], peak: float) -> tuple[dict[str, np.ndarray], str]:
    gain = CLIP_LIMIT / peak
    rescaled = {name: wave * gain for name, wave in stems.items()}
    return rescaled, clipping_report("rescale", peak)


def _clamp(stems: dict[str, np.ndarray], peak: float) -> tuple[dict[str, np.ndarray], str]:
    clipped = sum(int((np.abs(wave) > 1.0).sum()) for wave in stems.values())
    clamped = {name: np.clip(wave, -1.0, 1.0) for name, wave in stems.items()}
    return clamped, clipping_report("clamp", peak, clipped)


def _unchanged(stems: dict[str, np.ndarray], peak: float) -> tuple[dict[str, np.ndarray], str]:
    return stems, clipping_report("none", peak)


CLIP_MODES = {"rescale": _rescale, "clamp": _clamp, "none": _unchanged}


def find_audio_files(inputs: list[str | os.PathLike]) -> list[tuple[Path, AudioError | None]]:
    """Expand files and folders into the audio files to process, in order, with input errors.

    A folder contributes its files with an [`AUDIO_FORMATS`] extension (sorted, not recursive); a
    file is taken as given (its format is checked when it is read).

    Returns:
        `(path, error)` pairs: `error` is `None` for a file to process, an [`AudioError`] for an
        input that is missing or a folder without audio files.
    """
    found: list[tuple[Path, AudioError | None]] = []
    for item in map(Path, inputs):
        if item.is_dir():
            files = sorted(
                path
                for path in item.iterdir()
                if path.is_file() and path.suffix.lower() in AUDIO_FORMATS
            )
            if not files:
                found.append((item, AudioError(f"{item}: folder holds no audio files")))
            found.extend((path, None) for path in files)
        elif item.exists():
            found.append((item, None))
        else:
            found.append((item, AudioError(f"{item}: no such file or folder")))
    return found


@contextlib.contextmanager
def staged_folder(
    folder: str | os.PathLike, file_names: list[str], *, overwrite: bool = False
) -> Iterator[Path]:
    """Write files into `folder` all or nothing, as one unit: yields a hidden staging folder beside
    `folder` to write `file_names` into.

    On success, the files of an existing `folder` that are not replaced are hard-linked (or copied)
    into the staging folder, which then takes the place of `folder` in one step
    ([`modeling_tfswa.fileio.publish_folder`]): a kill at any moment leaves the track's old files or
    its new ones, never a mix. A failure (a full disk...) removes the staging folder and raises
    `OSError` naming `folder`.

    Raises:
        FileExistsError: one of the files exists in `folder` and `overwrite` is `False` (checked
            before anything is written).
        ValueError: a file name is not a plain file name.
    """
    folder = Path(folder)
    targets = [child_path(folder, name) for name in file_names]
    existing = [str(path) for path in targets if path.exists()]
    if existing and not overwrite:
        raise FileExistsError(f"{', '.join(existing)} exist(s); use --force / overwrite=True")
    staging = staging_folder(folder.parent)
    try:
        yield staging
        if folder.is_dir():
            _carry_over(folder, staging, {path.name for path in targets})
        publish_folder(staging, folder)
    except OSError as error:
        shutil.rmtree(staging, ignore_errors=True)
        problem = os.strerror(error.errno) if error.errno else str(error)
        raise OSError(f"{folder}: stems not written: {problem}") from error
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise


def write_stems(
    folder: str | os.PathLike,
    stems: dict[str, np.ndarray],
    sample_rate: int,
    *,
    extension: str = ".wav",
    subtype: str = "PCM_24",
    overwrite: bool = False,
) -> list[Path]:
    """Write `folder/<stem><extension>` for every stem, all or nothing, as one unit (see
    [`staged_folder`]).

    Args:
        folder: the track's output folder.
        stems (`dict[str, np.ndarray]`): stem name -> `(channels, samples)` float waveform; the
            names must be plain file names (a name that would leave `folder` is refused).
        sample_rate (`int`): in Hz.
        extension (`str`, *optional*, defaults to `".wav"`): output format.
        subtype (`str`, *optional*, defaults to `"PCM_24"`): one of [`SUBTYPES`].
        overwrite (`bool`, *optional*, defaults to `False`): replace existing stem files.

    Returns:
        The written paths.

    Raises:
        FileExistsError: a stem file exists and `overwrite` is `False` (nothing is written).
        ValueError: a stem name is not a plain file name.
        OSError: the files could not be written (nothing is left behind).
    """
    names = {stem: f"{stem}{extension}" for stem in stems}
    with staged_folder(folder, list(names.values()), overwrite=overwrite) as staging:
        for stem, waveform in stems.items():
            save_audio(staging / names[stem], waveform, sample_rate, subtype)
    return [Path(folder) / name for name in names.values()]


def _carry_over(folder: Path, staging: Path, replaced: set[str]) -> None:
    """Hard-link (or copy) into `staging` the entries of `folder` that are not being replaced."""
    for entry in folder.iterdir():
        if entry.name in replaced:
            continue
        if entry.is_dir() and not entry.is_symlink():
            shutil.copytree(entry, staging / entry.name, symlinks=True)
            continue
        try:
            os.link(entry, staging / entry.name, follow_symlinks=False)
        except OSError:
            shutil.copy2(entry, staging / entry.name, follow_symlinks=False)


__all__ = [
    "AUDIO_FORMATS",
    "AudioError",
    "audio_info",
    "CLIP_LIMIT",
    "CLIP_MODES",
    "MAX_RESAMPLE_FILTER",
    "RESAMPLE_BETA",
    "RESAMPLE_ROLLOFF",
    "RESAMPLE_ZEROS",
    "SUBTYPES",
    "check_finite",
    "clipping_report",
    "find_audio_files",
    "fit_length",
    "load_audio",
    "match_channels",
    "prevent_clipping",
    "resample",
    "resample_filter",
    "restore_channels",
    "save_audio",
    "staged_folder",
    "to_float",
    "write_stems",
]
