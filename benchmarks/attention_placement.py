"""Cost and quality of placing each kind of attention at each U-Net stage (behind the default).

Cost: for each variant of the default 4-stem config, parameters, GFLOPs and CPU forward seconds per
second of audio, and the forward time relative to the default, all in one run.

Quality (`--train-steps N`): each variant (2 stems, vocals / accompaniment) trains with the
project's loop for the same N steps from the same seed on the same random segments of synthetic
songs, then its global SDR per stem is measured on held-out synthetic songs. A short run ranks the variants by how fast they
learn, not by where they end up after a full training.

The last line of stdout is one JSON object.

    python3 -m benchmarks.attention_placement [--seconds 6] [--repeats 3] [--train-steps 150]
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time

import numpy as np
import torch
from torch.nn.attention import SDPBackend, sdpa_kernel
from torch.utils.data import Dataset
from torch.utils.flop_counter import FlopCounterMode

from data_scripts.synthetic import generate_song
from modeling_tfswa import TFSWAConfig, TFSWAUNet
from modeling_tfswa.metrics import sdr
from modeling_tfswa.training.config import load_config
from modeling_tfswa.training.trainer import train

VARIANTS = {
    "default (window everywhere, temporal+frequency in stages 2-5)": {},
    "window attention only": {"tf_attention_stages": [False] * 5},
    "temporal+frequency in the bottleneck only": {
        "tf_attention_stages": [False, False, False, False, True]
    },
    "temporal+frequency in every stage": {"tf_attention_stages": [True] * 5},
    "default at hop 512 (2x the frames)": {"hop_length": 512},
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


class RandomSegments(Dataset):
    """Random `segment`-sample windows of in-memory songs, the same for every variant (seeded by
    the item index): `{"mixture": (C, T), "stems": (S, C, T)}`."""

    def __init__(self, stems: torch.Tensor, segment: int, length: int, seed: int = 0):
        self.stems, self.segment, self.length, self.seed = stems, segment, length, seed

    def __len__(self) -> int:
        return self.length

    def __getitem__(self, index: int) -> dict:
        rng = np.random.default_rng([self.seed, index])
        track = rng.integers(len(self.stems))
        offset = rng.integers(self.stems.shape[-1] - self.segment)
        stems = self.stems[track, ..., offset : offset + self.segment]
        return {"mixture": stems.sum(0), "stems": stems}


def quality(overrides: dict, steps: int, data, segment: int, batch: int) -> dict:
    """Train the variant with the project's loop (`modeling_tfswa.training.trainer.train`: AdamW
    1e-3, waveform L1, no EMA) on the same random segments, then score held-out songs."""
    (_, train_stems), (valid_mix, valid_stems) = data
    model = {"stems": ["vocals", "accompaniment"], **overrides}
    with tempfile.TemporaryDirectory() as output_dir:
        config = load_config(
            None,
            {
                "model": model,
                "output_dir": output_dir,
                "seed": 0,
                "max_steps": steps,
                "eval_every": steps,
                "save_every": steps,
                "data.batch_size": batch,
                "optim.warmup_steps": 0,
                "ema_decay": 0.0,
            },
        )
        train_data = RandomSegments(train_stems, segment, steps * batch)
        valid_data = RandomSegments(valid_stems, segment, batch, seed=1)
        result = train(config, train_dataset=train_data, validation_dataset=valid_data)
    trained = result.model.eval()
    with torch.inference_mode():
        estimates = torch.cat([trained(m[None]).waveforms for m in valid_mix])
    scores = sdr(valid_stems, estimates).mean(0)  # (stems,)
    baseline = sdr(valid_stems, valid_mix[:, None].expand_as(valid_stems)).mean(0)
    return {
        "sdr": dict(zip(model["stems"], scores.tolist())),
        "mixture_sdr": dict(zip(model["stems"], baseline.tolist())),
        "train_seconds": result.train_seconds,
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
