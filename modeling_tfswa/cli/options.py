"""The separation options every command shares (`tfswa-separate`, `tfswa-evaluate`, `app.py`).

One argument group, as Demucs' `add_model_flags`: the defaults of `--segment` and `--overlap` are
`None`, meaning the model's own (`config.segment_seconds`, the length it was trained on, and
`config.overlap`), so that a value is defined once, in the model's config.
"""

from __future__ import annotations

import argparse
from typing import Any

from data_scripts.clitools import describe

from ..separation_core import DEFAULT_BATCH_SIZE, DEFAULT_SHIFTS, DTYPES, resolve_device


def add_separation_flags(parser: argparse.ArgumentParser) -> argparse._ArgumentGroup:
    """Add the `separation` group: --segment, --overlap, --shifts, --batch-size, --device, --dtype."""
    group = parser.add_argument_group("separation (overlap-add over segments)")
    group.add_argument(
        "--segment",
        type=float,
        default=None,
        help="segment length in seconds (default: the model's, the length it was trained on)",
    )
    group.add_argument(
        "--overlap", type=float, default=None, help="segment overlap in [0, 1) (default: model's)"
    )
    group.add_argument(
        "--shifts", type=int, default=DEFAULT_SHIFTS, help="random-shift test-time passes"
    )
    group.add_argument(
        "--batch-size", type=int, default=DEFAULT_BATCH_SIZE, help="segments per forward pass"
    )
    group.add_argument(
        "--device",
        default="auto",
        help="auto (CUDA, else Apple MPS, else CPU), cpu, cuda, cuda:N or mps (default: auto)",
    )
    group.add_argument(
        "--dtype",
        choices=sorted(DTYPES),
        default="float32",
        help="inference precision on accelerators (the STFT stays float32)",
    )
    return group


def separation_options(args: argparse.Namespace, parser: argparse.ArgumentParser) -> dict[str, Any]:
    """The parsed group as `Separator` keyword arguments; out-of-range values stop with
    `parser.error` (one line)."""
    if args.segment is not None and args.segment <= 0:
        parser.error(f"--segment must be > 0, got {args.segment}")
    if args.overlap is not None and not 0 <= args.overlap < 1:
        parser.error(f"--overlap must be in [0, 1), got {args.overlap}")
    if args.shifts < 0:
        parser.error(f"--shifts must be >= 0, got {args.shifts}")
    if args.batch_size < 1:
        parser.error(f"--batch-size must be >= 1, got {args.batch_size}")
    try:
        resolve_device(args.device)
    except ValueError as error:
        parser.error(f"--device: {error}")
    return dict(
        segment_seconds=args.segment,
        overlap=args.overlap,
        shifts=args.shifts,
        batch_size=args.batch_size,
        device=args.device,
        dtype=args.dtype,
    )


def load_error(model: str, error: BaseException) -> str:
    """`cannot load model 'MODEL': <what went wrong>`, naming `model` once (the loaders' own
    messages may start with it)."""
    message = describe(error).removeprefix(f"{model}: ")
    return f"cannot load model {str(model)!r}: {message}"
