"""`train_accelerate.py`'s body: parse the command line, train, and (with `demo`) separate a demo."""

from __future__ import annotations

import logging
import sys
from pathlib import Path

from data_scripts.clitools import run_command

from ..metrics import metric_name
from .config import config_from_argv, config_help

logger = logging.getLogger(__name__)


def main(argv: list[str] | None = None, default_config: str | Path | None = None) -> int:
    """Train from `--config FILE` (or `default_config`) plus `--key value` overrides.

    With `demo: true`, the main process then separates the data's demo mixture with the best
    model and writes the stems to `output_dir/demo/`. Any error (a bad config key or value, a
    folder in use, a resume that does not fit) is one line `error: ...` and exit status 2;
    `--debug` (or `TFSWA_DEBUG=1`) shows the traceback. `--help` (`-h`) lists every key with
    the value this command line would train with ([`config_help`]).
    """
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    logging.getLogger("modeling_tfswa").setLevel(logging.INFO)
    argv = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in argv  # tracebacks of errors (also TFSWA_DEBUG=1)
    argv = [arg for arg in argv if arg != "--debug"]
    if "--help" in argv or "-h" in argv:
        rest = [arg for arg in argv if arg not in ("--help", "-h")]
        return run_command(lambda: print(config_help(rest, default_config)) or 0, debug)
    return run_command(lambda: _train_and_demo(argv, default_config), debug)


def _train_and_demo(argv: list[str], default_config: str | Path | None) -> int:
    from accelerate import PartialState
    from transformers import AutoModel

    from .data import demo_mixture_path
    from .demo import separate_demo
    from .trainer import train

    config = config_from_argv(argv, default_config=default_config)
    result = train(config)
    if config.demo and PartialState().is_main_process:
        model_dir = result.output_dir / "best"
        model = AutoModel.from_pretrained(model_dir)
        written = separate_demo(model, demo_mixture_path(config), result.output_dir / "demo")
        print(f"Model: {model_dir}")
        print("Demo stems: " + ", ".join(str(p) for p in written.values()))
        if result.validation:
            print(
                "Validation SDR (dB): "
                + ", ".join(
                    f"{s} {result.validation[metric_name('sdr', s)]:.2f} "
                    f"(mixture {result.validation[metric_name('sdr_mixture', s)]:.2f})"
                    for s in model.config.stems
                )
            )
    return 0


__all__ = ["main"]
