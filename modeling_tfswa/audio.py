"""Audio at the edges of separation: file I/O, integer/float conversion, channels and resampling.

Everything inside the project is float32, channels-first `(channels, samples)` at the model's
sample rate; this module converts what users have (files, int16 arrays, mono, 48 kHz, ...) to
that and back. Files are read and written with soundfile (WAV, FLAC, MP3, OGG, AIFF); writes go to a
temporary name in the target folder and are renamed into place, so no half-written file is ever
left behind.

Resampling ([`resample`], also used by the pitch-shift augmentation) is a Kaiser-windowed sinc
polyphase filter written in torch: torchaudio has no build for the torch we run (its releases stop
at torch 2.11), and `benchmarks/library_choices.py` finds the libraries no better at this job. On
a sine sweep against the exact sweep at the new rate, ours keeps 103-106 dB SNR up to 20 kHz for
44.1 <-> 48 kHz, where `soxr` VHQ gives 82-104 dB (HQ: 78-93 dB) and `julius` 60-77 dB. soxr
rejects what lies above the new Nyquist frequency better (-154 dB vs our -96 dB, both inaudible)
at about the same speed (0.06-0.09 s of CPU per minute of stereo audio, ours 0.08), but works on
NumPy arrays on the CPU, while ours runs on the tensor's device.
"""

from __future__ import annotations

import math
import os
import shutil
from pathlib import Path

import numpy as np
import soundfile as sf
import torch

from .fileio import child_path, publish_folder, staging_folder, write_via_temporary

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


class AudioError(ValueError):
    """An audio input that cannot be separated (unreadable, empty, non-finite, wrong shape...)."""


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


def _rescale(stems: dict[str, np.ndarray], peak: float) -> tuple[dict[str, np.ndarray], str]:
    gain = CLIP_LIMIT / peak
    rescaled = {name: wave * gain for name, wave in stems.items()}
    return rescaled, f"peak {peak:.3f}: all stems rescaled by {20 * math.log10(gain):.2f} dB"


def _clamp(stems: dict[str, np.ndarray], peak: float) -> tuple[dict[str, np.ndarray], str]:
    clipped = sum(int((np.abs(wave) > 1.0).sum()) for wave in stems.values())
    clamped = {name: np.clip(wave, -1.0, 1.0) for name, wave in stems.items()}
    return clamped, f"peak {peak:.3f}: {clipped} sample(s) clamped to full scale"


def _unchanged(stems: dict[str, np.ndarray], peak: float) -> tuple[dict[str, np.ndarray], str]:
    return stems, f"peak {peak:.3f} exceeds full scale, left as is"


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


def write_stems(
    folder: str | os.PathLike,
    stems: dict[str, np.ndarray],
    sample_rate: int,
    *,
    extension: str = ".wav",
    subtype: str = "PCM_24",
    overwrite: bool = False,
) -> list[Path]:
    """Write `folder/<stem><extension>` for every stem, all or nothing, as one unit.

    The stems are written into a hidden staging folder beside `folder` (with hard links to, or
    copies of, the files of an existing `folder` that are not replaced), which then takes the
    place of `folder` in one step ([`modeling_tfswa.fileio.publish_folder`]): a kill at any moment
    leaves the track's old stems or its new ones, never a mix. A failure (a full disk...) removes
    the staging folder and raises `OSError` naming the track folder.

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
    folder = Path(folder)
    targets = {stem: child_path(folder, f"{stem}{extension}") for stem in stems}
    existing = [str(path) for path in targets.values() if path.exists()]
    if existing and not overwrite:
        raise FileExistsError(f"{', '.join(existing)} exist(s); use --force / overwrite=True")
    staging = staging_folder(folder.parent)
    try:
        for stem, waveform in stems.items():
            save_audio(staging / targets[stem].name, waveform, sample_rate, subtype)
        if folder.is_dir():
            _carry_over(folder, staging, {path.name for path in targets.values()})
        publish_folder(staging, folder)
    except OSError as error:
        shutil.rmtree(staging, ignore_errors=True)
        problem = os.strerror(error.errno) if error.errno else str(error)
        raise OSError(f"{folder}: stems not written: {problem}") from error
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return list(targets.values())


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
