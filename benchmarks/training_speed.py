"""Training speed of TFSWA-UNet: optimizer steps per second of one training step as the trainer
runs it (forward, waveform L1 + multi-resolution STFT loss, backward, clipping, AdamW).

    python benchmarks/training_speed.py                      # 4-stem default model, batch 4, 6-s segments
    python benchmarks/training_speed.py --batch-size 8 --seconds 6 --mixed-precision bf16

Prints one JSON object as the last line of stdout: steps/s, seconds/step, and audio seconds trained
per wall-clock second (batch x segment / step time).
"""

from __future__ import annotations

import argparse
import json
import platform
import time

import torch

from modeling_tfswa import TFSWAConfig, TFSWAUNet
from modeling_tfswa.training.config import LossConfig
from modeling_tfswa.training.losses import SeparationLoss


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--stems", nargs="+", default=["vocals", "drums", "bass", "other"])
    parser.add_argument("--batch-size", type=int, default=4)
    parser.add_argument("--seconds", type=float, default=6.0)
    parser.add_argument("--steps", type=int, default=3, help="timed steps (after one warm-up)")
    parser.add_argument("--mixed-precision", choices=["no", "bf16"], default="no")
    parser.add_argument("--gradient-checkpointing", action="store_true")
    args = parser.parse_args()

    config = TFSWAConfig(stems=args.stems)  # the model defaults
    model = TFSWAUNet(config).train()
    if args.gradient_checkpointing:
        model.activation_checkpointing_enable()  # (transformers 5 name of gradient checkpointing)
    loss_fn = SeparationLoss(
        LossConfig(waveform_l1=1.0, multi_resolution_stft=0.5),
        config.stems,
        config.n_fft,
        config.hop_length,
    )
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3, weight_decay=1e-4)
    samples = int(args.seconds * config.sample_rate)
    generator = torch.Generator().manual_seed(0)
    stems = 0.1 * torch.randn(args.batch_size, config.num_stems, 2, samples, generator=generator)
    mixture = stems.sum(1)

    def step() -> float:
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=args.mixed_precision == "bf16"):
            estimates = model(input_values=mixture).waveforms
        loss = loss_fn(estimates, stems)["total"]
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        return loss.item()

    step()  # warm-up (allocations, one-off kernels)
    times = []
    for _ in range(args.steps):
        start = time.perf_counter()
        step()
        times.append(time.perf_counter() - start)
    seconds_per_step = sorted(times)[len(times) // 2]
    result = {
        "benchmark": "training_speed",
        "stems": config.num_stems,
        "parameters": sum(p.numel() for p in model.parameters()),
        "batch_size": args.batch_size,
        "segment_seconds": args.seconds,
        "mixed_precision": args.mixed_precision,
        "gradient_checkpointing": args.gradient_checkpointing,
        "device": "cpu",
        "torch_threads": torch.get_num_threads(),
        "cpu": platform.processor() or platform.machine(),
        "median_seconds_per_step": round(seconds_per_step, 3),
        "steps_per_second": round(1.0 / seconds_per_step, 4),
        "audio_seconds_per_second": round(args.batch_size * args.seconds / seconds_per_step, 3),
        "step_times": [round(t, 3) for t in times],
    }
    print(json.dumps(result))


if __name__ == "__main__":
    main()
