"""`tfswa-evaluate`: score a model (or an oracle mask) on a MUSDB18 split with museval and the fast
SDRs; writes per-track museval JSON, scores.json, scores.md and sdr_boxplot.png."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from data_scripts.musdb import load_stem_dataset

from ..evaluation import ORACLE_MASKS, evaluate_separator, load_separator, stem_set_for
from .options import add_separation_flags, separation_options


def _stem_set(text: str) -> str | dict[str, list[str]]:
    """A named stem set, or a JSON object {stem: [source stems]}."""
    if text.lstrip().startswith("{"):
        try:
            value = json.loads(text)
        except json.JSONDecodeError as error:
            raise argparse.ArgumentTypeError(f"--stem-set is not valid JSON: {error}") from error
        return value
    return text


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="tfswa-evaluate",
        description="Evaluate a separation model on MUSDB18 (museval BSSEval v4 + uSDR/cSDR).",
    )
    parser.add_argument(
        "--model",
        required=True,
        help=f"model folder or Hub id, or an oracle: {', '.join(sorted(ORACLE_MASKS))}",
    )
    parser.add_argument("--root", required=True, type=Path, help="MUSDB18 or MUSDB18-HQ folder")
    parser.add_argument("--out", required=True, type=Path, help="folder for the results")
    parser.add_argument("--split", default="test", help="train, validation or test (default)")
    parser.add_argument(
        "--stem-set",
        type=_stem_set,
        default=None,
        help="'vocals-accompaniment', '4stems' or JSON {stem: [sources]}; default: from the "
        "model's stems",
    )
    parser.add_argument("--cache-dir", type=Path, default=None, help="datasets cache folder")
    parser.add_argument("--tracks", nargs="+", default=None, help="evaluate only these tracks")
    parser.add_argument("--fast", action="store_true", help="skip museval (uSDR/cSDR/fast SDR)")
    parser.add_argument(
        "--workers", type=int, default=2, help="museval processes (0: in this process)"
    )
    parser.add_argument("--frame-seconds", type=float, default=1.0, help="BSSEval frame length")
    add_separation_flags(parser)
    group = parser.add_argument_group("oracles")
    group.add_argument("--stems", nargs="+", default=None, help="oracle stems (default 4 stems)")
    group.add_argument("--n-fft", type=int, default=None, help="oracle STFT size (default 2048)")
    group.add_argument("--hop-length", type=int, default=None, help="oracle hop (default 512)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bars")
    parser.add_argument("--force", action="store_true", help="overwrite results in --out")
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    options = separation_options(args, parser)
    if (args.out / "scores.json").exists() and not args.force:
        print(f"tfswa-evaluate: {args.out} holds results; pass --force", file=sys.stderr)
        return 1
    if args.model in ORACLE_MASKS:
        separator = load_separator(
            args.model, stems=args.stems, n_fft=args.n_fft, hop_length=args.hop_length
        )
    else:
        if args.stems or args.n_fft or args.hop_length:
            print("tfswa-evaluate: --stems/--n-fft/--hop-length are for oracles", file=sys.stderr)
            return 2
        separator = load_separator(args.model, **options)
    stem_set = args.stem_set if args.stem_set is not None else stem_set_for(separator.stems)
    splits = load_stem_dataset(args.root, stem_set, cache_dir=args.cache_dir, splits=[args.split])
    result = evaluate_separator(
        separator,
        splits[args.split],
        args.out,
        split=args.split,
        fast=args.fast,
        workers=args.workers,
        frame_seconds=args.frame_seconds,
        tracks=args.tracks,
        progress=not args.no_progress,
    )
    print((args.out / "scores.md").read_text(), end="")
    print(f"results: {args.out} ({len(result.tracks)} tracks)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
