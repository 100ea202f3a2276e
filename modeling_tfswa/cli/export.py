"""`tfswa-export`: export a trained model to ONNX (mask estimator) or TorchScript (whole model),
verified against PyTorch; prints the verification as one JSON object."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from transformers import AutoModel

from data_scripts.clitools import add_debug_flag, run_command

from ..export import EXPORTERS, export_model
from .options import load_error


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="tfswa-export",
        description="Export a TFSWA-UNet model to ONNX (spectrogram -> masks) or TorchScript "
        "(waveform -> stems) and check the export against PyTorch.",
    )
    parser.add_argument("--model", required=True, help="model name on the Hub or local folder")
    parser.add_argument("--format", required=True, choices=sorted(EXPORTERS))
    parser.add_argument("--out", required=True, type=Path, help="file to write")
    parser.add_argument(
        "--opset", type=int, default=None, help="ONNX opset, >= 18 (onnx only; default 20)"
    )
    parser.add_argument(
        "--seconds", type=float, default=4.0, help="length of the example input (default 4)"
    )
    parser.add_argument(
        "--atol", type=float, default=1e-4, help="accepted max abs difference from PyTorch"
    )
    parser.add_argument("--force", action="store_true", help="overwrite an existing --out file")
    add_debug_flag(parser)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Export; 1 when `--out` exists without `--force`, 2 on an error (one line `error: ...`;
    `--debug` or `TFSWA_DEBUG=1` for the traceback)."""
    args = build_parser().parse_args(argv)
    if args.out.exists() and not args.force:
        print(f"tfswa-export: {args.out} exists; pass --force to overwrite it", file=sys.stderr)
        return 1
    if args.opset is not None and args.format != "onnx":
        print("tfswa-export: --opset only applies to --format onnx", file=sys.stderr)
        return 2
    return run_command(lambda: export(args), args.debug)


def export(args: argparse.Namespace) -> int:
    try:
        model = AutoModel.from_pretrained(args.model)
    except Exception as error:  # noqa: BLE001 - truncated, pickled, missing... one line for all
        raise OSError(load_error(args.model, error)) from error
    options = {"seconds": args.seconds, "atol": args.atol}
    if args.format == "onnx":
        options["opset"] = args.opset
    result = export_model(model, args.format, args.out, **options)
    print(json.dumps(result.to_dict()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
