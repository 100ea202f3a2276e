"""tfswa-data CLI: generate, prepare (+ save_to_disk), stem-set parsing and error reporting."""

import datasets
import numpy as np
import pytest

from data_scripts.cli import main, parse_stem_set
from data_scripts.musdb import StemDatasetError


def test_parse_stem_set():
    assert parse_stem_set("4stems") == "4stems"
    assert parse_stem_set("vocals=vocals, rhythm=drums+bass,other=other") == {
        "vocals": ["vocals"], "rhythm": ["drums", "bass"], "other": ["other"]
    }  # fmt: skip
    assert parse_stem_set('{"v": ["vocals"]}') == {"v": ["vocals"]}
    with pytest.raises(StemDatasetError, match="name=src"):
        parse_stem_set("vocals=,x=bass")


def test_generate_prepare_save(tmp_path, capsys):
    root = tmp_path / "synthetic"
    args = ["--num-train", "2", "--num-validation", "1", "--num-test", "1", "--seconds", "0.5"]
    assert main(["generate", str(root), *args, "--plot", str(tmp_path / "song.png")]) == 0
    assert (tmp_path / "song.png").read_bytes()[:4] == b"\x89PNG"
    out = tmp_path / "saved"
    code = main([
        "prepare", str(root), "--stem-set", "vocals=vocals,band=drums+bass+other",
        "--cache-dir", str(tmp_path / "cache"), "--save-to-disk", str(out),
    ])  # fmt: skip
    assert code == 0
    printed = capsys.readouterr().out
    assert "train: 2 tracks" in printed and "validation: 1 tracks" in printed
    dsd = datasets.load_from_disk(str(out)).with_format("numpy")
    row = dsd["test"][0]
    np.testing.assert_allclose(row["vocals"] + row["band"], row["mixture"], atol=1e-5)
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".saved")]


def test_errors_are_one_line_and_exit_2(tmp_path, capsys):
    assert main(["prepare", str(tmp_path / "nowhere")]) == 2
    assert "does not exist" in capsys.readouterr().err
    (tmp_path / "t" / "train").mkdir(parents=True)
    assert main(["prepare", str(tmp_path / "t"), "--stem-set", "vox=voice"]) == 2
    assert "unknown source(s) ['voice']" in capsys.readouterr().err
    assert main(["prepare", str(tmp_path / "t")]) == 2
    assert "empty split" in capsys.readouterr().err
