"""The output folder of a training run: one run at a time, a resume only where it fits, and the
project's own checkpoint state without pickles.

- [`OutputDirLock`]: the main process holds an exclusive `flock` on `output_dir/.lock` for the run's
  life. A second run into the folder is refused with one line naming the folder and the holder. The
  kernel drops the lock when its process dies, so the lock file a killed run leaves behind is taken
  over by the next run (said in the log: a run that ends cleanly empties the file, a killed one
  leaves its pid there); no stale-lock guessing by process ids or ages.
- [`check_resume`]: before anything is written, the run config saved beside the checkpoint
  (`<run>/config.yaml`) is compared with the requested one. Keys in [`MAY_CHANGE`] (how long, how
  often, where) may differ, and the log says so (a new `max_steps` moves the end of the cosine
  schedule); any other difference (the model, the data, the optimiser...) refuses the resume with
  one message listing the differing keys. A checkpoint holding pickled custom state
  (`custom_checkpoint_*.pkl`) is refused without loading it.
- [`save_run_state`] / [`load_run_state`]: the train state (step, best SDR, validation history) as
  JSON and the EMA weights as safetensors, written by us into the checkpoint folder instead of
  Accelerate's pickled `custom_checkpoint_*.pkl`. Accelerate's own files of a checkpoint (optimizer,
  scheduler, RNG states) are still torch pickles: a checkpoint folder is trusted input, like code.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import os
import socket
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from safetensors.torch import load_file, save_file

from data_scripts.musdb import resolve_stem_set

from ..configuration_tfswa import TFSWAConfig
from ..fileio import write_text_atomic, write_via_temporary
from .config import ConfigError, TrainingConfig, apply_mapping, load_yaml

logger = logging.getLogger(__name__)

LOCK_NAME = ".lock"
#: The run config of a run folder (written by the trainer at start).
RUN_CONFIG_NAME = "config.yaml"
#: Our checkpoint state files.
STATE_NAME = "train_state.json"
EMA_NAME = "ema.safetensors"

#: Config keys a resumed run may change: how long and how often it works, where it reads and
#: writes, what it shows. Every other key must equal the checkpoint's run config.
MAY_CHANGE = frozenset(
    {
        "max_steps",
        "log_every",
        "eval_every",
        "save_every",
        "keep_last",
        "resume",
        "output_dir",
        "push_to_hub",
        "hub_model_id",
        "hub_private",
        "demo",
        "gradient_checkpointing",
        "cpu_threads",
        "data.root",
        "data.cache_dir",
        "data.num_workers",
        "data.validation_batch_size",
        "data.max_validation_segments",
    }
)


class RunFolderBusy(ConfigError):
    """Another training run holds the output folder."""


class OutputDirLock:
    """An exclusive lock on a run's output folder (see the module docstring).

    Args:
        folder: the output folder (created if missing).
    """

    def __init__(self, folder: str | os.PathLike):
        self.folder = Path(folder)
        self._fd: int | None = None

    def acquire(self) -> OutputDirLock:
        """Take the lock, or raise [`RunFolderBusy`] naming the folder and the run holding it."""
        self.folder.mkdir(parents=True, exist_ok=True)
        path = self.folder / LOCK_NAME
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o666)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 4096, 0).decode(errors="replace").strip() or "unknown"
            os.close(fd)
            raise RunFolderBusy(
                f"output_dir: {self.folder} is in use by another training run ({holder}); wait "
                "for it to end or choose another --output_dir"
            ) from None
        previous = os.pread(fd, 4096, 0).decode(errors="replace").strip()
        if previous:
            logger.info("output_dir: taking over the lock of a run that ended (%s)", previous)
        stamp = time.strftime("%Y-%m-%d %H:%M:%S")
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"pid {os.getpid()} on {socket.gethostname()} since {stamp}\n".encode(), 0)
        self._fd = fd
        return self

    def release(self) -> None:
        if self._fd is not None:
            os.ftruncate(self._fd, 0)  # an empty lock file: the last run ended cleanly
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None

    def __enter__(self) -> OutputDirLock:
        return self.acquire()

    def __exit__(self, *exc) -> None:
        self.release()


def _is_main_process() -> bool:
    """Rank 0 of a launch (`RANK` is set by `accelerate launch` / torchrun), without creating
    Accelerate's process state before the trainer does."""
    return int(os.environ.get("RANK", "0")) == 0


def _flat(config: dict[str, Any], saved: bool = False) -> dict[str, Any]:
    """The config as `{dotted key: value}`, the model section completed with TFSWAConfig's
    defaults (so that a default written out and a default left out compare equal). A `saved`
    run config is read as a saved model config is: a key it lacks takes the value it had before
    the key was added (`TFSWAConfig.from_dict`), since runs of older versions wrote only the
    keys they were given."""
    flat = {}
    for key, value in config.items():
        if key == "model":
            model = (TFSWAConfig.from_dict(value) if saved else TFSWAConfig(**value)).to_dict()
            names = TFSWAConfig.argument_names() | set(value)
            flat.update({f"model.{k}": v for k, v in model.items() if k in names})
        elif isinstance(value, dict):
            flat.update({f"{key}.{k}": v for k, v in value.items()})
        else:
            flat[key] = value
    return flat


def check_resume(config: TrainingConfig, checkpoint: Path | None) -> None:
    """Refuse (`ConfigError`) a resume whose config differs from the run that wrote `checkpoint`
    in keys outside [`MAY_CHANGE`]; log the allowed changes. Reads only; writes nothing."""
    if checkpoint is None:
        return
    pickles = sorted(p.name for p in Path(checkpoint).glob("custom_checkpoint_*.pkl"))
    if pickles:
        raise ConfigError(
            f"resume: {checkpoint} holds pickled state {pickles} (from another program or an "
            "older version); it is not loaded, since unpickling can run code. Resume from a "
            "checkpoint of this version"
        )
    saved_path = Path(checkpoint).parent.parent / RUN_CONFIG_NAME
    if not saved_path.is_file():
        raise ConfigError(
            f"resume: {checkpoint} has no run config at {saved_path}; it cannot be checked "
            "against this run's config"
        )
    saved = TrainingConfig()
    apply_mapping(saved, load_yaml(saved_path), source=str(saved_path))
    before, now = _flat(saved.to_dict(), saved=True), _flat(config.to_dict())
    # The stem set as read (a derived one and the same one written out compare equal).
    before["data.stem_set"] = resolve_stem_set(saved.stem_set())[1]
    now["data.stem_set"] = resolve_stem_set(config.stem_set())[1]
    changed = sorted(k for k in before.keys() | now.keys() if before.get(k) != now.get(k))
    refused = [k for k in changed if k not in MAY_CHANGE]
    if refused:
        details = "; ".join(f"{k}: {before.get(k)!r} -> {now.get(k)!r}" for k in refused)
        raise ConfigError(
            f"resume: the config differs from the run of {checkpoint} ({saved_path}) in "
            f"{len(refused)} key(s): {details}. Undo the change(s), or train into a new "
            "--output_dir without --resume"
        )
    for key in changed:
        if key == "resume":
            continue
        note = (
            f"; the learning-rate schedule now ends at step {now[key]}"
            if key == "max_steps"
            else ""
        )
        logger.warning("resume: %s changed from %r to %r%s", key, before.get(key), now[key], note)


@contextlib.contextmanager
def hold_run_folder(config: TrainingConfig, checkpoint: Path | None) -> Iterator[None]:
    """Check the resume ([`check_resume`]), then hold the output folder's lock (main process)
    while the block runs. Both happen before the run writes anything."""
    check_resume(config, checkpoint)
    if not _is_main_process():
        yield
        return
    with OutputDirLock(config.output_dir):
        yield


def save_run_state(folder: str | os.PathLike, state, ema) -> None:
    """Write the train state (JSON) and the EMA (safetensors) into a checkpoint folder."""
    folder = Path(folder)
    document = {"step": state.step, "best_sdr": state.best_sdr, "history": state.history}
    document["train_seconds"] = state.train_seconds  # the clocks of training-time budgets
    document["train_cpu_seconds"] = state.train_cpu_seconds
    if ema is not None:
        document["ema"] = {"decay": ema.decay, "num_updates": ema.num_updates}
        shadow = {name: tensor.contiguous() for name, tensor in ema.shadow.items()}
        write_via_temporary(folder / EMA_NAME, lambda temporary: save_file(shadow, temporary))
    write_text_atomic(folder / STATE_NAME, json.dumps(document, indent=1))


def load_run_state(folder: str | os.PathLike, state, ema) -> None:
    """Read what [`save_run_state`] wrote back into `state` and `ema` (nothing is unpickled)."""
    folder = Path(folder)
    path = folder / STATE_NAME
    if not path.is_file():
        raise ConfigError(
            f"resume: {folder} has no {STATE_NAME}; it was written by another program or an "
            "older version (whose pickled state is not loaded)"
        )
    try:
        document = json.loads(path.read_text())
        state.step = int(document["step"])
        state.best_sdr = float(document["best_sdr"])
        state.history = list(document["history"])
        state.train_seconds = float(document["train_seconds"])
        state.train_cpu_seconds = float(document["train_cpu_seconds"])
    except (ValueError, KeyError, TypeError) as error:
        raise ConfigError(f"resume: {path} is not a train state ({error})") from error
    if ema is not None:
        if "ema" not in document or not (folder / EMA_NAME).is_file():
            raise ConfigError(f"resume: {folder} holds no EMA weights ({EMA_NAME})")
        ema.load_state_dict({**document["ema"], "shadow": load_file(str(folder / EMA_NAME))})


__all__ = [
    "EMA_NAME",
    "MAY_CHANGE",
    "OutputDirLock",
    "RunFolderBusy",
    "STATE_NAME",
    "check_resume",
    "hold_run_folder",
    "load_run_state",
    "save_run_state",
]
