"""Separation quality of TFSWA-UNet and peer architectures at equal data and compute.

Every model trains from random weights through the project's own loop
(`modeling_tfswa.training.trainer.train`) with the same data, segments, batch size, optimizer and
schedule, loss, augmentation and seed, for the same budget, and is then scored on songs its
training data did not generate, with the project's evaluation (`modeling_tfswa.evaluation`:
fastSDR, cSDR, uSDR per stem; museval with `--museval`), next to the mixture-as-estimate and the
ideal-ratio-mask (IRM2) rows.

    python3 -m benchmarks.quality                               # all models, 5 min each
    python3 -m benchmarks.quality --models tfswa-unet htdemucs --minutes 20 --clock cpu
    python3 -m benchmarks.quality --steps 300 --test-root /data/musdb18 --out runs/quality

Budget: `--minutes M` of training per model, counted on the wall clock (`--clock wall`) or, on a
machine shared with other jobs, in process CPU seconds (`--clock cpu`: M x 60 x `--threads`, what an
idle machine gives in M minutes), and/or `--steps N` optimizer steps (whichever ends first).
Validation and checkpointing do not count. With a time budget the cosine schedule is stretched
over `--schedule-steps` (default: effectively constant after warm-up), since the number of steps
is not known in advance.

Data (default): the project's generated songs (`data_scripts.synthetic`, seed 0) for training
and validation; `--train-root` takes any MUSDB18-HQ-layout tree. Test (`--test-root`, repeatable):
any MUSDB18 / MUSDB18-HQ-layout tree, scored on its test split (every track when it has no
`test/` folder); default: generated test songs of another seed (7) plus
`../shared/data/musdb18-sample` (one real MUSDB18 track) when present. Tables give the median over
all test tracks and, separately, per test tree.

Models: `tfswa-unet` (the recommended variant for a CPU budget of minutes, 5 or 20),
`tfswa-unet-default` (the default config), further `tfswa-unet-*` variants of
[`TFSWA_VARIANTS`] on request, and the peers of `benchmarks.peers` (a peer whose package is
missing is skipped with a message).

Writes `OUT/quality.md`, `OUT/quality.json`, `OUT/quality.png` (validation SDR against training
time) and each model's run under `OUT/runs/`; the last stdout line is one JSON object.
"""

from __future__ import annotations

import argparse
import json
import math
import multiprocessing
import os
import shutil
import sys
import threading
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
import torch
from accelerate.utils import set_seed

from benchmarks.peers import MUSDB_STEMS, PEERS, build_peer
from data_scripts.musdb import stem_set_for
from modeling_tfswa import TFSWAConfig, TFSWAUNet
from modeling_tfswa.evaluation import (
    MixtureSeparator,
    ModelSeparator,
    OracleSeparator,
    aggregate_tracks,
    evaluate_separator,
)
from modeling_tfswa.fileio import write_text_atomic, write_via_temporary
from modeling_tfswa.metrics import mean_ignoring_nan
from modeling_tfswa.separation import Separator, apply_model
from modeling_tfswa.training.config import load_config, parse_value
from modeling_tfswa.training.trainer import train

#: Earlier default configs, each the next newer one with what changed since undone (so a new
#: default change is one entry here). Four stages at hop 512, until the five-stage design of
#: `tfswa-unet-deep5` became the default (2026-12-06, sixteenth session):
_DEFAULT_V4 = {
    "hop_length": 512,
    "patch_size": [2, 8],
    "dims": [32, 64, 128, 256],
    "depths": [2, 2, 6, 2],
    "decoder_depths": [1, 1, 1],
    "num_heads": [1, 2, 4, 8],
    "tf_attention_stages": [False, False, True, True],
}
#: From 2026-12-05 until the convolutional feed-forward became a default (2026-12-06):
_DEFAULT_V3 = {**_DEFAULT_V4, "mlp_conv_kernel_size": 0}
#: From 2026-12 until the log power input became a default (2026-12-05).
_DEFAULT_V2 = {**_DEFAULT_V3, "log_power_input": False}
#: Before 2026-12 (`TFSWAConfig`'s defaults then).
_DEFAULT_V1 = {
    **_DEFAULT_V2,
    "frequency_bands": None,
    "mixture_consistency": False,
    "drop_path_rate": 0.1,
}
#: The quickstart's STFT and size (`tfswa-unet` before the benchmark), over the default config of
#: its time: the experiments below change one thing each against it.
_SMALL = {
    **_DEFAULT_V1,
    "n_fft": 1024,
    "hop_length": 256,
    "patch_size": [1, 8],
    "dims": [16, 32],
    "depths": [1, 1],
    "decoder_depths": [1],
    "num_heads": [1, 2],
    "tf_attention_stages": [False, True],
    "drop_path_rate": 0.0,
}
#: `tfswa-unet-base`: `_SMALL` with n_fft 2048 / hop 512 (won the 1-CPU-minute probe); the later
#: experiments change one thing each against it.
_BASE = {**_SMALL, "n_fft": 2048, "hop_length": 512}
#: `tfswa-unet-uniform`: `_BASE` with mixture consistency (the one experiment against `_BASE` that
#: won: 2.40 vs 2.19 dB at 5 CPU-minutes on rendered plus generated songs, every stem better, 2.67
#: vs 2.52 at 20; on generated songs alone 1.70 vs 1.72 at 5 and 1.25 vs 1.42 at 20, so the
#: recommendation trains on rendered songs too). The 20-minute experiments change one thing each
#: against it.
_UNIFORM = {**_BASE, "mixture_consistency": True}
#: Frequency bands at n_fft 2048 (21.5-Hz bins). `_BANDS4`: 2-bin patches up to bin 32 (690 Hz),
#: 4-bin to 128 (2.8 kHz), 8-bin to 512 (11 kHz), 16-bin above: 16 + 24 + 48 + 33 = 121 tokens per
#: frame instead of 129 with 8-bin patches everywhere. `_BANDS`: 2-bin up to bin 64 (1.4 kHz), 8-bin
#: to 256 (5.5 kHz), 16-bin above: 32 + 24 + 49 tokens.
_BANDS4 = [[32, 2], [128, 4], [512, 8], [1025, 16]]
_BANDS = [[64, 2], [256, 8], [1025, 16]]
#: `_BANDS4` with 1-bin patches below bin 16 (345 Hz, where bass notes and kick drums sit):
#: 16 + 8 + 24 + 48 + 33 = 129 tokens per frame.
_BANDS5 = [[16, 1], [32, 2], [128, 4], [512, 8], [1025, 16]]
#: `_UNIFORM` with `_BANDS4` (2.83 vs 2.67 dB at 20 CPU-minutes and 2.70 vs 2.56 at 5, rendered plus
#: generated songs): `tfswa-unet` until 2026-12-05.
_NO_LOG_POWER = {**_UNIFORM, "frequency_bands": _BANDS4}
#: `_NO_LOG_POWER` with the log power input (20 CPU-minutes, seeds 42 / 7 / 123, 15 unseen tracks:
#: mean +0.08 / +0.13 / +0.19 dB, median even / even / +0.15, real track +0.54 / +0.11 / +0.93;
#: vocals 0.3-0.5 lower): `tfswa-unet` until 2026-12-05 (ninth session).
_NO_CONV = {**_NO_LOG_POWER, "log_power_input": True}
#: `_NO_CONV` with the convolutional feed-forward (3 x 3 depthwise; 20 CPU-minutes, seeds 42 / 7 /
#: 123, 15 unseen tracks: median +0.16 / +0.09 / +0.02 dB, mean +0.25 / +0.14 / +0.05, real track
#: +0.21 / -0.23 / -0.34; at 5 CPU-minutes, seeds 42 / 7: median +0.06 / -0.34, mean -0.03 /
#: -0.27; docs/quality-log.md): `tfswa-unet` until 2026-12-06 (thirteenth session).
_HOP512 = {**_NO_CONV, "mlp_conv_kernel_size": 3}
#: `tfswa-unet`, the recommendation for a CPU budget of minutes: `_HOP512` with hop 1024 (frames
#: overlapping by half: half the frames, so about twice the steps per CPU-minute and half the
#: separation time). 20 CPU-minutes, seeds 42 / 7, 15 unseen tracks: median +0.05 / +0.25 dB, mean
#: +0.13 / +0.26, real track -0.05 / 0.00 (vocals +0.6 to +0.9, drums -0.3 to -0.6);
#: docs/quality-log.md, thirteenth session. `configs/cpu-4stems.yaml` (8000 steps, a decaying
#: learning rate) keeps `_HOP512`: a run of it at hop 1024 scored below its hop-512 run.
_RECOMMENDED = {**_HOP512, "hop_length": 1024}
#: A third U-Net stage (dims 16/32/64, temporal and frequency attention in the two coarse stages).
_THREE_STAGES = {
    "dims": [16, 32, 64],
    "depths": [1, 1, 1],
    "decoder_depths": [1, 1],
    "num_heads": [1, 2, 4],
    "tf_attention_stages": [False, True, True],
}
#: TFSWA-UNet variants: `TFSWAConfig` keyword arguments over its defaults (stems come from --stems).
#: `tfswa-unet` is the recommendation for a CPU budget of minutes (5 or 20); the others are the
#: experiments of the variant table in docs/quality-log.md.
TFSWA_VARIANTS: dict[str, dict] = {
    # The default config: since 2026-12 with the four frequency bands, mixture consistency and no
    # stochastic depth, which led `tfswa-unet-default-v1` by 0.28 / 0.62 dB at 5 CPU-minutes
    # (seeds 42 / 7) and 0.28 at 20 (docs/quality-log.md); since 2026-12-05 with the log power
    # input, which raised the mean over 15 unseen tracks by 0.24 / 0.24 dB at 20 CPU-minutes
    # (seeds 42 / 7) and 0.18 / 0.08 at 5 against `tfswa-unet-default-v2`; since 2026-12-06 with
    # the convolutional feed-forward (20 CPU-minutes, seeds 42 / 7, 15 unseen tracks: median +0.08 /
    # +0.13, mean +0.08 / +0.16, real track -0.34 / +0.04 against `tfswa-unet-default-v3`); since
    # 2026-12-06 (sixteenth session) the five-stage design of `tfswa-unet-deep5`, which led
    # `tfswa-unet-default-v4` at 5, 20 and 60 CPU-minutes (below and docs/quality-log.md).
    "tfswa-unet-default": {},
    "tfswa-unet-default-v4": _DEFAULT_V4,
    "tfswa-unet-default-v3": _DEFAULT_V3,
    "tfswa-unet-default-v2": _DEFAULT_V2,
    "tfswa-unet-default-v1": _DEFAULT_V1,
    "tfswa-unet": _RECOMMENDED,
    "tfswa-unet-hop512": _HOP512,
    "tfswa-unet-no-conv": _NO_CONV,
    "tfswa-unet-no-logpower": _NO_LOG_POWER,
    "tfswa-unet-uniform": _UNIFORM,
    "tfswa-unet-base": _BASE,
    # Equal size by depth where tokens are few (fifteenth session, docs/quality-log.md):
    # `tfswa-unet` with three more stages at 1/16, 1/64 and 1/256 of its first stage's tokens,
    # 5.30M parameters at 0.38 CPU s per training step (`tfswa-unet-default-v4`: 1.06). At 5
    # CPU-minutes, seeds 42 / 7: median 2.81 / 2.90 and mean over the 15 tracks 2.17 / 2.17
    # against v4's 2.43 / 2.39 and 1.86 / 1.88, ahead of every peer on every stem; at 20, seeds 42
    # / 7: 2.85 / 2.86 and 2.42 / 2.45 against 2.75 / 2.69 and 2.33 / 2.19, behind Open-Unmix; at
    # 60 (seed 42): 3.17 and 2.90 against 3.05 and 2.74. The default config since 2026-12-06
    # (sixteenth session; this entry keeps the name of the runs).
    "tfswa-unet-deep5": {
        **_RECOMMENDED,
        "dims": [16, 32, 64, 128, 256],
        "depths": [1, 1, 1, 1, 3],
        "decoder_depths": [1, 1, 1, 1],
        "num_heads": [1, 2, 4, 8, 8],
        "tf_attention_stages": [False, True, True, True, True],
    },
    # Experiments (the variant table in docs/quality-log.md): one change each against
    # `tfswa-unet-nfft1024`.
    "tfswa-unet-3stage": {**_SMALL, **_THREE_STAGES},
    "tfswa-unet-wide": {**_SMALL, "dims": [32, 64], "num_heads": [2, 4]},
    "tfswa-unet-nfft1024": _SMALL,
    "tfswa-unet-ratio": {**_SMALL, "mask_type": "ratio"},
    # Experiments against `tfswa-unet-base`: coarser patches, width, attention placement, depth.
    "tfswa-unet-p2x8": {**_BASE, "patch_size": [2, 8]},
    "tfswa-unet-p2x8-wide": {
        **_BASE,
        "patch_size": [2, 8],
        "dims": [32, 64],
        "num_heads": [2, 4],
    },
    "tfswa-unet-tfall": {**_BASE, "tf_attention_stages": [True, True]},
    "tfswa-unet-deep": {**_BASE, "depths": [2, 2], "decoder_depths": [2]},
    "tfswa-unet-p1x16-wide": {
        **_BASE,
        "patch_size": [1, 16],
        "dims": [32, 64],
        "num_heads": [2, 4],
    },
    # Experiments against `tfswa-unet-uniform` at 20 CPU-minutes: more capacity for the longer budget.
    "tfswa-unet-mc-wide": {
        **_UNIFORM,
        "dims": [32, 64],
        "num_heads": [2, 4],
    },
    "tfswa-unet-mc-3stage": {**_UNIFORM, **_THREE_STAGES},
    "tfswa-unet-mc-narrow": {**_UNIFORM, "dims": [8, 16]},
    "tfswa-unet-mc-tfall": {
        **_UNIFORM,
        "tf_attention_stages": [True, True],
    },
    # n_fft 4096 / hop 1024 (HTDemucs' and Open-Unmix's STFT): finer frequency, coarser time.
    "tfswa-unet-nfft4096": {
        **_UNIFORM,
        "n_fft": 4096,
        "hop_length": 1024,
    },
    "tfswa-unet-nfft4096-p1x16": {
        **_UNIFORM,
        "n_fft": 4096,
        "hop_length": 1024,
        "patch_size": [1, 16],
    },
    # `tfswa-unet` at n_fft 4096 / hop 1024 (10.8-Hz bins, Open-Unmix's and HTDemucs' STFT) with
    # the four bands at the same frequencies (690 Hz, 2.8 kHz, 11 kHz): each patch half as wide in
    # Hz, 240 tokens per frame over half the frames, so the same tokens per second as `tfswa-unet`.
    "tfswa-unet-nfft4096-bands": {
        **_NO_LOG_POWER,
        "n_fft": 4096,
        "hop_length": 1024,
        "frequency_bands": [[64, 2], [256, 4], [1024, 8], [2049, 16]],
    },
    # Three frequency bands instead of the four of `tfswa-unet`.
    "tfswa-unet-bands": {**_UNIFORM, "frequency_bands": _BANDS},
    # Five bands: `tfswa-unet` with 1-bin patches at the bottom.
    "tfswa-unet-bands5": {**_UNIFORM, "frequency_bands": _BANDS5},
    # Time-longer windows (16 frames x 8 patches).
    "tfswa-unet-w16x8": {**_NO_LOG_POWER, "window_size": [16, 8]},
    # Real sigmoid masks on the mixture STFT (its phase), as Open-Unmix's magnitude masks, which
    # led the rendered songs' drums and "other" on the fresh split. Measured (2026-12-04): lower
    # (median 2.56 / 2.70 against 2.63 / 2.82, seeds 42 / 7), not that: dropped.
    "tfswa-unet-ratio-bands": {**_NO_LOG_POWER, "mask_type": "ratio"},
    # More capacity for a faster machine's budget (HTDemucs caught up there): `tfswa-unet` at dims
    # 32/64.
    "tfswa-unet-bands-wide": {**_NO_LOG_POWER, "dims": [32, 64], "num_heads": [2, 4]},
    # The same width on `tfswa-unet` (log power input), for batch 2, where the peers gain more than
    # `tfswa-unet` from the extra updates. Measured (2026-12-05, batch 2, seeds 42 / 7): 1805 / 1881
    # steps, median 2.93 / 2.80 against 2.94 / 3.07, mean over the 15 tracks 2.38 / 2.37 against
    # 2.51 / 2.55: lower; capacity still does not pay at this budget.
    "tfswa-unet-logpower-wide": {**_NO_CONV, "dims": [32, 64], "num_heads": [2, 4]},
    # Shared capacity at a smaller cost in steps: `tfswa-unet` with a feed-forward twice as wide.
    # Measured (2026-12-05, batch 2, seed 42): 3210 steps, median 3.02 against 2.94, mean over the
    # 15 tracks 2.47 against 2.51, real track 5.50 against 5.36: within the seed noise, not adopted.
    "tfswa-unet-mlp8": {**_NO_CONV, "mlp_ratio": 8.0},
    # Equal size (4-6M parameters, as the peers): the default config's three changes one or two at a
    # time, and the default with one block per encoder stage but the deep two (4.2M parameters,
    # about twice the default's steps per CPU-minute).
    "tfswa-unet-default-v1-mc": {**_DEFAULT_V1, "mixture_consistency": True},
    "tfswa-unet-default-dp01": {**_DEFAULT_V2, "drop_path_rate": 0.1},
    "tfswa-unet-default-uniform": {**_DEFAULT_V2, "frequency_bands": None},
    "tfswa-unet-4m": {**_DEFAULT_V2, "depths": [1, 1, 2, 2]},
    # The default config with `tfswa-unet-bands5`'s five bands (1-bin patches below 345 Hz).
    "tfswa-unet-default-bands5": {**_DEFAULT_V2, "frequency_bands": _BANDS5},
    # Seconds per step on a CPU, for the harness test; not a useful model.
    "tfswa-unet-tiny": {
        **_SMALL,
        "n_fft": 256,
        "hop_length": 64,
        "patch_size": [1, 4],
        "dims": [8, 16],
        "window_size": [4, 4],
    },
}
#: Each peer package's own training loss in the terms of the project's `LossConfig`, used with
#: `--peer-loss own` (the shared recipe is waveform L1): Open-Unmix trains on magnitude
#: spectrograms (MSE in its train.py; here L1 on magnitudes, the STFT of the recipe's model section,
#: n_fft 2048), the RoFormers add a multi-resolution STFT loss with weight 1 to the waveform L1
#: (here spectral convergence + log magnitude over 2048/1024/512). HTDemucs trains on waveform L1,
#: the shared recipe.
PEER_LOSSES: dict[str, dict] = {
    "open-unmix": {"loss.waveform_l1": 0.0, "loss.spectrogram_l1": 1.0},
    "bs-roformer": {"loss.multi_resolution_stft": 1.0},
    "mel-roformer": {"loss.multi_resolution_stft": 1.0},
}
DEFAULT_MODELS = ["tfswa-unet", "tfswa-unet-default", *PEERS]
#: `../shared/data/musdb18-sample` beside the checkout: one real MUSDB18 track (never trained on).
SAMPLE_ROOT = Path(__file__).resolve().parents[2] / "shared" / "data" / "musdb18-sample"
TEST_SEED = 7


def known_models() -> list[str]:
    return [*TFSWA_VARIANTS, *PEERS]


def build_model(name: str, stems: list[str], segment_seconds: float) -> torch.nn.Module:
    """A model of the benchmark by name (a TFSWA-UNet variant or a peer), with random weights."""
    if name in TFSWA_VARIANTS:
        return TFSWAUNet(
            TFSWAConfig(stems=stems, segment_seconds=segment_seconds, **TFSWA_VARIANTS[name])
        )
    if name in PEERS:
        return build_peer(name, stems, segment_seconds)
    raise ValueError(f"unknown model {name!r}; known: {', '.join(known_models())}")


#: The shared recipe's values that no option of the benchmark sets (`--recipe` may change them).
RECIPE_CONSTANTS = {
    "data.synthetic_validation_songs": 4,
    "data.synthetic_test_songs": 0,
    "data.samples_per_epoch": 4000,
    "data.validation_batch_size": 4,
    "data.max_validation_segments": 16,
    "ema_decay": 0.99,
}


def training_config(args, name: str):
    """The shared recipe; only the model section (TFSWA variants) and the output folder differ.
    Peers keep the default TFSWA model section, which sets the STFT of the loss and augmentation.
    `--recipe` overrides come last, the same for every model."""
    return load_config(None, {**RECIPE_CONSTANTS, **option_overrides(args, name), **args.recipe})


def option_overrides(args, name: str) -> dict:
    """The training-config keys that the benchmark's options, the model's name and the harness
    (validation by training time, one checkpoint) set: `--recipe` may not set these."""
    model = {"stems": args.stems, **TFSWA_VARIANTS.get(name, {})}
    overrides = {
        "model": model,
        "output_dir": str(args.out / "runs" / name),
        "seed": args.seed,
        "mixed_precision": args.mixed_precision,
        "max_steps": args.steps or args.schedule_steps,
        "data.source": "musdb18hq" if args.train_root else "synthetic",
        "data.root": str(args.train_root[0] if args.train_root else args.data_dir / "train"),
        "data.cache_dir": str(args.data_dir / "cache"),
        "data.stem_set": stem_set_for(args.stems),
        "data.synthetic_train_songs": args.train_songs,
        "data.synthetic_seconds": args.song_seconds,
        "data.segment_seconds": args.segment_seconds,
        "data.batch_size": args.batch_size,
        "data.num_workers": args.num_workers,
        "data.validation_segment_seconds": args.segment_seconds,
        "optim.lr": args.lr,
        "optim.warmup_steps": args.warmup_steps,
        "loss.waveform_l1": 1.0,
        "loss.multi_resolution_stft": args.stft_loss,
        "log_every": 10,
        "eval_every": 10**9,  # validation follows training time (validate_every_seconds)
        "save_every": 10**9,  # one checkpoint, at the end
        "keep_last": 1,
    }
    if args.peer_loss == "own":
        overrides.update(PEER_LOSSES.get(name, {}))
    if args.train_root and len(args.train_root) > 1:  # several trees, drawn from equally
        overrides["data.sources"] = [
            {"source": "musdb18hq", "root": str(root), "weight": 1.0} for root in args.train_root
        ]
    return overrides


def save_weights(model, ema, folder: Path, config, metrics: dict, step: int) -> None:
    """The benchmark's model folders: the (EMA) weights as safetensors plus the metrics, for any
    model (peers have no `save_pretrained`)."""
    from safetensors.torch import save_file

    def write(path: str) -> None:  # copies: some peers share buffers (e.g. STFT windows)
        save_file({k: v.detach().clone().contiguous() for k, v in model.state_dict().items()}, path)

    if ema is not None:
        with ema.swapped(model):
            write_via_temporary(folder / "model.safetensors", write)
    else:
        write_via_temporary(folder / "model.safetensors", write)
    write_text_atomic(folder / "metrics.json", json.dumps({"step": step, **metrics}, indent=1))


def load_test_sets(args) -> dict[str, object]:
    """`{label: dataset}`: the test split of every test root (every track without a test/)."""
    import datasets

    from data_scripts.musdb import load_stem_dataset
    from data_scripts.synthetic import ensure_synthetic_dataset

    roots = list(args.test_root or [])
    if not roots:
        generated = args.data_dir / f"test-seed{TEST_SEED}-{args.test_songs}"
        ensure_synthetic_dataset(
            generated, 0, 0, args.test_songs, args.song_seconds, seed=TEST_SEED, progress=False
        )
        roots.append(generated)
        if SAMPLE_ROOT.is_dir():
            roots.append(SAMPLE_ROOT)
        else:
            print(f"quality: {SAMPLE_ROOT} not found; scoring on generated songs only")
    sets = {}
    for root in roots:
        splits = load_stem_dataset(root, stem_set_for(args.stems), args.data_dir / "cache")
        chosen = [splits["test"]] if "test" in splits else list(splits.values())
        sets[Path(root).name] = datasets.concatenate_datasets(chosen)
    return sets


def score(separator, sets: dict, out: Path, museval: bool) -> dict:
    """Scores of a separator on every test set: per set and pooled over all tracks, plus per set
    the mean over its tracks of each track's fastSDR averaged over the stems (`track_means`)."""
    tracks, per_set, track_means = {}, {}, {}
    for label, dataset in sets.items():
        result = evaluate_separator(
            separator, dataset, out / label, fast=not museval, workers=0, progress=False, force=True
        )
        per_set[label] = result.aggregate
        track_means[label] = mean_ignoring_nan(
            [np.mean([t[s]["fastSDR"] for s in separator.stems]) for t in result.tracks.values()]
        )
        tracks.update({f"{label}/{name}": scores for name, scores in result.tracks.items()})
    columns = list(next(iter(next(iter(tracks.values())).values())))
    return {
        "all": aggregate_tracks(tracks, separator.stems, columns),
        "sets": per_set,
        "track_means": track_means,
    }


def sdr_fields(scores: dict, stems: list[str]) -> dict:
    """The report's SDR fields of one scored separator (fastSDR, dB): per stem and their mean over
    all test tracks (medians), and per test set its medians plus `track_mean`, the mean over its
    tracks (each averaged over the stems), which moves less between runs than a median over a
    few tracks (docs/quality-log.md: the "rendered songs" column)."""
    fast = scores["all"]
    return {
        "sdr": {stem: round(fast[stem]["fastSDR"], 3) for stem in stems},
        "mean_sdr": round(fast["mean"]["fastSDR"], 3),
        "per_test_set": {
            label: {
                **{stem: round(agg[stem]["fastSDR"], 3) for stem in [*stems, "mean"]},
                "track_mean": round(scores["track_means"][label], 3),
            }
            for label, agg in scores["sets"].items()
        },
    }


def separation_speed(model, sets: dict) -> dict:
    """Seconds (wall and process CPU) per second of audio of separating the first test track."""
    dataset = next(iter(sets.values()))
    mixture = torch.from_numpy(dataset.with_format("numpy")[0]["mixture"].T.copy()).float()
    seconds = mixture.shape[-1] / 44100
    apply_model(model, mixture[:, : 44100 * 2])  # warm-up (segment: the model config's)
    best_wall = best_cpu = math.inf
    for _ in range(2):
        wall, cpu = time.perf_counter(), time.process_time()
        apply_model(model, mixture)
        best_wall = min(best_wall, time.perf_counter() - wall)
        best_cpu = min(best_cpu, time.process_time() - cpu)
    return {"sec_per_audio_sec": best_wall / seconds, "cpu_sec_per_audio_sec": best_cpu / seconds}


def run_model(name: str, args) -> dict:
    """Train one model for the budget on the shared data, then score its EMA weights."""
    from modeling_tfswa.training.data import build_datasets

    torch.set_num_threads(args.threads)
    config = training_config(args, name)
    shutil.rmtree(config.output_dir, ignore_errors=True)  # the benchmark's scratch run
    train_set, validation_set, collate = build_datasets(config)  # cached: identical for all
    sets = load_test_sets(args)
    set_seed(args.seed)  # the same initialisation stream for every model
    model = build_model(name, args.stems, args.segment_seconds)
    budget = args.minutes * 60 if args.minutes else math.inf
    if args.clock == "cpu":
        budget *= args.threads  # the CPU seconds an idle machine gives in that time

    def used(state) -> float:
        return state.train_cpu_seconds if args.clock == "cpu" else state.train_seconds

    validations = [budget * (i + 1) / args.validations for i in range(args.validations - 1)]

    def validate_when(state) -> bool:  # evenly over the budget (and at the end)
        due = bool(validations) and used(state) >= validations[0]
        while validations and used(state) >= validations[0]:
            validations.pop(0)
        return due

    result = train(
        config,
        model=model,
        train_dataset=train_set,
        validation_dataset=validation_set,
        collate_fn=collate,
        stop_when=lambda state: used(state) >= budget,
        validate_when=validate_when if args.minutes else None,
        save_model=save_weights,
    )
    model = result.model.eval()
    if result.ema is not None:
        result.ema.copy_to(model)  # score the weights that were validated
    separator = ModelSeparator(Separator(model), name)  # segment and overlap: the model config's
    scores = score(separator, sets, args.out / "scores" / name, args.museval)
    speed = separation_speed(model, sets)
    keys = ("step", "train_seconds", "train_cpu_seconds", "sdr")
    curve = [{key: h[key] for key in keys} for h in train_history(result.output_dir)]
    return summary(name, model, result, scores, speed, curve, args.stems)


#: Options that do not change a model's result (where it runs, which others run beside it).
_NOT_IN_RESULT = ("models", "jobs", "out", "data_dir", "force")
#: Options added after results were stored: keyed only when set away from these defaults, so the
#: stored results stay valid.
_KEYED_WHEN_SET = {"mixed_precision": "no", "num_workers": 0, "peer_loss": "shared", "recipe": {}}


def result_key(name: str, args) -> dict:
    """What one model's result depends on: its build and the shared recipe, budget and test sets.
    A finished result in `OUT/results/NAME.json` with the same key is reused on a rerun."""
    options = {
        k: v
        for k, v in vars(args).items()
        if k not in _NOT_IN_RESULT and _KEYED_WHEN_SET.get(k, object()) != v
    }
    if options["train_root"]:  # one string, as a single root has always been keyed
        options["train_root"] = ",".join(str(root) for root in options["train_root"])
    if name not in PEER_LOSSES:  # the option does not change this model's recipe
        options.pop("peer_loss", None)
    options = json.loads(json.dumps(options, default=str))  # paths as strings
    if name in TFSWA_VARIANTS:  # the whole config, so that a change of its defaults retrains
        build = tfswa_config_values(TFSWAConfig(stems=args.stems, **TFSWA_VARIANTS[name]))
    else:
        build = PEERS[name].build.__name__
    return {"model": name, "build": build, "options": options}


def tfswa_config_values(config: TFSWAConfig) -> dict:
    """The values of `TFSWAConfig`'s own arguments (not transformers' generic ones)."""
    return {name: getattr(config, name) for name in sorted(TFSWAConfig.argument_names())}


def exit_with_parent(poll_seconds: float = 1.0) -> None:
    """In a worker process: end it once its parent is gone. A killed `--jobs N` run otherwise
    leaves its workers training on for the rest of their budget (reparented, unseen)."""
    parent = os.getppid()

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(poll_seconds)
        os._exit(1)

    threading.Thread(target=watch, daemon=True, name="exit-with-parent").start()


def run_models(args) -> dict[str, dict]:
    """Every available model of `args.models`, `args.jobs` at a time (separate processes); a model
    whose result for the same settings is in `OUT/results/` is not trained again (`--force` does)."""
    names, results = [], {}
    for name in args.models:
        path = args.out / "results" / f"{name}.json"
        stored = json.loads(path.read_text()) if path.is_file() and not args.force else {}
        if name in PEERS and not PEERS[name].available():
            print(f"quality: skipping {name}: pip package {PEERS[name].pip_name!r} not installed")
        elif stored.get("key") == result_key(name, args):
            print(f"quality: {name}: reusing the result in {path}")
            results[name] = stored["result"]
        else:
            names.append(name)

    def keep(name: str, result: dict) -> None:
        path = args.out / "results" / f"{name}.json"
        write_text_atomic(path, json.dumps({"key": result_key(name, args), "result": result}))
        results[name] = result

    if args.jobs <= 1:
        for name in names:
            keep(name, run_model(name, args))
    else:
        context = multiprocessing.get_context("spawn")
        with ProcessPoolExecutor(
            args.jobs, mp_context=context, initializer=exit_with_parent
        ) as pool:
            futures = {name: pool.submit(run_model, name, args) for name in names}
            for name, future in futures.items():
                keep(name, future.result())
    return {name: results[name] for name in args.models if name in results}


def train_history(output_dir: Path) -> list[dict]:
    path = Path(output_dir) / "history.json"
    return json.loads(path.read_text()) if path.is_file() else []


def summary(name, model, result, scores, speed, curve, stems) -> dict:
    fast = scores["all"]
    return {
        "params": sum(p.numel() for p in model.parameters()),
        "train_seconds": round(result.train_seconds, 1),
        "train_cpu_seconds": round(result.train_cpu_seconds, 1),
        "steps": result.step,
        **{k: round(v, 4) for k, v in speed.items()},
        **sdr_fields(scores, stems),
        "csdr": {stem: round(fast[stem]["cSDR"], 3) for stem in stems},
        "usdr": {stem: round(fast[stem]["uSDR"], 3) for stem in stems},
        "settings": getattr(model.config, "settings", None) or TFSWA_VARIANTS.get(name),
        "validation_curve": curve,
    }


def reference_rows(args, sets: dict) -> dict:
    """Mixture-as-estimate and IRM2 (ideal ratio mask, 2048 / 512 STFT) rows."""
    rows = {}
    for key, separator in (
        ("mixture", MixtureSeparator(args.stems)),
        ("irm2", OracleSeparator("irm2", list(args.stems))),
    ):
        scores = score(separator, sets, args.out / "scores" / key, args.museval)
        rows[key] = sdr_fields(scores, args.stems)
    return rows


def per_set_cell(per_set: dict, stems: list[str]) -> str:
    """`vocals / ... / mean; track mean` of one test set; results stored before the benchmark
    reported `track_mean` (reused from `OUT/results`) have none, and their cell says so by its
    absence rather than by a number."""
    cell = " / ".join(f"{per_set[s]:.2f}" for s in [*stems, "mean"])
    return cell + (f"; {per_set['track_mean']:.2f}" if "track_mean" in per_set else "")


def markdown(report: dict, stems: list[str], command: str) -> str:
    """The results as a Markdown table (fastSDR, median over tracks, dB)."""
    head = (
        "| model | params | steps | train s | CPU s | separation s per s | "
        + " | ".join(stems)
        + " | mean |\n|---|---:|---:|---:|---:|---:|"
        + "---:|" * (len(stems) + 1)
    )
    lines = [f"Command: `{command}`", "", head]
    for name, row in report["models"].items():
        sdrs = " | ".join(f"{row['sdr'][s]:.2f}" for s in stems)
        lines.append(
            f"| {name} | {row['params'] / 1e6:.2f}M | {row['steps']} | {row['train_seconds']:.0f} "
            f"| {row['train_cpu_seconds']:.0f} | {row['sec_per_audio_sec']:.3f} | {sdrs} "
            f"| {row['mean_sdr']:.2f} |"
        )
    for key in ("mixture", "irm2"):
        sdrs = " | ".join(f"{report[key]['sdr'][s]:.2f}" for s in stems)
        lines.append(f"| {key} | | | | | | {sdrs} | {report[key]['mean_sdr']:.2f} |")
    lines += [
        "",
        "Per test set (fastSDR median over its tracks; mean over stems; after the semicolon the"
        " mean over its tracks, each averaged over the stems):",
        "",
    ]
    labels = list(report["mixture"]["per_test_set"])
    lines.append("| model | " + " | ".join(labels) + " |")
    lines.append("|---|" + "---:|" * len(labels))
    for name, row in [*report["models"].items(), *((k, report[k]) for k in ("mixture", "irm2"))]:
        cells = " | ".join(per_set_cell(row["per_test_set"][label], stems) for label in labels)
        lines.append(f"| {name} | {cells} |")
    lines.append("")
    lines.append(f"(per-set cells: {' / '.join([*stems, 'mean'])}; mean over tracks)")
    return "\n".join(lines) + "\n"


def plot(report: dict, clock: str, path: Path) -> None:
    """Mean validation SDR against training time, one line per model."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    key = "train_cpu_seconds" if clock == "cpu" else "train_seconds"
    fig, ax = plt.subplots(figsize=(7, 4.5))
    for name, row in report["models"].items():
        curve = row["validation_curve"]
        ax.plot([p[key] / 60 for p in curve], [p["sdr"] for p in curve], marker="o", label=name)
    ax.set(
        xlabel=f"training time ({'CPU' if clock == 'cpu' else 'wall'} minutes)",
        ylabel="validation SDR (dB, mean over stems)",
        title="Validation SDR during training (equal data and budget)",
    )
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    try:
        write_via_temporary(path, lambda temporary: fig.savefig(temporary, dpi=100, format="png"))
    finally:
        plt.close(fig)


def _recipe_override(parser, text: str) -> tuple[str, object]:
    """`--recipe augment.pitch_probability=0.2` -> ("augment.pitch_probability", 0.2)."""
    key, has_value, value = text.partition("=")
    key = key.strip().replace("-", "_")
    if not has_value or not key:
        parser.error(f"--recipe {text!r}: expected KEY=VALUE")
    return key, parse_value(value)


def parse_args(argv: list[str] | None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=DEFAULT_MODELS, metavar="NAME")
    parser.add_argument("--minutes", type=float, default=None, help="training budget per model")
    parser.add_argument("--steps", type=int, default=None, help="optimizer steps per model")
    parser.add_argument("--clock", choices=["wall", "cpu"], default="wall")
    parser.add_argument("--threads", type=int, default=2, help="torch threads")
    parser.add_argument("--stems", nargs="+", default=MUSDB_STEMS)
    parser.add_argument(
        "--train-root", type=Path, action="append", default=None,
        help="MUSDB18-HQ-layout training tree (default: generated songs); repeat to draw from "
        "several trees with equal weights",
    )  # fmt: skip
    parser.add_argument("--test-root", type=Path, action="append", default=None)
    parser.add_argument("--out", type=Path, default=Path("outputs/quality"))
    parser.add_argument("--data-dir", type=Path, default=None, help="generated data (OUT/data)")
    parser.add_argument("--train-songs", type=int, default=32)
    parser.add_argument("--test-songs", type=int, default=8)
    parser.add_argument("--song-seconds", type=float, default=12.0, help="generated song length")
    parser.add_argument("--segment-seconds", type=float, default=2.0)
    parser.add_argument(
        "--batch-size", type=int, default=2,
        help="2 since 2026-12-05: better than 4 for every model measured (docs/quality-log.md, "
        "'Segments without padding'); the log's earlier tables ran at 4",
    )  # fmt: skip
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--warmup-steps", type=int, default=50)
    parser.add_argument("--stft-loss", type=float, default=0.0, help="multi-res STFT loss weight")
    parser.add_argument(
        "--peer-loss", choices=["shared", "own"], default="shared",
        help="own: each peer trains with its package's loss (PEER_LOSSES), TFSWA with the recipe's",
    )  # fmt: skip
    parser.add_argument(
        "--recipe", action="append", default=[], metavar="KEY=VALUE",
        help="a training-config override for every model, e.g. augment.pitch_probability=0.2",
    )  # fmt: skip
    parser.add_argument("--schedule-steps", type=int, default=10**6)
    parser.add_argument("--validations", type=int, default=5, help="validations per budget")
    parser.add_argument(
        "--mixed-precision", choices=["no", "fp16", "bf16"], default="no",
        help="autocast for every model (a GPU run: bf16); the STFTs and losses stay float32",
    )  # fmt: skip
    parser.add_argument(
        "--num-workers", type=int, default=0, help="DataLoader workers (a GPU run: several)"
    )
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--jobs", type=int, default=1, help="models trained at once (processes)")
    parser.add_argument("--museval", action="store_true", help="also museval's BSSEval v4")
    parser.add_argument(
        "--force", action="store_true", help="train again models whose result is in OUT/results"
    )
    args = parser.parse_args(argv)
    args.recipe = dict(_recipe_override(parser, text) for text in args.recipe)
    if args.data_dir is None:
        args.data_dir = args.out / "data"
    owned = {"data.sources", *option_overrides(args, "tfswa-unet")}
    if args.peer_loss == "own":  # the peers' own losses set these; with the shared loss, free
        owned |= {key for losses in PEER_LOSSES.values() for key in losses}
    for key in args.recipe:  # a key the benchmark sets, or inside one (`model.dims`)
        if key in owned or key.split(".")[0] in owned:
            parser.error(
                f"--recipe {key}: the benchmark sets it (its options, model variants, run folder)"
            )
    if args.minutes is None and args.steps is None:
        args.minutes = 5.0
    unknown = [m for m in args.models if m not in known_models()]
    if unknown:
        parser.error(f"unknown model(s) {unknown}; known: {', '.join(known_models())}")
    return args


def main(argv: list[str] | None = None) -> dict:
    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    command = "python3 -m benchmarks.quality " + " ".join(
        argv if argv is not None else sys.argv[1:]
    )
    from modeling_tfswa.training.data import build_datasets

    build_datasets(training_config(args, "tfswa-unet"))  # generate and cache the data once
    sets = load_test_sets(args)
    report = {"benchmark": "quality", "minutes": args.minutes, "steps": args.steps}
    report.update(clock=args.clock, threads=args.threads, models=run_models(args))
    for name, row in report["models"].items():
        print(f"quality: {name}: mean SDR {row['mean_sdr']:.2f} dB after {row['steps']} steps")
    report.update(reference_rows(args, sets))
    report["test_sets"] = {label: len(dataset) for label, dataset in sets.items()}
    write_text_atomic(args.out / "quality.json", json.dumps(report, indent=1))
    write_text_atomic(args.out / "quality.md", markdown(report, args.stems, command))
    if report["models"]:
        plot(report, args.clock, args.out / "quality.png")
    print(markdown(report, args.stems, command))
    brief = {k: v for k, v in report.items() if k != "models"}
    brief["models"] = {
        name: {k: v for k, v in row.items() if k not in ("validation_curve", "settings")}
        for name, row in report["models"].items()
    }
    print(json.dumps(brief))
    return report


if __name__ == "__main__":
    main()
