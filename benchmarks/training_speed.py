"""Training speed of TFSWA-UNet: seconds per optimizer step of the trainer's own step
(`modeling_tfswa.training.trainer.train_step`: forward, waveform L1 + multi-resolution STFT loss,
backward, clipping, AdamW, schedule), on random stems.

    python3 -m benchmarks.training_speed                  # 4-stem default model, batch 4, 6-s segments
    python3 -m benchmarks.training_speed --batch-size 8 --seconds 6 --mixed-precision bf16

Runs on the device accelerate picks (CUDA when there is one; fp16 there with accelerate's gradient
scaler, a no-op on CPU); the step is timed up to the end of its GPU work.

Prints one JSON object as the last line of stdout: steps/s, seconds/step, and audio seconds trained
per wall-clock second (batch x segment / step time).
"""

from __future__ import annotations

import argparse
import json
import math
import platform
import tempfile
import time

import torch
from torch.utils.data import Dataset

from modeling_tfswa.training.config import load_config
from modeling_tfswa.training.trainer import prepare_run, train_step


class RandomStems(Dataset):
    """`{"mixture": (2, T), "stems": (S, 2, T)}` items of noise (speed does not depend on content)."""

    def __init__(self, stems: int, samples: int, length: int):
        self.stems, self.samples, self.length = stems, samples, length

    def __len__(self) -> int:
        return self.length

    def __getitem__(self, index: int) -> dict:
        generator = torch.Generator().manual_seed(index)
        stems = 0.1 * torch.randn(self.stems, 2, self.samples, generator=generator)
        return {"mixture": stems.sum(0), "stems": stems}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--stems", nargs="+", default=["vocals", "drums", "bass", "other"])
    parser.add_argument("--batch-size", type=int, default=4)
    parser.add_argument("--seconds", type=float, default=6.0)
    parser.add_argument("--steps", type=int, default=3, help="timed steps (after one warm-up)")
    parser.add_argument("--mixed-precision", choices=["no", "fp16", "bf16"], default="no")
    parser.add_argument("--gradient-checkpointing", action="store_true")
    args = parser.parse_args(argv)

    with tempfile.TemporaryDirectory() as output_dir:
        config = load_config(
            None,
            {
                "model": {"stems": args.stems},  # the model defaults
                "output_dir": output_dir,
                "data.batch_size": args.batch_size,
                "loss.multi_resolution_stft": 0.5,
                "optim.warmup_steps": 0,
                "mixed_precision": args.mixed_precision,
                "gradient_checkpointing": args.gradient_checkpointing,
                "ema_decay": 0.0,
            },
        )
        model_config = config.model_config()
        samples = int(args.seconds * model_config.sample_rate)
        data = RandomStems(model_config.num_stems, samples, args.batch_size * (args.steps + 1))
        run = prepare_run(config, train_dataset=data, validation_dataset=data)
        times, losses = [], []
        for index, batch in enumerate(run.train_loader):
            start = time.perf_counter()
            losses.append(train_step(run, batch, index)["total"])
            if run.accelerator.device.type == "cuda":
                torch.cuda.synchronize()
            times.append(time.perf_counter() - start)
        run.accelerator.end_training()
    times = times[1:]  # the first step is a warm-up (allocations, one-off kernels)
    seconds_per_step = sorted(times)[len(times) // 2]
    result = {
        "benchmark": "training_speed",
        "stems": model_config.num_stems,
        "parameters": sum(p.numel() for p in run.unwrapped.parameters()),
        "batch_size": args.batch_size,
        "segment_seconds": args.seconds,
        "mixed_precision": args.mixed_precision,
        "gradient_checkpointing": args.gradient_checkpointing,
        "device": str(run.accelerator.device),
        "torch_threads": torch.get_num_threads(),
        "cpu": platform.processor() or platform.machine(),
        "median_seconds_per_step": round(seconds_per_step, 3),
        "steps_per_second": round(1.0 / seconds_per_step, 4),
        "audio_seconds_per_second": round(args.batch_size * args.seconds / seconds_per_step, 3),
        "step_times": [round(t, 3) for t in times],
        "losses_finite": all(math.isfinite(value) for value in losses),
        "last_loss": round(losses[-1], 5),
    }
    print(json.dumps(result))


if __name__ == "__main__":
    main()
