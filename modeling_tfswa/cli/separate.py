"""`tfswa-separate`: split audio files into stems with a trained model.

    tfswa-separate song.flac album/ --model path/or/hub-id --out separated --two-stems vocals

writes `separated/<track>/<stem>.<ext>` per input file, at the input's sample rate and channel
count. A bad input (missing, unreadable, empty, NaN/inf samples, unsupported format, existing
outputs without `--force`, a full disk) is reported and skipped; the others are still processed,
and the exit status is 1 if any input failed. A model that cannot be loaded (missing, truncated,
unsafe) is one line `error: ...` and exit status 2 (`--debug` shows the traceback). Track folder
names are made safe (`..wav` writes `_/`), and hidden staging folders of killed runs are removed at
start; with `--force`, a track's stems are replaced as one unit. The work is done by `modeling_tfswa.separation.separate_file`.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from tqdm.auto import tqdm

from data_scripts.clitools import add_debug_flag, run_command

from ..allocator import keep_freed_memory
from ..audio import AUDIO_FORMATS, CLIP_MODES, SUBTYPES, AudioError, find_audio_files
from ..fileio import clean_stale_temporaries
from ..separation import Separator, separate_file, track_folder_name
from .options import add_separation_flags, load_error, separation_options

OUTPUT_FORMATS = ("wav", "flac")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="tfswa-separate",
        description="Separate audio files into stems with a TFSWA-UNet model.",
    )
    parser.add_argument(
        "inputs",
        nargs="+",
        type=Path,
        metavar="INPUT",
        help=f"audio files or folders of them ({', '.join(sorted(AUDIO_FORMATS))})",
    )
    parser.add_argument("--model", required=True, help="model folder (save_pretrained) or Hub id")
    parser.add_argument("--revision", default=None, help="Hub revision of the model")
    parser.add_argument("--out", type=Path, default=Path("separated"), help="output folder")
    parser.add_argument("--format", choices=OUTPUT_FORMATS, default="wav", help="output format")
    parser.add_argument("--subtype", choices=SUBTYPES, default="PCM_24", help="sample format")
    stems = parser.add_mutually_exclusive_group()
    stems.add_argument("--stems", nargs="+", default=None, help="write only these stems")
    stems.add_argument(
        "--two-stems",
        default=None,
        metavar="STEM",
        help="write STEM and no_STEM (the mixture minus STEM)",
    )
    parser.add_argument(
        "--clip",
        choices=sorted(CLIP_MODES),
        default=None,
        help="samples beyond full scale: rescale all stems of a track by one gain, clamp, or "
        "none (default: rescale for PCM, none for FLOAT)",
    )
    parser.add_argument("--force", action="store_true", help="overwrite existing stem files")
    parser.add_argument(
        "--plot",
        action="store_true",
        help="also write <track>/spectrograms.png (mixture and each stem, one dB scale)",
    )
    add_separation_flags(parser)
    parser.add_argument("--no-progress", action="store_true", help="no progress bars")
    add_debug_flag(parser)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.format == "flac" and args.subtype == "FLOAT":
        parser.error("FLAC cannot store FLOAT samples; use --subtype PCM_16/PCM_24 or --format wav")
    options = separation_options(args, parser)
    keep_freed_memory()  # faster CPU separation (`modeling_tfswa.allocator`)
    return run_command(lambda: separate_inputs(parser, args, options), args.debug)


def separate_inputs(
    parser: argparse.ArgumentParser, args: argparse.Namespace, options: dict
) -> int:
    """The command's work: load the model, then separate every input (a failing input is reported
    and skipped). Returns 1 if any input failed. `options`: the separation group's values."""
    try:
        separator = Separator.from_pretrained(
            args.model, revision=args.revision, progress=not args.no_progress, **options
        )
    except Exception as error:  # noqa: BLE001 - truncated, pickled, missing... one line for all
        raise OSError(load_error(args.model, error)) from error
    try:
        separator.output_stems(args.stems, args.two_stems)
    except ValueError as error:
        parser.error(str(error))
    clean_stale_temporaries(args.out)  # staging left by a killed run

    failures: list[str] = []
    tracks: dict[str, Path] = {}
    files = find_audio_files(args.inputs)
    for path, problem in tqdm(files, unit="file", disable=args.no_progress):
        try:
            if problem is not None:
                raise problem
            track = track_folder_name(path)
            if track in tracks:
                raise AudioError(f"{path}: track name {track!r} already used by {tracks[track]}")
            tracks[track] = path
            result = separate_file(
                separator,
                path,
                args.out,
                stems=args.stems,
                two_stems=args.two_stems,
                extension=f".{args.format}",
                subtype=args.subtype,
                clip=args.clip,
                overwrite=args.force,
                plot=args.plot,
            )
        except (AudioError, OSError, ValueError) as error:  # reported; the next file may work
            failures.append(str(error))
            tqdm.write(f"error: {error}", file=sys.stderr)
            continue
        note = f" ({result.clipping})" if result.clipping else ""
        tqdm.write(f"{path} -> {result.paths[0].parent}/{note}")
    if failures:
        print(f"{len(failures)} of {len(files)} input(s) failed:", file=sys.stderr)
        for failure in failures:
            print(f"  {failure}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
