"""Shared fixtures: tiny model configs that run in milliseconds on a CPU, and a fake Hub."""

import os

# Tests never touch the network: the Hub is unreachable here and in CI (set before any HF import).
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")

import base64  # noqa: E402
import json  # noqa: E402
import re  # noqa: E402
import threading  # noqa: E402
from pathlib import Path  # noqa: E402

import datasets  # noqa: E402
import httpx2  # noqa: E402
import huggingface_hub  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402
from huggingface_hub import constants  # noqa: E402

from modeling_tfswa import TFSWAConfig  # noqa: E402

# Tiny models run several times faster on one thread than on two contended ones (and one thread
# keeps clear of pytorch#142815 in batched solves).
torch.set_num_threads(1)

# ../shared beside the checkout (CI clones the repo with it there).
SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"


def make_tiny_config(stems=("vocals", "accompaniment"), **overrides) -> TFSWAConfig:
    """A 2-stage TFSWA-UNet small enough for unit tests (n_fft 256 -> 129 bins)."""
    kwargs = dict(
        stems=list(stems),
        n_fft=256,
        hop_length=64,
        patch_size=[1, 4],
        dims=[8, 16],
        depths=[2, 1],
        decoder_depths=[1],
        num_heads=[1, 2],
        window_size=[4, 4],
        tf_attention_stages=[False, True],
        # the defaults before 2026-12, which these tests were written against (the new ones are
        # tested in test_config.py and test_model.py)
        frequency_bands=None,
        mixture_consistency=False,
        drop_path_rate=0.1,
        log_power_input=False,  # the default before 2026-12-05
        mlp_conv_kernel_size=0,  # the default before 2026-12-06
    )
    kwargs.update(overrides)
    return TFSWAConfig(**kwargs)


@pytest.fixture
def tiny_config() -> TFSWAConfig:
    return make_tiny_config()


# --------------------------------------------------------------------------------------------------
# The Hub, faked through huggingface_hub's public client factory (an httpx2 MockTransport)
# --------------------------------------------------------------------------------------------------
def _no_network(request: httpx2.Request) -> httpx2.Response:
    raise httpx2.ConnectError(f"tests do not reach the network ({request.url})", request=request)


def _offline_client() -> httpx2.Client:
    return httpx2.Client(transport=httpx2.MockTransport(_no_network))


@pytest.fixture(autouse=True, scope="session")
def no_hub_network():
    """Every huggingface_hub request of the test session fails at once with a clear error, unless
    a test installs the [`FakeHub`] (the `fake_hub` fixture)."""
    huggingface_hub.set_client_factory(_offline_client)
    yield


class FakeHub:
    """An httpx2 handler answering the Hub endpoints that `upload_folder`, `create_repo` and
    `datasets.DatasetDict.push_to_hub` use; it records what was created and committed.

    Attributes:
        fail (`bool`): answer every request with a connection error (the Hub is down).
        gate (`threading.Event`, *optional*): requests wait (up to 10 s) until it is set.
        requests (`list[str]`): `"METHOD /path"` of every request.
        created (`list[dict]`): the bodies of the repo creations.
        validated (`list[str]`): the README.md texts sent for metadata validation.
        commits (`list[dict[str, bytes]]`): per commit, path -> content (regular and LFS files).
        files (`dict[str, bytes]`): every committed file, latest content.
    """

    REPO_INFO = re.compile(r"/api/(?:models|datasets)/([^/]+/[^/]+)(?:/revision/.*)?")

    def __init__(self):
        self.fail = False
        self.gate: threading.Event | None = None
        self.requests: list[str] = []
        self.created: list[dict] = []
        self.validated: list[str] = []
        self.commits: list[dict[str, bytes]] = []
        self.lfs_objects: dict[str, bytes] = {}  # sha256 -> content

    @property
    def files(self) -> dict[str, bytes]:
        return {path: content for commit in self.commits for path, content in commit.items()}

    def __call__(self, request: httpx2.Request) -> httpx2.Response:
        path = request.url.path
        self.requests.append(f"{request.method} {path}")
        if self.fail:
            raise httpx2.ConnectError("the Hub is down", request=request)
        if self.gate is not None:
            self.gate.wait(10)
        if path.endswith("/api/validate-yaml"):  # README.md card metadata check
            self.validated.append(json.loads(request.content)["content"])
            return httpx2.Response(200, json={"errors": [], "warnings": []})
        if path.endswith("/api/repos/create"):
            body = json.loads(request.content)
            self.created.append(body)
            prefix = "datasets/" if body.get("type") == "dataset" else ""
            repo = f"{body.get('organization')}/{body['name']}"
            return httpx2.Response(200, json={"url": f"https://huggingface.co/{prefix}{repo}"})
        info = self.REPO_INFO.fullmatch(path)
        if info:
            if not self.created:
                return httpx2.Response(404, headers={"X-Error-Code": "RepoNotFound"})
            return httpx2.Response(
                200, json={"id": info[1], "sha": "0" * 40, "private": True, "siblings": []}
            )
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
            files = {}
            for line in request.content.splitlines():
                item = json.loads(line)
                if item["key"] == "file":
                    files[item["value"]["path"]] = base64.b64decode(item["value"]["content"])
                elif item["key"] == "lfsFile":
                    files[item["value"]["path"]] = self.lfs_objects[item["value"]["oid"]]
            self.commits.append(files)
            return httpx2.Response(
                200, json={"commitUrl": "https://hf.co/c/1", "commitOid": "1" * 40}
            )
        return httpx2.Response(
            404, json={"error": "not found"}, headers={"X-Error-Code": "EntryNotFound"}
        )


@pytest.fixture
def fake_hub(monkeypatch) -> FakeHub:
    """A [`FakeHub`] as huggingface_hub's HTTP client, online mode and a fake token, for one test."""
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setattr(datasets.config, "HF_HUB_OFFLINE", False)
    # hf_xet uploads from Rust, around the httpx client: use the Git LFS protocol we can mock.
    monkeypatch.setattr(constants, "HF_HUB_DISABLE_XET", True)
    monkeypatch.setenv("HF_TOKEN", "hf_fake_token")
    hub = FakeHub()
    huggingface_hub.set_client_factory(lambda: httpx2.Client(transport=httpx2.MockTransport(hub)))
    yield hub
    huggingface_hub.set_client_factory(_offline_client)
