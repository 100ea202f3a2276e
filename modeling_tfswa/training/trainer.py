"""The training loop of TFSWA-UNet (the only one): Accelerate, resumable, Hub-pushing.

`train(config)` runs on one CPU, one GPU or many processes (`accelerate launch`), in fp32, fp16 or
bf16. Layout of `config.output_dir`:

    config.yaml                 the resolved training config of the run
    checkpoints/step_XXXXXXXX/  resumable `save_state` checkpoints (the last `keep_last`)
    best/, last/                the model in `save_pretrained` form (EMA weights) + model card
    logs/                       TensorBoard events
    history.json, validation.png   validation metrics per evaluation and their plot

Exact resumption: every process draws the randomness of a batch (augmentation, dropout, stochastic
depth) from a generator seeded by `(seed, batch index, process)`, datasets are deterministic per
index and epoch, and a resumed run skips the batches already seen in its epoch with
`accelerator.skip_first_batches`. So a run resumed from the checkpoint of step `k` reaches the same
weights at step `n` as an uninterrupted run.
"""

from __future__ import annotations

import json
import logging
import math
import shutil
import time
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from accelerate import Accelerator
from accelerate.utils import GradientAccumulationPlugin, ProjectConfiguration, set_seed
from torch.utils.data import DataLoader, Dataset, Subset
from tqdm.auto import tqdm
from transformers import get_cosine_schedule_with_warmup

from data_scripts.pipeline import SILENCE_POWER

from ..fileio import publish_folder, write_text_atomic, write_via_temporary
from ..metrics import mean_ignoring_nan, metric_name, sdr
from ..modeling_tfswa import TFSWAUNet
from .augment import Augmenter
from .config import TrainingConfig, save_config
from .ema import EMA
from .hub import HubPusher
from .losses import SeparationLoss
from .run_folder import hold_run_folder, load_run_state, save_run_state

logger = logging.getLogger(__name__)

CHECKPOINT_PREFIX = "step_"


# --------------------------------------------------------------------------------------------------
# Small pieces
# --------------------------------------------------------------------------------------------------
@dataclass
class TrainState:
    """Progress that checkpoints carry besides model, optimizer, scheduler, RNG and EMA."""

    step: int = 0
    best_sdr: float = -math.inf
    history: list[dict] = field(default_factory=list)  # validation metrics per evaluation


@dataclass
class TrainResult:
    """What [`train`] returns (on every process; histories are complete on the main process).

    Attributes:
        step: the optimizer step reached.
        losses: `(step, mean training loss)` for every step of this run (main process).
        validation: the latest validation metrics (`"sdr/<stem>"`, `"loss"`, ...).
        best_sdr: the best mean validation SDR (dB) over stems so far.
        output_dir: where everything was written.
    """

    step: int
    losses: list[tuple[int, float]]
    validation: dict[str, float]
    best_sdr: float
    output_dir: Path


def seed_for(*parts: int) -> int:
    """A well-mixed 63-bit seed from non-negative integers (seed, batch index, process, ...)."""
    state = np.random.SeedSequence([int(p) for p in parts]).generate_state(2, dtype=np.uint32)
    return int(state[0]) << 31 | int(state[1]) >> 1


def checkpoint_dirs(output_dir: str | Path) -> list[Path]:
    """Complete checkpoints of a run, oldest first (temporary `.tmp-*` folders are ignored)."""
    root = Path(output_dir) / "checkpoints"
    if not root.is_dir():
        return []
    found = [p for p in root.iterdir() if p.is_dir() and p.name.startswith(CHECKPOINT_PREFIX)]
    return sorted(found, key=lambda p: int(p.name[len(CHECKPOINT_PREFIX) :]))


def resolve_resume(resume: str | None, output_dir: str | Path) -> Path | None:
    """`None` -> None; `"latest"` -> the newest checkpoint of `output_dir` (None if there is none);
    a path -> that checkpoint folder (which must exist)."""
    if resume is None:
        return None
    if resume == "latest":
        found = checkpoint_dirs(output_dir)
        return found[-1] if found else None
    path = Path(resume)
    if not path.is_dir():
        raise FileNotFoundError(f"resume: checkpoint folder {path} does not exist")
    return path


def replace_dir(tmp: Path, final: Path) -> None:
    """Atomically put the finished folder `tmp` at `final` (replacing an older one)."""
    publish_folder(tmp, final)


def write_model_card(folder: Path, config: TrainingConfig, metrics: dict[str, float], step: int):
    """README.md of a saved model: what it separates, how it was trained, its validation scores."""
    model_config = config.model_config()
    stems = model_config.stems
    rows = "\n".join(
        f"| {stem} | {metrics.get(metric_name('sdr', stem), float('nan')):.2f} | "
        f"{metrics.get(metric_name('sdr_gain', stem), float('nan')):.2f} |"
        for stem in stems
    )
    text = f"""---
library_name: transformers
tags: [audio, music-source-separation, tfswa-unet]
pipeline_tag: audio-to-audio
---

# TFSWA-UNet ({", ".join(stems)})

Music source separation with TFSWA-UNet: a U-Net of time-frequency shifted-window attention blocks
estimating complex masks on the STFT of a {model_config.audio_channels}-channel mixture at
{model_config.sample_rate} Hz. Stems: {", ".join(stems)}.

```python
import modeling_tfswa  # registers the model with AutoModel
from transformers import AutoModel
model = AutoModel.from_pretrained("path/or/hub-id")  # or trust_remote_code=True without the package
stems = model(mixture).waveforms  # (batch, channels, samples) -> (batch, stems, channels, samples)
```

## Training

Data: `{config.data.source}` (`{config.data.stem_set}`), {config.data.segment_seconds}-s segments,
batch {config.data.batch_size} per process; AdamW lr {config.optim.lr}, weight decay
{config.optim.weight_decay}, cosine schedule with {config.optim.warmup_steps} warm-up steps, gradient
clipping {config.optim.max_grad_norm}; EMA decay {config.ema_decay} (these are the EMA weights).
Trained for {step} optimizer steps.

## Validation (segment SDR, dB; gain over the unprocessed mixture)

| stem | SDR | SDR gain |
|---|---|---|
{rows}

Validation SDRs are global SDRs of validation segments, median over segments, a quick training
signal; use `modeling_tfswa.evaluation` (museval, MUSDB18 protocol) for publishable numbers.
"""
    (folder / "README.md").write_text(text)


def save_model(
    model: TFSWAUNet,
    ema: EMA | None,
    folder: Path,
    config: TrainingConfig,
    metrics: dict[str, float],
    step: int,
) -> None:
    """`save_pretrained` (config, safetensors, code) + model card, with EMA weights, atomically."""
    tmp = folder.with_name(f".tmp-{folder.name}")
    shutil.rmtree(tmp, ignore_errors=True)
    if ema is not None:
        with ema.swapped(model):
            model.save_pretrained(tmp)
    else:
        model.save_pretrained(tmp)
    write_model_card(tmp, config, metrics, step)
    replace_dir(tmp, folder)


def plot_history(history: list[dict], stems: list[str], path: Path) -> None:
    """Validation SDR per stem and validation loss against the step, as a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    steps = [h["step"] for h in history]
    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 4))
    for stem in stems:
        (line,) = left.plot(
            steps, [h[metric_name("sdr", stem)] for h in history], marker="o", label=stem
        )
        left.axhline(
            history[-1][metric_name("sdr_mixture", stem)], ls=":", lw=1, color=line.get_color()
        )
    left.set(xlabel="step", ylabel="SDR (dB)", title="validation SDR (dotted: mixture)")
    left.legend()
    right.plot(steps, [h["loss"] for h in history], marker="o", color="black")
    right.set(xlabel="step", ylabel="loss", title="validation loss")
    fig.tight_layout()
    try:
        write_via_temporary(path, lambda temporary: fig.savefig(temporary, dpi=100, format="png"))
    finally:
        plt.close(fig)


def _param_groups(model: torch.nn.Module, weight_decay: float) -> list[dict]:
    """No weight decay on biases, norms and learned position tables (1-D or embedding tensors)."""
    decay, no_decay = [], []
    for name, p in model.named_parameters():
        if not p.requires_grad:
            continue
        exempt = p.ndim < 2 or "embedding" in name or "bias_table" in name
        (no_decay if exempt else decay).append(p)
    return [
        {"params": decay, "weight_decay": weight_decay},
        {"params": no_decay, "weight_decay": 0.0},
    ]


def _flat_hparams(config: TrainingConfig) -> dict:
    """Config flattened to TensorBoard-friendly scalars/strings."""
    flat = {}

    def walk(prefix, value):
        if isinstance(value, dict):
            for k, v in value.items():
                walk(f"{prefix}.{k}" if prefix else k, v)
        elif isinstance(value, (int, float, str, bool)):
            flat[prefix] = value
        else:
            flat[prefix] = str(value)

    walk("", config.to_dict())
    return flat


# --------------------------------------------------------------------------------------------------
# Validation
# --------------------------------------------------------------------------------------------------
@torch.no_grad()
def evaluate(
    model: torch.nn.Module,
    loader: DataLoader,
    loss_fn: SeparationLoss,
    accelerator: Accelerator,
    stems: list[str],
) -> dict[str, float]:
    """Loss and SDR per stem on validation segments, gathered over processes.

    Each batch is `{"mixture": (B, C, T), "stems": (B, S, C, T)}`. SDR is the global SDR of each
    segment and stem (`modeling_tfswa.metrics.sdr`), then the median over the segments whose
    reference is not silent (museval-like: medians resist the near-infinite SDRs of segments where
    the other stems are silent); `sdr_mixture/<stem>` is the same for the unprocessed mixture and
    `sdr_gain/<stem>` the median per-segment improvement over it. `sdr` is the mean over stems.
    """
    was_training = model.training
    model.eval()
    losses, scores, baselines, active = [], [], [], []
    for batch in loader:
        mixture, references = batch["mixture"], batch["stems"]
        estimates = model(input_values=mixture).waveforms.float()
        references = references.float()
        per_example = torch.stack(
            [
                loss_fn(estimates[i : i + 1], references[i : i + 1])["total"]
                for i in range(len(mixture))
            ]
        )
        score = sdr(references, estimates)  # (B, S), float64
        baseline = sdr(references, mixture.float()[:, None].expand_as(references))
        # A silent reference (below -60 dBFS): its SDR says nothing about separation.
        audible = references.square().mean(dim=(2, 3)) > SILENCE_POWER
        gathered = accelerator.gather_for_metrics((per_example, score, baseline, audible))
        for bucket, value in zip((losses, scores, baselines, active), gathered):
            bucket.append(value.cpu())
    model.train(was_training)
    loss = torch.cat(losses)
    score, baseline, audible = torch.cat(scores), torch.cat(baselines), torch.cat(active)
    metrics = {"loss": loss.mean().item(), "segments": float(len(loss))}

    def audible_median(values: torch.Tensor, keep: torch.Tensor) -> float:
        return values[keep].median().item() if keep.any() else math.nan

    for s, stem in enumerate(stems):
        keep = audible[:, s]
        metrics[metric_name("sdr", stem)] = audible_median(score[:, s], keep)
        metrics[metric_name("sdr_mixture", stem)] = audible_median(baseline[:, s], keep)
        metrics[metric_name("sdr_gain", stem)] = audible_median(score[:, s] - baseline[:, s], keep)
    metrics["sdr"] = mean_ignoring_nan([metrics[metric_name("sdr", stem)] for stem in stems])
    return metrics


# --------------------------------------------------------------------------------------------------
# The loop
# --------------------------------------------------------------------------------------------------
def train(
    config: TrainingConfig,
    *,
    train_dataset: Dataset | None = None,
    validation_dataset: Dataset | None = None,
    collate_fn: Callable | None = None,
    stop_after: int | None = None,
    hub_token: str | None = None,
) -> TrainResult:
    """Train TFSWA-UNet as `config` says; see the module docstring for what lands where.

    Args:
        config ([`TrainingConfig`]): the validated run configuration.
        train_dataset, validation_dataset (`Dataset`, *optional*): map-style datasets whose items
            are `{"mixture": (C, T), "stems": (S, C, T)}` tensors (stems in `config.model` order);
            by default built from `config.data` with `modeling_tfswa.training.data`.
        collate_fn: DataLoader collate function (default: the one of `training.data` when the
            datasets come from there, torch's default otherwise).
        stop_after (`int`, *optional*): stop (as if killed) after this optimizer step of the run,
            without the end-of-run validation / saves; for resumption tests and time-boxed jobs.
        hub_token: Hub token for `push_to_hub` (default: the logged-in user's / `HF_TOKEN`).

    Returns:
        [`TrainResult`].
    """
    config.validate()
    # One run per output folder, and a resume only where the config fits: before any write.
    with hold_run_folder(config, resolve_resume(config.resume, config.output_dir)):
        return _train(
            config,
            train_dataset=train_dataset,
            validation_dataset=validation_dataset,
            collate_fn=collate_fn,
            stop_after=stop_after,
            hub_token=hub_token,
        )


def _train(
    config: TrainingConfig,
    *,
    train_dataset: Dataset | None,
    validation_dataset: Dataset | None,
    collate_fn: Callable | None,
    stop_after: int | None,
    hub_token: str | None,
) -> TrainResult:
    """[`train`]'s body, run while the output folder is held."""
    output_dir = Path(config.output_dir)
    if config.resume is None and checkpoint_dirs(output_dir):
        raise FileExistsError(
            f"output_dir: {output_dir} holds checkpoints of an earlier run; pass --resume latest "
            "to continue it, or choose another --output_dir"
        )
    accelerator = Accelerator(
        mixed_precision=config.mixed_precision,
        gradient_accumulation_plugin=GradientAccumulationPlugin(
            num_steps=config.gradient_accumulation_steps, sync_with_dataloader=False
        ),
        log_with="tensorboard",
        project_config=ProjectConfiguration(
            project_dir=str(output_dir), logging_dir=str(output_dir / "logs")
        ),
    )
    main = accelerator.is_main_process
    if main:
        output_dir.mkdir(parents=True, exist_ok=True)
        save_config(config, output_dir / "config.yaml")

    # Model: identical initialisation on every process.
    set_seed(config.seed)
    model_config = config.model_config()
    stems = model_config.stems
    model = TFSWAUNet(model_config)
    if config.gradient_checkpointing:
        model.gradient_checkpointing_enable()  # every transformers 5.x has it (5.2x also activation_checkpointing_enable)
    model.train()

    if train_dataset is None or validation_dataset is None:
        from .data import build_datasets  # the data layer, only when the config must build it

        with accelerator.main_process_first():  # the main process generates / caches data first
            built_train, built_validation, built_collate = build_datasets(config)
        train_dataset = train_dataset if train_dataset is not None else built_train
        if validation_dataset is None:
            validation_dataset = built_validation
        if collate_fn is None:
            collate_fn = built_collate
    max_validation = config.data.max_validation_segments
    if max_validation is not None and len(validation_dataset) > max_validation:
        validation_dataset = Subset(validation_dataset, range(max_validation))

    train_loader = DataLoader(
        train_dataset,
        batch_size=config.data.batch_size,
        shuffle=False,  # items are already random per (seed, epoch, index): order is reproducible
        drop_last=True,
        num_workers=config.data.num_workers,
        collate_fn=collate_fn,
    )
    validation_loader = DataLoader(
        validation_dataset,
        batch_size=config.data.validation_batch_size,
        shuffle=False,
        num_workers=config.data.num_workers,
        collate_fn=collate_fn,
    )
    optimizer = torch.optim.AdamW(
        _param_groups(model, config.optim.weight_decay),
        lr=config.optim.lr,
        betas=tuple(config.optim.betas),
        eps=config.optim.eps,
    )
    # The prepared scheduler steps once per process per optimizer step, hence the scaling.
    scheduler = get_cosine_schedule_with_warmup(
        optimizer,
        num_warmup_steps=config.optim.warmup_steps * accelerator.num_processes,
        num_training_steps=config.max_steps * accelerator.num_processes,
    )
    model, optimizer, train_loader, validation_loader, scheduler = accelerator.prepare(
        model, optimizer, train_loader, validation_loader, scheduler
    )
    if len(train_loader) == 0:
        raise ValueError(
            f"data: the training set ({len(train_dataset)} items) gives no full batch of "
            f"{config.data.batch_size} per process; raise data.samples_per_epoch"
        )
    unwrapped = accelerator.unwrap_model(model)
    ema = EMA(unwrapped, config.ema_decay) if config.ema_decay > 0 else None
    state = TrainState()  # checkpointed by save_run_state / load_run_state (JSON, safetensors)

    resume_from = resolve_resume(config.resume, output_dir)
    if resume_from is not None:
        accelerator.print(f"Resuming from {resume_from}")
        accelerator.load_state(str(resume_from))
        load_run_state(resume_from, state, ema)
    elif config.resume == "latest":
        accelerator.print(f"No checkpoint in {output_dir / 'checkpoints'}; starting from scratch")

    loss_fn = SeparationLoss(config.loss, stems, model_config.n_fft, model_config.hop_length)
    augmenter = Augmenter(config.augment, model_config.n_fft, model_config.hop_length)
    pusher = (
        HubPusher(config.hub_model_id, private=config.hub_private, token=hub_token)
        if config.push_to_hub and main
        else None
    )
    accelerator.init_trackers("tfswa", config=_flat_hparams(config))

    accumulation = config.gradient_accumulation_steps
    batches_per_epoch = len(train_loader)
    start_step = state.step
    losses_this_run: list[tuple[int, float]] = []
    latest_metrics: dict[str, float] = state.history[-1] if state.history else {}
    running: dict[str, float] = defaultdict(float)
    running_count = 0
    progress = tqdm(
        total=config.max_steps,
        initial=state.step,
        desc="training",
        disable=not accelerator.is_local_main_process,
        dynamic_ncols=True,
    )

    def validate_and_keep_best():
        nonlocal latest_metrics
        if ema is not None:
            with ema.swapped(unwrapped):
                metrics = evaluate(unwrapped, validation_loader, loss_fn, accelerator, stems)
        else:
            metrics = evaluate(unwrapped, validation_loader, loss_fn, accelerator, stems)
        metrics["step"] = state.step
        latest_metrics = metrics
        state.history.append(metrics)
        accelerator.log({f"validation/{k}": v for k, v in metrics.items()}, step=state.step)
        accelerator.print(
            f"step {state.step}: validation loss {metrics['loss']:.4f}, SDR "
            + ", ".join(f"{s} {metrics[metric_name('sdr', s)]:.2f} dB" for s in stems)
        )
        if metrics["sdr"] > state.best_sdr:
            state.best_sdr = metrics["sdr"]
            if main:
                save_model(unwrapped, ema, output_dir / "best", config, metrics, state.step)
        accelerator.wait_for_everyone()

    def checkpoint():
        root = output_dir / "checkpoints"
        name = f"{CHECKPOINT_PREFIX}{state.step:08d}"
        tmp = root / f".tmp-{name}"
        if main:
            shutil.rmtree(tmp, ignore_errors=True)
            root.mkdir(parents=True, exist_ok=True)
        accelerator.wait_for_everyone()
        accelerator.save_state(str(tmp))
        accelerator.wait_for_everyone()
        if main:
            save_run_state(tmp, state, ema)
            replace_dir(tmp, root / name)
            for old in checkpoint_dirs(output_dir)[: -config.keep_last]:
                shutil.rmtree(old, ignore_errors=True)
            save_model(unwrapped, ema, output_dir / "last", config, latest_metrics, state.step)
            if pusher is not None:
                pusher.push(output_dir / "last", f"Training step {state.step}")
        accelerator.wait_for_everyone()

    done = state.step >= config.max_steps
    stopped = False
    step_total = 0.0  # mean loss of the micro-batches of the current step
    started = time.perf_counter()
    while not done:
        batch_index = state.step * accumulation  # batches consumed so far (resumes at a step)
        epoch, skip = divmod(batch_index, batches_per_epoch)
        train_loader.set_epoch(epoch)
        loader = accelerator.skip_first_batches(train_loader, skip) if skip else train_loader
        for batch in loader:
            with accelerator.accumulate(model):
                generator = torch.Generator().manual_seed(
                    seed_for(config.seed, batch_index, accelerator.process_index)
                )
                torch.manual_seed(seed_for(config.seed, batch_index, accelerator.process_index, 1))
                if augmenter.enabled:
                    mixture, targets = augmenter(batch["stems"], generator)
                else:
                    mixture, targets = batch["mixture"], batch["stems"]
                estimates = model(input_values=mixture).waveforms
                parts = loss_fn(estimates, targets)
                accelerator.backward(parts["total"])
                if accelerator.sync_gradients and config.optim.max_grad_norm > 0:
                    grad_norm = accelerator.clip_grad_norm_(
                        model.parameters(), config.optim.max_grad_norm
                    )
                    running["grad_norm"] += float(grad_norm)
                optimizer.step()
                scheduler.step()
                optimizer.zero_grad(set_to_none=True)
            batch_index += 1
            for key, value in parts.items():
                running[key] += float(value.detach()) / accumulation
            step_total += float(parts["total"].detach()) / accumulation
            if not accelerator.sync_gradients:
                continue
            # ---- one optimizer step done ----
            state.step += 1
            running_count += 1
            if ema is not None:
                ema.update(unwrapped)
            step_loss = accelerator.reduce(
                torch.tensor(step_total, device=accelerator.device), "mean"
            ).item()
            step_total = 0.0
            losses_this_run.append((state.step, step_loss))
            progress.update(1)
            if state.step % config.log_every == 0:
                logs = {f"train/{k}": v / running_count for k, v in running.items()}
                logs["train/lr"] = scheduler.get_last_lr()[0]
                logs["train/steps_per_second"] = (state.step - start_step) / (
                    time.perf_counter() - started
                )
                accelerator.log(logs, step=state.step)
                progress.set_postfix(
                    loss=f"{logs['train/total']:.4f}", lr=f"{logs['train/lr']:.2e}"
                )
                running.clear()
                running_count = 0
            last = state.step >= config.max_steps
            if state.step % config.eval_every == 0 or last:
                validate_and_keep_best()
            if state.step % config.save_every == 0 or last:
                checkpoint()
            if stop_after is not None and state.step >= stop_after and not last:
                stopped = True
            if last or stopped:
                done = True
                break
    progress.close()

    if main and not stopped:
        if state.history:
            plot_history(state.history, stems, output_dir / "validation.png")
            write_text_atomic(output_dir / "history.json", json.dumps(state.history, indent=1))
        if pusher is not None and not pusher.wait(timeout=600):
            logger.warning("The last Hub push is still running at exit; it may be cut short.")
    accelerator.wait_for_everyone()
    accelerator.end_training()
    return TrainResult(
        step=state.step,
        losses=losses_this_run,
        validation=latest_metrics,
        best_sdr=state.best_sdr,
        output_dir=output_dir,
    )


__all__ = ["TrainResult", "TrainState", "checkpoint_dirs", "evaluate", "resolve_resume", "train"]
