"""Shared fixtures: tiny model configs that run in milliseconds on a CPU."""

import os

# Tests never touch the network: the Hub is unreachable here and in CI (set before any HF import).
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")

from pathlib import Path  # noqa: E402

import pytest  # noqa: E402
import torch  # noqa: E402

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
    )
    kwargs.update(overrides)
    return TFSWAConfig(**kwargs)


@pytest.fixture
def tiny_config() -> TFSWAConfig:
    return make_tiny_config()
