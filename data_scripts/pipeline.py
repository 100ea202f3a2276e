"""Torch training and validation datasets over a materialised stem dataset.

All datasets here are map-style and every item is a pure function of ``(seed, epoch, index)``:
the random state of item ``i`` is ``numpy.random.default_rng([seed, epoch, i])``. So any sampler,
any number of DataLoader workers and Accelerate's per-process sharding (each rank fetches different
indices) give disjoint, reproducible data, and resuming at a step re-creates the same items.

Audio is never decoded as whole tracks: :class:`ArrowTrackReader` reads a ``(start, stop)`` window
of one track as a zero-copy view into the memory-mapped Arrow file written by
:mod:`data_scripts.musdb` (``Array2D((None, 2), float32)`` columns), so memory does not grow with
the dataset size (only O(tracks) integers are held).

Tensors are channels-first float32: mixture (C, T), stems (S, C, T); batches from
:func:`collate_segments` are mixture (B, C, T), stems (B, S, C, T).
"""

from __future__ import annotations

from collections.abc import Sequence

import datasets
import numpy as np
import pyarrow as pa
import torch

from data_scripts.musdb import CHANNELS, MIXTURE, stem_columns

#: Silence level of the project (RMS in dBFS): a stem window below it is redrawn, and training
#: losses and validation leave out references below it. It sits above recording noise floors and
#: below any real part.
SILENCE_DB = -60.0
#: [`SILENCE_DB`] as a mean square (1e-6), the form the comparisons use (no sqrt/log per test).
SILENCE_POWER = 10 ** (SILENCE_DB / 10)


class ArrowTrackReader:
    """Zero-copy windows of the audio columns of one split.

    Args:
        dataset: one split of :func:`data_scripts.musdb.load_stem_dataset` (a ``select``-ed or
            shuffled view is fine: its index mapping is honoured).
        columns: audio columns to read (default: mixture and every stem column).

    The dataset should be memory-mapped (as ``load_stem_dataset`` / ``load_from_disk`` /
    ``load_dataset`` give): an in-memory Dataset would be copied, audio and all, to every worker.

    ``read(row, column, start, stop)`` returns float32 (stop - start, 2), a read-only view into
    the memory map (copy it before writing). Per-chunk offset views are built lazily and dropped on
    pickling, so DataLoader workers re-create them from the memory map.
    """

    def __init__(self, dataset: datasets.Dataset, columns: Sequence[str] | None = None):
        self.columns = list(columns) if columns is not None else [MIXTURE, *stem_columns(dataset)]
        for c in self.columns:
            if c not in dataset.column_names:
                raise KeyError(f"column {c!r} not in the dataset (columns: {dataset.column_names})")
        # Keep the Dataset, not its pa.Table: a memory-mapped Dataset pickles as a file reference,
        # while a pickled pa.Table would carry all the audio to every worker.
        self._dataset = dataset
        self._table: pa.Table | None = None
        # A select()/shuffle() view keeps the full table plus an index mapping (datasets keeps it
        # in the private `_indices`; there is no public accessor that avoids a full copy).
        indices = getattr(dataset, "_indices", None)
        self._rows = None if indices is None else indices.column(0).to_numpy()
        self.num_samples = np.asarray(dataset.with_format("numpy")["num_samples"], dtype=np.int64)
        self.names = list(dataset["name"])
        rates = set(np.asarray(dataset["sample_rate"]).tolist())
        if len(rates) != 1:
            raise ValueError(f"tracks have different sample rates {sorted(rates)}; resample first")
        self.sample_rate = int(rates.pop())
        self._chunk_starts = {}
        self._views = {}

    def __len__(self) -> int:
        return len(self.num_samples)

    def __getstate__(self):
        state = self.__dict__.copy()
        state["_views"] = {}
        state["_table"] = None
        return state

    @property
    def table(self) -> pa.Table:
        if self._table is None:
            self._table = self._dataset.data.table
        return self._table

    def _view(self, column: str, chunk_index: int):
        key = (column, chunk_index)
        view = self._views.get(key)
        if view is None:
            chunk = self.table.column(column).chunk(chunk_index)
            storage = chunk.storage if isinstance(chunk, pa.ExtensionArray) else chunk
            outer = storage.offsets.to_numpy()
            inner = storage.values.offsets.to_numpy()
            values = storage.values.values.to_numpy(zero_copy_only=True)
            view = (outer, inner, values)
            self._views[key] = view
        return view

    def _locate(self, column: str, row: int) -> tuple[int, int]:
        starts = self._chunk_starts.get(column)
        if starts is None:
            lengths = [len(c) for c in self.table.column(column).chunks]
            starts = np.concatenate([[0], np.cumsum(lengths)])
            self._chunk_starts[column] = starts
        table_row = int(row if self._rows is None else self._rows[row])
        chunk_index = int(np.searchsorted(starts, table_row, side="right") - 1)
        return chunk_index, table_row - int(starts[chunk_index])

    def read(self, row: int, column: str, start: int, stop: int) -> np.ndarray:
        """Samples [start, stop) of ``column`` of track ``row`` -> float32 (stop - start, 2).

        The window must lie inside the track (0 <= start <= stop <= num_samples[row]).
        """
        n = int(self.num_samples[row])
        if not 0 <= start <= stop <= n:
            raise IndexError(
                f"window [{start}, {stop}) outside track {self.names[row]!r} of {n} samples"
            )
        chunk_index, local = self._locate(column, row)
        outer, inner, values = self._view(column, chunk_index)
        first = outer[local]
        lo, hi = inner[first + start], inner[first + stop]
        return values[lo:hi].reshape(-1, CHANNELS)

    def read_padded(self, row: int, column: str, start: int, length: int) -> np.ndarray:
        """Like :meth:`read` for ``length`` samples from ``start``, zero-padded past the end.

        Returns a writable float32 (length, 2) array.
        """
        stop = min(start + length, int(self.num_samples[row]))
        out = np.zeros((length, CHANNELS), dtype=np.float32)
        if stop > start:
            out[: stop - start] = self.read(row, column, start, stop)
        return out


def _to_channels_first(x: np.ndarray) -> torch.Tensor:
    """(T, C) or (S, T, C) numpy -> (C, T) or (S, C, T) contiguous float32 tensor."""
    return torch.from_numpy(np.ascontiguousarray(np.swapaxes(x, -1, -2)))


class RemixDataset(torch.utils.data.Dataset):
    """Random training segments, Demucs-style remixed across tracks.

    Item ``i`` of epoch ``e``: for each stem, a track and an offset are drawn (the same track and
    offset for every stem when ``remix=False``); a stem window quieter than ``silence_db`` (RMS,
    dBFS) is redrawn, at most ``max_silence_retries`` times (then the last draw is kept, so songs
    without e.g. vocals still train); each stem gets a random gain in ``gain_db``, a channel swap
    with probability ``channel_swap_prob`` and a polarity flip with ``polarity_flip_prob``; the
    mixture is the exact float32 sum of the returned stems (never the file mixture).

    Args:
        dataset: a split of :func:`data_scripts.musdb.load_stem_dataset`.
        segment_seconds: segment length; tracks shorter than it are zero-padded.
        stems: stem columns in output order (default: the dataset's stem columns).
        samples_per_epoch: length of an epoch (default: total audio duration / segment length,
            at least one per track).
        seed: base seed; call :meth:`set_epoch` each epoch (Accelerate's dataloader.set_epoch does;
            with ``persistent_workers=True`` the workers keep the epoch they were started with).
        remix: draw every stem from its own track and offset (True) or keep songs coherent.
        silence_db: a stem window whose RMS (dBFS, zero padding included) is below this is
            redrawn (default: the project's silence level, [`SILENCE_DB`]).
        max_silence_retries: bound on redraws per stem (per window when ``remix=False``).
        gain_db: (low, high) uniform random gain per stem, in dB.
        channel_swap_prob, polarity_flip_prob: per-stem probabilities of swapping left/right and
            of negating the stem.

    Items: {"mixture": (C, T), "stems": (S, C, T), "index": int}, float32, T = segment samples.
    """

    def __init__(
        self,
        dataset: datasets.Dataset,
        segment_seconds: float = 6.0,
        *,
        stems: Sequence[str] | None = None,
        samples_per_epoch: int | None = None,
        seed: int = 0,
        remix: bool = True,
        silence_db: float = SILENCE_DB,
        max_silence_retries: int = 8,
        gain_db: tuple[float, float] = (-6.0, 3.0),
        channel_swap_prob: float = 0.5,
        polarity_flip_prob: float = 0.5,
    ):
        if len(dataset) == 0:
            raise ValueError("RemixDataset needs at least one track; the split is empty")
        if segment_seconds <= 0:
            raise ValueError(f"segment_seconds must be > 0, got {segment_seconds}")
        if gain_db[0] > gain_db[1]:
            raise ValueError(f"gain_db must be (low, high) with low <= high, got {gain_db}")
        for name, p in (
            ("channel_swap_prob", channel_swap_prob),
            ("polarity_flip_prob", polarity_flip_prob),
        ):
            if not 0.0 <= p <= 1.0:
                raise ValueError(f"{name} must be in [0, 1], got {p}")
        if max_silence_retries < 0:
            raise ValueError(f"max_silence_retries must be >= 0, got {max_silence_retries}")
        self.stems = list(stems) if stems is not None else stem_columns(dataset)
        self.reader = ArrowTrackReader(dataset, self.stems)
        self.sample_rate = self.reader.sample_rate
        self.segment_samples = int(round(segment_seconds * self.sample_rate))
        if samples_per_epoch is None:
            total = int(self.reader.num_samples.sum())
            samples_per_epoch = max(len(self.reader), total // self.segment_samples)
        self.samples_per_epoch = int(samples_per_epoch)
        self.seed = int(seed)
        self.epoch = 0
        self.remix = remix
        # Compare mean squares, not RMS in dB, to skip a sqrt/log per draw.
        self._silence_power = 10 ** (silence_db / 10)
        self.max_silence_retries = int(max_silence_retries)
        self.gain_db = (float(gain_db[0]), float(gain_db[1]))
        self.channel_swap_prob = float(channel_swap_prob)
        self.polarity_flip_prob = float(polarity_flip_prob)

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def __len__(self) -> int:
        return self.samples_per_epoch

    def _draw_window(self, rng: np.random.Generator) -> tuple[int, int]:
        row = int(rng.integers(len(self.reader)))
        span = int(self.reader.num_samples[row]) - self.segment_samples
        return row, int(rng.integers(span + 1)) if span > 0 else 0

    def _window(self, row: int, stem: str, offset: int) -> np.ndarray:
        """Read-only view (n, 2), n <= segment samples (shorter at a short track's end)."""
        stop = min(offset + self.segment_samples, int(self.reader.num_samples[row]))
        return self.reader.read(row, stem, offset, stop)

    def _silent(self, view: np.ndarray) -> bool:
        flat = view.reshape(-1)
        power = float(np.dot(flat, flat)) / self.segment_samples / 2
        return power < self._silence_power

    def __getitem__(self, index: int) -> dict:
        if not 0 <= index < self.samples_per_epoch:
            raise IndexError(f"index {index} out of range for {self.samples_per_epoch} items")
        rng = np.random.default_rng([self.seed, self.epoch, int(index)])
        retries = self.max_silence_retries
        if self.remix:
            # Each stem from its own track and offset; a near-silent window is redrawn.
            views = []
            for stem in self.stems:
                for attempt in range(retries + 1):
                    row, offset = self._draw_window(rng)
                    view = self._window(row, stem, offset)
                    if attempt == retries or not self._silent(view):
                        break
                views.append(view)
        else:
            # One window for all stems; redrawn while any stem is near-silent.
            for attempt in range(retries + 1):
                row, offset = self._draw_window(rng)
                views = [self._window(row, stem, offset) for stem in self.stems]
                if attempt == retries or not any(self._silent(v) for v in views):
                    break
        # Written channels-first directly: (S, C, T), no transposing copy afterwards.
        out = np.zeros((len(self.stems), CHANNELS, self.segment_samples), dtype=np.float32)
        for s, view in enumerate(views):
            gain = np.float32(10 ** (rng.uniform(*self.gain_db) / 20))
            if rng.random() < self.polarity_flip_prob:
                gain = -gain
            if rng.random() < self.channel_swap_prob:
                view = view[:, ::-1]
            np.multiply(view.T, gain, out=out[s, :, : len(view)])
        mixture = out.sum(axis=0, dtype=np.float32)
        return {
            "mixture": torch.from_numpy(mixture),
            "stems": torch.from_numpy(out),
            "index": int(index),
        }


class SequentialSegmentDataset(torch.utils.data.Dataset):
    """Overlapping fixed-length segments covering every track in order (validation).

    Segment ``k`` of a track starts at ``k * hop`` with ``hop = segment * (1 - overlap)``; the
    last one reaches the track end (zero-padded past it). Items say where they come from.

    Args:
        dataset: a split of :func:`data_scripts.musdb.load_stem_dataset`.
        segment_seconds: segment length.
        overlap: fraction of a segment shared with the next, in [0, 1).
        stems: stem columns in output order (default: all).

    Items: {"mixture": (C, T) the file mixture, "stems": (S, C, T), "track_index": int,
    "start": int (sample), "valid_length": int (samples before padding)}.
    """

    def __init__(
        self,
        dataset: datasets.Dataset,
        segment_seconds: float = 6.0,
        overlap: float = 0.25,
        *,
        stems: Sequence[str] | None = None,
    ):
        if not 0.0 <= overlap < 1.0:
            raise ValueError(f"overlap must be in [0, 1), got {overlap}")
        if segment_seconds <= 0:
            raise ValueError(f"segment_seconds must be > 0, got {segment_seconds}")
        self.stems = list(stems) if stems is not None else stem_columns(dataset)
        self.reader = ArrowTrackReader(dataset, [MIXTURE, *self.stems])
        self.sample_rate = self.reader.sample_rate
        self.segment_samples = int(round(segment_seconds * self.sample_rate))
        self.hop = max(1, int(round(self.segment_samples * (1 - overlap))))
        tracks, starts = [], []
        for row, n in enumerate(self.reader.num_samples):
            count = 1 + max(0, -(-(int(n) - self.segment_samples) // self.hop))
            tracks.append(np.full(count, row, dtype=np.int64))
            starts.append(np.arange(count, dtype=np.int64) * self.hop)
        self.track_index = np.concatenate(tracks)
        self.starts = np.concatenate(starts)

    def __len__(self) -> int:
        return len(self.starts)

    def __getitem__(self, index: int) -> dict:
        row, start = int(self.track_index[index]), int(self.starts[index])
        seg = self.segment_samples
        stems = np.stack([self.reader.read_padded(row, s, start, seg) for s in self.stems])
        return {
            "mixture": _to_channels_first(self.reader.read_padded(row, MIXTURE, start, seg)),
            "stems": _to_channels_first(stems),
            "track_index": row,
            "start": start,
            "valid_length": min(seg, int(self.reader.num_samples[row]) - start),
        }


def collate_segments(items: Sequence[dict]) -> dict:
    """Batch items of the datasets above.

    Tensors are stacked (mixture (B, C, T), stems (B, S, C, T)); ints become (B,) int64 tensors;
    anything else (names) becomes a list. Items of different lengths are an error (full tracks:
    use batch_size=1).
    """
    if not items:
        raise ValueError("cannot collate an empty batch")
    batch = {}
    for key in items[0]:
        values = [item[key] for item in items]
        if isinstance(values[0], torch.Tensor):
            shapes = {tuple(v.shape) for v in values}
            if len(shapes) > 1:
                raise ValueError(
                    f"cannot batch {key!r} of different shapes {sorted(shapes)}; use batch_size=1"
                )
            batch[key] = torch.stack(values)
        elif isinstance(values[0], (int, np.integer)):
            batch[key] = torch.tensor(values, dtype=torch.int64)
        else:
            batch[key] = values
    return batch
