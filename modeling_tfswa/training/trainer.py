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

Checkpoint rotation is ours ([`save_checkpoint`]: `save_state` into `checkpoints/.tmp-step_*`, an
atomic rename to `step_<optimizer step>`, then the oldest beyond `keep_last` removed), not
Accelerate's `ProjectConfiguration(automatic_checkpoint_naming=True, total_limit=...)`: that one
deletes the oldest checkpoint *before* writing the new one, and writes the new one in place under
its final name (`checkpoint_<number of saves>`). Measured (`benchmarks/training_libraries.py`,
accelerate 1.15, a limit of 2, a third save failing half-way): Accelerate leaves 1 complete
checkpoint and 1 incomplete folder, which is the newest (what `--resume latest` would load); ours
leaves 2 complete checkpoints and no incomplete one under a checkpoint name. Our names also carry
the optimizer step that `resume` and the logs use.
"""

from __future__ import annotations

import json
import logging
import math
import os
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

from ..allocator import keep_freed_memory
from ..configuration_tfswa import TFSWAConfig
from ..evaluation.workers import usable_cores
from ..fileio import publish_folder, write_text_atomic, write_via_temporary
from ..metrics import mean_ignoring_nan, metric_name, sdr
from ..modeling_tfswa import TFSWAUNet
from .augment import Augmenter
from .config import TrainingConfig, save_config
from .ema import EMA
from .hub import HubPusher
from .init import init_from_pretrained
from .losses import SeparationLoss
from .model_card import write_model_card
from .run_folder import RUN_CONFIG_NAME, hold_run_folder, load_run_state, save_run_state

logger = logging.getLogger(__name__)

CHECKPOINT_PREFIX = "step_"


# --------------------------------------------------------------------------------------------------
# Small pieces
# --------------------------------------------------------------------------------------------------
@dataclass
class TrainState:
    """Progress that checkpoints carry besides model, optimizer, scheduler, RNG and EMA.

    `train_seconds` / `train_cpu_seconds` count the wall-clock and process CPU seconds spent in
    training steps (data loading included; validation and checkpointing excluded): the clocks of a
    training budget.
    """

    step: int = 0
    best_sdr: float = -math.inf
    history: list[dict] = field(default_factory=list)  # validation metrics per evaluation
    train_seconds: float = 0.0
    train_cpu_seconds: float = 0.0


@dataclass
class TrainResult:
    """What [`train`] returns (on every process; histories are complete on the main process).

    Attributes:
        step: the optimizer step reached.
        losses: `(step, mean training loss)` for every step of this run (main process).
        validation: the latest validation metrics (`"sdr/<stem>"`, `"loss"`, ...).
        best_sdr: the best mean validation SDR (dB) over stems so far.
        output_dir: where everything was written.
        model: the trained (unwrapped) model, with its last trained weights.
        ema: the moving average of its weights (None without EMA); `ema.swapped(model)` runs a
            block with the weights that were validated and saved.
        train_seconds, train_cpu_seconds: wall-clock and CPU seconds of training steps in total.
    """

    step: int
    losses: list[tuple[int, float]]
    validation: dict[str, float]
    best_sdr: float
    output_dir: Path
    model: torch.nn.Module | None = None
    ema: EMA | None = None
    train_seconds: float = 0.0
    train_cpu_seconds: float = 0.0


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
    write_model_card(tmp, config, metrics, step, model_config=model.config)  # README.md
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
# The pieces of the loop: set-up, one step, validation, checkpoint, end of run
# --------------------------------------------------------------------------------------------------
#: `save_model(model, ema, folder, config, metrics, step)`: writes a model folder (best/, last/).
ModelSaver = Callable[[torch.nn.Module, "EMA | None", Path, TrainingConfig, dict, int], None]


@dataclass
class Run:
    """Everything a training run holds, built by [`prepare_run`] and used by [`train_step`],
    [`validate`], [`save_checkpoint`] and [`finish_run`] (and so by [`train`], their loop).

    `model`, `optimizer`, `scheduler` and the loaders are the `accelerator.prepare`d objects;
    `unwrapped` is the model itself (what EMA, validation and saving see).
    """

    config: TrainingConfig
    accelerator: Accelerator
    model: torch.nn.Module
    unwrapped: torch.nn.Module
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LRScheduler
    train_loader: DataLoader
    validation_loader: DataLoader
    loss_fn: SeparationLoss
    augmenter: Augmenter
    ema: EMA | None
    state: TrainState
    stems: list[str]
    output_dir: Path
    save_model: ModelSaver
    pusher: HubPusher | None = None

    @property
    def main(self) -> bool:
        return self.accelerator.is_main_process


def make_accelerator(config: TrainingConfig) -> Accelerator:
    """The run's Accelerator: precision, gradient accumulation, TensorBoard logs in `output_dir`."""
    output_dir = Path(config.output_dir)
    return Accelerator(
        mixed_precision=config.mixed_precision,
        gradient_accumulation_plugin=GradientAccumulationPlugin(
            num_steps=config.gradient_accumulation_steps, sync_with_dataloader=False
        ),
        log_with="tensorboard",
        project_config=ProjectConfiguration(
            project_dir=str(output_dir), logging_dir=str(output_dir / "logs")
        ),
    )


def set_cpu_threads(config: TrainingConfig, accelerator: Accelerator) -> int:
    """Apply `config.cpu_threads` to torch (see [`TrainingConfig`]); returns the thread count.

    `"auto"` acts only when the run trains on the CPU: this process's usable cores, divided by
    the processes of this machine (`LOCAL_WORLD_SIZE`, set by the launcher; else all of them).
    """
    threads = config.cpu_threads
    if threads == "auto":
        if accelerator.device.type != "cpu":
            return torch.get_num_threads()
        local = int(os.environ.get("LOCAL_WORLD_SIZE", accelerator.num_processes))
        threads = max(1, usable_cores() // max(1, local))
    if threads is not None:
        torch.set_num_threads(threads)
    return torch.get_num_threads()


def build_loaders(
    config: TrainingConfig,
    accelerator: Accelerator,
    train_dataset: Dataset | None,
    validation_dataset: Dataset | None,
    collate_fn: Callable | None,
    model_config: TFSWAConfig | None = None,
) -> tuple[DataLoader, DataLoader]:
    """Training and validation loaders (not yet prepared); missing datasets come from `config.data`
    (with the run's `model_config`, default `config.model_config()`)."""
    if train_dataset is None or validation_dataset is None:
        from .data import build_datasets  # the data layer, only when the config must build it

        with accelerator.main_process_first():  # the main process generates / caches data first
            built_train, built_validation, built_collate = build_datasets(config, model_config)
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
    return train_loader, validation_loader


def build_optimizer(
    model: torch.nn.Module, config: TrainingConfig, num_processes: int
) -> tuple[torch.optim.Optimizer, torch.optim.lr_scheduler.LRScheduler]:
    """AdamW (no decay on biases, norms, embeddings) and the warm-up + cosine schedule."""
    optimizer = torch.optim.AdamW(
        _param_groups(model, config.optim.weight_decay),
        lr=config.optim.lr,
        betas=tuple(config.optim.betas),
        eps=config.optim.eps,
    )
    # The prepared scheduler steps once per process per optimizer step, hence the scaling.
    scheduler = get_cosine_schedule_with_warmup(
        optimizer,
        num_warmup_steps=config.optim.warmup_steps * num_processes,
        num_training_steps=config.max_steps * num_processes,
    )
    return optimizer, scheduler


def prepare_run(
    config: TrainingConfig,
    *,
    model_config: TFSWAConfig | None = None,
    model: torch.nn.Module | None = None,
    train_dataset: Dataset | None = None,
    validation_dataset: Dataset | None = None,
    collate_fn: Callable | None = None,
    save_model: ModelSaver = save_model,
    hub_token: str | None = None,
) -> Run:
    """Build (or take) the model, data, optimizer, EMA, loss and augmentation for the validated
    `config`, `accelerator.prepare` them, and load the checkpoint to resume from. Call it while
    the output folder is held (`run_folder.hold_run_folder`, as [`train`] does); `model_config` is
    the run's [`TFSWAConfig`] when already built (default: `config.model_config()`); see [`train`]
    for the other args."""
    output_dir = Path(config.output_dir)
    if config.resume is None and checkpoint_dirs(output_dir):
        raise FileExistsError(
            f"output_dir: {output_dir} holds checkpoints of an earlier run; pass --resume latest "
            "to continue it, or choose another --output_dir"
        )
    accelerator = make_accelerator(config)
    set_cpu_threads(config, accelerator)
    if accelerator.device.type == "cpu":
        keep_freed_memory()  # 0.86 of the CPU time per step (`modeling_tfswa.allocator`)
    model_config = model_config or config.model_config()
    if accelerator.is_main_process:
        output_dir.mkdir(parents=True, exist_ok=True)
        save_config(config, output_dir / RUN_CONFIG_NAME, model_config)
    set_seed(config.seed)  # identical initialisation on every process
    if model is None:
        model = TFSWAUNet(model_config)
        if config.init_from:
            init_from_pretrained(model, config.init_from)  # fine-tuning: weights only
    stems = list(model.config.stems)
    if config.gradient_checkpointing:
        model.gradient_checkpointing_enable()  # every transformers 5.x has it
    model.train()
    train_loader, validation_loader = build_loaders(
        config, accelerator, train_dataset, validation_dataset, collate_fn, model_config
    )
    optimizer, scheduler = build_optimizer(model, config, accelerator.num_processes)
    model, optimizer, train_loader, validation_loader, scheduler = accelerator.prepare(
        model, optimizer, train_loader, validation_loader, scheduler
    )
    if len(train_loader) == 0:
        raise ValueError(
            f"data: the training set ({len(train_loader.dataset)} items) gives no full batch of "
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
    pusher = None
    if config.push_to_hub and accelerator.is_main_process:
        pusher = HubPusher(config.hub_model_id, private=config.hub_private, token=hub_token)
    accelerator.init_trackers("tfswa", config=_flat_hparams(config))
    return Run(
        config=config,
        accelerator=accelerator,
        model=model,
        unwrapped=unwrapped,
        optimizer=optimizer,
        scheduler=scheduler,
        train_loader=train_loader,
        validation_loader=validation_loader,
        loss_fn=SeparationLoss(config.loss, stems, model_config.n_fft, model_config.hop_length),
        augmenter=Augmenter(config.augment, model_config.n_fft, model_config.hop_length),
        ema=ema,
        state=state,
        stems=stems,
        output_dir=output_dir,
        save_model=save_model,
        pusher=pusher,
    )


def train_step(run: Run, batch: dict, batch_index: int) -> dict[str, float]:
    """One micro-batch: augment, forward, loss, backward, and (when gradients sync) clipping and
    the optimizer / scheduler step.

    The randomness of the batch (augmentation, dropout, stochastic depth) comes from generators
    seeded by `(seed, batch_index, process)`, so a resumed run replays it exactly.

    Returns:
        The detached loss parts (`"total"`, ...), plus `"grad_norm"` when the step clipped.
    """
    accelerator, config = run.accelerator, run.config
    with accelerator.accumulate(run.model):
        seed = config.seed, batch_index, accelerator.process_index
        generator = torch.Generator().manual_seed(seed_for(*seed))
        torch.manual_seed(seed_for(*seed, 1))
        if run.augmenter.enabled:
            mixture, targets = run.augmenter(batch["stems"], generator)
        else:
            mixture, targets = batch["mixture"], batch["stems"]
        estimates = run.model(input_values=mixture).waveforms
        parts = run.loss_fn(estimates, targets)
        accelerator.backward(parts["total"])
        values = {key: float(value.detach()) for key, value in parts.items()}
        if accelerator.sync_gradients and config.optim.max_grad_norm > 0:
            norm = accelerator.clip_grad_norm_(run.model.parameters(), config.optim.max_grad_norm)
            values["grad_norm"] = float(norm)
        run.optimizer.step()
        run.scheduler.step()
        run.optimizer.zero_grad(set_to_none=True)
    return values


def validate(run: Run) -> dict[str, float]:
    """Validate the (EMA) weights with [`evaluate`], record, log and print the metrics, and save
    the model as `best/` when its mean SDR is the best so far."""
    state, stems = run.state, run.stems
    if run.ema is not None:
        with run.ema.swapped(run.unwrapped):
            metrics = evaluate(
                run.unwrapped, run.validation_loader, run.loss_fn, run.accelerator, stems
            )
    else:
        metrics = evaluate(
            run.unwrapped, run.validation_loader, run.loss_fn, run.accelerator, stems
        )
    metrics["step"] = state.step
    metrics["train_seconds"] = state.train_seconds
    metrics["train_cpu_seconds"] = state.train_cpu_seconds
    state.history.append(metrics)
    run.accelerator.log({f"validation/{k}": v for k, v in metrics.items()}, step=state.step)
    run.accelerator.print(
        f"step {state.step}: validation loss {metrics['loss']:.4f}, SDR "
        + ", ".join(f"{s} {metrics[metric_name('sdr', s)]:.2f} dB" for s in stems)
    )
    if metrics["sdr"] > state.best_sdr:
        state.best_sdr = metrics["sdr"]
        if run.main:
            run.save_model(
                run.unwrapped, run.ema, run.output_dir / "best", run.config, metrics, state.step
            )
    run.accelerator.wait_for_everyone()
    return metrics


def save_checkpoint(run: Run, metrics: dict[str, float]) -> None:
    """A resumable checkpoint (`save_state`, atomically; the last `keep_last` are kept), the model
    as `last/` (card with `metrics`), and a background Hub push of it when pushing."""
    accelerator, state = run.accelerator, run.state
    root = run.output_dir / "checkpoints"
    name = f"{CHECKPOINT_PREFIX}{state.step:08d}"
    tmp = root / f".tmp-{name}"
    if run.main:
        shutil.rmtree(tmp, ignore_errors=True)
        root.mkdir(parents=True, exist_ok=True)
    accelerator.wait_for_everyone()
    accelerator.save_state(str(tmp))
    accelerator.wait_for_everyone()
    if run.main:
        save_run_state(tmp, state, run.ema)
        replace_dir(tmp, root / name)
        for old in checkpoint_dirs(run.output_dir)[: -run.config.keep_last]:
            shutil.rmtree(old, ignore_errors=True)
        run.save_model(
            run.unwrapped, run.ema, run.output_dir / "last", run.config, metrics, state.step
        )
        if run.pusher is not None:
            run.pusher.push(run.output_dir / "last", f"Training step {state.step}")
    accelerator.wait_for_everyone()


def finish_run(run: Run, stopped: bool) -> None:
    """Write `history.json` and `validation.png` (unless stopped early), wait for the last Hub
    push, and close the trackers."""
    if run.main and not stopped:
        if run.state.history:
            plot_history(run.state.history, run.stems, run.output_dir / "validation.png")
            write_text_atomic(
                run.output_dir / "history.json", json.dumps(run.state.history, indent=1)
            )
        if run.pusher is not None and not run.pusher.wait(timeout=600):
            logger.warning("The last Hub push is still running at exit; it may be cut short.")
    run.accelerator.wait_for_everyone()
    run.accelerator.end_training()


class StepLog:
    """Running means of the loss parts between logs, and the mean loss of the current step."""

    def __init__(self, accumulation: int, train_seconds: float):
        self.accumulation = accumulation
        self.sums: dict[str, float] = defaultdict(float)
        self.steps = 0
        self.step_total = 0.0
        self.since = train_seconds  # training time at the last flush

    def add(self, values: dict[str, float]) -> None:
        """Add one micro-batch's values (loss parts per micro-batch, grad norm per step)."""
        for key, value in values.items():
            self.sums[key] += value if key == "grad_norm" else value / self.accumulation
        self.step_total += values["total"] / self.accumulation

    def end_step(self, run: Run) -> float:
        """The step's loss, averaged over processes."""
        total = torch.tensor(self.step_total, device=run.accelerator.device)
        self.step_total, self.steps = 0.0, self.steps + 1
        return run.accelerator.reduce(total, "mean").item()

    def flush(self, run: Run, progress: tqdm) -> None:
        """Log the means since the last flush (plus lr and training speed) and reset them."""
        state = run.state
        logs = {f"train/{k}": v / self.steps for k, v in self.sums.items()}
        logs["train/lr"] = run.scheduler.get_last_lr()[0]
        logs["train/steps_per_second"] = self.steps / max(state.train_seconds - self.since, 1e-9)
        run.accelerator.log(logs, step=state.step)
        progress.set_postfix(loss=f"{logs['train/total']:.4f}", lr=f"{logs['train/lr']:.2e}")
        self.sums.clear()
        self.steps = 0
        self.since = state.train_seconds


def _agreed(run: Run, flag: bool) -> bool:
    """`flag` if any process says so (decisions that depend on per-process clocks must agree)."""
    if run.accelerator.num_processes == 1:
        return flag
    return bool(run.accelerator.reduce(torch.tensor(float(flag), device=run.accelerator.device)))


def _epoch_batches(run: Run):
    """`(batch_index, batch)` from the state's position on: the rest of the current epoch
    (skipping the batches a resumed run has seen), then the next epochs, forever."""
    batches_per_epoch = len(run.train_loader)
    while True:
        batch_index = run.state.step * run.config.gradient_accumulation_steps
        epoch, skip = divmod(batch_index, batches_per_epoch)
        run.train_loader.set_epoch(epoch)
        loader = run.train_loader
        if skip:
            loader = run.accelerator.skip_first_batches(run.train_loader, skip)
        for batch in loader:
            yield batch_index, batch
            batch_index += 1


# --------------------------------------------------------------------------------------------------
# The loop
# --------------------------------------------------------------------------------------------------
def train(
    config: TrainingConfig,
    *,
    model: torch.nn.Module | None = None,
    train_dataset: Dataset | None = None,
    validation_dataset: Dataset | None = None,
    collate_fn: Callable | None = None,
    stop_after: int | None = None,
    stop_when: Callable[[TrainState], bool] | None = None,
    validate_when: Callable[[TrainState], bool] | None = None,
    save_model: ModelSaver = save_model,
    hub_token: str | None = None,
) -> TrainResult:
    """Train a separator as `config` says; see the module docstring for what lands where.

    Args:
        config ([`TrainingConfig`]): the validated run configuration.
        model (`nn.Module`, *optional*): the separator to train (default: a [`TFSWAUNet`] of
            `config.model`). Any module with the model contract trains: `model(input_values=
            (B, C, T)).waveforms` is `(B, S, C, T)`, `model.config.stems` names the S stems (in the
            order of the data's stems); the loss and augmentation STFTs use `config.model`'s.
        train_dataset, validation_dataset (`Dataset`, *optional*): map-style datasets whose items
            are `{"mixture": (C, T), "stems": (S, C, T)}` tensors (stems in `config.model` order);
            by default built from `config.data` with `modeling_tfswa.training.data`.
        collate_fn: DataLoader collate function (default: the one of `training.data` when the
            datasets come from there, torch's default otherwise).
        stop_after (`int`, *optional*): stop (as if killed) after this optimizer step of the run,
            without the end-of-run validation / saves; for resumption tests and time-boxed jobs.
        stop_when (`Callable[[TrainState], bool]`, *optional*): checked after every optimizer
            step; when it returns True the run ends there as if `max_steps` were reached (final
            validation and saves), e.g. a training-time budget on `state.train_seconds`.
        validate_when (`Callable[[TrainState], bool]`, *optional*): checked after every optimizer
            step; also validate when it returns True (e.g. every minute of `state.train_seconds`).
        save_model: writes the `best/` and `last/` model folders (default: `save_pretrained` with
            EMA weights and a model card).
        hub_token: Hub token for `push_to_hub` (default: the logged-in user's / `HF_TOKEN`).

    Returns:
        [`TrainResult`].
    """
    model_config = config.validate().model_config()  # the run's one instance from here on
    if train_dataset is None or validation_dataset is None:
        from .data import check_data  # the data layer checks what it reads

        check_data(config, model_config)  # before anything is written or generated
    # One run per output folder, and a resume only where the config fits: before any write.
    with hold_run_folder(config, resolve_resume(config.resume, config.output_dir)):
        run = prepare_run(
            config,
            model_config=model_config,
            model=model,
            train_dataset=train_dataset,
            validation_dataset=validation_dataset,
            collate_fn=collate_fn,
            save_model=save_model,
            hub_token=hub_token,
        )
        return _loop(run, stop_after, stop_when, validate_when)


def _loop(
    run: Run,
    stop_after: int | None,
    stop_when: Callable[[TrainState], bool] | None,
    validate_when: Callable[[TrainState], bool] | None,
) -> TrainResult:
    """[`train`]'s loop over the prepared run: steps, validations, checkpoints, end of run."""
    config = run.config
    state, accelerator = run.state, run.accelerator
    log = StepLog(config.gradient_accumulation_steps, state.train_seconds)
    losses: list[tuple[int, float]] = []
    latest: dict[str, float] = state.history[-1] if state.history else {}
    progress = tqdm(
        total=config.max_steps,
        initial=state.step,
        desc="training",
        disable=not accelerator.is_local_main_process,
        dynamic_ncols=True,
    )
    finished, stopped = state.step >= config.max_steps, False
    clock = time.perf_counter(), time.process_time()
    for batch_index, batch in _epoch_batches(run) if not finished else ():
        log.add(train_step(run, batch, batch_index))
        if not accelerator.sync_gradients:
            continue
        state.step += 1
        state.train_seconds += time.perf_counter() - clock[0]
        state.train_cpu_seconds += time.process_time() - clock[1]
        if run.ema is not None:
            run.ema.update(run.unwrapped)
        losses.append((state.step, log.end_step(run)))
        progress.update(1)
        if state.step % config.log_every == 0:
            log.flush(run, progress)
        finished = state.step >= config.max_steps
        if stop_when is not None:
            finished = finished or _agreed(run, stop_when(state))
        due = validate_when is not None and _agreed(run, validate_when(state))
        if state.step % config.eval_every == 0 or finished or due:
            latest = validate(run)
        if state.step % config.save_every == 0 or finished:
            save_checkpoint(run, latest)
        stopped = stop_after is not None and state.step >= stop_after and not finished
        if finished or stopped:
            break
        clock = time.perf_counter(), time.process_time()  # validation and saving do not count
    progress.close()
    finish_run(run, stopped)
    return TrainResult(
        step=state.step,
        losses=losses,
        validation=latest,
        best_sdr=state.best_sdr,
        output_dir=run.output_dir,
        model=run.unwrapped,
        ema=run.ema,
        train_seconds=state.train_seconds,
        train_cpu_seconds=state.train_cpu_seconds,
    )


__all__ = [
    "Run",
    "TrainResult",
    "TrainState",
    "build_loaders",
    "build_optimizer",
    "checkpoint_dirs",
    "evaluate",
    "finish_run",
    "make_accelerator",
    "prepare_run",
    "resolve_resume",
    "save_checkpoint",
    "save_model",
    "train",
    "train_step",
    "validate",
]
