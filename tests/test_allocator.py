"""`modeling_tfswa.allocator.keep_freed_memory`: freed blocks stay in the process."""

from __future__ import annotations

import platform
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

# Allocates 24 MiB (every page touched), frees it and prints how many MiB the process gave back.
CHILD = """
import os, sys
import numpy as np
from modeling_tfswa.allocator import keep_freed_memory
if sys.argv[1] == "kept":
    assert keep_freed_memory() and keep_freed_memory()  # idempotent
def rss():
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
block = np.ones(3 * 2**20)
held = rss()
del block
print((held - rss()) / 2**20)
"""

glibc_only = pytest.mark.skipif(
    not sys.platform.startswith("linux") or platform.libc_ver()[0] != "glibc",
    reason="glibc's mallopt",
)


def returned_mib(setting: str) -> float:
    done = subprocess.run(
        [sys.executable, "-c", CHILD, setting],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    )
    return float(done.stdout.strip().splitlines()[-1])


@glibc_only
def test_freed_block_stays_in_the_process():
    assert returned_mib("default") > 20  # glibc maps a fresh 24 MiB block and unmaps it on free
    assert returned_mib("kept") < 1


def test_does_nothing_without_glibc(monkeypatch):
    from modeling_tfswa import allocator

    monkeypatch.setattr(allocator, "_kept", False)
    monkeypatch.setattr(allocator.sys, "platform", "darwin")
    assert allocator.keep_freed_memory() is False
