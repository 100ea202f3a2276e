"""The `music-source-separation` task of `transformers.pipeline`, saved with every TFSWA-UNet.

    >>> from transformers import pipeline
    >>> separator = pipeline("music-source-separation", model="path/or/hub-id", trust_remote_code=True)
    >>> stems = separator("song.flac")  # [{"label": "vocals", "audio": (channels, samples), ...}, ...]

`TFSWAUNet.save_pretrained` writes this module (and `separation_core`, the overlap-add it runs)
beside the model's code and names it in `config.json`'s `custom_pipelines`, so the call above works
in a process that never installed this project. Like the model files, it imports nothing else of
ours.
"""

from __future__ import annotations

import os

import numpy as np
import torch
from transformers import Pipeline

from .separation_core import (
    DEFAULT_BATCH_SIZE,
    DEFAULT_SHIFTS,
    AudioError,
    apply_model,
    check_finite,
    fit_length,
    match_channels,
    resample,
    resolve_device,
    resolve_dtype,
    restore_channels,
    to_float,
)

#: The task name `pipeline()` takes.
PIPELINE_TASK = "music-source-separation"


class MusicSourceSeparationPipeline(Pipeline):
    """Separate songs into stems with a TFSWA-UNet (or any model with its interface).

    Inputs, one or a list of them (like the audio pipelines):
    - a file path (WAV, FLAC, MP3, OGG, AIFF, read with soundfile), at any sample rate;
    - a 1-D `(samples,)` or 2-D `(channels, samples)` array or tensor at the model's sample rate;
    - `{"raw": array, "sampling_rate": int}` (or `"array"` for `"raw"`) at any rate, resampled.
    Integer PCM is scaled to [-1, 1); mono is separated by the model's channels and returned mono.

    Call parameters (defaults from the model's config): `segment_seconds`, `overlap`, `shifts`
    (random-shift test-time passes), `segments_per_batch` (segments per forward call), `dtype`
    (`"float32"`, `"bfloat16"`, `"float16"`: autocast precision; the STFT stays float32).
    `device="auto"` (the default) runs on CUDA, else Apple MPS, else the CPU.

    Returns, per input, a list `[{"label": stem, "audio": np.ndarray (channels, samples) float32,
    "sampling_rate": int}, ...]` in `config.stems` order, as long as the input, at the input's rate
    and channel count (1-D inputs give 1-D stems).
    """

    _load_processor = False
    _load_image_processor = False
    _load_feature_extractor = False
    _load_tokenizer = False

    def __init__(self, *args, device=None, **kwargs):
        if device is None or device == "auto" or isinstance(device, str):
            device = resolve_device(device)  # one line for a device this machine lacks
        super().__init__(*args, device=device, **kwargs)

    def _sanitize_parameters(
        self,
        segment_seconds=None,
        overlap=None,
        shifts=None,
        segments_per_batch=None,
        dtype=None,
        **kwargs,
    ):
        if kwargs:
            raise TypeError(f"unknown argument(s) {sorted(kwargs)} for {PIPELINE_TASK}")
        forward = {
            "segment_seconds": segment_seconds,
            "overlap": overlap,
            "shifts": shifts if shifts is not None else DEFAULT_SHIFTS,
            "batch_size": DEFAULT_BATCH_SIZE if segments_per_batch is None else segments_per_batch,
            "dtype": resolve_dtype(dtype),
        }
        return {}, forward, {}

    def preprocess(self, inputs):
        waveform, rate, name = _read(inputs, self.model.config.sample_rate)
        squeeze = waveform.ndim == 1
        if squeeze:
            waveform = waveform[None]
        if waveform.ndim != 2 or waveform.shape[-1] == 0:
            raise AudioError(
                f"{name}: expected (channels, samples) or (samples,) audio, got "
                f"{tuple(waveform.shape)}"
            )
        check_finite(waveform, name)
        config = self.model.config
        try:
            mixture = match_channels(waveform, config.audio_channels)
        except AudioError as error:
            raise AudioError(f"{name}: {error}") from error
        mixture = resample(mixture, rate, config.sample_rate).contiguous()
        # numpy, so that Pipeline.forward leaves the whole track in CPU memory (segments go to the
        # model's device one batch at a time).
        return {
            "mixture": mixture.numpy(),
            "channels": waveform.shape[0],
            "length": waveform.shape[-1],
            "rate": rate,
            "squeeze": squeeze,
        }

    def _forward(self, model_inputs, **options):
        stems = apply_model(
            self.model, torch.from_numpy(model_inputs["mixture"]), device=self.device, **options
        )
        return {**model_inputs, "stems": stems}

    def postprocess(self, model_outputs):
        config = self.model.config
        rate = model_outputs["rate"]
        stems = resample(model_outputs["stems"], config.sample_rate, rate)
        stems = restore_channels(
            fit_length(stems, model_outputs["length"]), model_outputs["channels"]
        )
        if model_outputs["squeeze"]:
            stems = stems[:, 0]
        return [
            {"label": label, "audio": stem.numpy().astype(np.float32), "sampling_rate": rate}
            for label, stem in zip(config.stems, stems)
        ]


def _read(inputs, model_rate: int) -> tuple[torch.Tensor, int, str]:
    """`(float32 waveform, sample rate, name for errors)` of one pipeline input."""
    if isinstance(inputs, (str, os.PathLike)):
        import soundfile as sf

        if not os.path.isfile(inputs):
            raise AudioError(f"{inputs}: no such file")
        try:
            data, rate = sf.read(inputs, dtype="float32", always_2d=True)  # (T, C)
        except (sf.LibsndfileError, RuntimeError, ValueError, TypeError) as error:
            raise AudioError(f"{inputs}: cannot read audio ({error})") from error
        if data.shape[0] == 0:
            raise AudioError(f"{inputs}: the file has no samples")
        return torch.from_numpy(np.ascontiguousarray(data.T)), int(rate), str(inputs)
    if isinstance(inputs, dict):
        unknown = sorted(set(inputs) - {"raw", "array", "sampling_rate", "path"})
        array = inputs.get("raw", inputs.get("array"))
        rate = inputs.get("sampling_rate")
        if unknown or array is None or rate is None:
            raise ValueError(
                'a dict input needs "raw" (or "array") and "sampling_rate"'
                + (f"; unknown keys {unknown}" if unknown else "")
            )
        if not isinstance(rate, (int, np.integer)) or rate <= 0:
            raise ValueError(f"sampling_rate must be a positive integer, got {rate!r}")
        return to_float(array), int(rate), "input"
    if isinstance(inputs, (np.ndarray, torch.Tensor)):
        return to_float(inputs), model_rate, "input"
    raise TypeError(
        f"{PIPELINE_TASK} takes a file path, an array or a dict with raw/sampling_rate, "
        f"got {type(inputs).__name__}"
    )


def custom_pipelines() -> dict:
    """`config.custom_pipelines`: how `pipeline()` finds this module in a saved folder."""
    return {
        PIPELINE_TASK: {
            "impl": f"{__name__.split('.')[-1]}.{MusicSourceSeparationPipeline.__name__}",
            "pt": ["AutoModel"],
            "type": "audio",
        }
    }


__all__ = ["PIPELINE_TASK", "MusicSourceSeparationPipeline", "custom_pipelines"]
