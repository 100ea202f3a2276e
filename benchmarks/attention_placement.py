"""Cost and quality of placing each kind of attention at each U-Net stage (behind the default).

Cost: for each variant of the default 4-stem config, parameters, GFLOPs and CPU forward seconds per
second of audio, and the forward time relative to the default, all in one run.

Quality (`--train-steps N`): each variant (2 stems, vocals / accompaniment) trains for the same N
steps from the same seed on the same random segments of synthetic songs, then its global SDR per
stem is measured on held-out synthetic songs. A short run ranks the variants by how fast they
learn, not by where they end up after a full training.

The last line of stdout is one JSON object.

    python benchmarks/attention_placement.py [--seconds 6] [--repeats 3] [--train-steps 150]
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

import numpy as np
import torch
from torch.nn.attention import SDPBackend, sdpa_kernel
from torch.utils.flop_counter import FlopCounterMode

from data_scripts.synthetic import generate_song
from modeling_tfswa import TFSWAConfig, TFSWAUNet
from modeling_tfswa.metrics import sdr

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
        # The math backend decomposes attention into counted matmuls (the fused CPU kernel has no
        # FLOP formula, so it would count as free).
        with counter, sdpa_kernel(SDPBackend.MATH):
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


def songs(split: str, count: int, seconds: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Synthetic songs as (mixture (N, 2, T), stems (N, 2, 2, T)) with stems vocals/accompaniment."""
    mixtures, stems = [], []
    for index in range(count):
        song = {
            k: torch.from_numpy(v.T) for k, v in generate_song(0, split, index, seconds).items()
        }
        mixtures.append(song["mixture"])
        stems.append(torch.stack([song["vocals"], song["drums"] + song["bass"] + song["other"]]))
    return torch.stack(mixtures), torch.stack(stems)


def quality(overrides: dict, steps: int, data, segment: int, batch: int) -> dict:
    (train_mix, train_stems), (valid_mix, valid_stems) = data
    torch.manual_seed(0)
    config = TFSWAConfig(stems=["vocals", "accompaniment"], **overrides)
    model = TFSWAUNet(config).train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3, weight_decay=1e-4)
    rng = np.random.default_rng(0)  # the same segments for every variant
    start = time.perf_counter()
    for _ in range(steps):
        tracks = rng.integers(len(train_stems), size=batch)
        offsets = rng.integers(train_stems.shape[-1] - segment, size=batch)
        target = torch.stack(
            [train_stems[t, ..., o : o + segment] for t, o in zip(tracks, offsets)]
        )
        loss = model(target.sum(1), labels=target).loss
        optimizer.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
    train_seconds = time.perf_counter() - start
    model.eval()
    with torch.inference_mode():
        estimates = torch.cat([model(m[None]).waveforms for m in valid_mix])
    scores = sdr(valid_stems, estimates).mean(0)  # (stems,)
    baseline = sdr(valid_stems, valid_mix[:, None].expand_as(valid_stems)).mean(0)
    return {
        "sdr": dict(zip(config.stems, scores.tolist())),
        "mixture_sdr": dict(zip(config.stems, baseline.tolist())),
        "train_seconds": train_seconds,
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=6.0)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--train-steps", type=int, default=0, help="0 measures cost only")
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--segment-seconds", type=float, default=3.0)
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
    if args.train_steps:
        data = songs("train", 16, 20.0), songs("validation", 6, 12.0)
        segment = int(args.segment_seconds * 44100)
        for name, kw in VARIANTS.items():
            if "patch" in name:
                continue
            results[name]["quality"] = quality(kw, args.train_steps, data, segment, args.batch)
            q = results[name]["quality"]
            print(
                f"{name}: SDR {q['sdr']} (mixture {q['mixture_sdr']}) in {q['train_seconds']:.0f} s"
            )
    print(json.dumps({"benchmark": "attention_placement", "seconds": args.seconds, **results}))


if __name__ == "__main__":
    main()
