"""Hostile or unlucky data inputs: stem-set names that would leave the cache folder, duplicate stem
names, NaN stems, one-line CLI errors, file modes of generated data."""

import os
import stat

import numpy as np
import pytest
import soundfile as sf
from test_data_musdb import write_track

from data_scripts.cli import main
from data_scripts.musdb import (
    StemDatasetError,
    load_stem_dataset,
    parse_stem_set,
    resolve_stem_set,
    stem_set_for,
)
from data_scripts.synthetic import ensure_synthetic_dataset


@pytest.fixture
def tree(tmp_path):
    root = tmp_path / "tree"
    write_track(root / "train" / "song-a", seed=1)
    write_track(root / "test" / "song-b", seed=2)
    return root


@pytest.mark.parametrize("stem", ["../../x", "/abs", "..", "a\nb", "x" * 65])
def test_stem_set_names_cannot_leave_the_cache_folder(tree, tmp_path, stem):
    cache = tmp_path / "work" / "cache"
    with pytest.raises(StemDatasetError, match="plain name"):
        load_stem_dataset(tree, {stem: ["vocals"], "rest": ["drums"]}, cache_dir=cache)
    assert not cache.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["tree"]


def test_duplicate_stem_names_are_an_error(capsys):
    for text in ("vocals=vocals,vocals=drums", '{"vocals": ["vocals"], "vocals": ["drums"]}'):
        with pytest.raises(StemDatasetError, match=r"\['vocals'\] given more than once"):
            parse_stem_set(text)
    assert main(["prepare", "nowhere", "--stem-set", "vocals=vocals,vocals=drums"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == ["error: --stem-set: stem name(s) ['vocals'] given more than once"]
    with pytest.raises(StemDatasetError, match="lists a source twice"):
        resolve_stem_set({"a": ["bass", "bass"]})
    assert stem_set_for(["accompaniment", "vocals"]) == "vocals-accompaniment"


@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_nan_and_inf_stems_are_named_at_materialisation(tree, tmp_path, capsys, bad):
    drums = tree / "train" / "song-a" / "drums.wav"
    audio, rate = sf.read(drums, dtype="float32")
    audio[100, 1] = bad
    sf.write(drums, audio, rate, subtype="FLOAT")
    cache = tmp_path / "cache"
    named = r"track 'song-a': drums \(.*drums.wav\) holds 1 NaN"
    with pytest.raises(StemDatasetError, match=named):
        load_stem_dataset(tree, "4stems", cache_dir=cache)
    assert main(["prepare", str(tree), "--cache-dir", str(cache)]) == 2
    err = capsys.readouterr().err  # (the datasets progress bars also write to stderr)
    last = err.strip().splitlines()[-1]
    assert "Traceback" not in err and err.count("error:") == 1
    assert last.startswith("error: track 'song-a'") and "NaN or infinite" in last
    assert main(["--debug", "prepare", str(tree), "--cache-dir", str(cache)]) == 2
    assert "Traceback" in capsys.readouterr().err


def test_generated_data_gets_the_umask_mode(tmp_path):
    old = os.umask(0o027)
    try:
        root = ensure_synthetic_dataset(tmp_path / "syn", 1, 1, 1, seconds=0.3, progress=False)
    finally:
        os.umask(old)
    track = next((root / "train").iterdir())
    assert stat.S_IMODE(track.stat().st_mode) == 0o750
    assert stat.S_IMODE((track / "vocals.wav").stat().st_mode) == 0o640
    assert not [p for p in (root / "train").iterdir() if p.name.startswith(".")]
