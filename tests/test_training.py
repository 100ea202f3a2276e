"""The training loop on a tiny model: learns, saves, resumes exactly, runs on two gloo ranks."""

import json
import math
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file
from torch.utils.data import Dataset

from modeling_tfswa import TFSWAUNet
from modeling_tfswa.training.config import TrainingConfig, load_config
from modeling_tfswa.training.trainer import checkpoint_dirs, train

ROOT = Path(__file__).resolve().parents[1]
TINY = ROOT / "configs" / "tiny.yaml"
SR = 8000


class ToyStems(Dataset):
    """Deterministic 2-stem items: a sine 'vocals' over a noisy 'accompaniment'.

    Items: {"mixture": (2, T), "stems": (2, 2, T)}; with `fixed`, every item is item 0.
    """

    def __init__(self, length=8, samples=2048, seed=0, fixed=False):
        self.length, self.samples, self.seed, self.fixed = length, samples, seed, fixed
        self.epoch = 0

    def set_epoch(self, epoch):
        self.epoch = epoch

    def __len__(self):
        return self.length

    def __getitem__(self, index):
        index = 0 if self.fixed else index
        g = torch.Generator().manual_seed(self.seed * 10_000 + self.epoch * 1000 + index)
        t = torch.arange(self.samples) / SR
        freq = 200 + 600 * torch.rand(1, generator=g)
        vocals = 0.3 * torch.sin(2 * math.pi * freq * t + torch.rand(2, 1, generator=g))
        accompaniment = 0.1 * torch.randn(2, self.samples, generator=g)
        stems = torch.stack([vocals, accompaniment])
        return {"mixture": stems.sum(0), "stems": stems}


def tiny_config(tmp_path, **overrides):
    base = {"output_dir": str(tmp_path / "run"), "model.sample_rate": SR}
    return load_config(TINY, {**base, **overrides})


def weights(folder):
    return load_file(str(Path(folder) / "model.safetensors"))


def test_loss_decreases_on_a_fixed_batch_and_outputs_are_written(tmp_path):
    config = tiny_config(tmp_path, max_steps=12, eval_every=6, save_every=6, **{"optim.lr": 1e-2})
    data = ToyStems(fixed=True)
    result = train(config, train_dataset=data, validation_dataset=ToyStems(length=4, seed=1))
    losses = [loss for _, loss in result.losses]
    assert len(losses) == 12 and result.step == 12
    assert sum(losses[-3:]) / 3 < 0.9 * losses[0]
    out = result.output_dir
    for name in ("best", "last"):
        assert {"config.json", "model.safetensors", "README.md", "pipeline_tfswa.py"} <= {
            p.name for p in (out / name).iterdir()
        }
    assert [p.name for p in checkpoint_dirs(out)] == ["step_00000006", "step_00000012"]
    assert (out / "validation.png").stat().st_size > 0 and (out / "history.json").is_file()
    assert (out / "logs").is_dir() and (out / "config.yaml").is_file()
    assert set(result.validation) >= {"loss", "sdr/vocals", "sdr/accompaniment", "sdr_gain/vocals"}
    model = TFSWAUNet.from_pretrained(out / "last")
    assert model.config.stems == ["vocals", "accompaniment"] and model.config.sample_rate == SR
    # The separation segment is the training segment (configs/tiny.yaml: data.segment_seconds).
    saved = json.loads((out / "best" / "config.json").read_text())
    assert saved["segment_seconds"] == model.config.segment_seconds == 0.25


def test_a_run_builds_the_model_config_once_after_validation(tmp_path, monkeypatch):
    built = []
    model_config = TrainingConfig.model_config
    monkeypatch.setattr(
        TrainingConfig, "model_config", lambda self: built.append(1) or model_config(self)
    )
    config = tiny_config(tmp_path, max_steps=2, eval_every=2, save_every=2)
    built.clear()
    train(config, train_dataset=ToyStems(length=4), validation_dataset=ToyStems(length=2))
    assert len(built) == 2  # train()'s validation, then the run's one instance (data, card...)


def test_resumed_run_reaches_the_same_weights(tmp_path):
    # Augmentations and stochastic depth on: their randomness must be replayed exactly too.
    overrides = {
        "max_steps": 6,
        "save_every": 2,
        "eval_every": 3,
        "keep_last": 5,
        "gradient_accumulation_steps": 2,
        "model.drop_path_rate": 0.1,
        "augment.pitch_probability": 0.5,
        "augment.tempo_probability": 0.5,
        "augment.mixup_probability": 0.5,
        "augment.frequency_mask_probability": 0.5,
        "augment.vocoder_n_fft": 256,
    }
    data = dict(train_dataset=ToyStems(length=6), validation_dataset=ToyStems(length=2, seed=1))
    straight = train(tiny_config(tmp_path / "a", **overrides), **data)
    assert straight.step == 6

    # Killed after step 3: the last checkpoint is step 2 = batch 4, i.e. one batch into epoch 1 of
    # 3 batches, so the resumed run must skip a batch, and replay the randomness of steps 3-6.
    first = train(tiny_config(tmp_path / "b", **overrides), stop_after=3, **data)
    assert first.step == 3 and [p.name for p in checkpoint_dirs(first.output_dir)] == [
        "step_00000002"
    ]
    resumed = train(tiny_config(tmp_path / "b", resume="latest", **overrides), **data)
    assert resumed.step == 6 and [s for s, _ in resumed.losses] == [3, 4, 5, 6]
    torch.testing.assert_close(dict(resumed.losses), dict(straight.losses[2:]), rtol=0, atol=0)
    a, b = straight.output_dir, resumed.output_dir
    for name in ("last", "checkpoints/step_00000006"):
        wa, wb = weights(a / name), weights(b / name)
        assert wa.keys() == wb.keys()
        for key in wa:
            torch.testing.assert_close(wa[key], wb[key], rtol=0, atol=1e-6, msg=f"{name}: {key}")


def test_resume_mistakes_are_clear_errors(tmp_path):
    data = dict(train_dataset=ToyStems(), validation_dataset=ToyStems(length=2))
    with pytest.raises(FileNotFoundError, match="nowhere"):
        train(tiny_config(tmp_path, resume=str(tmp_path / "nowhere")), **data)
    train(tiny_config(tmp_path, max_steps=2, save_every=2), **data)
    with pytest.raises(FileExistsError, match="--resume latest"):  # would mix two runs
        train(tiny_config(tmp_path, max_steps=2), **data)
    finished = train(tiny_config(tmp_path, max_steps=2, resume="latest"), **data)
    assert finished.step == 2 and finished.losses == []  # nothing left to do


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.mark.slow
def test_two_gloo_ranks_train_and_save(tmp_path):
    # Real `accelerate launch` in fresh processes (forking this pytest process can deadlock in
    # OpenMP once torch used threads), on a free port (other test runs may share the machine).
    out = tmp_path / "ddp"
    command = [sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu",
               "--num_processes", "2", "--main_process_port", str(_free_port()),
               str(ROOT / "train_accelerate.py"), "--config", str(TINY), "--output_dir", str(out),
               "--data.root", str(tmp_path / "data"), "--data.cache_dir", str(tmp_path / "cache"),
               "--data.synthetic_train_songs", "2", "--data.synthetic_seconds", "1.5",
               "--max_steps", "3", "--eval_every", "3", "--save_every", "3"]  # fmt: skip
    env = {**os.environ, "ACCELERATE_USE_CPU": "1", "OMP_NUM_THREADS": "1"}
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert (out / "last" / "model.safetensors").is_file()
    checkpoint = checkpoint_dirs(out)[-1]
    assert checkpoint.name == "step_00000003"
    # Both ranks saved their RNG state: proof that two processes took part.
    assert {p.name for p in checkpoint.glob("random_states_*.pkl")} == {
        "random_states_0.pkl",
        "random_states_1.pkl",
    }
    # Validation saw each of the 3 segments (1.5 s / 0.5 s) once: the padding duplicate of the
    # uneven split over 2 ranks was dropped by gather_for_metrics.
    history = json.loads((out / "history.json").read_text())
    assert history[-1]["segments"] == 3.0 and history[-1]["step"] == 3


@pytest.mark.slow
def test_command_line_trains_on_synthetic_data_and_writes_the_demo(tmp_path, capsys):
    from modeling_tfswa.training.cli import main

    argv = ["--config", str(TINY), "--output_dir", str(tmp_path / "run"), "--demo",
            "--data.root", str(tmp_path / "data"), "--data.cache_dir", str(tmp_path / "cache"),
            "--data.synthetic_train_songs", "2", "--data.synthetic_seconds", "1.5",
            "--max_steps", "2", "--eval_every", "2", "--save_every", "2"]  # fmt: skip
    assert main(argv) == 0
    demo = tmp_path / "run" / "demo"
    assert {p.name for p in demo.iterdir()} == {"mixture.wav", "vocals.wav", "accompaniment.wav"}
    import soundfile as sf

    mixture, rate = sf.read(demo / "mixture.wav")
    vocals, _ = sf.read(demo / "vocals.wav")
    assert rate == 44100 and vocals.shape == mixture.shape == (int(1.5 * 44100), 2)
    assert "Validation SDR (dB): vocals" in capsys.readouterr().out


@pytest.fixture
def fresh_accelerate_state():
    """Accelerate keeps process-wide state; a different mixed precision needs a fresh one."""
    from accelerate.state import AcceleratorState, GradientState

    AcceleratorState._reset_state(reset_partial_state=True)
    GradientState._reset_state()
    yield
    AcceleratorState._reset_state(reset_partial_state=True)
    GradientState._reset_state()


def test_gradient_checkpointing_gives_the_same_training(tmp_path, fresh_accelerate_state):
    data = dict(train_dataset=ToyStems(length=4), validation_dataset=ToyStems(length=2))
    runs = {}
    for checkpointing in (False, True):
        config = tiny_config(
            tmp_path / str(checkpointing), max_steps=2, gradient_checkpointing=checkpointing
        )
        runs[checkpointing] = train(config, **data)
    plain, checkpointed = (weights(runs[k].output_dir / "last") for k in (False, True))
    for key in plain:
        torch.testing.assert_close(plain[key], checkpointed[key], rtol=1e-5, atol=1e-6)


def test_bf16_autocast_trains(tmp_path, fresh_accelerate_state):
    config = tiny_config(tmp_path, max_steps=2, mixed_precision="bf16")
    result = train(config, train_dataset=ToyStems(length=4), validation_dataset=ToyStems(length=2))
    assert result.step == 2 and all(math.isfinite(loss) for _, loss in result.losses)
    assert math.isfinite(result.validation["sdr/vocals"])
