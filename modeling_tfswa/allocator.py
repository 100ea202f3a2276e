"""Keep freed memory in the process (glibc `mallopt`) for CPU training and separation.

glibc's `malloc` serves large blocks (from 128 KiB; the threshold rises with use to at most 32 MiB)
with `mmap` and hands them back to the kernel on `free`, and it trims the top of the heap once
128 KiB or more are free there. A training step or a separated batch allocates tens of tensors of
1-25 MB (spectrograms, masks, attention weights, their gradients), frees them and allocates the
same sizes again next step, so on the CPU every step faults in pages that the kernel zeroes anew.
[`keep_freed_memory`] sets both thresholds once (`M_MMAP_THRESHOLD` to glibc's maximum, 32 MiB;
`M_TRIM_THRESHOLD` to 1 GiB) so that freed blocks stay in the heap for the next step; the cost is
that the process holds its peak heap until it exits.

Measured (`python3 -m benchmarks.allocator`, 2 cores, one thread, batch 2 of 2-s segments, the
quality benchmark's `tfswa-unet`): 0.86 of the CPU seconds per training step and 0.84 per second
of separated audio (300 steps of the quality benchmark: 0.86 and 0.86); Open-Unmix 0.90 and
0.77, HTDemucs 1.02 and 0.85. With two threads: `tfswa-unet` 0.87 and 0.94, the default config
0.91 and 0.97.

Why own code: jemalloc or tcmalloc through `LD_PRELOAD`, which PyTorch's CPU tuning guide
recommends, do the same but need a system package and a change to the environment before the
process starts; the glibc environment variables (`MALLOC_MMAP_THRESHOLD_`) likewise. This is one
library call from inside the process; elsewhere (macOS, musl) it does nothing and returns False.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import sys

#: `mallopt` parameters (glibc `malloc.h`).
_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3
#: Blocks up to this size come from the heap: glibc's largest accepted value on 64-bit systems.
MMAP_THRESHOLD = 32 * 2**20
#: Free memory at the top of the heap kept before trimming it.
TRIM_THRESHOLD = 2**30

_kept = False


def keep_freed_memory() -> bool:
    """Make glibc keep freed blocks of up to [`MMAP_THRESHOLD`] bytes in the process heap.

    Idempotent; affects the whole process (threads and later forked children included).

    Returns:
        `bool`: `True` where the allocator accepted both settings (Linux with glibc), `False`
        where there is no glibc `mallopt` and nothing changed.
    """
    global _kept
    if _kept:
        return True
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or None)
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes = (ctypes.c_int, ctypes.c_int)
    # mallopt returns 1 on success; musl's stub returns 0 and changes nothing.
    _kept = bool(mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD)) and bool(
        mallopt(_M_TRIM_THRESHOLD, TRIM_THRESHOLD)
    )
    return _kept


__all__ = ["MMAP_THRESHOLD", "TRIM_THRESHOLD", "keep_freed_memory"]
