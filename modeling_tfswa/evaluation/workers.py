"""The museval worker processes of an evaluation, which end with their parent.

museval scoring (about 0.6 s of CPU per second of audio and stem pair) runs in spawned worker
processes ([`scoring_pool`]) while the parent separates the next tracks. A worker must never
outlive the evaluation that started it:

- a worker asks the kernel for SIGTERM when its parent dies (Linux `prctl(PR_SET_PDEATHSIG)`; on
  other systems it checks its parent at start only), so even a parent killed with SIGKILL takes
  its workers along;
- the pool's exit, normal or by an exception (Ctrl-C, or SIGTERM, which [`terminate_on_sigterm`]
  turns into an exception), cancels the queued jobs and terminates the running workers.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import ctypes
import ctypes.util
import multiprocessing
import os
import signal
import sys
from collections.abc import Iterator

import numpy as np

from .bsseval import bsseval_track, save_track_scores, track_medians

_PR_SET_PDEATHSIG = 1


def _die_with_parent(parent: int) -> None:
    """Worker initializer: SIGTERM this process when its parent dies; exit if it already has."""
    if sys.platform.startswith("linux"):
        libc = ctypes.CDLL(ctypes.util.find_library("c") or None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)
    if os.getppid() != parent:  # the parent died before the request took effect
        os._exit(1)


def bsseval_job(
    track_name: str,
    references: dict[str, np.ndarray],
    estimates: dict[str, np.ndarray],
    sample_rate: int,
    json_path: str,
    frame_seconds: float,
) -> dict[str, dict[str, float]]:
    """Worker-process job: museval scores of one track, written to `json_path`; returns medians."""
    store = bsseval_track(
        references, estimates, sample_rate, track_name, win=frame_seconds, hop=frame_seconds
    )
    save_track_scores(store, json_path)
    return track_medians(store)


def usable_cores() -> int:
    """The CPU cores this process may run on (its affinity mask, which containers and `taskset`
    narrow; `os.cpu_count()` counts the whole machine's)."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


@contextlib.contextmanager
def _worker_threads(threads: int) -> Iterator[None]:
    """Make worker processes started inside this block use `threads` BLAS/OpenMP threads each (so
    that `--workers N` shares the cores instead of oversubscribing them); this process's libraries
    are already initialised and keep their threads."""
    names = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")
    saved = {name: os.environ.get(name) for name in names}
    os.environ.update({name: str(threads) for name in names})
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


class InlineExecutor(concurrent.futures.Executor):
    """`workers=0`: run each job at submission, in this process (debugging, tests)."""

    def submit(self, fn, /, *args, **kwargs):
        future = concurrent.futures.Future()
        try:
            future.set_result(fn(*args, **kwargs))
        except BaseException as error:
            future.set_exception(error)
        return future


def _terminate(executor: concurrent.futures.ProcessPoolExecutor) -> None:
    """Cancel the queued jobs and end the running workers now (not after their current job)."""
    # The pool offers no public way to stop a running job; its process table is the only handle.
    processes = list((getattr(executor, "_processes", None) or {}).values())
    executor.shutdown(wait=False, cancel_futures=True)
    for process in processes:
        if process.is_alive():
            process.terminate()
    for process in processes:
        process.join(5)


@contextlib.contextmanager
def scoring_pool(workers: int) -> Iterator[concurrent.futures.Executor]:
    """`workers` spawned scoring processes (an in-process executor for 0) that end with this
    process and with this block (see the module docstring)."""
    if workers == 0:
        yield InlineExecutor()
        return
    # Spawned, not forked: the parent holds torch's thread pools, which a fork would copy mid-state.
    context = multiprocessing.get_context("spawn")
    threads = max(1, usable_cores() // workers)
    with _worker_threads(threads):  # workers start at the first submissions, inside the block
        executor = concurrent.futures.ProcessPoolExecutor(
            workers, mp_context=context, initializer=_die_with_parent, initargs=(os.getpid(),)
        )
        try:
            yield executor
        except BaseException:
            _terminate(executor)
            raise
        executor.shutdown(wait=True)


@contextlib.contextmanager
def terminate_on_sigterm() -> Iterator[None]:
    """Turn SIGTERM into `SystemExit(143)` inside the block (main thread only), so that `finally`
    blocks and [`scoring_pool`] clean up as they do for Ctrl-C."""

    def handler(signum, frame):
        raise SystemExit(128 + signum)

    try:
        previous = signal.signal(signal.SIGTERM, handler)
    except ValueError:  # not the main thread: leave signals alone
        yield
        return
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


__all__ = ["InlineExecutor", "bsseval_job", "scoring_pool", "terminate_on_sigterm", "usable_cores"]
