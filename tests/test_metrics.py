"""Fast SDRs of modeling_tfswa.metrics, and the museval wrapper against museval's published scores."""

import json
import math
import shutil
import subprocess
from pathlib import Path

import museval
import numpy as np
import pytest
import torch
from conftest import SHARED_DATA

from modeling_tfswa.evaluation import bsseval_track, save_track_scores, track_medians
from modeling_tfswa.metrics import (
    chunk_sdr,
    csdr,
    framewise_sdr,
    median_over_frames,
    median_over_tracks,
    num_frames,
    sdr,
)

SAMPLE = SHARED_DATA / "musdb18-sample"
SAMPLE_TRACK = SAMPLE / "train" / "Music Delta - 80s Rock.stem.mp4"
SAMPLE_SCORES = SAMPLE / "Music Delta - 80s Rock.museval.json"
RATE = 4000  # small "sample rate" keeps museval fast in the synthetic comparisons


def noisy_sources(num_sources=3, seconds=3.6, seed=0):
    """References and estimates `(sources, channels, samples)` with silent frames in both."""
    rng = np.random.default_rng(seed)
    length = int(seconds * RATE)
    references = rng.standard_normal((num_sources, 2, length))
    estimates = references + rng.uniform(0.2, 2.0, (num_sources, 1, 1)) * rng.standard_normal(
        references.shape
    )
    references[1, :, RATE : 2 * RATE] = 0  # a silent reference frame
    estimates[-1, :, 2 * RATE : 3 * RATE] = 0  # a silent estimate frame
    return references, estimates


def museval_sdr(references, estimates, win, hop):
    """museval's v4 framewise SDR of `(sources, channels, samples)` arrays: `(sources, frames)`."""
    sdr_, _, _, _ = museval.evaluate(
        list(references.transpose(0, 2, 1)), list(estimates.transpose(0, 2, 1)), win=win, hop=hop
    )
    return sdr_


def test_global_sdr_known_values_and_batching():
    rng = np.random.default_rng(1)
    references = rng.standard_normal((2, 3, 2, 1000))
    # Half the reference as estimate: error energy is a quarter of the signal energy.
    values = sdr(references, 0.5 * references)
    assert values.shape == (2, 3) and values.dtype == torch.float64
    torch.testing.assert_close(values, torch.full((2, 3), 10 * np.log10(4), dtype=torch.float64))
    # Matches the Music Demixing Challenge's reference formula, over both channels.
    estimates = references + rng.standard_normal(references.shape)
    expected = 10 * np.log10(
        (np.sum(references**2, axis=(-2, -1)) + 1e-7)
        / (np.sum((references - estimates) ** 2, axis=(-2, -1)) + 1e-7)
    )
    np.testing.assert_allclose(sdr(torch.from_numpy(references), estimates).numpy(), expected)
    # Silence and perfection stay finite thanks to eps.
    silent = np.zeros((2, 100))
    assert sdr(silent, silent).item() == 0.0
    assert np.isfinite(sdr(references[0, 0], references[0, 0]).item())


def test_shape_errors():
    with pytest.raises(ValueError, match="same shape"):
        sdr(np.zeros((2, 10)), np.zeros((2, 11)))
    with pytest.raises(ValueError, match=r"\(\.\.\., channels, samples\)"):
        framewise_sdr(np.zeros(10), np.zeros(10), 4)
    with pytest.raises(ValueError, match="positive"):
        framewise_sdr(np.zeros((2, 10)), np.zeros((2, 10)), 0)
    with pytest.raises(ValueError, match="source_dim"):
        framewise_sdr(np.ones((2, 10)), np.ones((2, 10)), 4, source_dim=0)


@pytest.mark.parametrize(("num_samples", "expected"), [(5, 1), (10, 1), (11, 1), (20, 2), (29, 2)])
def test_num_frames_drops_the_last_partial_frame(num_samples, expected):
    assert num_frames(num_samples, 10) == expected


def test_framewise_sdr_matches_museval_with_joint_silence():
    references, estimates = noisy_sources(num_sources=2)
    reference = museval_sdr(references, estimates, RATE, RATE)
    ours = framewise_sdr(references, estimates, RATE, source_dim=0).numpy()
    assert ours.shape == reference.shape == (2, 3)  # 3.6 s: the partial fourth second is dropped
    # museval makes a frame NaN for all sources when any of them is silent there.
    assert np.isnan(ours[:, 1]).all() and np.isnan(ours[:, 2]).all()
    np.testing.assert_array_equal(np.isnan(ours), np.isnan(reference))
    np.testing.assert_allclose(ours, reference, atol=1e-6, equal_nan=True)


def test_framewise_sdr_overlapping_and_short_signals_match_museval():
    references, estimates = noisy_sources(num_sources=2, seconds=3.3, seed=3)
    reference = museval_sdr(references, estimates, 2 * RATE, RATE)
    ours = framewise_sdr(references, estimates, 2 * RATE, hop=RATE, source_dim=0).numpy()
    np.testing.assert_allclose(ours, reference, atol=1e-6, equal_nan=True)
    # A signal shorter than a frame is one frame of the whole signal.
    short_ref, short_est = references[..., : RATE // 2], estimates[..., : RATE // 2]
    reference = museval_sdr(short_ref, short_est, RATE, RATE)
    ours = framewise_sdr(short_ref, short_est, RATE, source_dim=0).numpy()
    assert ours.shape == (2, 1)
    np.testing.assert_allclose(ours, reference, atol=1e-6)


def test_framewise_sdr_per_signal_silence_and_perfect_frames():
    references, estimates = noisy_sources()
    ours = framewise_sdr(torch.from_numpy(references).float(), estimates, RATE)
    assert torch.isnan(ours).tolist() == [[False] * 3, [False, True, False], [False, False, True]]
    # Channels that cancel count as silent, as in museval (it tests the sum over channels).
    cancelling = np.stack([np.ones(RATE), -np.ones(RATE)])
    assert torch.isnan(framewise_sdr(cancelling, cancelling + 1, RATE)).all()
    # A perfect frame is +inf in museval, stored as NaN.
    perfect = framewise_sdr(references[0], references[0], RATE)
    assert torch.isnan(perfect).all()


def test_chunk_sdr_and_csdr():
    references, estimates = noisy_sources()
    chunks = chunk_sdr(references, estimates, RATE)
    assert chunks.shape == (3, 3) and torch.isfinite(chunks).all()
    expected = sdr(
        references[..., : 3 * RATE].reshape(3, 2, 3, RATE).transpose(0, 2, 1, 3),
        estimates[..., : 3 * RATE].reshape(3, 2, 3, RATE).transpose(0, 2, 1, 3),
    )
    torch.testing.assert_close(chunks, expected)
    torch.testing.assert_close(csdr(references, estimates, RATE), chunks.median(dim=-1).values)
    # One chunk: the chunk-level SDR is the global one.
    short = references[..., :RATE], estimates[..., :RATE]
    torch.testing.assert_close(csdr(*short, RATE), sdr(*short))


def test_medians_follow_numpy_nanmedian_and_museval_aggregation():
    scores = np.array([[1.0, np.nan, 3.0, 10.0], [np.nan, np.nan, np.nan, np.nan]])
    medians = median_over_frames(scores)
    assert medians[0].item() == np.nanmedian(scores[0]) == 3.0
    assert torch.isnan(medians[1])
    # Tracks x stems -> stems; NaN tracks are skipped like pandas' median in museval.
    per_track = [[1.0, 5.0], [2.0, np.nan], [4.0, 7.0], [3.0, 6.0]]
    torch.testing.assert_close(median_over_tracks(per_track), torch.tensor([2.5, 6.0]).double())


def test_save_track_scores_is_atomic(tmp_path):
    references, estimates = noisy_sources(num_sources=2, seconds=2.0)
    names = ["vocals", "accompaniment"]
    store = bsseval_track(
        {n: r.T for n, r in zip(names, references)},
        {n: e.T for n, e in zip(names, estimates)},
        RATE,
        "synthetic",
    )
    path = save_track_scores(store, tmp_path / "test" / "synthetic.json")
    assert [p.name for p in path.parent.iterdir()] == ["synthetic.json"]
    document = json.loads(path.read_text())
    assert [t["name"] for t in document["targets"]] == names
    medians = track_medians(store)
    assert set(medians) == set(names) and set(medians["vocals"]) == {"SDR", "SIR", "ISR", "SAR"}
    store.scores["targets"][0]["frames"][0]["metrics"]["SDR"] = "not a number"
    with pytest.raises(Exception, match="not a number"):
        save_track_scores(store, tmp_path / "test" / "broken.json")
    assert [p.name for p in path.parent.iterdir()] == ["synthetic.json"]


def test_bsseval_track_rejects_bad_input():
    ones = np.ones((100, 2))
    with pytest.raises(ValueError, match="'drums' has no reference"):
        bsseval_track({"vocals": ones}, {"drums": ones}, RATE, "t")
    with pytest.raises(ValueError, match="same channels"):
        bsseval_track({"vocals": ones, "bass": ones}, {"vocals": ones[:, :1]}, RATE, "t")
    with pytest.raises(ValueError, match="at least two"):
        bsseval_track({"vocals": ones, "bass": ones}, {"vocals": ones}, RATE, "t")


# ---------------------------------------------------------------------------------------------
# Real MUSDB18 track against museval's published scores
# ---------------------------------------------------------------------------------------------
def decode_stems(path):
    """All 5 streams of a STEMS mp4 as musdb reads them (ffmpeg -> s16le -> /32768), float64
    `(streams, samples, channels)`: mixture, drums, bass, other, vocals."""
    streams = []
    for index in range(5):
        raw = subprocess.run(
            [
                "ffmpeg",
                "-nostdin",
                "-v",
                "error",
                "-i",
                str(path),
                "-map",
                f"0:{index}",
                "-f",
                "s16le",
                "-ar",
                "44100",
                "pipe:",
            ],
            capture_output=True,
            check=True,
        ).stdout
        streams.append(np.frombuffer(raw, dtype="<i2").reshape(-1, 2) / 32768.0)
    return np.stack(streams)


@pytest.fixture(scope="module")
def sample_track():
    if shutil.which("ffmpeg") is None or not SAMPLE_TRACK.exists():
        pytest.skip("needs ffmpeg and ../shared/data/musdb18-sample")
    mixture, drums, bass, other, vocals = decode_stems(SAMPLE_TRACK)
    # musdb's target order and its accompaniment (bass + drums + other, summed in that order).
    references = {
        "vocals": vocals,
        "drums": drums,
        "bass": bass,
        "other": other,
        "accompaniment": np.sum([bass, drums, other], axis=0),
    }
    return mixture, references


@pytest.mark.slow
def test_museval_scores_of_the_real_track_match_the_published_json(sample_track, tmp_path):
    mixture, references = sample_track
    assert mixture.shape == (300032, 2)
    np.random.seed(0)  # the estimates of the sample's README
    estimates = {
        "vocals": np.random.random(mixture.shape),
        "accompaniment": np.random.random(mixture.shape),
    }
    store = bsseval_track(references, estimates, 44100, SAMPLE_TRACK.name)
    path = save_track_scores(store, tmp_path / "scores.json")
    ours = json.loads(path.read_text())
    published = json.loads(SAMPLE_SCORES.read_text())
    assert [t["name"] for t in ours["targets"]] == [t["name"] for t in published["targets"]]
    worst = 0.0
    for our_target, target in zip(ours["targets"], published["targets"]):
        assert len(our_target["frames"]) == len(target["frames"]) == 6
        for our_frame, frame in zip(our_target["frames"], target["frames"]):
            assert our_frame["time"] == frame["time"]
            for metric, value in frame["metrics"].items():
                worst = max(worst, abs(our_frame["metrics"][metric] - value))
    assert worst < 1e-3, f"max deviation from the published scores: {worst} dB"

    # The fast framewise SDR agrees with museval's per-frame SDR.
    stems = ["vocals", "accompaniment"]
    fast = framewise_sdr(
        np.stack([references[s].T for s in stems]),
        np.stack([estimates[s].T for s in stems]),
        44100,
        source_dim=0,
    )
    published_sdr = [[f["metrics"]["SDR"] for f in t["frames"]] for t in published["targets"]]
    np.testing.assert_allclose(fast.numpy(), np.array(published_sdr), atol=1e-2)


@pytest.mark.slow
def test_bsseval_track_matches_eval_mus_track_with_accompaniment_and_other_stems(sample_track):
    """vocals + accompaniment + another stem: the vocals/accompaniment pair is scored apart from the
    joint scoring of the others (vocals, bass), exactly as museval.eval_mus_track does."""
    musdb = pytest.importorskip("musdb")
    _, references = sample_track
    references = {stem: audio[: 3 * 44100] for stem, audio in references.items()}
    rng = np.random.default_rng(0)
    estimates = {
        stem: references[stem] + 0.1 * rng.standard_normal(references[stem].shape)
        for stem in ["vocals", "bass", "accompaniment"]
    }
    track = musdb.DB(root=str(SAMPLE), subsets="train").tracks[0]
    for name, source in track.sources.items():
        source.audio = references[name]  # the same 3 s, without decoding again
    expected = json.loads(museval.eval_mus_track(track, estimates).json)
    ours = json.loads(bsseval_track(references, estimates, 44100, track.name).json)
    assert [t["name"] for t in ours["targets"]] == ["bass", "vocals", "accompaniment"]
    assert ours == expected


# ---------------------------------------------------------------------------------------------
# The `evaluate` metric module
# ---------------------------------------------------------------------------------------------
METRIC_MODULE = Path(__file__).resolve().parents[1] / "metrics" / "musdb_sdr"


def test_evaluate_metric_module_matches_the_library():
    evaluate = pytest.importorskip("evaluate")
    metric = evaluate.load(str(METRIC_MODULE))
    references, estimates = noisy_sources(num_sources=3, seconds=2.5)
    scores = metric.compute(
        predictions=list(estimates),
        references=list(references),
        sample_rate=RATE,
        return_per_item=True,
    )
    expected_usdr = sdr(references, estimates)
    expected_csdr = csdr(references, estimates, RATE)
    expected_sdr = median_over_frames(framewise_sdr(references, estimates, RATE))
    # float32 round trip through Arrow: agreement to ~1e-4 dB.
    np.testing.assert_allclose(scores["usdr_per_item"], expected_usdr, atol=1e-3)
    np.testing.assert_allclose(scores["csdr_per_item"], expected_csdr, atol=1e-3)
    np.testing.assert_allclose(scores["sdr_per_item"], expected_sdr, atol=1e-3)
    assert scores["usdr"] == pytest.approx(float(expected_usdr.mean()), abs=1e-3)
    assert scores["csdr"] == pytest.approx(float(expected_csdr.median()), abs=1e-3)
    assert scores["sdr"] == pytest.approx(float(expected_sdr.median()), abs=1e-3)
    # Batches accumulate; mono items are (samples,) arrays.
    for estimate, reference in zip(estimates[:, 0], references[:, 0]):
        metric.add(predictions=estimate, references=reference)
    mono = metric.compute(sample_rate=RATE)
    assert set(mono) == {"usdr", "csdr", "sdr"}
    assert mono["usdr"] == pytest.approx(
        float(sdr(references[:, :1], estimates[:, :1]).mean()), abs=1e-3
    )
    with pytest.raises(ValueError, match="must have the same"):
        metric.compute(predictions=[np.zeros((2, 10))], references=[np.zeros((2, 12))])


def test_mean_ignoring_nan_and_metric_names():
    import warnings

    from modeling_tfswa.metrics import mean_ignoring_nan, metric_name

    assert mean_ignoring_nan([1.0, float("nan"), 3.0]) == 2.0
    assert mean_ignoring_nan(torch.tensor([[4.0], [float("nan")]])) == 4.0
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # numpy's nanmean would warn on an all-NaN input
        assert math.isnan(mean_ignoring_nan([float("nan")] * 2))
    assert metric_name("sdr") == "sdr" and metric_name("sdr_gain", "bass") == "sdr_gain/bass"
