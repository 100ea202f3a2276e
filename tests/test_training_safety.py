"""Training runs that collide, resume with a changed config, carry crafted checkpoints or bad
command lines: refused before anything is written, with one line naming the folder or key."""

import logging
import os
import pickle
import stat
from pathlib import Path

import pytest
import yaml
from test_training import ToyStems, tiny_config

from modeling_tfswa.training.cli import main
from modeling_tfswa.training.config import ConfigError, load_config
from modeling_tfswa.training.run_folder import (
    EMA_NAME,
    RUN_CONFIG_NAME,
    STATE_NAME,
    OutputDirLock,
    RunFolderBusy,
)
from modeling_tfswa.training.trainer import checkpoint_dirs, train

DATA = dict(train_dataset=ToyStems(), validation_dataset=ToyStems(length=2))


def snapshot(folder):
    return {
        str(p.relative_to(folder)): p.read_bytes() if p.is_file() else None
        for p in sorted(folder.rglob("*"))
    }


def test_a_second_run_into_a_held_folder_is_refused(tmp_path, capsys):
    config = tiny_config(tmp_path, max_steps=2)
    out = tmp_path / "run"
    with OutputDirLock(out):  # the first run, still going
        with pytest.raises(RunFolderBusy, match=f"output_dir: {out} is in use .*pid {os.getpid()}"):
            train(config, **DATA)
        assert sorted(p.name for p in out.iterdir()) == [".lock"]  # nothing else written
        argv = ["--config", "configs/tiny.yaml", "--output_dir", str(out), "--max_steps", "1"]
        assert main(argv) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and err[0].startswith(f"error: output_dir: {out} is in use")
    assert train(config, **DATA).step == 2  # released: the folder is free again


def test_the_lock_of_a_killed_run_is_taken_over(tmp_path, caplog):
    out = tmp_path / "run"
    out.mkdir()
    (out / ".lock").write_text("pid 999999999 on elsewhere since 2026-01-01 00:00:00\n")
    with caplog.at_level(logging.INFO, logger="modeling_tfswa"):
        assert train(tiny_config(tmp_path, max_steps=2), **DATA).step == 2
    assert "taking over the lock of a run that ended (pid 999999999" in caplog.text


def test_resume_with_a_changed_model_is_refused_before_anything_is_written(tmp_path, caplog):
    train(tiny_config(tmp_path, max_steps=4, save_every=2), stop_after=2, **DATA)
    before = snapshot(tmp_path / "run")
    changed = tiny_config(tmp_path, max_steps=4, resume="latest", **{"model.dims": [16, 32]})
    with pytest.raises(ConfigError) as error:
        train(changed, **DATA)
    message = str(error.value)
    assert "1 key(s): model.dims: [8, 16] -> [16, 32]" in message and "step_00000002" in message
    after = snapshot(tmp_path / "run")
    assert after == before  # config.yaml, checkpoints, weights: all untouched

    # A training-only key may change; the schedule follows it, and the log says so.
    longer = tiny_config(tmp_path, max_steps=6, resume="latest")
    with caplog.at_level(logging.WARNING, logger="modeling_tfswa"):
        result = train(longer, **DATA)
    assert result.step == 6 and [s for s, _ in result.losses] == [3, 4, 5, 6]
    assert "max_steps changed from 4 to 6; the learning-rate schedule now ends at step 6" in (
        caplog.text
    )


def test_a_derived_stem_set_and_the_same_one_written_out_resume_alike(tmp_path):
    train(tiny_config(tmp_path, max_steps=4, save_every=2), stop_after=2, **DATA)  # derived
    same = {"data.stem_set": "vocals=vocals,accompaniment=drums+bass+other"}
    result = train(tiny_config(tmp_path, max_steps=4, resume="latest", **same), **DATA)
    assert result.step == 4


def test_a_run_whose_saved_config_predates_a_model_key_resumes_as_it_was_trained(tmp_path):
    # Older versions wrote the model section as given; a key it lacks had its old default then
    # (log_power_input: false), not today's (true). The resume says so instead of failing to load.
    train(tiny_config(tmp_path, max_steps=4, save_every=2), stop_after=2, **DATA)
    saved = tmp_path / "run" / RUN_CONFIG_NAME
    old = yaml.safe_load(saved.read_text())
    assert old["model"]["log_power_input"] is False and "qkv_bias" in old["model"]  # complete
    del old["model"]["log_power_input"]
    saved.write_text(yaml.safe_dump(old))
    as_today = tiny_config(
        tmp_path, max_steps=4, resume="latest", **{"model.log_power_input": True}
    )
    with pytest.raises(ConfigError, match=r"model.log_power_input: False -> True"):
        train(as_today, **DATA)
    assert train(tiny_config(tmp_path, max_steps=4, resume="latest"), **DATA).step == 4


def test_a_checkpoint_save_killed_half_way_keeps_the_last_complete_ones(tmp_path, monkeypatch):
    # Why not Accelerate's total_limit rotation: it deletes first and writes in place
    # (modeling_tfswa/training/trainer.py). Ours: the last keep_last stay whole and resumable.
    import accelerate.accelerator

    save = accelerate.accelerator.save_accelerator_state
    calls = []

    def killed_on_the_third_save(output_dir, *args, **kwargs):
        calls.append(output_dir)
        if len(calls) == 3:
            (Path(output_dir) / "model.safetensors").write_bytes(b"half")
            raise KeyboardInterrupt("killed half-way through the save")
        return save(output_dir, *args, **kwargs)

    monkeypatch.setattr(accelerate.accelerator, "save_accelerator_state", killed_on_the_third_save)
    config = tiny_config(tmp_path, max_steps=3, save_every=1, eval_every=3, keep_last=2)
    with pytest.raises(KeyboardInterrupt):
        train(config, **DATA)
    kept = checkpoint_dirs(tmp_path / "run")
    assert [p.name for p in kept] == ["step_00000001", "step_00000002"]
    assert all((p / "model.safetensors").stat().st_size > 1000 for p in kept)
    monkeypatch.setattr(accelerate.accelerator, "save_accelerator_state", save)
    resumed = train(tiny_config(tmp_path, max_steps=3, save_every=1, eval_every=3, keep_last=2,
                                resume="latest"), **DATA)  # fmt: skip
    assert resumed.step == 3 and [s for s, _ in resumed.losses] == [3]


def test_checkpoint_state_is_json_and_safetensors_and_pickles_are_not_loaded(tmp_path):
    train(tiny_config(tmp_path, max_steps=4, save_every=2), stop_after=2, **DATA)
    (checkpoint,) = checkpoint_dirs(tmp_path / "run")
    names = {p.name for p in checkpoint.iterdir()}
    assert {STATE_NAME, EMA_NAME} <= names
    assert not [name for name in names if name.startswith("custom_checkpoint")]

    class Evil:  # a crafted checkpoint: Accelerate would unpickle this for registered objects
        def __reduce__(self):
            return (os.system, (f"touch {tmp_path / 'PWNED'}",))

    with open(checkpoint / "custom_checkpoint_0.pkl", "wb") as handle:
        pickle.dump(Evil(), handle)
    with pytest.raises(ConfigError, match=r"holds pickled state \['custom_checkpoint_0.pkl'\]"):
        train(tiny_config(tmp_path, max_steps=4, resume="latest"), **DATA)
    assert not (tmp_path / "PWNED").exists()
    (checkpoint / "custom_checkpoint_0.pkl").unlink()
    resumed = train(tiny_config(tmp_path, max_steps=4, resume="latest"), **DATA)
    assert resumed.step == 4 and not (tmp_path / "PWNED").exists()


def test_malformed_override_names_the_key(tmp_path, capsys):
    argv = ["--config", "configs/tiny.yaml", "--output_dir", str(tmp_path / "run")]
    assert main([*argv, "--model.dims", "[8,"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: --model.dims: cannot parse '[8,'"), err
    assert not (tmp_path / "run").exists()
    assert main([*argv, "--model.dims", "[8,", "--debug"]) == 2
    assert "Traceback" in capsys.readouterr().err


def test_stem_mismatch_is_found_before_anything_is_written_or_generated(tmp_path, capsys):
    data_root = tmp_path / "synthetic"
    overrides = {
        "output_dir": str(tmp_path / "run"),
        "data.root": str(data_root),
        "model.stems": ["vocals", "accompaniment"],
        "data.stem_set": "4stems",
    }
    with pytest.raises(
        ConfigError, match=r"data.stem_set '4stems' gives stems \['vocals', 'drums'"
    ):
        load_config("configs/tiny.yaml", overrides)
    argv = ["--config", "configs/tiny.yaml"]
    argv += [f"--{k}={v}" for k, v in overrides.items() if k != "model.stems"]
    argv += ["--model.stems", "[vocals, accompaniment]"]
    assert main(argv) == 2
    assert capsys.readouterr().err.startswith("error: data.stem_set '4stems' gives stems")
    assert not (tmp_path / "run").exists() and not data_root.exists()


def test_an_unknown_data_source_is_refused_before_anything_is_written(tmp_path, capsys):
    argv = ["--config", "configs/tiny.yaml", "--output_dir", str(tmp_path / "run"),
            "--data.source", "lakh"]  # fmt: skip
    assert main(argv) == 2
    assert capsys.readouterr().err.startswith("error: data.source: must be one of")
    assert not (tmp_path / "run").exists()


def test_a_mono_model_on_the_stereo_data_pipeline_is_refused_before_anything_is_written(
    tmp_path, capsys
):
    argv = ["--config", "configs/tiny.yaml", "--output_dir", str(tmp_path / "run"),
            "--data.root", str(tmp_path / "data"), "--model.audio_channels", "1"]  # fmt: skip
    assert main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == ["error: model.audio_channels: training on data.source reads stereo audio, so "
                   "it must be 2, got 1"]  # fmt: skip
    assert not (tmp_path / "run").exists() and not (tmp_path / "data").exists()


def test_the_config_does_not_import_the_data_layer():
    import ast
    import inspect

    from modeling_tfswa.training import config

    imported = {
        (node.level, node.module)
        for node in ast.walk(ast.parse(inspect.getsource(config)))
        if isinstance(node, ast.ImportFrom)
    }
    assert (1, "data") not in imported and (0, "modeling_tfswa.training.data") not in imported


def test_trained_model_files_get_the_umask_mode(tmp_path):
    old = os.umask(0o022)
    try:
        result = train(tiny_config(tmp_path, max_steps=2), **DATA)
    finally:
        os.umask(old)
    for name in ("best", "last", "checkpoints/step_00000002"):
        folder = result.output_dir / name
        assert stat.S_IMODE(folder.stat().st_mode) == 0o755, name
        for path in folder.iterdir():
            assert stat.S_IMODE(path.stat().st_mode) == 0o644, path
