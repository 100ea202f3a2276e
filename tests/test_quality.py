"""The quality benchmark's harness: peer adapters, the loop training a non-TFSWA separator, and a
tiny-budget run whose table has a finite row per model."""

import json
import math

import pytest
import torch
from torch import nn
from torch.utils.data import Dataset

from benchmarks import quality
from benchmarks.peers import PEERS, PeerConfig, WaveformSeparator, build_peer
from modeling_tfswa.training.config import load_config
from modeling_tfswa.training.trainer import train

SR = 8000


class ToyStems(Dataset):
    """Fixed 2-stem items: a sine over noise. {"mixture": (2, T), "stems": (2, 2, T)}."""

    def __init__(self, length=4, samples=1024):
        self.length, self.samples = length, samples

    def __len__(self):
        return self.length

    def __getitem__(self, index):
        t = torch.arange(self.samples) / SR
        vocals = 0.3 * torch.sin(2 * math.pi * 440 * t).expand(2, -1)
        noise = 0.1 * torch.randn(2, self.samples, generator=torch.Generator().manual_seed(0))
        stems = torch.stack([vocals, noise])
        return {"mixture": stems.sum(0), "stems": stems}


class PointwiseNet(nn.Module):
    """Not a TFSWA-UNet: a per-sample linear map from the mixture channels to the stems."""

    def __init__(self, stems: int):
        super().__init__()
        self.stems = stems
        self.conv = nn.Conv1d(2, 2 * stems, kernel_size=9, padding=4)

    def forward(self, mixture):
        out = self.conv(mixture)
        return out.view(mixture.shape[0], self.stems, 2, -1)


@pytest.mark.parametrize("name", sorted(PEERS))
def test_peer_adapters_follow_the_model_contract(name):
    if not PEERS[name].available():
        pytest.skip(f"{PEERS[name].pip_name} is not installed")
    stems = ["vocals", "drums", "bass", "other"]
    torch.manual_seed(0)
    model = build_peer(name, stems, segment_seconds=0.5)
    assert model.config.stems == stems and model.config.sample_rate == 44100
    assert 4e6 <= sum(p.numel() for p in model.parameters()) <= 6e6  # the benchmark's size class
    mixture = torch.randn(1, 2, 22050 - 7)  # an odd length: outputs must match it exactly
    with torch.no_grad():
        waveforms = model(input_values=mixture).waveforms
    assert waveforms.shape == (1, 4, 2, mixture.shape[-1])
    assert torch.isfinite(waveforms).all()


class Bfloat16Output(nn.Module):
    """What a Linear gives under CUDA bf16 autocast: its output in bfloat16."""

    def __init__(self, module):
        super().__init__()
        self.module = module

    def forward(self, x):
        return self.module(x).to(torch.bfloat16)


@pytest.mark.parametrize("name", ["bs-roformer", "mel-roformer"])
def test_roformer_masks_reach_their_complex_multiply_as_float32(name):
    if not PEERS[name].available():
        pytest.skip(f"{PEERS[name].pip_name} is not installed")
    model = build_peer(name, ["vocals", "drums", "bass", "other"], segment_seconds=0.5)
    for wrapper in model.net.mask_estimators:  # bf16 masks, as under CUDA autocast
        wrapper.module = Bfloat16Output(wrapper.module)
    with torch.no_grad():
        waveforms = model(input_values=torch.randn(1, 2, 8192)).waveforms
    assert waveforms.dtype == torch.float32 and torch.isfinite(waveforms).all()
    for wrapper in model.net.mask_estimators:  # without the adapter's cast: the H200's error
        wrapper.forward = wrapper.module.forward
    with pytest.raises(RuntimeError, match="view_as_complex"), torch.no_grad():
        model(input_values=torch.randn(1, 2, 8192))


def test_unknown_model_is_an_error_listing_the_known_ones(capsys):
    with pytest.raises(SystemExit):
        quality.parse_args(["--models", "tfswa-unet", "wavenet", "--steps", "1"])
    err = capsys.readouterr().err
    assert "wavenet" in err and "htdemucs" in err and "tfswa-unet-default" in err
    with pytest.raises(ValueError, match="known: .*open-unmix"):
        quality.build_model("wavenet", ["vocals"], 1.0)


def test_a_missing_peer_package_is_skipped_with_a_message(monkeypatch, capsys):
    monkeypatch.setattr(type(PEERS["htdemucs"]), "available", lambda self: False)
    args = quality.parse_args(["--models", "htdemucs", "--steps", "1"])
    assert quality.run_models(args) == {}
    assert "skipping htdemucs: pip package 'demucs' not installed" in capsys.readouterr().out


def test_the_loop_trains_a_separator_that_is_not_tfswa(tmp_path):
    config = load_config(
        None,
        {
            "model": {"stems": ["vocals", "accompaniment"], "sample_rate": SR, "n_fft": 256,
                      "hop_length": 64},
            "output_dir": str(tmp_path / "run"),
            "max_steps": 30,
            "eval_every": 15,
            "save_every": 30,
            "ema_decay": 0.0,
            "optim.lr": 3e-2,
            "optim.warmup_steps": 0,
            "data.batch_size": 2,
            "data.stem_set": "vocals-accompaniment",
        },
    )  # fmt: skip
    torch.manual_seed(0)
    model = WaveformSeparator(PointwiseNet(2), PeerConfig(["vocals", "accompaniment"], SR))
    before = model.net.conv.weight.detach().clone()
    validations = []
    result = train(
        config,
        model=model,
        train_dataset=ToyStems(),
        validation_dataset=ToyStems(length=2),
        stop_when=lambda state: state.step >= 20,  # the budget hook ends the run early
        validate_when=lambda state: validations.append(state.step) or state.step == 5,
        save_model=quality.save_weights,
    )
    losses = [loss for _, loss in result.losses]
    assert result.model is model and result.step == 20 and len(losses) == 20
    assert sum(losses[-3:]) / 3 < 0.7 * losses[0]
    assert not torch.equal(before, model.net.conv.weight)
    assert [h["step"] for h in json.loads((result.output_dir / "history.json").read_text())] == [
        5, 15, 20
    ]  # fmt: skip
    assert (result.output_dir / "last" / "model.safetensors").is_file()
    assert 0 < result.train_cpu_seconds and 0 < result.train_seconds


def test_tiny_budget_run_gives_a_finite_row_per_model(tmp_path, capsys, monkeypatch):
    from data_scripts.synthetic import ensure_synthetic_dataset

    test_root = ensure_synthetic_dataset(tmp_path / "test", 0, 0, 1, 1.0, seed=3, progress=False)
    models = ["tfswa-unet-tiny", "open-unmix"]  # open-unmix: the cheapest peer to install
    argv = ["--models", *models, "--steps", "2", "--train-songs", "2", "--song-seconds", "1",
            "--segment-seconds", "0.5", "--test-root", str(test_root), "--out", str(tmp_path)]  # fmt: skip
    report = quality.main(argv)
    out = capsys.readouterr().out
    last = json.loads(out.strip().splitlines()[-1])
    assert last["benchmark"] == "quality" and set(last) >= {"models", "mixture", "irm2"}
    expected = models if PEERS["open-unmix"].available() else models[:1]
    if expected != models:
        assert "skipping open-unmix" in out
    assert list(last["models"]) == expected
    for name in expected:
        row = last["models"][name]
        assert row["steps"] == 2 and row["params"] > 0 and row["sec_per_audio_sec"] > 0
        assert all(math.isfinite(v) for v in row["sdr"].values()) and math.isfinite(row["mean_sdr"])
        assert f"| {name} |" in (tmp_path / "quality.md").read_text()
    for row in [*last["models"].values(), report["mixture"], report["irm2"]]:
        # One test track: its mean over stems is both the median row's mean and the tracks' mean.
        per_set = row["per_test_set"]["test"]
        assert per_set["track_mean"] == pytest.approx(per_set["mean"], abs=2e-3)
        assert (
            f"{per_set['mean']:.2f}; {per_set['track_mean']:.2f}"
            in (tmp_path / "quality.md").read_text()
        )
    assert report["irm2"]["mean_sdr"] > report["mixture"]["mean_sdr"] + 5
    assert (tmp_path / "quality.png").stat().st_size > 0
    assert json.loads((tmp_path / "quality.json").read_text())["models"].keys() == set(expected)

    # A rerun with the same settings reuses the finished results; other settings train again.
    monkeypatch.setattr(quality, "run_model", lambda name, args: pytest.fail(f"{name} retrained"))
    again = quality.main(argv)
    assert again["models"] == report["models"]
    assert "tfswa-unet-tiny: reusing the result" in capsys.readouterr().out
    args = quality.parse_args(argv)
    key = quality.result_key("tfswa-unet-tiny", args)
    assert key != quality.result_key("tfswa-unet-tiny", quality.parse_args([*argv, "--lr", "3e-3"]))
    assert key != quality.result_key("tfswa-unet", args)
    # the key holds the whole model config, so a change of TFSWAConfig's defaults trains again
    assert key["build"]["mixture_consistency"] is False and key["build"]["n_fft"] == 256
    default_key = quality.result_key("tfswa-unet-default", args)
    assert default_key["build"]["frequency_bands"] == [[32, 2], [128, 4], [512, 8], [1025, 16]]
    monkeypatch.setitem(quality.TFSWA_VARIANTS, "tfswa-unet-default", {"drop_path_rate": 0.1})
    assert quality.result_key("tfswa-unet-default", args) != default_key
    monkeypatch.setattr(quality, "run_model", lambda name, args: {"mean_sdr": 0.0, "forced": True})
    forced = quality.run_models(quality.parse_args([*argv, "--force"]))
    assert all(row["forced"] for row in forced.values())


def test_several_training_trees_are_drawn_from_equally(tmp_path):
    one = quality.training_config(quality.parse_args(["--train-root", "a"]), "tfswa-unet")
    assert (one.data.source, one.data.root, one.data.sources) == ("musdb18hq", "a", [])
    args = quality.parse_args(["--train-root", "a", "--train-root", "b"])
    both = quality.training_config(args, "tfswa-unet")
    assert both.data.sources == [
        {"source": "musdb18hq", "root": root, "weight": 1.0} for root in ("a", "b")
    ]
    assert quality.result_key("tfswa-unet", args)["options"]["train_root"] == "a,b"


def test_precision_and_workers_reach_the_recipe_and_key_only_when_set():
    args = quality.parse_args([])
    config = quality.training_config(args, "tfswa-unet")
    assert (config.mixed_precision, config.data.num_workers) == ("no", 0)
    options = quality.result_key("tfswa-unet", args)["options"]
    assert "mixed_precision" not in options and "num_workers" not in options  # older results
    gpu = quality.parse_args(["--mixed-precision", "bf16", "--num-workers", "4"])
    config = quality.training_config(gpu, "tfswa-unet")
    assert (config.mixed_precision, config.data.num_workers) == ("bf16", 4)
    options = quality.result_key("tfswa-unet", gpu)["options"]
    assert (options["mixed_precision"], options["num_workers"]) == ("bf16", 4)


def test_recipe_overrides_reach_every_model_and_the_key_only_when_set(capsys):
    plain = quality.parse_args([])
    assert "recipe" not in quality.result_key("tfswa-unet", plain)["options"]  # older results
    assert quality.training_config(plain, "tfswa-unet").ema_decay == 0.99
    recipe = ["--recipe", "augment.pitch_probability=0.2", "--recipe", "ema_decay=0.995"]
    args = quality.parse_args(recipe)
    for name in ("tfswa-unet", "open-unmix"):
        config = quality.training_config(args, name)
        assert (config.augment.pitch_probability, config.ema_decay) == (0.2, 0.995)
        assert quality.result_key(name, args)["options"]["recipe"] == {
            "augment.pitch_probability": 0.2,
            "ema_decay": 0.995,
        }
    # the model, the run folder, keys with an option of their own, and no value: refused
    refused = ("model.dims=[8,16]", "output_dir=x", "seed=7", "optim.lr=1", "eval_every=5")
    for bad in (*refused, "augment.gain_db"):
        with pytest.raises(SystemExit):
            quality.parse_args(["--recipe", bad])
        assert "--recipe" in capsys.readouterr().err
    # A loss term no option sets is the recipe's with the shared loss, the peers' with their own.
    shared = quality.parse_args(["--recipe", "loss.spectrogram_l1=0.5"])
    assert quality.training_config(shared, "tfswa-unet").loss.spectrogram_l1 == 0.5
    with pytest.raises(SystemExit):
        quality.parse_args(["--recipe", "loss.spectrogram_l1=0.5", "--peer-loss", "own"])
    assert "--recipe loss.spectrogram_l1: the benchmark sets it" in capsys.readouterr().err


def test_own_peer_losses_change_only_the_peers_recipe_and_key():
    shared, own = quality.parse_args([]), quality.parse_args(["--peer-loss", "own"])
    plain = quality.training_config(shared, "open-unmix").loss
    assert (plain.waveform_l1, plain.spectrogram_l1) == (1.0, 0.0)
    its_own = quality.training_config(own, "open-unmix").loss
    assert (its_own.waveform_l1, its_own.spectrogram_l1) == (0.0, 1.0)
    assert quality.training_config(own, "bs-roformer").loss.multi_resolution_stft == 1.0
    for name in ("tfswa-unet", "htdemucs"):  # no loss of their own: same recipe, same stored key
        assert quality.training_config(own, name).loss == quality.training_config(shared, name).loss
        assert quality.result_key(name, own) == quality.result_key(name, shared)
    assert quality.result_key("open-unmix", own) != quality.result_key("open-unmix", shared)


def test_the_cpu_recipe_trains_the_hop512_variant():
    """`configs/cpu-4stems.yaml` trains `tfswa-unet-hop512`: a run of the recipe at hop 1024 (14000
    steps in its 33 minutes, decaying learning rate) scored below its hop-512 run
    (docs/quality-log.md, thirteenth session), though `tfswa-unet` (hop 1024) leads at 5 and 20
    CPU-minutes."""
    from pathlib import Path

    import yaml

    recipe = Path(__file__).resolve().parents[1] / "configs" / "cpu-4stems.yaml"
    from modeling_tfswa import TFSWAConfig

    shipped = TFSWAConfig(**yaml.safe_load(recipe.read_text())["model"]).to_dict()
    variant = TFSWAConfig(stems=quality.MUSDB_STEMS, **quality.TFSWA_VARIANTS["tfswa-unet-hop512"])
    assert shipped == variant.to_dict()


@pytest.mark.parametrize("recipe", ["musdb18hq-4stems.yaml", "musdb18hq-2stems.yaml"])
def test_the_gpu_recipes_train_the_four_stage_default_of_before(recipe):
    """The GPU recipes keep the four-stage design (`tfswa-unet-default-v4`): it learned more per
    step than the five-stage default, and their budget is steps (docs/quality-log.md, sixteenth
    session)."""
    from pathlib import Path

    import yaml

    from modeling_tfswa import TFSWAConfig

    path = Path(__file__).resolve().parents[1] / "configs" / recipe
    model = yaml.safe_load(path.read_text())["model"]
    shipped = TFSWAConfig(**model).to_dict()
    variant = TFSWAConfig(stems=model["stems"], **quality.TFSWA_VARIANTS["tfswa-unet-default-v4"])
    assert shipped == variant.to_dict()
    assert TFSWAConfig().to_dict() != variant.to_dict()


def test_pool_workers_end_when_the_benchmark_is_killed(tmp_path):
    import os
    import signal
    import subprocess
    import sys
    import textwrap
    import time

    pid_file = tmp_path / "worker.pid"
    parent = textwrap.dedent(f"""
        import multiprocessing, os, time
        from concurrent.futures import ProcessPoolExecutor
        from benchmarks.quality import exit_with_parent

        def work(path):
            open(path, "w").write(str(os.getpid()))
            time.sleep(600)

        if __name__ == "__main__":
            context = multiprocessing.get_context("spawn")
            pool = ProcessPoolExecutor(1, mp_context=context, initializer=exit_with_parent,
                                       initargs=(0.1,))
            pool.submit(work, {str(pid_file)!r})
            time.sleep(600)
    """)
    script = tmp_path / "parent.py"
    script.write_text(parent)
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    env = {**os.environ, "PYTHONPATH": root}
    process = subprocess.Popen([sys.executable, str(script)], cwd=tmp_path, env=env)
    try:
        for _ in range(600):  # the worker starts (imports torch: seconds)
            if pid_file.is_file() and pid_file.read_text():
                break
            time.sleep(0.1)
        worker = int(pid_file.read_text())
        process.send_signal(signal.SIGKILL)  # no handler can run: only the watch thread helps
        process.wait()

        def alive(pid: int) -> bool:  # an exited worker nobody reaped yet (a zombie) is gone
            try:
                with open(f"/proc/{pid}/stat") as stat:
                    return stat.read().rsplit(")", 1)[1].split()[0] != "Z"
            except FileNotFoundError:
                return False

        for _ in range(300):
            if not alive(worker):
                break
            time.sleep(0.1)
        else:
            os.kill(worker, signal.SIGKILL)
            pytest.fail("the pool worker outlived its killed parent")
    finally:
        process.kill()


def test_separation_speed_times_quality_models_against_the_first():
    from benchmarks import separation_speed

    names = ["tfswa-unet-tiny", "tfswa-unet-nfft1024"]
    threads = torch.get_num_threads()
    try:
        speed = separation_speed.measure_speed(
            0.5, 1, 1, separation_speed.quality_builders(names), chunking={}
        )
    finally:
        torch.set_num_threads(threads)
    assert list(speed) == names
    assert speed["tfswa-unet-tiny"]["cpu_ratio_to_tfswa_unet_tiny"] == 1.0
    assert speed["tfswa-unet-nfft1024"]["cpu_seconds_per_minute"] > 0
    assert speed["tfswa-unet-nfft1024"]["cpu_ratio_to_tfswa_unet_tiny"] > 0


def test_separation_speed_compares_each_model_at_its_fastest_batch_size():
    from benchmarks import separation_speed

    names = ["tfswa-unet-tiny", "tfswa-unet-nfft1024"]
    threads = torch.get_num_threads()
    try:
        speed = separation_speed.measure_speed(
            1.0, 1, 1, separation_speed.quality_builders(names), {}, batch_sizes=[1, 2]
        )
    finally:
        torch.set_num_threads(threads)
    for name in names:
        result = speed[name]
        by_batch = result["cpu_seconds_per_minute_by_batch"]
        assert sorted(by_batch) == [1, 2]
        # the fastest batch (by the unrounded times: rounded ones may tie)
        assert by_batch[result["best_batch_size"]] == min(by_batch.values())
        assert result["cpu_seconds_per_minute"] == min(by_batch.values())
    ratio = speed["tfswa-unet-nfft1024"]["cpu_ratio_to_tfswa_unet_tiny"]
    expected = (
        speed["tfswa-unet-nfft1024"]["cpu_seconds_per_minute"]
        / speed["tfswa-unet-tiny"]["cpu_seconds_per_minute"]
    )
    assert ratio == pytest.approx(expected, abs=0.011)


def test_per_set_cell_of_a_result_stored_before_track_means():
    stems = ["vocals", "other"]
    new = {"vocals": 1.0, "other": 3.0, "mean": 2.0, "track_mean": 1.5}
    old = {k: v for k, v in new.items() if k != "track_mean"}  # a reused OUT/results file
    assert quality.per_set_cell(new, stems) == "1.00 / 3.00 / 2.00; 1.50"
    assert quality.per_set_cell(old, stems) == "1.00 / 3.00 / 2.00"
