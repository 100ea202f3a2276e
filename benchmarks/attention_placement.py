"""Cost of placing each kind of attention at each U-Net stage (the measurement behind the default).

For each variant of the default 4-stem config: parameters, GFLOPs and CPU forward seconds per second
of audio, and the forward time relative to the default, all in one run. The last line of stdout is
one JSON object.

    python benchmarks/attention_placement.py [--seconds 6] [--repeats 3]
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

import torch
from torch.utils.flop_counter import FlopCounterMode

from modeling_tfswa import TFSWAConfig, TFSWAUNet

VARIANTS = {
    "default (window everywhere, temporal+frequency in stages 3-4)": {},
    "window attention only": {"tf_attention_stages": [False, False, False, False]},
    "temporal+frequency in the bottleneck only": {
        "tf_attention_stages": [False, False, False, True]
    },
    "temporal+frequency in every stage": {"tf_attention_stages": [True, True, True, True]},
    "default with 1x8 patches (2x the tokens)": {"patch_size": [1, 8]},
}


def cost(overrides: dict, seconds: float, repeats: int) -> dict:
    torch.manual_seed(0)
    config = TFSWAConfig(**overrides)
    model = TFSWAUNet(config).eval()
    mixture = torch.randn(1, config.audio_channels, int(seconds * config.sample_rate))
    with torch.inference_mode():
        counter = FlopCounterMode(display=False)
        with counter:
            model(mixture)
        times = []
        for _ in range(repeats):
            start = time.perf_counter()
            model(mixture)
            times.append(time.perf_counter() - start)
    return {
        "overrides": overrides,
        "parameters": sum(p.numel() for p in model.parameters()),
        "gflops_per_audio_second": counter.get_total_flops() / seconds / 1e9,
        "forward_seconds_per_audio_second": statistics.median(times) / seconds,
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=6.0)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args(argv)
    results = {name: cost(kw, args.seconds, args.repeats) for name, kw in VARIANTS.items()}
    reference = next(iter(results.values()))["forward_seconds_per_audio_second"]
    for name, result in results.items():
        result["time_vs_default"] = result["forward_seconds_per_audio_second"] / reference
        print(
            f"| {name} | {result['parameters'] / 1e6:.2f} M | "
            f"{result['gflops_per_audio_second']:.2f} | "
            f"{result['forward_seconds_per_audio_second']:.3f} | {result['time_vs_default']:.2f} |"
        )
    print(json.dumps({"benchmark": "attention_placement", "seconds": args.seconds, **results}))


if __name__ == "__main__":
    main()
