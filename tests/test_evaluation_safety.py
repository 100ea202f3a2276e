"""Evaluation that goes on and resumes: broken tracks reported (N of M), NaN mixtures named, a rerun
reusing finished tracks after a kill, and workers that end with a killed parent."""

import json
import math
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import datasets
import numpy as np
import pytest
from test_data_musdb import write_track
from test_evaluation import RATE, synthetic_song

from modeling_tfswa.cli.evaluate import main
from modeling_tfswa.evaluation import OracleSeparator, evaluate_separator, load_separator


def run_cli(argv):
    return main([*map(str, argv), "--no-progress"])


@pytest.fixture
def tree(tmp_path):
    """Three test tracks (one without vocals.wav) and a broken train track."""
    root = tmp_path / "tree"
    for index in range(3):
        write_track(root / "test" / f"song-{index}", n=4410, seed=index)
    (root / "test" / "song-1" / "vocals.wav").unlink()
    write_track(root / "train" / "bad", seed=9)
    (root / "train" / "bad" / "drums.wav").unlink()
    return root


def test_a_broken_track_is_reported_and_the_others_scored(tree, tmp_path, capsys):
    out = tmp_path / "eval"
    argv = ["--model", "irm", "--root", tree, "--out", out, "--fast", "--stem-set", "4stems"]
    assert run_cli([*argv, "--cache-dir", tmp_path / "cache"]) == 1
    captured = capsys.readouterr()
    assert "oracle-irm on MUSDB18 test (2 of 3 tracks)" in captured.out
    assert "missing stem file(s) ['vocals.wav']" in captured.err and "song-1" in captured.err
    scores = json.loads((out / "scores.json").read_text())
    assert sorted(scores["tracks"]) == ["song-0", "song-2"]
    assert scores["num_tracks"] == 2 and scores["num_tracks_total"] == 3
    assert list(scores["broken"]) == ["song-1"]
    assert "Not scored (1 broken track(s))" in (out / "scores.md").read_text()


def nan_split(clean: bool = False, tracks: int = 3):
    """Short songs; the mixture of "song 1" holds a NaN unless `clean`."""
    rows = {"name": [], "mixture": [], "vocals": [], "accompaniment": [], "sample_rate": []}
    for index in range(tracks):
        stems = synthetic_song(index, 0.5)
        mixture = stems["vocals"] + stems["accompaniment"]
        if index == 1 and not clean:
            mixture[100, 0] = np.nan
        rows["name"].append(f"song {index}")
        rows["mixture"].append(mixture)
        rows["vocals"].append(stems["vocals"])
        rows["accompaniment"].append(stems["accompaniment"])
        rows["sample_rate"].append(RATE)
    return datasets.Dataset.from_dict(rows)


def test_a_nan_mixture_is_reported_not_silently_dropped(tmp_path):
    oracle = load_separator("irm", stems=["vocals", "accompaniment"])
    result = evaluate_separator(oracle, nan_split(), tmp_path, fast=True, progress=False)
    assert result.broken == {
        "song 1": "track 'song 1': the mixture holds 1 NaN or infinite sample(s)"
    }
    assert sorted(result.tracks) == ["song 0", "song 2"]
    assert all(math.isfinite(v) for row in result.aggregate.values() for v in row.values())
    assert "(2 of 3 tracks)" in (tmp_path / "scores.md").read_text()


def test_a_rerun_after_a_kill_reuses_the_finished_tracks(tmp_path, monkeypatch):
    split = nan_split(clean=True, tracks=4)
    separated = []
    real = OracleSeparator.separate

    def counting(self, mixture, references):
        separated.append(mixture.shape[-1])
        if kill_after is not None and len(separated) > kill_after:
            raise KeyboardInterrupt  # the injected kill, after `kill_after` tracks
        return real(self, mixture, references)

    monkeypatch.setattr(OracleSeparator, "separate", counting)
    oracle = load_separator("irm", stems=["vocals", "accompaniment"])
    kill_after = 2
    with pytest.raises(KeyboardInterrupt):
        evaluate_separator(oracle, split, tmp_path, fast=True, progress=False)
    assert sorted(p.name for p in (tmp_path / "results" / "test").iterdir()) == [
        "song 0.json",
        "song 1.json",
    ]
    separated.clear()
    kill_after = None
    resumed = evaluate_separator(oracle, split, tmp_path, fast=True, progress=False)
    assert len(separated) == 2 and len(resumed.tracks) == 4  # only the two unfinished tracks
    separated.clear()
    again = evaluate_separator(oracle, split, tmp_path, fast=True, progress=False, force=True)
    assert len(separated) == 4 and again.aggregate == resumed.aggregate
    # Other settings never mix with the results on disk.
    other = load_separator("irm", stems=["vocals", "accompaniment"], n_fft=1024)
    with pytest.raises(ValueError, match=r"other settings \(differing: separator_settings\)"):
        evaluate_separator(other, split, tmp_path, fast=True, progress=False)


WORKER_SCRIPT = textwrap.dedent(
    """
    import sys, time
    from modeling_tfswa.evaluation.workers import scoring_pool, terminate_on_sigterm
    import os
    with terminate_on_sigterm(), scoring_pool(1) as pool:
        worker = pool.submit(os.getpid).result()  # the worker is up, its initializer has run
        job = pool.submit(time.sleep, 120)  # a long museval job
        print(worker, flush=True)
        time.sleep(120)
    """
)


def _gone(pid: int) -> bool:
    """The process has ended (no longer listed, or a zombie waiting to be reaped)."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except FileNotFoundError:
        return True
    return "\nState:\tZ" in status


@pytest.mark.slow  # two spawned interpreters importing torch: ~10 s on a quiet machine
@pytest.mark.parametrize("kill", [signal.SIGTERM, signal.SIGKILL])
def test_killed_evaluation_leaves_no_worker(kill):
    parent = subprocess.Popen(
        [sys.executable, "-c", WORKER_SCRIPT], stdout=subprocess.PIPE, text=True
    )
    try:
        (worker,) = map(int, parent.stdout.readline().split())
        assert not _gone(worker)
        parent.send_signal(kill)
        parent.wait(30)
        deadline = time.monotonic() + 30
        while not _gone(worker) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert _gone(worker), f"worker {worker} outlived its parent ({kill!r})"
    finally:
        parent.kill()
        parent.wait()
    if not _gone(worker):
        os.kill(worker, signal.SIGKILL)


def test_scoring_workers_share_the_usable_cores(monkeypatch):
    """Each of N scoring workers gets usable cores / N threads: the cores this process may run on,
    not the machine's (a container or `taskset` narrows them)."""
    from modeling_tfswa.evaluation import workers

    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0, 1, 2, 3}, raising=False)
    monkeypatch.setattr(os, "cpu_count", lambda: 64)
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    assert workers.usable_cores() == 4
    with workers.scoring_pool(2):  # no job submitted: no process is started
        assert os.environ["OMP_NUM_THREADS"] == "2"
    assert "OMP_NUM_THREADS" not in os.environ
