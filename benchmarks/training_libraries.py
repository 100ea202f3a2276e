"""Own code vs libraries for training: checkpoint rotation, background Hub pushes, config loading.

    python3 -m benchmarks.training_libraries [--hang-seconds 12]

Checkpoint rotation: Accelerate's `ProjectConfiguration(automatic_checkpoint_naming=True,
total_limit=2)` vs the trainer's own (`save_checkpoint`: `save_state` into a `.tmp-` folder, an
atomic rename to `checkpoints/step_<step>`, then the oldest beyond `keep_last=2` removed). Both save
two checkpoints, then a third save fails half-way (the process is killed or the disk fills up while
Accelerate writes its files); counted afterwards: complete checkpoints left, incomplete folders
under a checkpoint name, and whether the newest checkpoint name (what `--resume latest` takes) is
complete.

Background Hub push: `HfApi.upload_folder(run_as_future=True)` vs our `HubPusher` (a snapshot
uploaded on a daemon thread), when the Hub hangs (an httpx `MockTransport` that answers every
request only after `--hang-seconds`): the seconds from the end of training (a 1-s wait for the push
in flight, as `finish_run` waits with its own timeout) to the exit of the process, in a fresh
interpreter each.

Training config loader: ours (`modeling_tfswa.training.config`) vs OmegaConf structured configs
(`pip install omegaconf`; skipped when missing) vs transformers' `HfArgumentParser`: how bad
values are refused (lines of the message, the key named or not), whether `--section.key`
overrides parse, and the seconds per load of a recipe.

Prints one JSON object last.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

#: Files every complete Accelerate checkpoint of a prepared model + optimizer holds.
CHECKPOINT_FILES = ("model.safetensors", "optimizer.bin", "random_states_0.pkl")


class SaveFailed(RuntimeError):
    """The injected failure half-way through a checkpoint save."""


def _complete(folder: Path) -> bool:
    return all((folder / name).is_file() for name in CHECKPOINT_FILES)


def _failing_save(accelerator) -> None:
    """Make the next `save_state` fail half-way: the model file written, nothing after it."""
    import accelerate.accelerator as module

    original = module.save_accelerator_state

    def fail_half_way(output_dir, *args, **kwargs):
        Path(output_dir, "model.safetensors").write_bytes(b"partial")
        module.save_accelerator_state = original
        raise SaveFailed("killed half-way through the save")

    module.save_accelerator_state = fail_half_way


def _count(root: Path, prefix: str, newest_key) -> dict:
    folders = sorted((p for p in root.iterdir() if p.name.startswith(prefix)), key=newest_key)
    return {
        "complete_checkpoints": sum(_complete(p) for p in folders),
        "incomplete_checkpoint_folders": sum(not _complete(p) for p in folders),
        "newest_checkpoint_is_complete": bool(folders) and _complete(folders[-1]),
    }


def rotation_accelerate(work: Path) -> dict:
    import torch
    from accelerate import Accelerator
    from accelerate.utils import ProjectConfiguration

    accelerator = Accelerator(
        project_config=ProjectConfiguration(
            project_dir=str(work), automatic_checkpoint_naming=True, total_limit=2
        )
    )
    model = torch.nn.Linear(4, 4)
    model, optimizer = accelerator.prepare(model, torch.optim.AdamW(model.parameters()))
    for _ in range(2):
        accelerator.save_state()
    _failing_save(accelerator)
    try:
        accelerator.save_state()
    except SaveFailed:
        pass
    return _count(work / "checkpoints", "checkpoint_", lambda p: int(p.name.split("_")[-1]))


def rotation_ours(work: Path) -> dict:
    import torch

    from modeling_tfswa.training.config import load_config
    from modeling_tfswa.training.trainer import prepare_run, save_checkpoint

    class Stems(torch.utils.data.Dataset):
        def __len__(self):
            return 4

        def __getitem__(self, index):
            stems = 0.1 * torch.randn(2, 2, 2048, generator=torch.Generator().manual_seed(index))
            return {"mixture": stems.sum(0), "stems": stems}

    root = Path(__file__).resolve().parents[1]
    config = load_config(
        root / "configs" / "tiny.yaml",
        {"output_dir": str(work), "keep_last": 2, "model.sample_rate": 8000, "ema_decay": 0.0},
    )
    run = prepare_run(
        config, train_dataset=Stems(), validation_dataset=Stems(), save_model=lambda *a: None
    )
    for step in (1, 2):
        run.state.step = step
        save_checkpoint(run, {})
    run.state.step = 3
    _failing_save(run.accelerator)
    try:
        save_checkpoint(run, {})
    except SaveFailed:
        pass
    run.accelerator.end_training()
    return _count(work / "checkpoints", "step_", lambda p: int(p.name.split("_")[-1]))


HANGING_HUB = """
import sys, time, httpx2 as httpx, huggingface_hub
from huggingface_hub import constants
constants.HF_HUB_OFFLINE = False
constants.HF_HUB_DISABLE_XET = True

def hang(request):
    time.sleep({hang})
    raise httpx.ConnectError("the Hub did not answer", request=request)

huggingface_hub.set_client_factory(lambda: httpx.Client(transport=httpx.MockTransport(hang)))
folder = sys.argv[1]
"""

PUSH_FUTURE = """
from concurrent.futures import TimeoutError
from huggingface_hub import HfApi
future = HfApi(token="hf_fake").upload_folder(
    repo_id="user/model", folder_path=folder, run_as_future=True
)
try:
    future.result(timeout=1)
except (TimeoutError, Exception):
    pass
print("training ended", flush=True)
"""

PUSH_OURS = """
from modeling_tfswa.training.hub import HubPusher
pusher = HubPusher("user/model", token="hf_fake")
pusher.push(folder, "step 1")
pusher.wait(timeout=1)
print("training ended", flush=True)
"""


def exit_seconds(body: str, hang: float, folder: Path) -> float:
    """Seconds from the start of a fresh interpreter running `body` to its exit (minus import and
    start-up: measured from its 'training ended' line)."""
    script = HANGING_HUB.replace("{hang}", str(hang)) + body
    process = subprocess.Popen(
        [sys.executable, "-c", script, str(folder)], stdout=subprocess.PIPE, text=True
    )
    process.stdout.readline()  # "training ended"
    ended = time.perf_counter()
    process.wait(timeout=hang * 4 + 60)
    return time.perf_counter() - ended


#: Bad command-line values (dotted key, value text) every loader must refuse naming the key.
BAD_VALUES = [
    ("optim.lrr", "1.0"),  # unknown key
    ("optim.lr", "fast"),  # a string for a float
    ("max_steps", "2.5"),  # a float for an int
    ("loss.fft_sizes", "abc"),  # a string for a list
    ("output_dir", "null"),  # null for a required string
    ("model.dimz", "[8]"),  # unknown key of the free `model` section (TFSWAConfig's)
]


def config_loaders(rounds: int = 20) -> dict:
    """Our loader vs OmegaConf structured configs (when installed) vs `HfArgumentParser`, on the
    shipped 4-stem recipe plus one override: how bad values are refused (lines, key named), the
    nested `--section.key` overrides, and seconds per load (best of `rounds`)."""
    from transformers import HfArgumentParser

    from modeling_tfswa.training.config import TrainingConfig, load_config, parse_value

    recipe = Path(__file__).resolve().parents[1] / "configs" / "musdb18hq-4stems.yaml"

    def best(load) -> float:
        times = []
        for _ in range(rounds):
            start = time.perf_counter()
            load()
            times.append(time.perf_counter() - start)
        return min(times)

    def refusal(load, key: str) -> str:
        """'accepted', or how the refusal reads: its number of lines, whether it names the key."""
        try:
            load()
        except (Exception, SystemExit) as error:  # noqa: BLE001 - any refusal counts
            text = str(error)
            named = "naming the key" if key.split(".")[-1] in text else "not naming the key"
            return f"{len(text.strip().splitlines())} line(s) {named}"
        return "accepted"

    ours = {
        key: refusal(lambda key=key, text=text: load_config(recipe, {key: parse_value(text)}), key)
        for key, text in BAD_VALUES
    }
    result = {
        "ours_refusals": ours,
        "ours_load_s": best(lambda: load_config(recipe, {"optim.lr": 3e-4})),
    }
    try:
        from omegaconf import OmegaConf
    except ImportError:
        result["omegaconf"] = "not installed (pip install omegaconf)"
    else:

        def omegaconf_load(dotlist):
            merged = OmegaConf.merge(
                OmegaConf.structured(TrainingConfig), OmegaConf.load(recipe),
                OmegaConf.from_dotlist(dotlist),
            )  # fmt: skip
            return OmegaConf.to_object(merged)

        result["omegaconf_refusals"] = {
            key: refusal(lambda key=key, text=text: omegaconf_load([f"{key}={text}"]), key)
            for key, text in BAD_VALUES
        }
        result["omegaconf_load_s_without_our_checks"] = best(
            lambda: omegaconf_load(["optim.lr=3e-4"])
        )
    parser = HfArgumentParser(TrainingConfig)
    _, unparsed = parser.parse_args_into_dataclasses(
        ["--optim.lr", "3e-4"], return_remaining_strings=True
    )
    result["hf_argument_parser_takes_section_keys"] = not unparsed
    (garbled,) = parser.parse_args_into_dataclasses(["--data", "{root: x}"])
    result["hf_argument_parser_section_value_taken_as"] = repr(garbled.data)[:60]
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hang-seconds", type=float, default=12.0)
    args = parser.parse_args()
    result = {}
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        result["rotation_accelerate_total_limit"] = rotation_accelerate(work / "accelerate")
        result["rotation_ours"] = rotation_ours(work / "ours")
        folder = work / "model"
        folder.mkdir()
        (folder / "config.json").write_text("{}")
        result["hub_hang_seconds"] = args.hang_seconds
        result["exit_after_training_s_run_as_future"] = exit_seconds(
            PUSH_FUTURE, args.hang_seconds, folder
        )
        result["exit_after_training_s_ours"] = exit_seconds(PUSH_OURS, args.hang_seconds, folder)
    result.update(config_loaders())
    print(json.dumps(result))


if __name__ == "__main__":
    main()
