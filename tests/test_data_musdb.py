"""The MUSDB-layout datasets builder: configs, composed stems, splits, bad input, real STEMS file."""

import shutil
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from data_scripts import musdb
from data_scripts.musdb import (
    MUSDB18_VALIDATION_TRACKS,
    StemDatasetError,
    assign_splits,
    load_stem_dataset,
    resolve_stem_set,
)
from data_scripts.synthetic import ensure_synthetic_dataset

SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
REAL_TRACK = SHARED_DATA / "musdb18-sample" / "train" / "Music Delta - 80s Rock.stem.mp4"
SOURCES = ("drums", "bass", "other", "vocals")


def write_track(folder: Path, n=2205, sr=44100, seed=0, mixture_error=0.0, channels=2):
    """A MUSDB18-HQ track folder with random stems and mixture = their sum (+ an error)."""
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True)
    total = np.zeros((n, channels), np.float32)
    for s in SOURCES:
        audio = (rng.standard_normal((n, channels)) * 0.1).astype(np.float32)
        total += audio
        sf.write(folder / f"{s}.wav", audio, sr, subtype="FLOAT")
    sf.write(folder / "mixture.wav", total * (1 + mixture_error), sr, subtype="FLOAT")


@pytest.fixture(scope="module")
def synthetic_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("synthetic")
    return ensure_synthetic_dataset(root, 2, 1, 1, seconds=1.0, seed=5, progress=False)


@pytest.mark.parametrize(
    "stem_set, expected",
    [
        (
            "vocals-accompaniment",
            {"vocals": ["vocals"], "accompaniment": ["drums", "bass", "other"]},
        ),
        (
            "4stems",
            {"vocals": ["vocals"], "drums": ["drums"], "bass": ["bass"], "other": ["other"]},
        ),
        ({"vocals": ["vocals"], "rhythm": ["drums", "bass"], "other": ["other"]}, None),
    ],
)
def test_configs_columns_shapes_and_composed_stems(synthetic_root, tmp_path, stem_set, expected):
    name, grouping = resolve_stem_set(stem_set)
    expected = expected or dict(stem_set)
    assert grouping == expected
    dsd = load_stem_dataset(synthetic_root, stem_set, cache_dir=tmp_path)
    assert list(dsd) == ["train", "validation", "test"]
    assert [len(dsd[s]) for s in dsd] == [2, 1, 1]
    ds = dsd["train"].with_format("numpy")
    assert ds.column_names == ["name", "mixture", *expected, "sample_rate", "num_samples"]
    row = ds[1]
    assert row["name"] == "synthetic-train-0001"
    assert row["sample_rate"] == 44100 and row["num_samples"] == 44100
    track = synthetic_root / "train" / row["name"]
    mixture, _ = sf.read(track / "mixture.wav", dtype="float32")
    np.testing.assert_array_equal(row["mixture"], mixture)
    for stem, sources in expected.items():
        assert row[stem].shape == (44100, 2) and row[stem].dtype == np.float32
        parts = [sf.read(track / f"{s}.wav", dtype="float32")[0] for s in sources]
        np.testing.assert_allclose(row[stem], np.sum(parts, axis=0), atol=1e-6)
    if name == "vocals-accompaniment":
        np.testing.assert_allclose(row["vocals"] + row["accompaniment"], row["mixture"], atol=1e-5)


def test_stem_set_names():
    assert (
        resolve_stem_set({"accompaniment": ["drums", "bass", "other"], "vocals": ["vocals"]})[0]
        == "vocals-accompaniment"
    )
    assert resolve_stem_set({"4stems": ["vocals"]})[0] == "4stems-custom"
    with pytest.raises(StemDatasetError, match="lists a source twice"):
        resolve_stem_set({"a": ["bass", "bass"]})
    with pytest.raises(StemDatasetError, match="invalid stem 'mixture'"):
        resolve_stem_set({"mixture": ["bass"]})


def test_official_split_assignment(tmp_path):
    root = tmp_path / "musdb18hq"
    train_names = ["A Classic Education - NightOwl", "Music Delta - 80s Rock"]
    valid_names = ["Actions - One Minute Smile", "Traffic Experiment - Sirens"]
    test_names = ["AM Contra - Heart Peripheral"]
    for i, n in enumerate(train_names + valid_names):
        write_track(root / "train" / n, seed=i)
    for n in test_names:
        write_track(root / "test" / n, seed=9)
    assert len(MUSDB18_VALIDATION_TRACKS) == 14 and set(valid_names) <= set(
        MUSDB18_VALIDATION_TRACKS
    )
    dsd = load_stem_dataset(root, "4stems", cache_dir=tmp_path / "cache")
    assert sorted(dsd["train"]["name"]) == sorted(train_names)
    assert sorted(dsd["validation"]["name"]) == sorted(valid_names)
    assert dsd["test"]["name"] == test_names
    # A custom validation list follows the same rule.
    splits = assign_splits(root, validation_tracks=["Music Delta - 80s Rock"])
    assert [t.name for t in splits["validation"]] == ["Music Delta - 80s Rock"]


def test_validation_folder_and_requested_splits(tmp_path):
    root = tmp_path / "tree"
    write_track(root / "train" / "a", seed=1)
    write_track(root / "validation" / "b", seed=2)
    dsd = load_stem_dataset(
        root, "4stems", cache_dir=tmp_path / "cache", splits=["train", "validation"]
    )
    assert list(dsd) == ["train", "validation"] and dsd["validation"]["name"] == ["b"]
    with pytest.raises(StemDatasetError, match=r"empty split 'test'.*with tracks: \['train', 'va"):
        load_stem_dataset(root, "4stems", cache_dir=tmp_path / "cache", splits=["test"])
    # The evaluation's loader says which splits the tree has (a sample with train/ only).
    with pytest.raises(StemDatasetError, match=r"empty split 'test'.*with tracks: \['train', 'va"):
        musdb.load_stem_split(root, "4stems", "test", cache_dir=tmp_path / "cache")


def _expect_error(root, tmp_path, match, stem_set="4stems", **kwargs):
    with pytest.raises(StemDatasetError, match=match):
        load_stem_dataset(root, stem_set, cache_dir=tmp_path / "cache", **kwargs)
    # Nothing was written to the cache: neither a finished dataset nor a leftover temp folder.
    cache = tmp_path / "cache"
    assert not cache.exists() or not [p for p in cache.rglob("*.arrow")]


def test_bad_input_errors(tmp_path):
    _expect_error(tmp_path / "missing", tmp_path, "does not exist")
    (tmp_path / "noroot").mkdir()
    _expect_error(tmp_path / "noroot", tmp_path, "no split folder")

    root = tmp_path / "t1"
    write_track(root / "train" / "good", seed=0)
    (root / "test").mkdir()
    _expect_error(root, tmp_path, "empty split.*test")
    shutil.rmtree(root / "test")

    write_track(root / "train" / "nobass", seed=1)
    (root / "train" / "nobass" / "bass.wav").unlink()
    _expect_error(root, tmp_path, r"'nobass': missing stem file\(s\) \['bass.wav'\]")
    shutil.rmtree(root / "train" / "nobass")

    write_track(root / "train" / "extra", seed=2)
    shutil.copy(root / "train" / "extra" / "bass.wav", root / "train" / "extra" / "guitar.wav")
    _expect_error(root, tmp_path, r"'extra': unexpected stem file\(s\) \['guitar.wav'\]")
    shutil.rmtree(root / "train" / "extra")

    write_track(root / "train" / "short", seed=3)
    sf.write(root / "train" / "short" / "vocals.wav", np.zeros((100, 2)), 44100, subtype="FLOAT")
    _expect_error(root, tmp_path, "'short': stems have different lengths")
    shutil.rmtree(root / "train" / "short")

    write_track(root / "train" / "rates", seed=4)
    sf.write(root / "train" / "rates" / "vocals.wav", np.zeros((2205, 2)), 48000, subtype="FLOAT")
    _expect_error(root, tmp_path, "'rates': stems have different sample rates")
    shutil.rmtree(root / "train" / "rates")

    write_track(root / "train" / "mono", seed=5, channels=1)
    _expect_error(root, tmp_path, "'mono': stem .* is mono")
    shutil.rmtree(root / "train" / "mono")

    _expect_error(root, tmp_path, r"unknown source\(s\) \['voice'\]", stem_set={"v": ["voice"]})
    _expect_error(root, tmp_path, "unknown stem set", stem_set="5stems")
    _expect_error(
        root, tmp_path, "every track .* is a validation track", validation_tracks=["good"]
    )


def test_mixture_check_warns_with_track_and_db(tmp_path):
    root = tmp_path / "t"
    write_track(root / "train" / "ok", seed=0, mixture_error=1e-3)  # -60 dB: fine
    write_track(root / "train" / "off", seed=1, mixture_error=0.5)  # 0.5/1.5: -9.5 dB
    with pytest.warns(UserWarning, match=r"track 'off': mixture differs .* by -9\.5 dB") as record:
        load_stem_dataset(root, "vocals-accompaniment", cache_dir=tmp_path / "cache")
    assert not [w for w in record if "'ok'" in str(w.message)]


def test_failure_mid_way_leaves_no_cache_and_changes_rebuild(tmp_path, monkeypatch):
    root = tmp_path / "t"
    write_track(root / "train" / "a", seed=0)
    write_track(root / "train" / "b", seed=1)
    real_read = musdb.read_track

    def failing_read(track, sources):
        if track.name == "b":
            raise StemDatasetError("track 'b': disk unplugged")
        return real_read(track, sources)

    monkeypatch.setattr(musdb, "read_track", failing_read)
    with pytest.raises(StemDatasetError, match="track 'b': disk unplugged"):
        load_stem_dataset(root, "4stems", cache_dir=tmp_path / "cache")
    assert not [p for p in (tmp_path / "cache").rglob("*.arrow")]
    assert not [p for p in (tmp_path / "cache").rglob("dataset_info.json")]
    monkeypatch.setattr(musdb, "read_track", real_read)
    first = load_stem_dataset(root, "4stems", cache_dir=tmp_path / "cache")["train"]
    # Rewriting a stem changes the tree's signature: the dataset is rebuilt, not served stale.
    write_track(root / "train" / "c", seed=2)
    shutil.rmtree(root / "train" / "a")
    second = load_stem_dataset(root, "4stems", cache_dir=tmp_path / "cache")["train"]
    assert first["name"] == ["a", "b"] and second["name"] == ["b", "c"]


@pytest.mark.slow
@pytest.mark.skipif(shutil.which("ffmpeg") is None, reason="needs ffmpeg")
@pytest.mark.skipif(not REAL_TRACK.exists(), reason="needs ../shared/data/musdb18-sample")
def test_real_musdb18_stems_file(tmp_path):
    """The real 7-s MUSDB18 STEMS file through the builder (AAC: mixture ≈ stems at ~-32 dB)."""
    root = REAL_TRACK.parents[1]
    four = load_stem_dataset(root, "4stems", cache_dir=tmp_path).with_format("numpy")
    two = load_stem_dataset(root, "vocals-accompaniment", cache_dir=tmp_path).with_format("numpy")
    assert list(four) == ["train"] and four["train"]["name"] == ["Music Delta - 80s Rock"]
    row, pair = four["train"][0], two["train"][0]
    assert row["num_samples"] == 300032 and row["sample_rate"] == 44100
    mixture = row["mixture"]
    assert mixture.shape == (300032, 2)

    def rel_db(a, b):
        return 20 * np.log10(np.sqrt(np.mean((a - b) ** 2)) / np.sqrt(np.mean(b**2)))

    total = row["vocals"] + row["drums"] + row["bass"] + row["other"]
    assert -36 < rel_db(total, mixture) < -28
    for stem in SOURCES:  # every stem carries real, distinct audio
        assert rel_db(row[stem], mixture) > -20
    np.testing.assert_allclose(
        pair["accompaniment"], row["drums"] + row["bass"] + row["other"], atol=1e-6
    )
    np.testing.assert_array_equal(pair["vocals"], row["vocals"])
    assert -36 < rel_db(pair["vocals"] + pair["accompaniment"], mixture) < -28


@pytest.mark.slow
@pytest.mark.skipif(shutil.which("ffmpeg") is None, reason="needs ffmpeg")
@pytest.mark.skipif(not REAL_TRACK.exists(), reason="needs ../shared/data/musdb18-sample")
def test_real_stems_are_bit_identical_to_the_musdb_package(tmp_path):
    """Same 16-bit decoding as musdb/stempeg, so museval's published scores are reproducible."""
    musdb_package = pytest.importorskip("musdb")
    root = REAL_TRACK.parents[1]
    track = musdb_package.DB(root=str(root), subsets="train").tracks[0]
    row = load_stem_dataset(root, "4stems", cache_dir=tmp_path).with_format("numpy")["train"][0]
    assert row["name"] == track.name
    np.testing.assert_array_equal(row["mixture"], track.audio.astype(np.float32))
    for stem in SOURCES:
        np.testing.assert_array_equal(row[stem], track.targets[stem].audio.astype(np.float32))
