"""Sharing a stem set: the mocked Hub upload, then load_dataset of the uploaded Parquet files."""

from pathlib import Path

import datasets
import numpy as np
from huggingface_hub import constants

from data_scripts.musdb import load_stem_dataset
from data_scripts.sharing import push_stem_dataset
from data_scripts.synthetic import ensure_synthetic_dataset


def test_push_then_load_dataset_round_trip(fake_hub, tmp_path, monkeypatch):
    hub = fake_hub
    root = ensure_synthetic_dataset(tmp_path / "src", 2, 1, 1, seconds=0.5, seed=1, progress=False)
    name = push_stem_dataset(root, "vocals-accompaniment", "me/stems", cache_dir=tmp_path / "c")
    assert name == "vocals-accompaniment"
    assert hub.created == [
        {"name": "stems", "organization": "me", "visibility": "private", "type": "dataset"}
    ]
    parquet = sorted(p for p in hub.files if p.endswith(".parquet"))
    assert [Path(p).parent.name for p in parquet] == ["vocals-accompaniment"] * 3
    assert {Path(p).name.split("-")[0] for p in parquet} == {"train", "validation", "test"}
    assert "README.md" in hub.files
    readme = hub.files["README.md"].decode()
    assert "config_name: vocals-accompaniment" in readme

    # The same files, served from a local folder, load back to the same examples.
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(datasets.config, "HF_HUB_OFFLINE", True)
    mirror = tmp_path / "mirror"
    for rel, content in hub.files.items():
        (mirror / rel).parent.mkdir(parents=True, exist_ok=True)
        (mirror / rel).write_bytes(content)
    loaded = datasets.load_dataset(
        str(mirror), "vocals-accompaniment", cache_dir=str(tmp_path / "l")
    )
    original = load_stem_dataset(root, "vocals-accompaniment", cache_dir=tmp_path / "c")
    assert set(loaded) == set(original)
    for split in original:
        assert loaded[split].features == original[split].features
        a = loaded[split].with_format("numpy")
        b = original[split].with_format("numpy")
        assert a["name"] == b["name"]
        for col in ("mixture", "vocals", "accompaniment"):
            for x, y in zip(a[col], b[col]):
                np.testing.assert_array_equal(x, y)
