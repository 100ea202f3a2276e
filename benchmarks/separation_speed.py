"""Full-track separation cost on CPU: TFSWA-UNet vs HTDemucs and Open-Unmix, and memory vs length.

    python3 -m benchmarks.separation_speed [--seconds 20] [--rounds 2] [--long-minutes 10] [--skip-speed]
    python3 -m benchmarks.separation_speed --quality-models tfswa-unet open-unmix htdemucs \
        --threads 1 --seconds 12 --rounds 4 --skip-memory

Speed: seconds of compute per minute of audio for the default 4-stem TFSWA-UNet and, with random
weights, the HTDemucs architecture (as the released `htdemucs`: dconv_mode 3, bottom_channels 512,
5 cross-transformer layers, 42M parameters) and the Open-Unmix `umxhq` architecture (4 targets,
hidden size 512, 16 kHz bandwidth, one Wiener iteration). All three run through the same
`modeling_tfswa.separation.apply_model` chunking (6-s segments, 25% overlap, 4 segments per
batch), on `--seconds` of audio (scaled to a minute; the cost is linear in length because every
segment costs the same; 9 s hold two segments, the same segments per second as a long track),
2 threads, best of `--rounds` interleaved rounds, in this one process so
that the ratios compare like with like; wall and process CPU time are both reported (the CPU time
ratio is the steadier one on a machine shared with other jobs). `--quality-models` times models of
`benchmarks.quality` instead, at its sizes and default segments (the speed that benchmark's goal is
about).

Memory: peak resident memory (the kernel's VmHWM, reset once the model and the mixture, or the
input file, exist) of a fresh process separating a 30-s and a `--long-minutes` track with
TFSWA-UNet, three ways: `to_files` (`separate_file`, what `tfswa-separate` runs: segments read from
the file and stems written as the overlap-add finishes each region, so memory should not grow with
the track: the goal is a 10-min peak within 1.2x of the 30-s one), `in_memory` (`apply_model`,
whose output tensor necessarily grows with the track) and `one_pass` (the 30-s track in one forward
pass, without chunking, for comparison). To keep the run short, the chunked cases run the real
model for the first `--real-batches` forward batches and a zero-cost stand-in after that (working
memory is steady from the first batch on; reading, segmenting, overlap-add and writing stay real),
so their memory is measured, their speed is not. `streamed_vs_in_memory_max_abs_diff`: the largest
difference between streamed FLOAT stem files and the in-memory result of the real model (20 s).

The peers sit behind `benchmarks.peers.WaveformSeparator` and openunmix is imported without
torchaudio by `benchmarks.peers.import_openunmix` (see there why).
Requires `pip install demucs openunmix einops julius --no-deps`. Prints one JSON object last.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from functools import partial
from types import SimpleNamespace

import torch
from torch import nn

from benchmarks.peers import PeerConfig, WaveformSeparator, import_openunmix
from modeling_tfswa import TFSWAConfig, TFSWAUNet
from modeling_tfswa.separation import DEFAULT_BATCH_SIZE, apply_model

SAMPLE_RATE = 44100
STEMS = ["drums", "bass", "other", "vocals"]
CHUNKING = dict(segment_seconds=6.0, overlap=0.25, batch_size=4)


def build_tfswa() -> nn.Module:
    return TFSWAUNet(TFSWAConfig(stems=STEMS))


def build_htdemucs() -> nn.Module:
    from demucs.htdemucs import HTDemucs

    net = HTDemucs(
        STEMS, dconv_mode=3, bottom_channels=512, t_layers=5, segment=CHUNKING["segment_seconds"]
    )
    return WaveformSeparator(net, PeerConfig(STEMS))


def build_umxhq() -> nn.Module:
    openunmix = import_openunmix()  # without torchaudio (see benchmarks.peers)
    from openunmix.utils import bandwidth_to_max_bin

    max_bin = int(bandwidth_to_max_bin(SAMPLE_RATE, 4096, 16000))
    targets = {
        stem: openunmix.OpenUnmix(nb_bins=2049, nb_channels=2, hidden_size=512, max_bin=max_bin)
        for stem in STEMS
    }
    net = openunmix.Separator(
        targets, niter=1, residual=False, n_fft=4096, n_hop=1024, nb_channels=2, wiener_win_len=300
    )
    return WaveformSeparator(net, PeerConfig(STEMS))


BUILDERS = {"tfswa_unet": build_tfswa, "htdemucs": build_htdemucs, "umxhq": build_umxhq}


def quality_builders(names: list[str]) -> dict:
    """Builders of models of `benchmarks.quality` by name, with that benchmark's default stems and
    segment length (its sizes)."""
    from benchmarks.quality import build_model, parse_args

    defaults = parse_args([])
    return {
        name: partial(build_model, name, defaults.stems, defaults.segment_seconds) for name in names
    }


def measure_speed(
    seconds: float,
    rounds: int,
    threads: int,
    builders: dict | None = None,
    chunking: dict | None = None,
    batch_sizes: list[int] | None = None,
) -> dict:
    """Seconds per minute of audio of each model, best of `rounds` interleaved rounds.

    Both wall time and process CPU time (all threads) are reported: on a machine shared with other
    jobs, the wall time of a round depends on their load while the CPU time mostly does not, so
    `cpu_ratio_to_tfswa_unet` is the steadier comparison there. `builders` (default
    [`BUILDERS`]) name the models, the first being the reference of the ratios; `chunking` is
    passed to `apply_model` (default [`CHUNKING`]; `{}` for each model's own segment).

    `batch_sizes`: separate with each of these segments per forward pass (in the same rounds) and
    keep each model's fastest (`best_batch_size`; every one under `cpu_seconds_per_minute_by_batch`):
    on a CPU the cheapest batch differs between models (a batch whose activations spill out of
    the cache costs more per segment), so the ratios compare each model at its own best. Default:
    the batch size of `chunking` (or `apply_model`'s) alone.
    """
    builders = BUILDERS if builders is None else builders
    chunking = CHUNKING if chunking is None else chunking
    sizes = batch_sizes or [chunking.get("batch_size", DEFAULT_BATCH_SIZE)]
    reference_name = next(iter(builders))
    torch.set_num_threads(threads)
    torch.manual_seed(0)
    mixture = 0.1 * torch.randn(2, int(seconds * SAMPLE_RATE))
    models, results, times = {}, {}, {}
    for name, build in builders.items():
        try:
            models[name] = build().eval()
        except Exception as error:  # a baseline that cannot be built is reported, not faked
            results[name] = {"error": f"{type(error).__name__}: {error}"}
            continue
        parameters = sum(p.numel() for p in models[name].parameters())
        results[name] = {"parameters_millions": round(parameters / 1e6, 2)}
        times[name] = {size: {"wall": [], "cpu": []} for size in sizes}
        apply_model(models[name], mixture[:, : 2 * SAMPLE_RATE], **chunking)  # warm-up
    for _ in range(rounds):
        for name, model in models.items():
            for size in sizes:
                wall, cpu = time.perf_counter(), time.process_time()
                apply_model(model, mixture, **{**chunking, "batch_size": size})
                times[name][size]["wall"].append(time.perf_counter() - wall)
                times[name][size]["cpu"].append(time.process_time() - cpu)
    for name in models:
        cpu = {size: min(t["cpu"]) / seconds * 60 for size, t in times[name].items()}
        best = min(cpu, key=cpu.get)
        results[name].update(
            best_batch_size=best,
            wall_s=[round(t, 3) for t in times[name][best]["wall"]],
            cpu_s=[round(t, 3) for t in times[name][best]["cpu"]],
            seconds_per_minute=round(min(times[name][best]["wall"]) / seconds * 60, 2),
            cpu_seconds_per_minute=round(cpu[best], 2),
        )
        if len(sizes) > 1:
            results[name]["cpu_seconds_per_minute_by_batch"] = {
                size: round(value, 2) for size, value in cpu.items()
            }
    if reference_name in models:
        reference = results[reference_name]
        key = reference_name.replace("-", "_")
        for name in models:
            result = results[name]
            result[f"ratio_to_{key}"] = round(
                result["seconds_per_minute"] / reference["seconds_per_minute"], 2
            )
            result[f"cpu_ratio_to_{key}"] = round(
                result["cpu_seconds_per_minute"] / reference["cpu_seconds_per_minute"], 2
            )
    return results


def plot(summary: dict, path: str) -> None:
    """Bar charts of the speed (wall and CPU seconds per minute) and of the memory cases."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, (speed_axis, memory_axis) = plt.subplots(1, 2, figsize=(11, 4))
    names = [name for name, result in summary["speed"].items() if "error" not in result]
    positions = range(len(names))
    for offset, key, label in (
        (-0.2, "seconds_per_minute", "wall"),
        (0.2, "cpu_seconds_per_minute", "CPU"),
    ):
        values = [summary["speed"][name][key] for name in names]
        speed_axis.bar([p + offset for p in positions], values, width=0.4, label=label)
    speed_axis.set_xticks(list(positions), names)
    speed_axis.set_ylabel(f"seconds per minute of audio ({summary['threads']} threads)")
    speed_axis.set_title("Separation cost on CPU (lower is better)")
    speed_axis.legend()
    cases = [case for case in summary["memory"] if "error" not in case]
    labels = [
        f"{case['audio_seconds'] / 60:g} min\n{case['mode'].replace('_', ' ')}" for case in cases
    ]
    bottoms = [0] * len(cases)
    for key in ("baseline_rss_mb", "output_buffer_mb", "working_mb"):
        values = [case[key] for case in cases]
        memory_axis.bar(labels, values, bottom=bottoms, label=key.removesuffix("_mb"))
        bottoms = [b + v for b, v in zip(bottoms, values)]
    memory_axis.set_ylabel("peak resident memory (MB)")
    memory_axis.set_title("TFSWA-UNet memory vs track length")
    memory_axis.legend()
    figure.tight_layout()
    figure.savefig(path, dpi=120)


def _status_mb(field: str) -> float:
    """A memory field of /proc/self/status (VmRSS: current, VmHWM: peak since the last reset)."""
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024
    raise RuntimeError(f"/proc/self/status has no {field}")


class StandIn(nn.Module):
    """The real model for its first `real_batches` calls, then zeros of the same shape.

    Working memory is steady from the first batch on (one batch of segments in flight, the same
    output buffer), so the long-track memory case runs the real model on a few batches only and
    keeps the rest of the run (segment views, copies, overlap-add over the whole track) real.
    """

    def __init__(self, model: nn.Module, real_batches: int):
        super().__init__()
        self.model, self.config, self.real_batches, self.calls = (
            model,
            model.config,
            real_batches,
            0,
        )

    def forward(self, input_values: torch.Tensor) -> SimpleNamespace:
        self.calls += 1
        if self.calls <= self.real_batches:
            return self.model(input_values)
        batch, channels, length = input_values.shape
        shape = (batch, len(self.config.stems), channels, length)
        return SimpleNamespace(waveforms=torch.zeros(shape))


#: Memory cases: the overlap-add into an in-memory tensor (`apply_model`), a file separated into
#: stem files (`separate_file`: streamed, `tfswa-separate`'s defaults: PCM_24, rescale), and one
#: forward pass over the whole track without chunking.
MEMORY_MODES = ("in_memory", "to_files", "one_pass")


def _write_noise(path: str, seconds: float, block_seconds: float = 30.0) -> None:
    """A stereo float WAV of `seconds` of quiet noise, written block by block."""
    import soundfile as sf

    generator = torch.Generator().manual_seed(0)
    total = int(seconds * SAMPLE_RATE)
    with sf.SoundFile(path, "w", SAMPLE_RATE, 2, "FLOAT") as out:
        for start in range(0, total, int(block_seconds * SAMPLE_RATE)):
            length = min(int(block_seconds * SAMPLE_RATE), total - start)
            out.write((0.1 * torch.randn(length, 2, generator=generator)).numpy())


def memory_worker(seconds: float, mode: str, real_batches: int, threads: int) -> dict:
    """Run in a fresh process: peak RSS while separating `seconds` of audio with TFSWA-UNet.

    `ru_maxrss` would report the parent's peak (Linux keeps it across fork + exec), so the peak is
    the kernel's VmHWM of this process, reset (`/proc/self/clear_refs` 5) after the model and the
    mixture (or, for `to_files`, the input file) exist.
    """
    import tempfile

    from modeling_tfswa.separation import Separator, separate_file

    torch.set_num_threads(threads)
    torch.manual_seed(0)
    model = build_tfswa().eval()
    model.config.segment_seconds = CHUNKING["segment_seconds"]
    model.config.overlap = CHUNKING["overlap"]
    folder = tempfile.mkdtemp(prefix="separation-memory-")
    if mode == "to_files":
        _write_noise(f"{folder}/track.wav", seconds)
    else:
        mixture = 0.1 * torch.randn(2, int(seconds * SAMPLE_RATE))
    with open("/proc/self/clear_refs", "w") as clear_refs:
        clear_refs.write("5")  # reset VmHWM to the current RSS
    baseline_mb = _status_mb("VmRSS")
    start = time.perf_counter()
    output_mb = 0.0
    if mode in ("in_memory", "to_files"):
        runner = StandIn(model, real_batches)
        if mode == "in_memory":
            stems = apply_model(runner, mixture, **CHUNKING)
            output_mb = stems.numel() * stems.element_size() / 2**20
        else:
            separator = Separator(runner, batch_size=CHUNKING["batch_size"])
            separate_file(separator, f"{folder}/track.wav", f"{folder}/out")
        batches = runner.calls
    elif mode == "one_pass":
        batches = real_batches = 1
        with torch.inference_mode():
            stems = model(mixture[None]).waveforms[0]
        output_mb = stems.numel() * stems.element_size() / 2**20
    else:
        raise ValueError(f"mode must be one of {MEMORY_MODES}, got {mode!r}")
    elapsed = time.perf_counter() - start
    peak_mb = _status_mb("VmHWM")
    import shutil

    shutil.rmtree(folder, ignore_errors=True)
    result = {
        "audio_seconds": seconds,
        "mode": mode,
        "forward_batches": batches,
        "real_model_batches": min(real_batches, batches),
        "baseline_rss_mb": round(baseline_mb),
        "peak_rss_mb": round(peak_mb),
        "output_buffer_mb": round(output_mb),
        "working_mb": round(peak_mb - baseline_mb - output_mb),  # beyond model, input, output
    }
    if real_batches >= batches:
        result["seconds_per_minute"] = round(elapsed / seconds * 60, 2)
    return result


def streamed_vs_in_memory(seconds: float = 20.0) -> float:
    """Largest difference between the stems `separate_file` streams to FLOAT WAV files and those
    `Separator.separate` returns in memory, with the real TFSWA-UNet (should be < 1e-6)."""
    import tempfile

    import soundfile as sf

    from modeling_tfswa.separation import Separator, separate_file

    torch.manual_seed(0)
    model = build_tfswa().eval()
    separator = Separator(model, **CHUNKING)
    with tempfile.TemporaryDirectory() as folder:
        _write_noise(f"{folder}/track.wav", seconds)
        separate_file(separator, f"{folder}/track.wav", folder, subtype="FLOAT")
        mixture, _ = sf.read(f"{folder}/track.wav", dtype="float32", always_2d=True)
        expected = separator.separate(mixture.T.copy(), SAMPLE_RATE)
        return max(
            float(abs(sf.read(f"{folder}/track/{stem}.wav", dtype="float32")[0].T - wave).max())
            for stem, wave in expected.items()
        )


def measure_memory(cases: list[tuple[float, str]], real_batches: int, threads: int) -> list[dict]:
    results = []
    for seconds, mode in cases:
        command = [
            sys.executable,
            "-m",
            "benchmarks.separation_speed",
            "--memory-worker",
            str(seconds),
            mode,
        ]
        command += ["--threads", str(threads), "--real-batches", str(real_batches)]
        done = subprocess.run(command, capture_output=True, text=True)
        if done.returncode != 0:
            tail = done.stderr.strip().splitlines()[-1:] or ["no output"]
            results.append({"audio_seconds": seconds, "mode": mode, "error": tail[0]})
        else:
            results.append(json.loads(done.stdout.strip().splitlines()[-1]))
        print(json.dumps(results[-1]), file=sys.stderr)
    return results


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--seconds",
        type=float,
        default=9.0,
        help="audio per speed measurement (9 s: two segments, as many per second as a long track)",
    )
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds (best kept)")
    parser.add_argument(
        "--quality-models",
        nargs="+",
        default=None,
        metavar="NAME",
        help="speed of these models of benchmarks.quality instead (its sizes and default segment, "
        "each model's own chunking; the first is the reference of the ratios)",
    )
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument(
        "--batch-sizes", type=int, nargs="+", default=None, metavar="N",
        help="separate with each of these segments per forward pass and compare every model at "
        "its fastest (default: one batch size, that of the chunking)",
    )  # fmt: skip
    parser.add_argument("--short-seconds", type=float, default=30.0)
    parser.add_argument("--long-minutes", type=float, default=10.0)
    parser.add_argument(
        "--real-batches",
        type=int,
        default=4,
        help="memory cases: forward batches run by the real model before the zero stand-in",
    )
    parser.add_argument("--skip-memory", action="store_true")
    parser.add_argument("--skip-speed", action="store_true")
    parser.add_argument("--plot", default=None, help="write bar charts of the results to this PNG")
    parser.add_argument("--memory-worker", nargs=2, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.memory_worker is not None:
        seconds, mode = float(args.memory_worker[0]), args.memory_worker[1]
        print(json.dumps(memory_worker(seconds, mode, args.real_batches, args.threads)))
        return

    builders = chunking = None
    if args.quality_models:
        builders, chunking = quality_builders(args.quality_models), {}
    speed = {}
    if not args.skip_speed:
        speed = measure_speed(
            args.seconds, args.rounds, args.threads, builders, chunking, args.batch_sizes
        )
    print(json.dumps(speed), file=sys.stderr)
    memory = []
    if not args.skip_memory:
        cases = [
            (args.short_seconds, "to_files"),
            (args.long_minutes * 60, "to_files"),
            (args.short_seconds, "in_memory"),
            (args.long_minutes * 60, "in_memory"),
            (args.short_seconds, "one_pass"),
        ]
        memory = measure_memory(cases, args.real_batches, args.threads)
    summary = {
        "benchmark": "separation_speed",
        "device": "cpu",
        "threads": args.threads,
        "chunking": CHUNKING if chunking is None else "each model's own",
        "speed_audio_seconds": args.seconds,
        "speed": speed,
        "memory": memory,
    }
    for mode in ("to_files", "in_memory"):
        cases = [m for m in memory if m.get("mode") == mode and "error" not in m]
        if len(cases) == 2:
            short, long = cases
            summary[f"long_vs_short_{mode}"] = {
                "audio_ratio": round(long["audio_seconds"] / short["audio_seconds"], 1),
                "peak_rss_mb": [short["peak_rss_mb"], long["peak_rss_mb"]],
                "peak_rss_ratio": round(long["peak_rss_mb"] / short["peak_rss_mb"], 2),
                "output_buffer_mb": [short["output_buffer_mb"], long["output_buffer_mb"]],
                "working_mb": [short["working_mb"], long["working_mb"]],
            }
    if not args.skip_memory:
        summary["streamed_vs_in_memory_max_abs_diff"] = streamed_vs_in_memory()
    if args.plot:
        plot(summary, args.plot)
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
