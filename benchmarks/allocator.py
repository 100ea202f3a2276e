"""CPU seconds of a training step and of separation with glibc's default allocator settings and
with [`modeling_tfswa.allocator.keep_freed_memory`], per model of the quality benchmark.

    python3 -m benchmarks.allocator                       # tfswa-unet, open-unmix, htdemucs
    python3 -m benchmarks.allocator --models tfswa-unet --steps 10

Each (model, setting) runs in its own process (the setting is process-wide and cannot be undone
cleanly), one after the other, rounds interleaved: a training step is forward, waveform L1,
backward and AdamW on a batch of noise (`--batch-size` segments of `--segment` seconds, the
quality benchmark's defaults: batch 2, 2 s), timed in process CPU seconds (kernel time included:
that is where the page faults go), median over `--steps` after one warm-up step; separation is
`benchmarks.separation_speed.measure_speed` over `--seconds` of noise, best of `--rounds`.

Prints one JSON object as the last line of stdout: per model and setting the seconds, and the
ratios `kept / default` (below 1: keeping freed memory is faster).
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time

import torch

from benchmarks.peers import MUSDB_STEMS, SAMPLE_RATE
from benchmarks.separation_speed import measure_speed, quality_builders
from modeling_tfswa.allocator import keep_freed_memory

SETTINGS = ("default", "kept")
#: What each child process reports, per setting.
MEASURES = ("step_cpu_s", "separation_cpu_s_per_s")


def measure(name: str, setting: str, args: argparse.Namespace) -> dict:
    """Training-step and separation CPU seconds of model `name` in this process under `setting`."""
    from benchmarks.quality import build_model

    kept = keep_freed_memory() if setting == "kept" else False
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    model = build_model(name, MUSDB_STEMS, args.segment)
    optimizer = torch.optim.AdamW(model.parameters(), 1e-3)
    samples = int(args.segment * SAMPLE_RATE)
    stems = 0.1 * torch.randn(args.batch_size, len(MUSDB_STEMS), 2, samples)
    mixture = stems.sum(1)
    steps = []
    for _ in range(args.steps + 1):
        start = time.process_time()
        estimate = model(mixture).waveforms
        (estimate - stems).abs().mean().backward()
        optimizer.step()
        optimizer.zero_grad()
        steps.append(time.process_time() - start)
    # Separation through the separation-speed benchmark's loop (a fresh build, each model's own
    # segment and the default batch, best of `--rounds` after a warm-up).
    speed = measure_speed(args.seconds, args.rounds, args.threads, quality_builders([name]), {})
    return {
        "kept": kept,
        "step_cpu_s": round(statistics.median(steps[1:]), 4),
        "separation_cpu_s_per_s": round(speed[name]["cpu_seconds_per_minute"] / 60, 4),
    }


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=["tfswa-unet", "open-unmix", "htdemucs"])
    parser.add_argument("--steps", type=int, default=8, help="timed training steps")
    parser.add_argument("--batch-size", type=int, default=2)
    parser.add_argument("--segment", type=float, default=2.0, help="training segment, seconds")
    parser.add_argument("--seconds", type=float, default=30.0, help="audio separated per round")
    parser.add_argument("--rounds", type=int, default=3, help="separation rounds (best is kept)")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=2, help="processes per model and setting")
    parser.add_argument("--child", nargs=2, metavar=("MODEL", "SETTING"), help=argparse.SUPPRESS)
    return parser.parse_args(argv)


def forwarded(args: argparse.Namespace) -> list[str]:
    """The measurement options, for a child process."""
    return [
        f"--steps={args.steps}",
        f"--batch-size={args.batch_size}",
        f"--segment={args.segment}",
        f"--seconds={args.seconds}",
        f"--rounds={args.rounds}",
        f"--threads={args.threads}",
    ]


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    if args.child:
        print(json.dumps(measure(*args.child, args)))
        return
    runs: dict[str, dict[str, list[dict]]] = {
        name: {s: [] for s in SETTINGS} for name in args.models
    }
    for _ in range(args.repeats):
        for name in args.models:
            for setting in SETTINGS:
                command = [sys.executable, "-m", "benchmarks.allocator", "--child", name, setting]
                done = subprocess.run(
                    command + forwarded(args), capture_output=True, text=True, check=True
                )
                runs[name][setting].append(json.loads(done.stdout.strip().splitlines()[-1]))
    results = {}
    for name, by_setting in runs.items():
        row = {}
        for setting, measured in by_setting.items():
            row[setting] = {key: min(m[key] for m in measured) for key in MEASURES}
        row["allocator_changed"] = all(m["kept"] for m in by_setting["kept"])
        for key in MEASURES:
            row[f"{key}_ratio"] = round(row["kept"][key] / row["default"][key], 3)
        results[name] = row
        print(
            f"{name:12s} step {row['default']['step_cpu_s']:.3f} -> {row['kept']['step_cpu_s']:.3f}"
            f" CPU s ({row['step_cpu_s_ratio']:.2f}x), separation "
            f"{row['default']['separation_cpu_s_per_s']:.4f} -> "
            f"{row['kept']['separation_cpu_s_per_s']:.4f} CPU s per s "
            f"({row['separation_cpu_s_per_s_ratio']:.2f}x)"
        )
    print(json.dumps({"benchmark": "allocator", "threads": args.threads, "models": results}))


if __name__ == "__main__":
    main()
