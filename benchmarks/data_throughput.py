"""Data pipeline throughput: synthetic generation and materialisation speed (x real time), disk
size per hour of audio, and random 6-s training segments per second from one worker.

Goals (issue 3): materialisation >= 50x real time, >= 200 remixed 6-s segments/s (4 stems).

    python benchmarks/data_throughput.py [--tracks 8 --seconds 30 --segments 400]

Prints one JSON object as the last line of stdout. Speeds are ratios within this run.
"""

from __future__ import annotations

import argparse
import json
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np

from data_scripts.musdb import load_stem_dataset
from data_scripts.pipeline import ArrowTrackReader, RemixDataset
from data_scripts.synthetic import SAMPLE_RATE, ensure_synthetic_dataset

REAL_SAMPLE = Path(__file__).resolve().parents[2] / "shared" / "data" / "musdb18-sample"


def _dir_bytes(paths) -> int:
    return sum(Path(p).stat().st_size for p in paths)


def _segments_per_second(train, segments: int, stems=None) -> float:
    ds = RemixDataset(train, 6.0, seed=0, samples_per_epoch=segments, stems=stems)
    ds[0]  # open the memory map
    start = time.perf_counter()
    for i in range(segments):
        ds[i]
    return segments / (time.perf_counter() - start)


def _storage_alternatives(work: Path, seconds: float = 20.0) -> dict:
    """Disk size and whole-row numpy decode time of candidate column types for one stereo stem.

    Array2D((None, 2)) stores list<list<float>> (an int32 offset per frame: 12 B/frame);
    List(List(float32, length=2)) stores fixed-size pairs (8 B/frame) but `datasets` decodes it
    to numpy through Python objects.
    """
    import datasets

    audio = np.random.default_rng(0).standard_normal((int(seconds * SAMPLE_RATE), 2))
    audio = audio.astype(np.float32)
    candidates = {
        "array2d_float32": datasets.Array2D((None, 2), "float32"),
        "list_fixed2_float32": datasets.List(datasets.List(datasets.Value("float32"), length=2)),
    }
    out = {}
    for name, feature in candidates.items():
        ds = datasets.Dataset.from_dict(
            {"a": [audio]}, features=datasets.Features({"a": feature})
        ).flatten_indices(cache_file_name=str(work / f"{name}.arrow"))
        size = (work / f"{name}.arrow").stat().st_size
        t = time.perf_counter()
        np.asarray(ds.with_format("numpy")[0]["a"])
        out[f"storage_{name}_GB_per_hour_per_column"] = size / (seconds / 3600) / 1e9
        out[f"storage_{name}_row_decode_x_realtime"] = seconds / (time.perf_counter() - t)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--tracks", type=int, default=8)
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--segments", type=int, default=400)
    args = parser.parse_args()
    result: dict = {"tracks": args.tracks, "track_seconds": args.seconds}
    work = Path(tempfile.mkdtemp(prefix="data_throughput-"))
    try:
        audio_seconds = args.tracks * args.seconds
        hours = audio_seconds / 3600
        t = time.perf_counter()
        root = ensure_synthetic_dataset(work / "synthetic", args.tracks, 0, 0, args.seconds, seed=0)
        result["synthetic_generation_x_realtime"] = audio_seconds / (time.perf_counter() - t)

        for stem_set in ("4stems", "vocals-accompaniment"):
            t = time.perf_counter()
            dsd = load_stem_dataset(root, stem_set, cache_dir=work / f"cache-{stem_set}")
            result[f"materialise_{stem_set}_x_realtime"] = audio_seconds / (time.perf_counter() - t)
            train = dsd["train"]
            arrow = _dir_bytes(f["filename"] for f in train.cache_files)
            result[f"arrow_GB_per_hour_{stem_set}"] = arrow / hours / 1e9
            parquet = work / f"{stem_set}.parquet"
            train.to_parquet(str(parquet))
            result[f"parquet_GB_per_hour_{stem_set}"] = parquet.stat().st_size / hours / 1e9
            result[f"segments_per_s_6s_{stem_set}"] = _segments_per_second(train, args.segments)
        # Per stereo float32 column: 44100 * 2 * 4 bytes/s.
        result["arrow_GB_per_hour_per_column"] = result["arrow_GB_per_hour_4stems"] / 5

        # Why windows: reading one 6-s window vs decoding the whole row through `datasets`.
        reader = ArrowTrackReader(train)
        rng = np.random.default_rng(0)
        seg = 6 * SAMPLE_RATE
        reads = 200
        t = time.perf_counter()
        for _ in range(reads):
            row = int(rng.integers(len(reader)))
            off = int(rng.integers(max(1, reader.num_samples[row] - seg)))
            np.array(reader.read(row, "vocals", off, min(off + seg, int(reader.num_samples[row]))))
        window_ms = (time.perf_counter() - t) / reads * 1e3
        rows = train.with_format("numpy")
        t = time.perf_counter()
        for i in range(min(len(rows), 8)):
            np.asarray(rows[i]["vocals"])[:seg]
        row_ms = (time.perf_counter() - t) / min(len(rows), 8) * 1e3
        result["window_read_ms"] = window_ms
        result["full_row_decode_ms"] = row_ms
        result["window_vs_row_decode_speedup"] = row_ms / window_ms

        result.update(_storage_alternatives(work))

        real = REAL_SAMPLE / "train"
        if shutil.which("ffmpeg") and real.is_dir():
            t = time.perf_counter()
            dsd = load_stem_dataset(REAL_SAMPLE, "4stems", cache_dir=work / "cache-real")
            seconds = sum(dsd["train"]["num_samples"]) / SAMPLE_RATE
            result["materialise_stem_mp4_x_realtime"] = seconds / (time.perf_counter() - t)

        result["goal_segments_per_s"] = 200
        result["goal_materialise_x_realtime"] = 50
        result["meets_goals"] = bool(
            result["segments_per_s_6s_4stems"] >= 200
            and result["materialise_4stems_x_realtime"] >= 50
        )
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print(json.dumps({k: round(v, 3) if isinstance(v, float) else v for k, v in result.items()}))


if __name__ == "__main__":
    main()
