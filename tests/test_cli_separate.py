"""`tfswa-separate` end to end with a tiny TFSWA-UNet saved by `save_pretrained`."""

import numpy as np
import pytest
import soundfile as sf
import torch
from conftest import make_tiny_config

from modeling_tfswa import TFSWAUNet
from modeling_tfswa.cli.separate import main


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    torch.manual_seed(0)
    folder = tmp_path_factory.mktemp("model")
    TFSWAUNet(make_tiny_config(sample_rate=44100)).save_pretrained(folder)
    return folder


@pytest.fixture(scope="module")
def loud_model_dir(tmp_path_factory):
    """A tiny model whose complex masks are all 2.5: every stem is 2.5 x the mixture."""
    config = make_tiny_config(sample_rate=44100)
    model = TFSWAUNet(config)
    (head,) = model.mask_estimator.heads
    mask = torch.tensor([2.5, 0.0]).repeat(config.num_stems * config.audio_channels)
    with torch.no_grad():
        head.weight.zero_()
        head.bias.copy_(mask.repeat(head.out_features // mask.numel()))
    folder = tmp_path_factory.mktemp("loud-model")
    model.save_pretrained(folder)
    return folder


def write(path, frames, channels, sample_rate, **kwargs):
    data = np.random.default_rng(len(str(path))).uniform(-0.3, 0.3, (frames, channels))
    sf.write(path, data.astype(np.float32), sample_rate, **kwargs)
    return path


def run(model_dir, out, *args):
    return main([*map(str, args), "--model", str(model_dir), "--out", str(out), "--no-progress"])


def files_under(folder):
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file())


def test_wav_flac_mono_and_48k_inputs(tmp_path, model_dir):
    inputs = tmp_path / "in"
    inputs.mkdir()
    write(inputs / "stereo.wav", 13000, 2, 44100)
    write(inputs / "mono.flac", 9000, 1, 44100, subtype="PCM_16")
    write(inputs / "hi-res.wav", 16000, 2, 48000)
    out = tmp_path / "out"
    assert run(model_dir, out, inputs, "--stems", "vocals", "--format", "flac") == 0
    assert files_under(out) == ["hi-res/vocals.flac", "mono/vocals.flac", "stereo/vocals.flac"]
    for track, (frames, channels, rate) in {
        "stereo": (13000, 2, 44100),
        "mono": (9000, 1, 44100),
        "hi-res": (16000, 2, 48000),
    }.items():
        info = sf.info(out / track / "vocals.flac")
        assert (info.frames, info.channels, info.samplerate) == (frames, channels, rate)
        assert info.subtype == "PCM_24"


def test_all_stems_and_two_stems(tmp_path, model_dir):
    song = write(tmp_path / "song.wav", 10000, 2, 44100)
    assert run(model_dir, tmp_path / "all", song, "--subtype", "PCM_16", "--segment", "0.1") == 0
    assert files_under(tmp_path / "all") == ["song/accompaniment.wav", "song/vocals.wav"]
    assert sf.info(tmp_path / "all" / "song" / "vocals.wav").subtype == "PCM_16"
    out = tmp_path / "two"
    assert (
        run(model_dir, out, song, "--two-stems", "vocals", "--subtype", "FLOAT", "--shifts", "1")
        == 0
    )
    assert files_under(out) == ["song/no_vocals.wav", "song/vocals.wav"]
    vocals, _ = sf.read(out / "song" / "vocals.wav")
    rest, _ = sf.read(out / "song" / "no_vocals.wav")
    mixture, _ = sf.read(song)
    assert np.abs(vocals + rest - mixture).max() < 1e-6  # the complement is mixture - stem


def test_existing_outputs_need_force(tmp_path, model_dir, capsys):
    song = write(tmp_path / "song.wav", 8000, 2, 44100)
    out = tmp_path / "out"
    assert run(model_dir, out, song) == 0
    target = out / "song" / "vocals.wav"
    target.write_bytes(b"precious")
    assert run(model_dir, out, song) == 1
    assert "--force" in capsys.readouterr().err
    assert target.read_bytes() == b"precious"
    assert run(model_dir, out, song, "--force") == 0
    assert sf.info(target).frames == 8000
    assert files_under(out) == ["song/accompaniment.wav", "song/vocals.wav"]


def test_bad_inputs_fail_alone_and_leave_nothing(tmp_path, model_dir, capsys):
    good = write(tmp_path / "good.wav", 6000, 2, 44100)
    empty = tmp_path / "empty.wav"
    empty.write_bytes(b"")
    zero = write(tmp_path / "zero.wav", 0, 2, 44100)
    nan = tmp_path / "nan.wav"
    sf.write(nan, np.array([[0.0, np.nan]] * 100, dtype=np.float32), 44100, subtype="FLOAT")
    text = tmp_path / "notes.txt"
    text.write_text("la la la")
    surround = write(tmp_path / "surround.wav", 1000, 6, 44100)
    missing = tmp_path / "missing.flac"
    out = tmp_path / "out"
    code = run(model_dir, out, empty, zero, good, nan, text, surround, missing)
    assert code == 1
    assert files_under(out) == ["good/accompaniment.wav", "good/vocals.wav"]
    error = capsys.readouterr().err
    assert "6 of 7 input(s) failed" in error
    for path, reason in [
        (empty, "cannot read"),
        (zero, "no samples"),
        (nan, "NaN"),
        (text, "unsupported format"),
        (surround, "6-channel"),
        (missing, "no such file"),
    ]:
        assert f"{path}: " in error and reason in error


def test_clipping_is_handled_and_reported(tmp_path, loud_model_dir, capsys):
    loud = tmp_path / "loud.wav"
    sf.write(loud, np.full((4000, 2), 0.5, dtype=np.float32), 44100, subtype="FLOAT")

    def peaks(out, *args):
        assert run(loud_model_dir, tmp_path / out, loud, *args) == 0
        folder = tmp_path / out / "loud"
        return {p.stem: np.abs(sf.read(p)[0]).max() for p in sorted(folder.iterdir())}

    assert peaks("float", "--subtype", "FLOAT") == pytest.approx(
        {"accompaniment": 1.25, "vocals": 1.25}, abs=1e-4
    )  # FLOAT keeps values beyond full scale unless asked
    assert "peak 1.250 exceeds full scale, left as is" in capsys.readouterr().out
    assert peaks("clamp", "--subtype", "FLOAT", "--clip", "clamp") == {
        "accompaniment": 1.0,
        "vocals": 1.0,
    }
    assert "16000 sample(s) clamped" in capsys.readouterr().out
    assert peaks("rescale") == pytest.approx({"accompaniment": 0.999, "vocals": 0.999}, abs=1e-4)
    assert "all stems rescaled by -1.95 dB" in capsys.readouterr().out


def test_usage_errors(tmp_path, model_dir, capsys):
    song = write(tmp_path / "song.wav", 1000, 2, 44100)
    for args in (
        ["--format", "flac", "--subtype", "FLOAT"],
        ["--stems", "drums"],
        ["--overlap", "1.5"],
        ["--stems", "vocals", "--two-stems", "vocals"],
    ):
        with pytest.raises(SystemExit) as exit_info:
            run(model_dir, tmp_path / "out", song, *args)
        assert exit_info.value.code == 2
    assert main([str(song), "--model", str(tmp_path / "no-model"), "--out", str(tmp_path)]) == 2
    assert "cannot load model" in capsys.readouterr().err
    not_ours = tmp_path / "bert"
    not_ours.mkdir()
    (not_ours / "config.json").write_text('{"model_type": "bert"}')
    assert main([str(song), "--model", str(not_ours), "--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(
        f"error: cannot load model '{not_ours}': not a TFSWA"
    )
    assert not (tmp_path / "out").exists()
