"""``tfswa-data``: generate the synthetic set, render songs from MIDI, prepare (materialise) a stem
set, push it to the Hub.

Examples::

    tfswa-data generate data/synthetic --num-train 40 --seconds 30
    tfswa-data render data/rendered --num-train 100 --seconds 30 --workers 2 --plot song.png
    tfswa-data render data/lakh-rendered --midi-dir ~/lmd_full/0 --seconds 30 \
        --soundfont FluidR3_GM.sf2 --soundfont TimGM6mb.sf2 --map synth_lead=vocals
    tfswa-data prepare data/musdb18hq --stem-set 4stems --save-to-disk data/musdb-4stems
    tfswa-data prepare data/musdb18 --stem-set "vocals=vocals,rhythm=drums+bass,other=other"
    tfswa-data push data/musdb18hq me/musdb18-stems --stem-set vocals-accompaniment

Stem sets: a preset (vocals-accompaniment, 4stems), ``name=src+src,...`` or a JSON object.
"""

from __future__ import annotations

import argparse
import sys

from data_scripts.clitools import add_debug_flag, read_token, run_command
from data_scripts.musdb import load_stem_dataset, parse_stem_set, save_stem_dataset


def _add_tree_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("root", help="dataset root (train/, test/, optional validation/)")
    p.add_argument(
        "--stem-set",
        default="vocals-accompaniment",
        help="preset, name=src+src,... or JSON (default: vocals-accompaniment)",
    )
    p.add_argument("--cache-dir", default=None, help="datasets cache folder")
    p.add_argument("--num-proc", type=int, default=None, help="materialisation processes")
    p.add_argument(
        "--validation-tracks",
        default=None,
        help="text file with one validation track name per line (default: MUSDB18's)",
    )


def _load_kwargs(args) -> dict:
    kwargs = {
        "stem_set": parse_stem_set(args.stem_set),
        "cache_dir": args.cache_dir,
        "num_proc": args.num_proc,
    }
    if args.validation_tracks:
        with open(args.validation_tracks) as f:
            kwargs["validation_tracks"] = [line.strip() for line in f if line.strip()]
    return kwargs


def _generate(args) -> None:
    from data_scripts.synthetic import (
        ensure_synthetic_dataset,
        generate_song,
        plot_song,
        track_name,
    )

    root = ensure_synthetic_dataset(
        args.root, args.num_train, args.num_validation, args.num_test, args.seconds, args.seed
    )
    print(f"synthetic dataset ready at {root}")
    if args.plot:
        song = generate_song(args.seed, "train", 0, args.seconds)
        print(f"spectrograms of {track_name('train', 0)}: {plot_song(song, args.plot)}")


def _render(args) -> None:
    from data_scripts.render import (
        RenderSpec,
        ensure_rendered_dataset,
        parse_mapping,
        plot_rendered_song,
    )

    spec = RenderSpec(
        num_train=args.num_train,
        num_validation=args.num_validation,
        num_test=args.num_test,
        seconds=args.seconds if args.seconds > 0 else None,
        seed=args.seed,
        soundfonts=tuple(args.soundfont or ["FluidR3_GM.sf2"]),
        drum_soundfonts=tuple(args.drum_soundfont or ()),
        mapping=parse_mapping(args.map) if args.map else {},
        vocal_engines=tuple(args.vocals.split(",")),
        midi_dir=args.midi_dir,
    )
    root = ensure_rendered_dataset(args.root, spec, workers=args.workers)
    print(f"rendered songs ready at {root}")
    if args.plot:
        first = sorted(p.parent for p in root.glob("*/*/manifest.json"))[0]
        print(f"spectrograms of {first.name}: {plot_rendered_song(first, args.plot)}")


def _prepare(args) -> None:
    dsd = load_stem_dataset(args.root, **_load_kwargs(args))
    for split, ds in dsd.items():
        hours = sum(ds["num_samples"]) / ds["sample_rate"][0] / 3600
        print(f"{split}: {len(ds)} tracks, {hours:.2f} h, columns {ds.column_names}")
    if args.save_to_disk:
        print(f"saved to {save_stem_dataset(dsd, args.save_to_disk)}")


def _push(args) -> None:
    from data_scripts.sharing import push_stem_dataset

    name = push_stem_dataset(
        args.root, repo_id=args.repo_id, private=not args.public, token=read_token(args.token),
        max_shard_size=args.max_shard_size, **_load_kwargs(args),
    )  # fmt: skip
    print(f"pushed {name!r}: datasets.load_dataset({args.repo_id!r}, {name!r})")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="tfswa-data",
        description="Generate the synthetic set, prepare (materialise) a stem set, push it to the Hub.",
    )
    add_debug_flag(parser)  # before the subcommand: tfswa-data --debug prepare ...
    sub = parser.add_subparsers(dest="command", required=True)

    g = sub.add_parser("generate", help="write the synthetic multitrack set (idempotent)")
    g.add_argument("root")
    g.add_argument("--num-train", type=int, default=8)
    g.add_argument("--num-validation", type=int, default=2)
    g.add_argument("--num-test", type=int, default=2)
    g.add_argument("--seconds", type=float, default=10.0)
    g.add_argument("--seed", type=int, default=0)
    g.add_argument("--plot", default=None, help="also save spectrograms of the first song (PNG)")
    g.set_defaults(func=_generate)

    r = sub.add_parser(
        "render",
        help="render MIDI songs (composed, or a folder of .mid) through SoundFonts (idempotent)",
    )
    r.add_argument("root")
    r.add_argument("--midi-dir", default=None, help="render these .mid files (default: compose)")
    r.add_argument("--num-train", type=int, default=12, help="composed songs (train split)")
    r.add_argument("--num-validation", type=int, default=3)
    r.add_argument("--num-test", type=int, default=1)
    r.add_argument("--seconds", type=float, default=10.0, help="song length (0: whole MIDI file)")
    r.add_argument("--seed", type=int, default=0)
    r.add_argument(
        "--soundfont",
        action="append",
        help="an .sf2/.sf3 path or a name in /usr/share/sounds/sf2 or sf3 (repeat for several; "
        "one is drawn per song; default FluidR3_GM.sf2)",
    )
    r.add_argument(
        "--drum-soundfont",
        action="append",
        help="a drum-kit SoundFont (its kit at preset 0:0, e.g. Black_Pearl_4_LV2.sf2; repeat for "
        "several): each song's drums play on a kit drawn from these and its --soundfont's own",
    )
    r.add_argument(
        "--map",
        default=None,
        help="stem mapping changes, family=stem,... (families: drums, vocals and the 16 General "
        "MIDI families such as piano, guitar, bass, synth_lead)",
    )
    r.add_argument(
        "--vocals",
        default="soundfont",
        help="vocal engines, comma-separated, one drawn per song: soundfont, formant, speech",
    )
    r.add_argument("--workers", type=int, default=2, help="rendering processes")
    r.add_argument("--plot", default=None, help="also save spectrograms of the first song (PNG)")
    r.set_defaults(func=_render)

    p = sub.add_parser("prepare", help="materialise a stem set into the datasets cache")
    _add_tree_args(p)
    p.add_argument("--save-to-disk", default=None, help="also save_to_disk here (atomically)")
    p.set_defaults(func=_prepare)

    h = sub.add_parser("push", help="materialise a stem set and push it to the Hub as Parquet")
    _add_tree_args(h)
    h.add_argument("repo_id", help="user/name of the dataset repo")
    h.add_argument(
        "--public",
        action="store_true",
        help="create a public repo (MUSDB18 is academic-use only: keep it private)",
    )
    h.add_argument(
        "--token",
        default=None,
        metavar="FILE_OR_ENV",
        help="file holding a Hub token, or the name of an environment variable holding it "
        "(default: HF_TOKEN / huggingface-cli login)",
    )
    h.add_argument("--max-shard-size", default="500MB")
    h.set_defaults(func=_push)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run a subcommand; any failure is one line `error: ...` and exit status 2 (`--debug` or
    `TFSWA_DEBUG=1` for the traceback)."""
    parser = build_parser()
    args = parser.parse_args(argv)
    return run_command(lambda: args.func(args), args.debug)


if __name__ == "__main__":
    sys.exit(main())
