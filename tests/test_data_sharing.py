"""Sharing a stem set: the mocked Hub upload, then load_dataset of the uploaded Parquet files."""

import base64
import json
from pathlib import Path

import datasets
import httpx2
import huggingface_hub
import numpy as np
import pytest
from huggingface_hub import constants
from huggingface_hub.utils._http import default_client_factory

from data_scripts.musdb import load_stem_dataset
from data_scripts.sharing import push_stem_dataset
from data_scripts.synthetic import ensure_synthetic_dataset


class RecordingHub:
    """httpx2 handler for the endpoints push_to_hub uses; keeps every committed file."""

    def __init__(self):
        self.requests: list[str] = []
        self.created: list[dict] = []
        self.files: dict[str, bytes] = {}
        self.lfs_objects: dict[str, bytes] = {}  # sha256 -> content

    def __call__(self, request: httpx2.Request) -> httpx2.Response:
        path = request.url.path
        self.requests.append(f"{request.method} {path}")
        if path.endswith("/api/validate-yaml"):  # dataset card metadata check
            return httpx2.Response(200, json={"errors": [], "warnings": []})
        if path.endswith("/api/repos/create"):
            self.created.append(json.loads(request.content))
            return httpx2.Response(200, json={"url": "https://huggingface.co/datasets/me/stems"})
        if path == "/api/datasets/me/stems" or path.startswith("/api/datasets/me/stems/revision/"):
            if not self.created:
                return httpx2.Response(404, headers={"X-Error-Code": "RepoNotFound"})
            info = {"id": "me/stems", "sha": "0" * 40, "private": True, "siblings": []}
            return httpx2.Response(200, json=info)
        if "/tree/" in path:  # an empty repo: the root lists nothing, sub-folders do not exist
            if path.rstrip("/").split("/tree/")[1].count("/") == 0:
                return httpx2.Response(200, json=[])
        if "/paths-info/" in path:
            return httpx2.Response(200, json=[])
        if "/preupload/" in path:
            files = json.loads(request.content)["files"]
            modes = [
                {"path": f["path"], "shouldIgnore": False,
                 "uploadMode": "lfs" if f["path"].endswith(".parquet") else "regular"}
                for f in files
            ]  # fmt: skip
            return httpx2.Response(200, json={"files": modes})
        if path.endswith("/info/lfs/objects/batch"):  # Git LFS batch API: upload every object
            objects = json.loads(request.content)["objects"]
            actions = [
                {"oid": o["oid"], "size": o["size"],
                 "actions": {"upload": {"href": f"https://lfs.example/{o['oid']}"}}}
                for o in objects
            ]  # fmt: skip
            return httpx2.Response(200, json={"transfer": "basic", "objects": actions})
        if request.url.host == "lfs.example" and request.method == "PUT":
            self.lfs_objects[path.strip("/")] = request.read()
            return httpx2.Response(200)
        if "/commit/" in path:
            for line in request.content.splitlines():
                item = json.loads(line)
                if item["key"] == "file":
                    self.files[item["value"]["path"]] = base64.b64decode(item["value"]["content"])
                elif item["key"] == "lfsFile":
                    self.files[item["value"]["path"]] = self.lfs_objects[item["value"]["oid"]]
            return httpx2.Response(
                200, json={"commitUrl": "https://hf.co/c/1", "commitOid": "1" * 40}
            )
        return httpx2.Response(
            404, json={"error": "not found"}, headers={"X-Error-Code": "EntryNotFound"}
        )


@pytest.fixture
def hub(monkeypatch):
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setattr(datasets.config, "HF_HUB_OFFLINE", False)
    # hf_xet uploads from Rust, around the httpx client: use the Git LFS protocol we can mock.
    monkeypatch.setattr(constants, "HF_HUB_DISABLE_XET", True)
    monkeypatch.setenv("HF_TOKEN", "hf_fake_token")
    recording = RecordingHub()
    huggingface_hub.set_client_factory(
        lambda: httpx2.Client(transport=httpx2.MockTransport(recording))
    )
    yield recording
    huggingface_hub.set_client_factory(default_client_factory)


def test_push_then_load_dataset_round_trip(hub, tmp_path, monkeypatch):
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
