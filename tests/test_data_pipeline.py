"""Training pipeline: remixing, determinism, sharding across workers / ranks, validation segments."""

import pickle

import numpy as np
import pytest
import soundfile as sf
import torch
from accelerate.data_loader import prepare_data_loader
from torch.utils.data import DataLoader

from data_scripts.musdb import load_stem_dataset
from data_scripts.pipeline import (
    ArrowTrackReader,
    RemixDataset,
    SequentialSegmentDataset,
    collate_segments,
)
from data_scripts.synthetic import ensure_synthetic_dataset

SR = 44100


@pytest.fixture(scope="module")
def dsd(tmp_path_factory):
    root = ensure_synthetic_dataset(
        tmp_path_factory.mktemp("synth"), 3, 1, 0, seconds=2.0, seed=11, progress=False
    )
    return load_stem_dataset(root, "4stems", cache_dir=tmp_path_factory.mktemp("cache"))


def _windows(ds, stem):
    """All (track, offset) windows' audio of a stem as channels-first arrays, for matching."""
    return [np.asarray(x, dtype=np.float32).T for x in ds.with_format("numpy")[stem]]


def _find_source(segment, tracks):
    """(track, offset) such that segment (C, T) equals a window of a track (up to a scalar)."""
    for t, audio in enumerate(tracks):
        for flip in (1.0, -1.0):
            ref = segment[0] * flip
            # Locate by the first non-zero sample, then compare the whole window.
            k = int(np.argmax(np.abs(ref) > 1e-3))
            cands = np.nonzero(np.isclose(audio[0], ref[k], rtol=0, atol=1e-7))[0] - k
            for off in cands:
                if 0 <= off <= audio.shape[1] - segment.shape[1]:
                    if np.allclose(
                        audio[:, off : off + segment.shape[1]], segment * flip, atol=1e-6
                    ):
                        return t, int(off)
    return None


def test_remix_items_shapes_sum_and_determinism(dsd):
    ds = RemixDataset(dsd["train"], 0.5, seed=3, samples_per_epoch=6)
    assert ds.stems == ["vocals", "drums", "bass", "other"]
    item = ds[2]
    assert item["mixture"].shape == (2, SR // 2) and item["stems"].shape == (4, 2, SR // 2)
    assert item["mixture"].dtype == torch.float32
    torch.testing.assert_close(item["mixture"], item["stems"].sum(0), rtol=0, atol=1e-6)
    again = RemixDataset(dsd["train"], 0.5, seed=3, samples_per_epoch=6)[2]
    torch.testing.assert_close(item["stems"], again["stems"], rtol=0, atol=0)
    assert not torch.equal(item["stems"], ds[3]["stems"])
    ds.set_epoch(1)
    assert not torch.equal(item["stems"], ds[2]["stems"])
    ds.set_epoch(0)
    torch.testing.assert_close(item["stems"], ds[2]["stems"], rtol=0, atol=0)
    with pytest.raises(IndexError):
        ds[6]


def test_remix_draws_stems_from_different_tracks_and_augments(dsd):
    tracks = {s: _windows(dsd["train"], s) for s in ("vocals", "drums")}
    plain = RemixDataset(
        dsd["train"], 0.25, seed=0, samples_per_epoch=8, gain_db=(0, 0),
        channel_swap_prob=0, polarity_flip_prob=0, stems=["vocals", "drums"],
    )  # fmt: skip
    origins = []
    for i in range(len(plain)):
        item = plain[i]["stems"].numpy()
        found = [_find_source(item[s], tracks[name]) for s, name in enumerate(plain.stems)]
        assert None not in found, "a stem is not an unmodified window of some track"
        origins.append(found)
    assert any(v[0] != d[0] for v, d in origins), "stems never come from different tracks"

    coherent = RemixDataset(
        dsd["train"], 0.25, seed=0, samples_per_epoch=4, remix=False, gain_db=(0, 0),
        channel_swap_prob=0, polarity_flip_prob=0, stems=["vocals", "drums"],
    )  # fmt: skip
    for i in range(len(coherent)):
        item = coherent[i]["stems"].numpy()
        v, d = (_find_source(item[s], tracks[n]) for s, n in enumerate(coherent.stems))
        assert v == d

    swapped = RemixDataset(
        dsd["train"], 0.25, seed=0, samples_per_epoch=8, gain_db=(0, 0),
        channel_swap_prob=1.0, polarity_flip_prob=1.0, stems=["vocals", "drums"],
    )  # fmt: skip
    for i in range(3):  # same draws as `plain`, with channels swapped and polarity flipped
        torch.testing.assert_close(swapped[i]["stems"], -plain[i]["stems"].flip(1), rtol=0, atol=0)

    gained = RemixDataset(
        dsd["train"],
        0.25,
        seed=0,
        samples_per_epoch=8,
        gain_db=(-6, -6),
        channel_swap_prob=0,
        polarity_flip_prob=0,
        stems=["vocals", "drums"],
    )
    ratio = gained[0]["stems"].abs().sum() / plain[0]["stems"].abs().sum()
    assert abs(float(ratio) - 10 ** (-6 / 20)) < 1e-4


def test_silent_stems_are_rejected(tmp_path):
    root = ensure_synthetic_dataset(tmp_path / "s", 3, 0, 0, seconds=1.0, seed=2, progress=False)
    for name in ("synthetic-train-0000", "synthetic-train-0001"):  # silence two tracks' vocals
        path = root / "train" / name / "vocals.wav"
        sf.write(path, np.zeros((SR, 2), np.float32), SR, subtype="FLOAT")
    train = load_stem_dataset(root, "4stems", cache_dir=tmp_path / "c", mixture_tolerance_db=0)[
        "train"
    ]

    def silent_count(retries):
        ds = RemixDataset(train, 0.2, seed=0, samples_per_epoch=24, max_silence_retries=retries)
        return sum(int(ds[i]["stems"][0].abs().max() == 0) for i in range(len(ds)))

    assert silent_count(0) > 5  # 2 of 3 tracks are silent: most draws without retries
    assert silent_count(40) == 0


def _item_key(item):
    return item["stems"].numpy().tobytes()


def test_workers_give_disjoint_reproducible_items(dsd):
    ds = RemixDataset(dsd["train"], 0.1, seed=5, samples_per_epoch=12)
    reference = [ds[i] for i in range(len(ds))]
    assert len({_item_key(x) for x in reference}) == len(reference)
    loader = DataLoader(ds, batch_size=3, num_workers=2, collate_fn=collate_segments)
    batches = list(loader)
    got = torch.cat([b["stems"] for b in batches])
    torch.testing.assert_close(got, torch.stack([x["stems"] for x in reference]), rtol=0, atol=0)
    assert torch.cat([b["index"] for b in batches]).tolist() == list(range(12))


def test_accelerate_ranks_get_disjoint_reproducible_shards(dsd):
    ds = RemixDataset(dsd["train"], 0.1, seed=5, samples_per_epoch=16)

    def shard(rank, shuffle):
        generator = torch.Generator().manual_seed(0) if shuffle else None
        loader = DataLoader(
            ds, batch_size=2, shuffle=shuffle, generator=generator, collate_fn=collate_segments
        )
        loader = prepare_data_loader(
            loader, num_processes=2, process_index=rank, put_on_device=False
        )
        return [b for b in loader]

    for shuffle in (False, True):
        ranks = [shard(r, shuffle) for r in (0, 1)]
        idx = [torch.cat([b["index"] for b in batches]).tolist() for batches in ranks]
        assert not set(idx[0]) & set(idx[1]) and sorted(idx[0] + idx[1]) == list(range(16))
        keys = [{_item_key({"stems": s}) for b in batches for s in b["stems"]} for batches in ranks]
        assert not keys[0] & keys[1]
        again = shard(0, shuffle)
        for a, b in zip(ranks[0], again):
            torch.testing.assert_close(a["stems"], b["stems"], rtol=0, atol=0)

    # Accelerate's set_epoch reaches the dataset: the next epoch draws new segments.
    generator = torch.Generator().manual_seed(0)
    loader = prepare_data_loader(
        DataLoader(ds, batch_size=2, generator=generator, collate_fn=collate_segments),
        num_processes=2, process_index=0, put_on_device=False,
    )  # fmt: skip
    first = next(iter(loader))
    loader.set_epoch(1)
    assert ds.epoch == 1
    second = next(iter(loader))
    assert first["index"].tolist() == second["index"].tolist()
    assert not torch.equal(first["stems"], second["stems"])
    ds.set_epoch(0)


def test_memory_does_not_hold_audio(dsd):
    """Datasets pickle (to workers) without audio: they reference the memory-mapped Arrow file."""
    ds = RemixDataset(dsd["train"], 0.5, seed=0)
    ds[0]
    audio_bytes = sum(int(n) for n in ds.reader.num_samples) * 2 * 4 * len(ds.stems)
    assert len(pickle.dumps(ds)) < audio_bytes / 20
    assert len(pickle.dumps(SequentialSegmentDataset(dsd["train"], 0.5))) < audio_bytes / 20


def test_sequential_segments_cover_the_tracks(dsd):
    val = dsd["validation"]
    seq = SequentialSegmentDataset(val, 0.3, overlap=0.25)
    n = int(seq.reader.num_samples[0])
    whole = {c: seq.reader.read(0, c, 0, n).T for c in ["mixture", *seq.stems]}
    loader = DataLoader(seq, batch_size=4, collate_fn=collate_segments)
    batches = list(loader)
    batch = {
        k: torch.cat([b[k] for b in batches])
        for k in ("stems", "mixture", "start", "valid_length", "track_index")
    }
    assert batch["start"].tolist()[:3] == [0, 9922, 19844]  # hop = 0.75 * 13230
    first = batch["track_index"] == 0
    starts, valid = batch["start"][first].tolist(), batch["valid_length"][first].tolist()
    assert starts[-1] + valid[-1] == n  # the last segment reaches the track's end
    for k, (start, length) in enumerate(zip(starts, valid)):
        np.testing.assert_array_equal(
            batch["mixture"][k, :, :length].numpy(), whole["mixture"][:, start : start + length]
        )
        for s, stem in enumerate(seq.stems):
            np.testing.assert_array_equal(
                batch["stems"][k, s, :, :length].numpy(), whole[stem][:, start : start + length]
            )
    # The padded tail of the last segment is zeros.
    assert batch["stems"][-1, ..., int(batch["valid_length"][-1]) :].abs().max() == 0


def test_reader_honours_select_and_rejects_bad_windows(dsd):
    train = dsd["train"]
    view = train.select([2, 0])
    reader = ArrowTrackReader(view)
    assert reader.names == [train[2]["name"], train[0]["name"]]
    expected = np.asarray(train.with_format("numpy")[2]["drums"])[100:300]
    np.testing.assert_array_equal(reader.read(0, "drums", 100, 300), expected)
    with pytest.raises(IndexError, match="outside track"):
        reader.read(0, "drums", 0, 10**9)
    with pytest.raises(ValueError, match="different shapes"):
        collate_segments([{"stems": torch.zeros(2, 3)}, {"stems": torch.zeros(2, 4)}])
