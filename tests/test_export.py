"""ONNX and TorchScript exports reproduce PyTorch at other batch sizes and lengths."""

import json

import numpy as np
import pytest
import torch
from conftest import make_tiny_config

from modeling_tfswa import TFSWAUNet
from modeling_tfswa.cli.export import main as export_main
from modeling_tfswa.export import (
    ExportVerificationError,
    example_frames,
    export_model,
    mixture_spectrogram,
)


def random_model(seed=0, **overrides) -> TFSWAUNet:
    """Random weights everywhere: the default init zeroes the mask head, so every mask would be
    the same constant and a broken export could still match."""
    model = TFSWAUNet(make_tiny_config(**overrides)).eval()
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for parameter in model.parameters():
            parameter.copy_(torch.randn(parameter.shape, generator=generator) * 0.1)
    return model


def test_example_frames_need_padding_at_every_stage():
    config = make_tiny_config(
        patch_size=[2, 4],
        dims=[8, 16, 16],
        depths=[1, 1, 1],
        decoder_depths=[1, 1],
        num_heads=[1, 1, 1],
        tf_attention_stages=[False, False, True],
    )
    frames = example_frames(config, seconds=1.0)
    assert abs(frames - 44100 / 64) < 2 * 2 * 4 * 4 * 2
    tokens = -(-frames // 2)
    assert frames % 2 == 1
    for _ in range(config.num_stages):
        assert tokens % 2 == 1 and tokens % 4 != 0
        tokens = -(-tokens // 2)
    with pytest.raises(ValueError, match="seconds"):
        example_frames(config, 0)


@pytest.mark.parametrize(
    "layout",
    [
        {"frequency_bands": None},
        {"frequency_bands": [[16, 2], [64, 4], [130, 8]]},
        {"mixture_consistency": False},
        {"log_power_input": True},
        {"mlp_conv_kernel_size": 3},
    ],
)
def test_torchscript_export_runs_the_whole_model(tmp_path, layout):
    model = random_model(**layout)
    result = export_model(model, "torchscript", tmp_path / "model.pt", seconds=0.3)
    assert result.max_abs_diff < 1e-5 and result.max_abs_output > 0.01
    assert len(result.checked_shapes) == 3
    extra = {"config.json": "", "metadata.json": ""}
    loaded = torch.jit.load(str(tmp_path / "model.pt"), _extra_files=extra)
    assert json.loads(extra["config.json"])["stems"] == ["vocals", "accompaniment"]
    assert json.loads(json.loads(extra["metadata.json"])["stems"]) == ["vocals", "accompaniment"]
    mixture = torch.randn(2, 2, 5000)
    with torch.no_grad():
        expected = model(mixture).waveforms
    torch.testing.assert_close(loaded(mixture), expected, atol=1e-5, rtol=0)
    assert [p.name for p in tmp_path.iterdir()] == ["model.pt"]


def test_torchscript_export_of_a_model_whose_inverse_stft_runs_in_chunks(tmp_path, monkeypatch):
    # On the CPU the inverse STFT splits its signals into chunks by size (at n_fft 2048 every
    # default-size model does); a trace must not keep the example's number of chunks.
    import modeling_tfswa.spectral

    monkeypatch.setattr(modeling_tfswa.spectral, "ISTFT_CHUNK_BYTES", 1)  # one signal per chunk
    model = random_model()
    result = export_model(model, "torchscript", tmp_path / "model.pt", seconds=0.3)
    assert result.max_abs_diff < 1e-5  # checked on batches of 2, 1 and 3
    mixture = torch.randn(1, 2, 3000)
    with torch.no_grad():
        expected = model(mixture).waveforms
    torch.testing.assert_close(torch.jit.load(str(tmp_path / "model.pt"))(mixture), expected)


def test_failed_verification_leaves_no_file(tmp_path):
    with pytest.raises(ExportVerificationError, match="differs from PyTorch"):
        export_model(random_model(), "torchscript", tmp_path / "model.pt", seconds=0.1, atol=-1)
    assert list(tmp_path.iterdir()) == []
    with pytest.raises(ValueError, match="format must be one of"):
        export_model(random_model(), "tflite", tmp_path / "model.tflite")
    with pytest.raises(ValueError, match="opset must be at least 18"):
        export_model(random_model(), "onnx", tmp_path / "model.onnx", opset=17)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    "layout",
    [{"log_power_input": False}, {"log_power_input": True, "mlp_conv_kernel_size": 3}],
)
def test_onnx_export_of_the_mask_estimator_matches_onnxruntime(tmp_path, layout):
    onnx = pytest.importorskip("onnx")
    onnxruntime = pytest.importorskip("onnxruntime")
    pytest.importorskip("onnxscript")
    # one block per stage: the exporter's cost grows with the blocks
    model = random_model(seed=1, depths=[1, 1], **layout)
    path = tmp_path / "estimator.onnx"
    result = export_model(model, "onnx", path, seconds=0.2)
    assert result.max_abs_diff < 1e-5 and result.max_abs_output > 0.01
    print("ONNX max abs diff", result.max_abs_diff)
    # Metadata a runtime needs, and a check of our own at a length the exporter never saw.
    metadata = {p.key: p.value for p in onnx.load(str(path)).metadata_props}
    assert json.loads(metadata["stems"]) == ["vocals", "accompaniment"]
    assert int(metadata["n_fft"]) == 256 and int(metadata["hop_length"]) == 64
    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    spectrogram = mixture_spectrogram(model, torch.randn(4, 2, 64 * 77))
    (masks,) = session.run(None, {"spectrogram": spectrogram.numpy()})
    with torch.no_grad():
        expected = model.mask_estimator(spectrogram).numpy()
    assert masks.shape == (4, 2, 2, 129, 78, 2)
    np.testing.assert_allclose(masks, expected, atol=1e-5, rtol=0)


def test_export_cli(tmp_path, capsys):
    model = random_model()
    model.save_pretrained(tmp_path / "model")
    out = tmp_path / "model.pt"
    argv = ["--model", str(tmp_path / "model"), "--format", "torchscript", "--out", str(out)]
    assert export_main([*argv, "--seconds", "0.2"]) == 0
    report = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert report["format"] == "torchscript" and report["max_abs_diff"] < 1e-5
    assert out.exists()
    # No silent overwrite, and --opset only makes sense for ONNX.
    assert export_main(argv) == 1
    assert "--force" in capsys.readouterr().err
    assert export_main([*argv, "--force", "--opset", "18"]) == 2
    capsys.readouterr()
    missing = ["--model", str(tmp_path / "nope"), "--format", "onnx", "--out", str(out) + ".onnx"]
    assert export_main(missing) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(f"error: cannot load model '{tmp_path / 'nope'}'")
