"""Export TFSWA-UNet for deployment, each export verified against PyTorch.

- ONNX of the mask estimator (`model.mask_estimator`): mixture spectrogram in, masks out, dynamic
  batch and time axes. The STFT, the mask application and the inverse STFT stay with the caller
  (every runtime has an STFT; ONNX's is awkward), see the README for the few lines they take.
  Exported with the `torch.export`-based exporter (`dynamo=True`, needs `onnxscript`); the older
  TorchScript-based exporter writes graphs onnxruntime rejects for this model.
- TorchScript of the whole model (STFT and inverse STFT included): waveform mixture in, one waveform
  per stem out, any batch size and length; loads with `torch.jit.load` without this package.

Both exporters trace the model on one example input. Shapes enter the graph symbolically, but a
tracer may still bake in relations that merely happen to hold for the example (for instance that no
padding was needed), so the example's number of frames is chosen to need padding at every U-Net
stage, and the export is then checked against PyTorch at several other batch sizes and lengths,
including ones that need no padding at all. An export that disagrees raises
[`ExportVerificationError`] and leaves no file behind.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from dataclasses import asdict, dataclass, field

import torch
from torch import nn

from .fileio import write_via_temporary
from .modeling_tfswa import TFSWAUNet

#: Oldest ONNX opset the export supports: the torch.export-based exporter writes opset-18 functions,
#: and onnx's down-conversion fails on this model's reductions (measured with opset 17).
MIN_ONNX_OPSET = 18


class ExportVerificationError(RuntimeError):
    """The exported program's outputs differ from PyTorch's by more than the tolerance."""


@dataclass
class ExportResult:
    """What an export wrote and how closely it reproduces PyTorch.

    Args:
        path (`str`): the exported file.
        format (`str`): `"onnx"` or `"torchscript"`.
        max_abs_diff (`float`): largest absolute difference between the export's outputs and
            PyTorch's over all checked inputs.
        max_abs_output (`float`): largest absolute PyTorch output over the checked inputs (scale of
            `max_abs_diff`).
        checked_shapes (`list[list[int]]`): input shapes of the check.
        input_name / output_name (`str`): names of the graph's input and output.
    """

    path: str
    format: str
    max_abs_diff: float
    max_abs_output: float
    checked_shapes: list[list[int]] = field(default_factory=list)
    input_name: str = ""
    output_name: str = ""

    def to_dict(self) -> dict:
        return asdict(self)


# ----------------------------------------------------------------------------------------------
# Example inputs
# ----------------------------------------------------------------------------------------------
def _frame_period(config) -> int:
    """Frames after which the U-Net's padding pattern repeats: patch time size x 2 per merge x the
    attention window's time size."""
    return config.patch_size[0] * 2 ** (config.num_stages - 1) * config.window_size[0]


def example_frames(config, seconds: float) -> int:
    """A number of STFT frames close to `seconds` of audio that needs padding at every stage.

    With `t_0 = 2 P m / p_t + 1` tokens at the first stage (`P` = [`_frame_period`]), every stage
    has an odd token count that is 1 modulo the window, so patch embedding, windowing and patch
    merging all pad: the tracer sees the general path.
    """
    if seconds <= 0:
        raise ValueError(f"seconds must be positive, got {seconds}")
    pt = config.patch_size[0]
    step = 2 * _frame_period(config)
    frames = seconds * config.sample_rate / config.hop_length + 1
    multiples = max(1, round(frames / step))
    tokens = multiples * step // pt + 1
    return pt * (tokens - 1) + 1


def example_samples(config, seconds: float) -> int:
    """A waveform length whose STFT has [`example_frames`] frames (and is no multiple of the hop)."""
    frames = example_frames(config, seconds)
    return (frames - 1) * config.hop_length + config.hop_length // 2 + 1


def mixture_spectrogram(model: TFSWAUNet, mixture: torch.Tensor) -> torch.Tensor:
    """The mask estimator's input for a mixture, as `TFSWAUNet.forward` builds it.

    Args:
        mixture (`torch.Tensor` of shape `(batch, channels, samples)`).

    Returns:
        `torch.Tensor` of shape `(batch, 2 * channels, freq_bins, frames)`, float32, ordered
        `[ch0.real, ch0.imag, ch1.real, ...]`.
    """
    return model.spectrogram_features(model.spectral.stft(mixture))


def _check_inputs(model: TFSWAUNet, seconds: float) -> list[torch.Tensor]:
    """Mixtures `(batch, channels, samples)` for the checks: the example, a length needing no
    padding at all, a short one, and other batch sizes (seeded noise: deterministic)."""
    config = model.config
    generator = torch.Generator().manual_seed(0)
    period = _frame_period(config)
    round_frames = period * max(1, round(example_frames(config, seconds) / period))
    lengths = [
        (2, example_samples(config, seconds)),
        (1, (round_frames - 1) * config.hop_length),
        (3, 5 * config.hop_length + 7),
    ]
    return [
        torch.randn(batch, config.audio_channels, length, generator=generator)
        for batch, length in lengths
    ]


# ----------------------------------------------------------------------------------------------
# Writing files
# ----------------------------------------------------------------------------------------------


def model_metadata(model: TFSWAUNet) -> dict[str, str]:
    """What a runtime needs besides the graph: stems, rates and STFT parameters (JSON strings)."""
    config = model.config
    return {
        "stems": json.dumps(list(config.stems)),
        "audio_channels": str(config.audio_channels),
        "sample_rate": str(config.sample_rate),
        "n_fft": str(config.n_fft),
        "hop_length": str(config.hop_length),
        "window": "hann",
        "mask_type": config.mask_type,
        "mixture_consistency": json.dumps(config.mixture_consistency),
        "config": config.to_json_string(use_diff=False),
    }


def _compare(name: str, results: list[tuple[torch.Tensor, torch.Tensor]], atol: float):
    max_diff = max((ours - ref).abs().max().item() for ours, ref in results)
    max_out = max(ref.abs().max().item() for _, ref in results)
    if not max_diff <= atol:  # also catches NaN
        raise ExportVerificationError(
            f"{name} export differs from PyTorch by up to {max_diff:.3g} (tolerance {atol:.3g}, "
            f"outputs up to {max_out:.3g})"
        )
    return max_diff, max_out


# ----------------------------------------------------------------------------------------------
# ONNX
# ----------------------------------------------------------------------------------------------
def export_onnx(
    model: TFSWAUNet,
    path: str | os.PathLike,
    *,
    opset: int | None = None,
    seconds: float = 4.0,
    atol: float = 1e-4,
) -> ExportResult:
    """Export `model.mask_estimator` to ONNX and check it with onnxruntime.

    The graph's input `spectrogram` is float32 `(batch, 2 * channels, freq_bins, frames)` (see
    [`mixture_spectrogram`]); its output `masks` is float32 `(batch, stems, channels, freq_bins,
    frames, 2)` for complex masks (real and imaginary part last) or `(batch, stems, channels,
    freq_bins, frames)` logits for ratio masks. Batch and frames are dynamic. The model's stems,
    sample rate and STFT parameters are stored as metadata properties ([`model_metadata`]).

    Args:
        model ([`TFSWAUNet`]): the model; moved to CPU float32 and eval mode, in place.
        path (`str` or `os.PathLike`): the `.onnx` file to write.
        opset (`int`, *optional*): ONNX opset, at least [`MIN_ONNX_OPSET`]; the exporter's
            default (20 with torch 2.13) when `None`.
        seconds (`float`): length of the example input.
        atol (`float`): largest accepted absolute difference from PyTorch.

    Returns:
        [`ExportResult`].
    """
    import onnx
    import onnxruntime

    if opset is not None and opset < MIN_ONNX_OPSET:
        raise ValueError(f"opset must be at least {MIN_ONNX_OPSET}, got {opset}")
    model = model.to("cpu", torch.float32).eval()
    estimator = model.mask_estimator
    generator = torch.Generator().manual_seed(0)
    example = torch.randn(
        2, model.config.audio_channels, example_samples(model.config, seconds), generator=generator
    )
    dynamic = torch.export.Dim.DYNAMIC

    def write(temporary: str) -> tuple[float, float, list[list[int]]]:
        with torch.no_grad():
            program = torch.onnx.export(
                estimator,
                (mixture_spectrogram(model, example),),
                dynamo=True,
                input_names=["spectrogram"],
                output_names=["masks"],
                dynamic_shapes=({0: dynamic, 3: dynamic},),
                opset_version=opset,
                external_data=False,
                verbose=False,
            )
        program.model.metadata_props.update(model_metadata(model))
        program.save(temporary)
        onnx.checker.check_model(temporary)
        session = onnxruntime.InferenceSession(temporary, providers=["CPUExecutionProvider"])
        results, shapes = [], []
        for mixture in _check_inputs(model, seconds):
            spectrogram = mixture_spectrogram(model, mixture)
            with torch.no_grad():
                reference = estimator(spectrogram)
            (ours,) = session.run(["masks"], {"spectrogram": spectrogram.numpy()})
            results.append((torch.from_numpy(ours), reference))
            shapes.append(list(spectrogram.shape))
        return (*_compare("ONNX", results, atol), shapes)

    max_diff, max_out, shapes = write_via_temporary(path, write)
    return ExportResult(str(path), "onnx", max_diff, max_out, shapes, "spectrogram", "masks")


# ----------------------------------------------------------------------------------------------
# TorchScript
# ----------------------------------------------------------------------------------------------
class TFSWAWaveformSeparator(nn.Module):
    """The whole model as a plain tensor function, for tracing: `(batch, channels, samples)` ->
    `(batch, stems, channels, samples)`."""

    def __init__(self, model: TFSWAUNet):
        super().__init__()
        self.model = model

    def forward(self, mixture: torch.Tensor) -> torch.Tensor:
        return self.model(mixture, return_dict=True).waveforms


def export_torchscript(
    model: TFSWAUNet,
    path: str | os.PathLike,
    *,
    seconds: float = 4.0,
    atol: float = 1e-4,
) -> ExportResult:
    """Trace the whole model (STFT to inverse STFT) to TorchScript and check the saved file.

    The module maps a float32 mixture `(batch, channels, samples)` at `config.sample_rate` to the
    stems `(batch, stems, channels, samples)`; any batch size and length. The file carries
    `config.json` and `metadata.json` ([`model_metadata`]) as extra files
    (`torch.jit.load(path, _extra_files={"config.json": ""})`).

    Args:
        model ([`TFSWAUNet`]): the model; moved to CPU float32 and eval mode, in place.
        path (`str` or `os.PathLike`): the `.pt` file to write.
        seconds (`float`): length of the example input.
        atol (`float`): largest accepted absolute difference from PyTorch.

    Returns:
        [`ExportResult`].
    """
    model = model.to("cpu", torch.float32).eval()
    wrapper = TFSWAWaveformSeparator(model).eval()
    generator = torch.Generator().manual_seed(0)
    example = torch.randn(
        2, model.config.audio_channels, example_samples(model.config, seconds), generator=generator
    )
    extra_files = {
        "config.json": model.config.to_json_string(use_diff=False),
        "metadata.json": json.dumps(model_metadata(model)),
    }

    def write(temporary: str) -> tuple[float, float, list[list[int]]]:
        with torch.no_grad():
            traced = torch.jit.trace(wrapper, (example,), check_trace=False)
        torch.jit.save(traced, temporary, _extra_files=extra_files)
        loaded = torch.jit.load(temporary, map_location="cpu")
        results, shapes = [], []
        for mixture in _check_inputs(model, seconds):
            with torch.no_grad():
                results.append((loaded(mixture), wrapper(mixture)))
            shapes.append(list(mixture.shape))
        return (*_compare("TorchScript", results, atol), shapes)

    max_diff, max_out, shapes = write_via_temporary(path, write)
    return ExportResult(str(path), "torchscript", max_diff, max_out, shapes, "mixture", "stems")


#: Export functions by format name (the CLI's `--format`).
EXPORTERS: dict[str, Callable[..., ExportResult]] = {
    "onnx": export_onnx,
    "torchscript": export_torchscript,
}


def export_model(model: TFSWAUNet, format: str, path: str | os.PathLike, **kwargs) -> ExportResult:
    """Export with the exporter of `format` (a key of [`EXPORTERS`]); kwargs go to it."""
    if format not in EXPORTERS:
        raise ValueError(f"format must be one of {sorted(EXPORTERS)}, got {format!r}")
    return EXPORTERS[format](model, path, **kwargs)


__all__ = [
    "EXPORTERS",
    "MIN_ONNX_OPSET",
    "ExportResult",
    "ExportVerificationError",
    "TFSWAWaveformSeparator",
    "example_frames",
    "example_samples",
    "export_model",
    "export_onnx",
    "export_torchscript",
    "mixture_spectrogram",
    "model_metadata",
]
