"""Which training data transfers to music the model never saw: the quickstart recipe trained on
(a) the old synthetic songs, (b) rendered songs (SoundFont instruments with production), (c) both
(`data.sources`, equal weights), for the same number of steps, each scored on

* the real MUSDB18 sample track (`../shared/data/musdb18-sample`, never trained on), and
* rendered test songs of a seed and a SoundFont not used for training (trained on FluidR3_GM,
  tested on TimGM6mb, the composer's test split of another seed, every vocal engine),

with fastSDR (median over 1-s frames; median over tracks) of `modeling_tfswa.evaluation`, next to
the mixture used as the estimate. `--vocals` instead compares the vocal engines of rendered songs
(`soundfont`, `formant`, `speech`; all three mixed is (b) of the main run): one training each,
same steps.

    python benchmarks/data_realism.py --steps 300 --out outputs/data_realism
    python benchmarks/data_realism.py --vocals --steps 150 --out outputs/vocal_engines

Rendering speed (x real time, songs rendered by 2 processes with every effect) is measured on the
training songs of (b). Prints one JSON object as the last line of stdout; also writes it to
OUT/data_realism.json.
"""

from __future__ import annotations

import argparse
import json
import shutil
import time
from pathlib import Path

import datasets

from data_scripts.musdb import load_stem_dataset
from data_scripts.render import RenderSpec, ensure_rendered_dataset
from modeling_tfswa.evaluation import MixtureSeparator, evaluate_separator, load_separator
from modeling_tfswa.training import train
from modeling_tfswa.training.config import load_config

ROOT = Path(__file__).resolve().parents[1]
QUICKSTART = ROOT / "configs" / "quickstart.yaml"
REAL_SAMPLE = ROOT.parent / "shared" / "data" / "musdb18-sample"
STEMS = ["vocals", "accompaniment"]


def _all_splits(root: Path, cache: Path, splits=None) -> datasets.Dataset:
    dsd = load_stem_dataset(root, "vocals-accompaniment", str(cache), splits=splits)
    return datasets.concatenate_datasets([dsd[s] for s in dsd])


def _score(separator, dataset: datasets.Dataset, out: Path, name: str) -> dict[str, float]:
    """fastSDR of `separator` per stem, median over the tracks of `dataset`."""
    result = evaluate_separator(
        separator, dataset, out, split=name, fast=True, workers=0, progress=False
    )
    return {s: round(result.aggregate[s]["fastSDR"], 2) for s in STEMS}


def _train(name: str, sources: list[dict], args, out: Path) -> tuple[Path, float]:
    config = load_config(
        QUICKSTART,
        {
            "output_dir": str(out / "runs" / name),
            "max_steps": args.steps,
            "eval_every": args.steps,
            "save_every": args.steps,
            "demo": False,
            "resume": None,
            "data.cache_dir": str(out / "cache"),
            "data.sources": sources,
        },
    )
    start = time.perf_counter()
    result = train(config)
    return Path(result.output_dir) / "best", time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=300, help="training steps per variant")
    parser.add_argument("--out", default="outputs/data_realism")
    parser.add_argument("--test-songs", type=int, default=6, help="unseen rendered test songs")
    parser.add_argument("--vocals", action="store_true", help="compare the vocal engines instead")
    parser.add_argument("--fresh", action="store_true", help="delete OUT first")
    args = parser.parse_args()
    out = Path(args.out)
    if args.fresh and out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True, exist_ok=True)
    cache = out / "cache"
    quick = load_config(QUICKSTART, {}).data
    counts = dict(
        num_train=quick.synthetic_train_songs,
        num_validation=quick.synthetic_validation_songs,
        num_test=quick.synthetic_test_songs,
        seconds=quick.synthetic_seconds,
    )

    # Unseen test songs: another seed, another SoundFont, every vocal engine.
    unseen_root = ensure_rendered_dataset(
        out / "unseen",
        RenderSpec(
            num_train=0, num_validation=0, num_test=args.test_songs, seconds=counts["seconds"],
            seed=1234, soundfonts=("TimGM6mb.sf2",),
            vocal_engines=("soundfont", "formant", "speech"),
        ),
    )  # fmt: skip
    tests = {"unseen_rendered": _all_splits(unseen_root, cache, ("test",))}
    if REAL_SAMPLE.is_dir():
        tests["musdb18_sample"] = _all_splits(REAL_SAMPLE, cache)
    report: dict = {
        "benchmark": "data_realism" if not args.vocals else "vocal_engines",
        "steps": args.steps,
        "mixture": {
            t: _score(MixtureSeparator(STEMS), ds, out / "scores" / "mixture", t)
            for t, ds in tests.items()
        },
        "variants": {},
    }

    def rendered(engines: tuple[str, ...], tag: str) -> tuple[dict, float]:
        root = out / f"rendered-{tag}"
        already = (root / "render_manifest.json").exists()  # then no speed to measure
        start = time.perf_counter()
        ensure_rendered_dataset(
            root,
            RenderSpec(**counts, seed=0, soundfonts=("FluidR3_GM.sf2",), vocal_engines=engines),
        )
        seconds = time.perf_counter() - start
        audio = (sum(counts[k] for k in ("num_train", "num_validation", "num_test"))) * counts[
            "seconds"
        ]
        source = {"source": "rendered", "root": str(root), "render_vocal_engines": list(engines)}
        return source, None if already else audio / seconds

    synthetic = {"source": "synthetic", "root": str(out / "synthetic")}
    if args.vocals:
        variants = {}
        for engines in (("soundfont",), ("formant",), ("speech",)):
            tag = "+".join(engines)
            source, speed = rendered(engines, tag)
            variants[tag] = ([source], speed)
    else:
        engines = tuple(quick.render_vocal_engines)
        source, speed = rendered(engines, "+".join(engines))
        variants = {
            "a_synthetic": ([synthetic], None),
            "b_rendered": ([source], speed),
            "c_both": ([synthetic, source], None),
        }
    for name, (sources, speed) in variants.items():
        model_dir, seconds = _train(name, sources, args, out)
        entry = {"train_seconds": round(seconds, 1)}
        if speed is not None:
            entry["render_x_realtime"] = round(speed, 1)
        for test, ds in tests.items():
            entry[test] = _score(load_separator(str(model_dir)), ds, out / "scores" / name, test)
            entry[f"{test}_over_mixture"] = {
                s: round(entry[test][s] - report["mixture"][test][s], 2) for s in STEMS
            }
        report["variants"][name] = entry
        print(json.dumps({name: entry}), flush=True)
    (out / "data_realism.json").write_text(json.dumps(report, indent=2))
    print(json.dumps(report))


if __name__ == "__main__":
    main()
