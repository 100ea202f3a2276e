"""Cost of the default TFSWA-UNet: parameters, FLOPs and CPU forward time per second of audio.

Each configuration runs in its own subprocess so that its peak memory (max RSS) is its own. The
last line of stdout is one JSON object.

    python benchmarks/model_speed.py [--seconds 6] [--repeats 5]
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import subprocess
import sys
import time

STEM_SETS = {"2stems": ["vocals", "accompaniment"], "4stems": ["vocals", "drums", "bass", "other"]}


def measure(stem_set: str, seconds: float, repeats: int) -> dict:
    """Forward-only cost of the default config with the given stems, in this process."""
    import torch
    from torch.nn.attention import SDPBackend, sdpa_kernel
    from torch.utils.flop_counter import FlopCounterMode

    from modeling_tfswa import TFSWAConfig, TFSWAUNet

    torch.manual_seed(0)
    config = TFSWAConfig(stems=STEM_SETS[stem_set])
    model = TFSWAUNet(config).eval()
    mixture = torch.randn(1, config.audio_channels, int(seconds * config.sample_rate))
    rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    with torch.inference_mode():
        counter = FlopCounterMode(display=False)
        # The math backend decomposes attention into counted matmuls (the fused CPU kernel has no
        # FLOP formula, so it would count as free).
        with counter, sdpa_kernel(SDPBackend.MATH):
            model(mixture)
        model(mixture)  # warm-up
        times = []
        for _ in range(repeats):
            start = time.perf_counter()
            model(mixture)
            times.append(time.perf_counter() - start)
    return {
        "stems": config.stems,
        "parameters": sum(p.numel() for p in model.parameters()),
        "gflops_per_audio_second": counter.get_total_flops() / seconds / 1e9,
        "forward_seconds_per_audio_second": statistics.median(times) / seconds,
        "forward_seconds_per_audio_second_min": min(times) / seconds,
        "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "peak_rss_increase_mib": (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - rss_before)
        / 1024,
        "torch_threads": torch.get_num_threads(),
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=6.0, help="input length (a segment)")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--one", choices=sorted(STEM_SETS), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.one:
        print(json.dumps(measure(args.one, args.seconds, args.repeats)))
        return
    results = {}
    for stem_set in STEM_SETS:
        command = [sys.executable, __file__, "--one", stem_set, "--seconds", str(args.seconds)]
        command += ["--repeats", str(args.repeats)]
        output = subprocess.run(command, check=True, capture_output=True, text=True).stdout
        results[stem_set] = json.loads(output.strip().splitlines()[-1])
        print(f"{stem_set}: {results[stem_set]}", file=sys.stderr)
    summary = {
        "benchmark": "model_speed",
        "segment_seconds": args.seconds,
        "default_4stems_parameters": results["4stems"]["parameters"],
        "default_4stems_gflops_per_audio_second": results["4stems"]["gflops_per_audio_second"],
        # Reference figures measured on this machine class for other architectures (forward only);
        # benchmarks/separation_speed.py measures them side by side in one run.
        "reference_seconds_per_audio_second": {"htdemucs": 0.43, "openunmix_umxhq": 0.10},
        "results": results,
    }
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
