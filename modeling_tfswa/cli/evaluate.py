"""`tfswa-evaluate`: score a model (or an oracle mask) on a MUSDB18 split with museval and the fast
SDRs; writes per-track museval JSON, scores.json, scores.md and sdr_boxplot.png.

Only the evaluated split is validated; a broken track (a missing stem, NaN samples...) is reported
and the others are scored ("N of M tracks", exit status 1). A rerun reuses the finished tracks of
an earlier run with the same model, split and settings (`--force` recomputes them). Killing the
command (SIGTERM, Ctrl-C, even SIGKILL) ends its museval workers too."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from data_scripts.clitools import add_debug_flag, run_command
from data_scripts.musdb import load_stem_split, parse_stem_set, stem_set_for

from ..allocator import keep_freed_memory
from ..evaluation import ORACLE_MASKS, evaluate_separator, load_separator
from ..evaluation.workers import terminate_on_sigterm
from .options import add_separation_flags, separation_options


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
        type=parse_stem_set,
        default=None,
        help="'vocals-accompaniment', '4stems', name=src+src,... or JSON {stem: [sources]}; "
        "default: from the model's stems",
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
    group.add_argument(
        "--hop-length",
        type=int,
        default=None,
        help="oracle hop (default: n_fft // 2, as TFSWAConfig's)",
    )
    parser.add_argument("--no-progress", action="store_true", help="no progress bars")
    parser.add_argument(
        "--force",
        action="store_true",
        help="recompute every track (default: reuse the finished tracks of an earlier run with "
        "the same model, split and settings)",
    )
    add_debug_flag(parser)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Evaluate; 0 when every track was scored, 1 when some were broken (reported), 2 on an error
    (one line `error: ...`; `--debug` or `TFSWA_DEBUG=1` for the traceback)."""
    parser = build_parser()
    args = parser.parse_args(argv)
    options = separation_options(args, parser)
    if args.model not in ORACLE_MASKS and (args.stems or args.n_fft or args.hop_length):
        print("error: --stems/--n-fft/--hop-length are for oracles", file=sys.stderr)
        return 2
    if args.workers < 0:
        print(f"error: --workers must be >= 0, got {args.workers}", file=sys.stderr)
        return 2
    keep_freed_memory()  # faster CPU separation (`modeling_tfswa.allocator`)
    return run_command(lambda: evaluate(args, options), args.debug)


def evaluate(args: argparse.Namespace, options: dict) -> int:
    """The command's work (see [`main`]; `options`: the separation group's values); SIGTERM ends
    it, and its workers, cleanly."""
    if args.model in ORACLE_MASKS:
        separator = load_separator(
            args.model, stems=args.stems, n_fft=args.n_fft, hop_length=args.hop_length
        )
    else:
        separator = load_separator(args.model, **options)
    stem_set = args.stem_set if args.stem_set is not None else stem_set_for(separator.stems)
    dataset, broken = load_stem_split(args.root, stem_set, args.split, cache_dir=args.cache_dir)
    with terminate_on_sigterm():
        result = evaluate_separator(
            separator,
            dataset,
            args.out,
            split=args.split,
            fast=args.fast,
            workers=args.workers,
            frame_seconds=args.frame_seconds,
            tracks=args.tracks,
            progress=not args.no_progress,
            force=args.force,
            broken=broken,
        )
    print((args.out / "scores.md").read_text(), end="")
    print(f"results: {args.out} ({result.tracks_label})")
    if result.broken:
        print(f"error: {len(result.broken)} track(s) could not be scored:", file=sys.stderr)
        for problem in result.broken.values():
            print(f"  {problem}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
