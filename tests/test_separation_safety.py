"""Hostile or unlucky `tfswa-separate` runs: crafted stem names, odd file names, --force swaps,
a full disk, stale staging folders, file modes, broken model files."""

import errno
import json
import os
import shutil
import stat

import numpy as np
import pytest
import soundfile as sf
import torch
from conftest import make_tiny_config

from data_scripts.fileio import (
    TEMPORARY_PREFIX,
    child_path,
    publish_folder,
    safe_name,
    staging_folder,
)
from modeling_tfswa import TFSWAUNet
from modeling_tfswa.audio import write_stems
from modeling_tfswa.cli.separate import main


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    torch.manual_seed(0)
    folder = tmp_path_factory.mktemp("model")
    TFSWAUNet(make_tiny_config(sample_rate=44100)).save_pretrained(folder)
    return folder


def write(path, frames=6000, seed=0):
    data = np.random.default_rng(seed).uniform(-0.3, 0.3, (frames, 2)).astype(np.float32)
    sf.write(path, data, 44100, format="WAV")
    return path


def run(model_dir, out, *args):
    return main([*map(str, args), "--model", str(model_dir), "--out", str(out), "--no-progress"])


def everything_under(folder):
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*"))


def test_crafted_stem_names_in_config_json_are_refused(tmp_path, model_dir, capsys):
    crafted = tmp_path / "crafted"
    shutil.copytree(model_dir, crafted)
    config = json.loads((crafted / "config.json").read_text())
    config["stems"] = ["../../ESCAPED", str(tmp_path / "abs" / "X")]
    (crafted / "config.json").write_text(json.dumps(config))
    song = write(tmp_path / "song.wav")
    out = tmp_path / "work" / "deep" / "out"
    assert run(crafted, out, song) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: cannot load model")
    assert "../../ESCAPED" in err[0] and "plain file name" in err[0]
    assert not list(tmp_path.rglob("*ESCAPED*")) and not (tmp_path / "abs").exists()
    assert not out.exists()


def test_write_stems_refuses_names_that_leave_the_folder(tmp_path):
    wave = np.zeros((2, 100), np.float32)
    for name in ("../up", "/abs/x", "a/../../b", "a\x00b"):
        with pytest.raises(ValueError, match="unsafe file name"):
            write_stems(tmp_path / "track", {name: wave}, 8000)
    assert everything_under(tmp_path) == []
    with pytest.raises(ValueError):
        child_path(tmp_path, "sub/x.wav")


def test_odd_input_names_stay_inside_out(tmp_path, model_dir):
    inputs = tmp_path / "in"
    inputs.mkdir()
    long_name = "x" * 245
    for name in ("..wav", "...wav", ".hidden.wav", f"{long_name}.wav", "ok.wav"):
        write(inputs / name)
    out = tmp_path / "sub" / "out"
    assert run(model_dir, out, *sorted(inputs.iterdir())) == 0
    assert sorted(p.name for p in out.iterdir()) == sorted(["_", "__", "_hidden", long_name, "ok"])
    assert sorted(p.name for p in (tmp_path / "sub").iterdir()) == ["out"]
    assert sorted(p.name for p in out.joinpath("_").iterdir()) == [
        "accompaniment.wav",
        "vocals.wav",
    ]
    assert safe_name("a/b\\c\nd") == "a_b_c_d" and safe_name("") == "_"
    assert len(safe_name("é" * 300).encode()) <= 250


def test_force_replaces_a_tracks_stems_as_one_unit(tmp_path, model_dir, monkeypatch, capsys):
    song = write(tmp_path / "song.wav")
    out = tmp_path / "out"
    assert run(model_dir, out, song) == 0
    (out / "song" / "notes.txt").write_text("mine")  # a file of the user's in the track folder
    before = {p.name: p.read_bytes() for p in (out / "song").iterdir()}
    write(song, seed=1)  # new input: new stems

    # Files at the model's rate are streamed: stems are written block by block through
    # soundfile.SoundFile (separation.py), so the kill comes after the first block of one stem.
    import modeling_tfswa.separation as separation_module

    real_soundfile = separation_module.sf.SoundFile
    calls = []

    class KilledAfterOneBlock(real_soundfile):  # the injected kill
        def write(self, data):
            calls.append(self.name)
            if len(calls) == 2:
                raise KeyboardInterrupt
            return super().write(data)

    monkeypatch.setattr(separation_module.sf, "SoundFile", KilledAfterOneBlock)
    with pytest.raises(KeyboardInterrupt):
        run(model_dir, out, song, "--force")
    assert {p.name: p.read_bytes() for p in (out / "song").iterdir()} == before
    assert sorted(p.name for p in out.iterdir()) == ["song"]  # no staging left

    monkeypatch.setattr(separation_module.sf, "SoundFile", real_soundfile)
    assert run(model_dir, out, song, "--force") == 0
    after = {p.name: p.read_bytes() for p in (out / "song").iterdir()}
    assert after["notes.txt"] == b"mine"
    assert after["vocals.wav"] != before["vocals.wav"]
    assert after["accompaniment.wav"] != before["accompaniment.wav"]


def test_full_disk_is_reported_per_file_and_the_batch_goes_on(
    tmp_path, model_dir, monkeypatch, capsys
):
    inputs = tmp_path / "in"
    inputs.mkdir()
    write(inputs / "a-big.wav")
    write(inputs / "b-small.wav")
    import modeling_tfswa.separation as separation_module

    # Files at the model's rate are streamed through soundfile.SoundFile (separation.py); the
    # track being separated is the one whose header separate_file read last.
    real_soundfile, real_info = separation_module.sf.SoundFile, separation_module.audio_info
    capsys_track = [""]

    def tracking_info(path):
        capsys_track[0] = str(path)
        return real_info(path)

    class DiskFullForBig(real_soundfile):
        def write(self, data):
            if "a-big" in capsys_track[0]:  # part of a file written, then the disk is full
                super().write(data[:10])
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
            return super().write(data)

    monkeypatch.setattr(separation_module.sf, "SoundFile", DiskFullForBig)
    monkeypatch.setattr(separation_module, "audio_info", tracking_info)
    out = tmp_path / "out"
    assert run(model_dir, out, inputs) == 1
    err = capsys.readouterr().err
    assert "a-big: stems not written: No space left on device" in err
    assert "1 of 2 input(s) failed" in err
    assert everything_under(out) == [
        "b-small",
        "b-small/accompaniment.wav",
        "b-small/vocals.wav",
    ]


def test_stale_staging_is_cleaned_and_live_staging_kept(tmp_path, model_dir):
    out = tmp_path / "out"
    out.mkdir()
    dead = out / f"{TEMPORARY_PREFIX}999999999-0123456789ab"  # no such process
    dead.mkdir()
    (dead / "vocals.wav").write_bytes(b"half")
    (out / f"{TEMPORARY_PREFIX}999999999-abcdef012345").write_bytes(b"half a file")
    live = out / f"{TEMPORARY_PREFIX}{os.getpid()}-0123456789ab"
    live.mkdir()
    assert run(model_dir, out, write(tmp_path / "song.wav")) == 0
    assert sorted(p.name for p in out.iterdir()) == sorted([live.name, "song"])


def test_written_files_and_folders_get_the_umask_mode(tmp_path, model_dir):
    old = os.umask(0o022)
    try:
        out = tmp_path / "out"
        assert run(model_dir, out, write(tmp_path / "song.wav")) == 0
        assert stat.S_IMODE((out / "song").stat().st_mode) == 0o755
        assert stat.S_IMODE((out / "song" / "vocals.wav").stat().st_mode) == 0o644
        # A private file written by a library (safetensors makes 0o600) is published readable.
        staging = staging_folder(tmp_path / "models")
        TFSWAUNet(make_tiny_config()).save_pretrained(staging)
        assert stat.S_IMODE((staging / "model.safetensors").stat().st_mode) == 0o600
        final = publish_folder(staging, tmp_path / "models" / "best")
        assert stat.S_IMODE(final.stat().st_mode) == 0o755
        assert stat.S_IMODE((final / "model.safetensors").stat().st_mode) == 0o644
    finally:
        os.umask(old)


@pytest.mark.parametrize("damage", ["truncated", "pickled-code", "missing"])
def test_broken_model_files_are_one_line_errors(tmp_path, model_dir, capsys, damage):
    broken = tmp_path / "model"
    shutil.copytree(model_dir, broken)
    weights = broken / "model.safetensors"
    if damage == "truncated":
        weights.write_bytes(weights.read_bytes()[:1000])
    elif damage == "pickled-code":
        weights.unlink()

        class Evil:
            def __reduce__(self):
                return (os.system, ("touch " + str(tmp_path / "PWNED"),))

        torch.save({"x": Evil()}, broken / "pytorch_model.bin")
    else:
        weights.unlink()
    song = write(tmp_path / "song.wav")
    assert run(broken, tmp_path / "out", song) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(f"error: cannot load model '{broken}'"), err
    assert not (tmp_path / "PWNED").exists()
    assert main([str(song), "--model", str(broken), "--debug", "--no-progress"]) == 2
    assert "Traceback" in capsys.readouterr().err
