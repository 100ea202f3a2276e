"""MUSDB18 / MUSDB18-HQ (or any tree laid out like them) as a ``datasets`` builder with composed stems.

Source tree (a local root you downloaded yourself)::

    ROOT/train/<track>.stem.mp4          MUSDB18: MP4 with 5 AAC streams, read with ffmpeg
                                         (0 mixture, 1 drums, 2 bass, 3 other, 4 vocals)
    ROOT/train/<track>/{mixture,drums,bass,other,vocals}.wav   MUSDB18-HQ, read with soundfile
    ROOT/test/<track>...                 test split (50 tracks in MUSDB18)
    ROOT/validation/<track>...           optional, for trees other than MUSDB (e.g. synthetic)

Split rule (one rule for every tree): ``test/`` -> test; ``validation/`` -> validation; a track in
``train/`` goes to validation when its name is in ``validation_tracks`` (default: musdb's official
14 names, giving the 86 / 14 / 50 split) and to train otherwise. Split folders that do not exist
are simply absent from the result; a split folder that exists but yields no track is an error.

Stem sets are builder configs: ``vocals-accompaniment`` (accompaniment = drums + bass + other),
``4stems`` and any custom grouping ``{name: [source, ...]}``. Composed stems are summed once, at
materialisation. Each example has::

    name          string        track name
    mixture       (T, 2) float32  the track's mixture file (MUSDB: the mastered mixture stream)
    <stem>        (T, 2) float32  one column per stem of the set, in the set's order
    sample_rate   int32
    num_samples   int64         T

Storage: ``Array2D((None, 2), float32)`` columns, one track per Arrow record batch. Arrow keeps
them memory-mapped, and a ``(start, stop)`` window of a track is a zero-copy slice (see
``data_scripts.pipeline``), so training never decodes whole tracks; float32 keeps float WAVs and
decoded AAC exact. About 1.9 GB per stereo column per hour: the float32 samples are 1.27 GB
(44100 x 2 x 4 bytes/s) and ``Array2D`` adds an int32 list offset per frame (12 instead of 8 bytes
per frame); ``benchmarks/data_throughput.py`` measures the size per hour of each stem set.

The cache is keyed by the root, the stem set, the validation list and a signature of the source
files (names, sizes, modification times), so a changed tree is re-materialised; ``datasets``
writes into an ``.incomplete`` folder and renames it only when every split is complete, so an
error mid-way leaves nothing half-written.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import warnings
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import datasets
import numpy as np
import soundfile as sf

from data_scripts.fileio import (
    clean_stale_temporaries,
    plain_name_problem,
    publish_folder,
    staging_folder,
)

MUSDB_SOURCES = ("drums", "bass", "other", "vocals")
# Stream order of the MUSDB18 STEMS (.stem.mp4) files.
STEM_MP4_STREAMS = {"mixture": 0, "drums": 1, "bass": 2, "other": 3, "vocals": 4}
STEM_MP4_SUFFIX = ".stem.mp4"
MIXTURE = "mixture"
#: Audio channels of every stored column, `(T, CHANNELS)`: the datasets are stereo (MUSDB18 is), and
#: the training pipeline (`data_scripts.pipeline`) reads them as such.
CHANNELS = 2
#: The per-track columns of a stem dataset beside its audio (mixture and stems): the one list of
#: column names that are not stems.
TRACK_COLUMNS = ("name", "sample_rate", "num_samples")
SPLITS = ("train", "validation", "test")

# The official MUSDB18 validation subset of the train folder (musdb 0.4.3, configs/mus.yaml).
MUSDB18_VALIDATION_TRACKS = (
    "Actions - One Minute Smile",
    "Clara Berry And Wooldog - Waltz For My Victims",
    "Johnny Lokke - Promises & Lies",
    "Patrick Talbot - A Reason To Leave",
    "Triviul - Angelsaint",
    "Alexander Ross - Goodbye Bolero",
    "Fergessen - Nos Palpitants",
    "Leaf - Summerghost",
    "Skelpolu - Human Mistakes",
    "Young Griffo - Pennies",
    "ANiMAL - Rockshow",
    "James May - On The Line",
    "Meaxic - Take A Step",
    "Traffic Experiment - Sirens",
)

STEM_SETS: dict[str, dict[str, list[str]]] = {
    "vocals-accompaniment": {"vocals": ["vocals"], "accompaniment": ["drums", "bass", "other"]},
    "4stems": {"vocals": ["vocals"], "drums": ["drums"], "bass": ["bass"], "other": ["other"]},
}

# Residual (mixture - sum of sources) above this, relative to the mixture RMS, gets a warning.
# MUSDB18's AAC streams sit at about -32 dB; a wrong stem or gain shows up far above -25 dB.
DEFAULT_MIXTURE_TOLERANCE_DB = -25.0


class StemDatasetError(ValueError):
    """A problem with the source tree or the stem set; the message names the file or field."""


def resolve_stem_set(
    stem_set: str | Mapping[str, Sequence[str]],
) -> tuple[str, dict[str, list[str]]]:
    """Name and grouping of a stem set.

    Args:
        stem_set: a preset name (``"vocals-accompaniment"``, ``"4stems"``) or a grouping
            ``{stem: [source, ...]}``. A grouping equal to a preset takes the preset's name;
            others are named by their stems joined with ``-`` (e.g. ``"vocals-rhythm-other"``).

    Returns:
        (name, {stem: [sources]}) with the user's stem order kept.
    """
    if isinstance(stem_set, str):
        if stem_set not in STEM_SETS:
            raise StemDatasetError(
                f"unknown stem set {stem_set!r}; presets are {sorted(STEM_SETS)}, or pass a "
                "grouping such as {'vocals': ['vocals'], 'rhythm': ['drums', 'bass']}"
            )
        return stem_set, {k: list(v) for k, v in STEM_SETS[stem_set].items()}
    if not isinstance(stem_set, Mapping) or not stem_set:
        raise StemDatasetError(
            f"stem set must be a preset name or a non-empty dict, got {stem_set!r}"
        )
    grouping = {}
    for stem, sources in stem_set.items():
        problem = plain_name_problem(stem, max_length=64)
        if problem is not None:  # stem names become column, file and cache-folder names
            raise StemDatasetError(f"stem set: stem name {problem} (a plain name is needed)")
        if isinstance(sources, str):
            raise StemDatasetError(
                f"stem {stem!r}: sources must be a list of names, got {sources!r}"
            )
        if not stem or stem in (MIXTURE, *TRACK_COLUMNS) or not sources:
            raise StemDatasetError(f"invalid stem {stem!r} -> {sources!r} in the grouping")
        if len(set(sources)) != len(sources):
            raise StemDatasetError(f"stem {stem!r} lists a source twice: {list(sources)}")
        for source in sources:
            if plain_name_problem(source, max_length=64) is not None:
                raise StemDatasetError(f"stem {stem!r}: source {source!r} is not a plain name")
        grouping[str(stem)] = [str(s) for s in sources]
    for name, preset in STEM_SETS.items():
        if preset == grouping:
            return name, grouping
    name = "-".join(grouping)
    # A custom grouping never takes a preset's name (the Hub config name must mean one thing).
    return (f"{name}-custom" if name in STEM_SETS else name), grouping


def _unique_keys(pairs: list[tuple[str, object]]) -> dict:
    keys = [key for key, _ in pairs]
    duplicates = sorted({key for key in keys if keys.count(key) > 1})
    if duplicates:
        raise StemDatasetError(f"--stem-set: stem name(s) {duplicates} given more than once")
    return dict(pairs)


def parse_stem_set(text: str) -> str | dict[str, list[str]]:
    """The one `--stem-set` grammar of the commands: a preset name, ``"vocals=vocals,rhythm=drums+bass"``
    or a JSON object ``{"vocals": ["vocals"], ...}``. A stem named twice is an error (never "the
    last one wins"); the grouping is validated with :func:`resolve_stem_set`."""
    text = text.strip()
    if text in STEM_SETS:
        return text
    if text.startswith("{"):
        try:
            grouping = json.loads(text, object_pairs_hook=_unique_keys)
        except json.JSONDecodeError as err:
            raise StemDatasetError(f"--stem-set: invalid JSON {text!r}: {err}") from err
    elif "=" in text:
        pairs = []
        for part in text.split(","):
            stem, _, sources = part.partition("=")
            if not stem.strip() or not sources.strip():
                raise StemDatasetError(f"--stem-set: expected name=src+src, got {part!r}")
            pairs.append((stem.strip(), [s.strip() for s in sources.split("+")]))
        grouping = _unique_keys(pairs)
    else:
        return text  # an unknown preset name: resolve_stem_set names the presets in its error
    resolve_stem_set(grouping)
    return grouping


def stem_set_for(stems: Sequence[str]) -> str | dict[str, list[str]]:
    """The stem set that provides references for these stems: a preset (:data:`STEM_SETS`) with
    exactly these stems, else a ``{stem: [sources]}`` grouping of the presets' stems."""
    for name, grouping in STEM_SETS.items():
        if sorted(grouping) == sorted(stems):
            return name
    known = {
        stem: list(sources) for grouping in STEM_SETS.values() for stem, sources in grouping.items()
    }
    unknown = [stem for stem in stems if stem not in known]
    if unknown:
        raise StemDatasetError(
            f"stems {unknown} are not MUSDB18 stems ({sorted(known)}); pass the stem "
            'set explicitly (--stem-set \'{"name": ["drums", ...]}\')'
        )
    return {stem: known[stem] for stem in stems}


@dataclass
class StemSetConfig(datasets.BuilderConfig):
    """Builder config of one stem set.

    Args:
        stems: {stem: [sources]} grouping (see :func:`resolve_stem_set`).
        sources: the stem files every track must have besides the mixture (``<source>.wav`` in a
            track folder); MUSDB18's four by default. A track missing one, or carrying another
            ``.wav``, is an error.
        validation_tracks: names in ``train/`` that form the validation split.
        mixture_tolerance_db: warn when mixture - sum(sources) exceeds this (dB re mixture RMS).
        source_signature: fingerprint of the source files (set by :func:`load_stem_dataset`) so
            the cache follows changes of the tree.
        only_splits: build only these splits (None: all); the others are not even validated.
        skip_tracks: track names left out (broken tracks reported by :func:`load_stem_split`).
        check_finite: refuse NaN/inf samples at materialisation (evaluation stores them and
            reports the track itself).
    """

    stems: dict = field(default_factory=dict)
    sources: tuple = MUSDB_SOURCES
    validation_tracks: tuple = MUSDB18_VALIDATION_TRACKS
    mixture_tolerance_db: float = DEFAULT_MIXTURE_TOLERANCE_DB
    source_signature: str | None = None
    only_splits: tuple | None = None
    skip_tracks: tuple = ()
    check_finite: bool = True


@dataclass(frozen=True)
class TrackSource:
    """Where one track's audio lives: a folder of wavs or a .stem.mp4 file."""

    name: str
    path: Path
    is_stem_mp4: bool


def _track_name(path: Path) -> str:
    return path.name[: -len(STEM_MP4_SUFFIX)] if path.name.endswith(STEM_MP4_SUFFIX) else path.name


def find_tracks(root: Path) -> dict[str, list[TrackSource]]:
    """Tracks per split folder (``train``, ``validation``, ``test``) present under ``root``.

    Returns:
        {folder: [TrackSource sorted by name]} for each split folder that exists.
    """
    found = {}
    for folder in SPLITS:
        d = root / folder
        if not d.is_dir():
            continue
        tracks = []
        for p in sorted(d.iterdir()):
            if p.name.startswith("."):
                continue  # temp folders of writers (e.g. the synthetic generator) and dotfiles
            if p.is_dir():
                tracks.append(TrackSource(p.name, p, False))
            elif p.name.endswith(STEM_MP4_SUFFIX):
                tracks.append(TrackSource(_track_name(p), p, True))
        found[folder] = tracks
    return found


def assign_splits(
    root: Path, validation_tracks: Sequence[str] = MUSDB18_VALIDATION_TRACKS
) -> dict[str, list[TrackSource]]:
    """Apply the split rule (module docstring) to the tree under ``root``.

    Raises:
        StemDatasetError: missing root, no tracks at all, a split folder with no tracks, or the
            same track name twice in one split.
    """
    root = Path(root)
    if not root.is_dir():
        raise StemDatasetError(f"dataset root {str(root)!r} does not exist or is not a folder")
    found = find_tracks(root)
    if not found:
        raise StemDatasetError(
            f"no split folder under {str(root)!r}: expected train/ (and test/, optionally "
            "validation/) holding <track>.stem.mp4 files or <track>/ folders of wavs"
        )
    valid = set(validation_tracks)
    splits: dict[str, list[TrackSource]] = {}
    for folder, tracks in found.items():
        if not tracks:
            raise StemDatasetError(f"empty split: {str(root / folder)!r} holds no tracks")
        if folder == "train":
            splits.setdefault("train", []).extend(t for t in tracks if t.name not in valid)
            splits.setdefault("validation", []).extend(t for t in tracks if t.name in valid)
        else:
            splits.setdefault(folder, []).extend(tracks)
    if "train" in splits and not splits["train"]:
        raise StemDatasetError(
            f"empty split: every track of {str(root / 'train')!r} is a validation track"
        )
    out = {}
    for split in SPLITS:
        tracks = sorted(splits.get(split, []), key=lambda t: t.name)
        names = [t.name for t in tracks]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise StemDatasetError(
                f"split {split!r}: track {dupes[0]!r} appears twice under {root}"
            )
        if tracks:
            out[split] = tracks
    return out


def source_signature(splits: Mapping[str, Sequence[TrackSource]]) -> str:
    """Hash of every source file's relative name, size and mtime (cache key of the tree)."""
    h = hashlib.sha256()
    for split in sorted(splits):
        for track in splits[split]:
            files = [track.path] if track.is_stem_mp4 else sorted(track.path.glob("*.wav"))
            for f in files:
                st = f.stat()
                h.update(f"{split}/{track.name}/{f.name}:{st.st_size}:{st.st_mtime_ns}\n".encode())
    return h.hexdigest()[:16]


def check_track_files(track: TrackSource, sources: Sequence[str]) -> dict:
    """Validate one track's files without decoding them.

    Returns:
        {"sample_rate": int, "num_samples": int | None} (None for .stem.mp4 whose exact length
        is only known after decoding).

    Raises:
        StemDatasetError naming the track and the problem (missing / extra stem file, mono,
        different sample rates or lengths).
    """
    if track.is_stem_mp4:
        unknown = sorted(set(sources) - set(STEM_MP4_STREAMS))
        if unknown:
            raise StemDatasetError(
                f"track {track.name!r}: .stem.mp4 files carry {list(STEM_MP4_STREAMS)[1:]}; "
                f"cannot read source(s) {unknown}"
            )
        streams = _probe_mp4(track)
        if len(streams) < len(STEM_MP4_STREAMS):
            raise StemDatasetError(
                f"track {track.name!r}: {track.path} has {len(streams)} audio streams, expected "
                f"{len(STEM_MP4_STREAMS)} (mixture, drums, bass, other, vocals)"
            )
        infos = {
            name: (int(streams[i]["sample_rate"]), int(streams[i]["channels"]))
            for name, i in STEM_MP4_STREAMS.items()
        }
        lengths = {}
    else:
        wavs = {p.stem: p for p in track.path.glob("*.wav")}
        expected = {MIXTURE, *sources}
        missing = sorted(expected - set(wavs))
        if missing:
            raise StemDatasetError(
                f"track {track.name!r}: missing stem file(s) {[m + '.wav' for m in missing]} in {track.path}"
            )
        extra = sorted(set(wavs) - expected)
        if extra:
            raise StemDatasetError(
                f"track {track.name!r}: unexpected stem file(s) {[e + '.wav' for e in extra]} in "
                f"{track.path}; expected {sorted(m + '.wav' for m in expected)} (set `sources` to "
                "read other stems)"
            )
        infos, lengths = {}, {}
        for name in sorted(expected):
            try:
                info = sf.info(str(wavs[name]))
            except (sf.LibsndfileError, RuntimeError) as err:
                raise StemDatasetError(
                    f"track {track.name!r}: cannot read {wavs[name]}: {err}"
                ) from err
            infos[name] = (info.samplerate, info.channels)
            lengths[name] = info.frames
    rates = {n: sr for n, (sr, _) in infos.items()}
    for name, (_, channels) in infos.items():
        if channels != 2:
            kind = "mono" if channels == 1 else f"{channels}-channel"
            raise StemDatasetError(
                f"track {track.name!r}: stem {name!r} is {kind}; stems must be stereo"
            )
    if len(set(rates.values())) > 1:
        raise StemDatasetError(f"track {track.name!r}: stems have different sample rates {rates}")
    if len(set(lengths.values())) > 1:
        raise StemDatasetError(
            f"track {track.name!r}: stems have different lengths (samples) {lengths}"
        )
    return {
        "sample_rate": next(iter(rates.values())),
        "num_samples": next(iter(lengths.values())) if lengths else None,
    }


def _probe_mp4(track: TrackSource) -> list[dict]:
    if shutil.which("ffprobe") is None:
        raise StemDatasetError(
            f"track {track.name!r}: reading .stem.mp4 needs ffprobe/ffmpeg on PATH"
        )
    proc = subprocess.run(
        ["ffprobe", "-v", "error", "-select_streams", "a", "-show_entries",
         "stream=index,sample_rate,channels", "-of", "json", str(track.path)],
        capture_output=True, text=True,
    )  # fmt: skip
    if proc.returncode != 0:
        raise StemDatasetError(
            f"track {track.name!r}: ffprobe failed on {track.path}: {proc.stderr.strip()}"
        )
    return json.loads(proc.stdout)["streams"]


def decode_stem_mp4(path: Path, stream: int) -> np.ndarray:
    """Decode audio stream ``stream`` of an MP4 with ffmpeg -> float32 (T, C) at its native rate.

    Decoded to 16-bit PCM and scaled by 1/32768, exactly as the ``musdb`` package (stempeg)
    does, so the stored audio is bit-identical to ``musdb``'s ``track.audio`` and museval's
    published scores are reproduced. (Float decoding would differ by < 2^-15, but AAC output is
    band-limited, and BSSEval's SIR/ISR/SAR projections are ill-conditioned on such references
    without the 16-bit quantisation noise.)
    """
    proc = subprocess.run(
        ["ffmpeg", "-v", "error", "-nostdin", "-i", str(path), "-map", f"0:a:{stream}",
         "-f", "s16le", "-c:a", "pcm_s16le", "-"],
        capture_output=True,
    )  # fmt: skip
    if proc.returncode != 0:
        raise StemDatasetError(
            f"ffmpeg failed on {path} stream {stream}: {proc.stderr.decode().strip()}"
        )
    pcm = np.frombuffer(proc.stdout, dtype=np.int16).reshape(-1, 2)
    return pcm.astype(np.float32) * np.float32(1 / 32768)


def read_track(track: TrackSource, sources: Sequence[str]) -> dict[str, np.ndarray]:
    """Decode the mixture and ``sources`` of one track.

    Returns:
        {"mixture", *sources} -> float32 (T, 2), all the same T.
    """
    names = [MIXTURE, *sources]
    if track.is_stem_mp4:
        # One ffmpeg per stream, run side by side (each is single-threaded AAC decoding).
        with ThreadPoolExecutor(len(names)) as pool:
            decoded = pool.map(lambda n: decode_stem_mp4(track.path, STEM_MP4_STREAMS[n]), names)
            audio = dict(zip(names, decoded))
    else:
        audio = {
            n: sf.read(str(track.path / f"{n}.wav"), dtype="float32", always_2d=True)[0]
            for n in names
        }
    lengths = {n: a.shape[0] for n, a in audio.items()}
    if len(set(lengths.values())) > 1:
        raise StemDatasetError(
            f"track {track.name!r}: stems have different lengths (samples) {lengths}"
        )
    return audio


def check_finite_audio(track: TrackSource, audio: Mapping[str, np.ndarray]) -> None:
    """Raise :class:`StemDatasetError` naming the track and its file (or stream) if any decoded
    mixture or source holds NaN or infinite samples: they would poison training silently."""
    for name, samples in audio.items():
        finite = np.isfinite(samples)
        if not finite.all():
            where = track.path if track.is_stem_mp4 else track.path / f"{name}.wav"
            raise StemDatasetError(
                f"track {track.name!r}: {name} ({where}) holds {int((~finite).sum())} NaN or "
                "infinite sample(s)"
            )


def mixture_residual_db(mixture: np.ndarray, sources: Sequence[np.ndarray]) -> float:
    """RMS of mixture - sum(sources) in dB relative to the mixture RMS (-inf when exact).

    mixture: (T, C); sources: each (T, C).
    """
    total = np.zeros(mixture.shape, dtype=np.float64)
    for s in sources:
        total += s
    residual = np.sqrt(np.mean((mixture - total) ** 2))
    reference = np.sqrt(np.mean(mixture.astype(np.float64) ** 2))
    if residual == 0:
        return float("-inf")
    return float(20 * np.log10(residual / max(reference, 1e-12)))


def stem_columns(dataset: datasets.Dataset) -> list[str]:
    """The stem columns of a stem dataset, in column order (every (T, 2) column but mixture)."""
    return [
        name
        for name, feature in dataset.features.items()
        if name not in (MIXTURE, *TRACK_COLUMNS) and isinstance(feature, datasets.Array2D)
    ]


def stem_features(stems: Sequence[str]) -> datasets.Features:
    """Columns of a stem set: name, mixture, one (T, 2) float32 column per stem, rate, length."""
    audio = datasets.Array2D(shape=(None, CHANNELS), dtype="float32")
    return datasets.Features(
        {
            "name": datasets.Value("string"),
            MIXTURE: audio,
            **{stem: audio for stem in stems},
            "sample_rate": datasets.Value("int32"),
            "num_samples": datasets.Value("int64"),
        }
    )


class MusdbStems(datasets.GeneratorBasedBuilder):
    """MUSDB18 / MUSDB18-HQ-layout stems builder (see the module docstring).

    Used directly (no loading script)::

        builder = MusdbStems(cache_dir=..., config_name="4stems", data_dir="/data/musdb18hq")
        builder.download_and_prepare()
        dsd = builder.as_dataset()

    Prefer :func:`load_stem_dataset`, which validates the tree first and keys the cache on it.
    """

    BUILDER_CONFIG_CLASS = StemSetConfig
    BUILDER_CONFIGS = [
        StemSetConfig(name=name, stems=grouping, description=f"MUSDB stems grouped as {grouping}")
        for name, grouping in STEM_SETS.items()
    ]
    DEFAULT_CONFIG_NAME = "vocals-accompaniment"
    # One track per record batch: tracks are large, and a batch per track keeps slicing simple.
    DEFAULT_WRITER_BATCH_SIZE = 1

    def _info(self) -> datasets.DatasetInfo:
        return datasets.DatasetInfo(
            description="Music stems (MUSDB18 / MUSDB18-HQ layout) grouped into a stem set.",
            features=stem_features(list(self.config.stems)),
            homepage="https://sigsep.github.io/datasets/musdb.html",
            license="MUSDB18: academic / non-commercial use only",
        )

    def _check_config(self) -> dict[str, list[TrackSource]]:
        cfg = self.config
        if not cfg.data_dir:
            raise StemDatasetError("data_dir (the dataset root) is required")
        _, grouping = resolve_stem_set(cfg.stems)
        for stem, srcs in grouping.items():
            unknown = [s for s in srcs if s not in cfg.sources]
            if unknown:
                raise StemDatasetError(
                    f"stem {stem!r} uses unknown source(s) {unknown}; available sources: {list(cfg.sources)}"
                )
        return assign_splits(Path(cfg.data_dir), cfg.validation_tracks)

    def _split_generators(self, dl_manager):
        splits = self._check_config()
        wanted, skipped = self.config.only_splits, set(self.config.skip_tracks)
        # Validate every file before writing anything, so bad input fails fast and clean.
        checked = {
            split: [
                (track, check_track_files(track, self.config.sources))
                for track in tracks
                if track.name not in skipped
            ]
            for split, tracks in splits.items()
            if wanted is None or split in wanted
        }
        return [
            datasets.SplitGenerator(name=split, gen_kwargs={"tracks": tracks})
            for split, tracks in checked.items()
        ]

    def _generate_examples(self, tracks: Sequence[tuple[TrackSource, dict]]):
        """tracks: (track, check_track_files info) pairs of one split."""
        cfg = self.config
        for track, info in tracks:
            audio = read_track(track, cfg.sources)
            if cfg.check_finite:
                check_finite_audio(track, audio)
            mixture = audio[MIXTURE]
            residual = mixture_residual_db(mixture, [audio[s] for s in cfg.sources])
            if residual > cfg.mixture_tolerance_db:
                warnings.warn(
                    f"track {track.name!r}: mixture differs from the sum of {list(cfg.sources)} by "
                    f"{residual:.1f} dB (re mixture RMS; tolerance {cfg.mixture_tolerance_db} dB)",
                    stacklevel=2,
                )
            example = {"name": track.name, MIXTURE: mixture}
            for stem, srcs in cfg.stems.items():
                total = audio[srcs[0]].copy()
                for s in srcs[1:]:
                    total += audio[s]
                example[stem] = total
            example["sample_rate"] = info["sample_rate"]
            example["num_samples"] = mixture.shape[0]
            yield track.name, example


def _require_split(tree: Mapping[str, object], split: str, root: Path) -> None:
    """Raise `StemDatasetError` when `split` has no track in `tree` (`assign_splits`), saying how
    folders map to splits and which splits do have tracks."""
    if split not in tree:
        raise StemDatasetError(
            f"empty split {split!r} under {str(root)!r} (test/ -> test, validation/ or "
            "train/ tracks named in validation_tracks -> validation, other train/ -> train); "
            f"splits with tracks: {[s for s in SPLITS if s in tree]}"
        )


def load_stem_dataset(
    root: str | os.PathLike,
    stem_set: str | Mapping[str, Sequence[str]] = "vocals-accompaniment",
    cache_dir: str | os.PathLike | None = None,
    *,
    splits: Sequence[str] | None = None,
    sources: Sequence[str] = MUSDB_SOURCES,
    validation_tracks: Sequence[str] = MUSDB18_VALIDATION_TRACKS,
    mixture_tolerance_db: float = DEFAULT_MIXTURE_TOLERANCE_DB,
    num_proc: int | None = None,
    **builder_options,
) -> datasets.DatasetDict:
    """Materialise (once, cached) and load a stem set of a MUSDB-layout tree.

    Args:
        root: dataset root (see the module docstring for the layout and the split rule).
        stem_set: preset name or ``{stem: [sources]}`` grouping.
        cache_dir: ``datasets`` cache folder (default: the ``datasets`` cache).
        splits: splits that must be present and non-empty; None returns every split the tree has.
        sources: stem files each track carries besides the mixture.
        validation_tracks: names in ``train/`` forming the validation split (default: MUSDB18's).
        mixture_tolerance_db: warning threshold of the mixture ≈ sum-of-sources check.
        num_proc: processes for materialisation (tracks are spread over them).
        builder_options: further :class:`StemSetConfig` fields (``only_splits``, ...).

    Returns:
        DatasetDict of the splits, each with the columns of :func:`stem_features`, numpy format
        not set (use ``data_scripts.pipeline`` for training slices).

    Raises:
        StemDatasetError: any problem with the tree or the stem set, naming the track/field.

    With several processes (Accelerate), call it inside ``accelerator.main_process_first()`` so
    one process materialises and the others read the finished cache.
    """
    root = Path(root).expanduser().resolve()
    name, grouping = resolve_stem_set(stem_set)
    sources = tuple(sources)
    unknown = sorted({s for srcs in grouping.values() for s in srcs} - set(sources))
    if unknown:
        raise StemDatasetError(
            f"stem set {name!r} uses unknown source(s) {unknown}; available sources: {list(sources)}"
        )
    tree = assign_splits(root, validation_tracks)
    if builder_options.get("only_splits"):
        tree = {s: t for s, t in tree.items() if s in builder_options["only_splits"]}
    for split in splits or ():
        if split not in SPLITS:
            raise StemDatasetError(f"unknown split {split!r}; splits are {list(SPLITS)}")
        _require_split(tree, split, root)
    config_kwargs = dict(
        name=name,
        stems=grouping,
        sources=sources,
        validation_tracks=tuple(validation_tracks),
        mixture_tolerance_db=float(mixture_tolerance_db),
        source_signature=source_signature(tree),
        **builder_options,
    )
    if name in STEM_SETS:
        config_kwargs.pop("name")
        builder_args = {"config_name": name}
    else:
        # A custom grouping: the default config, copied, with its name and stems replaced.
        builder_args = {}
    builder = MusdbStems(
        cache_dir=None if cache_dir is None else str(cache_dir),
        data_dir=str(root),
        **builder_args,
        **config_kwargs,
    )
    if cache_dir is not None:  # the config name is part of the cache path: it must stay inside
        inside = Path(builder.cache_dir).resolve()
        if not inside.is_relative_to(Path(cache_dir).expanduser().resolve()):
            raise StemDatasetError(f"stem set {name!r}: its cache folder leaves {cache_dir}")
    try:
        builder.download_and_prepare(num_proc=num_proc)
    except datasets.exceptions.DatasetGenerationError as err:
        # datasets wraps errors raised while writing; ours already name the track and problem.
        if isinstance(err.__cause__, StemDatasetError):
            raise err.__cause__ from None
        raise
    dsd = builder.as_dataset()
    if splits is not None:
        dsd = datasets.DatasetDict({s: dsd[s] for s in splits})
    return dsd


def load_stem_split(
    root: str | os.PathLike,
    stem_set: str | Mapping[str, Sequence[str]],
    split: str,
    cache_dir: str | os.PathLike | None = None,
    *,
    sources: Sequence[str] = MUSDB_SOURCES,
    validation_tracks: Sequence[str] = MUSDB18_VALIDATION_TRACKS,
) -> tuple[datasets.Dataset, dict[str, str]]:
    """One split for evaluation: only that split is validated and materialised, and its broken
    tracks are left out and reported instead of failing the whole split.

    Tracks whose files fail :func:`check_track_files` (a missing or extra stem, mono, mismatched
    rates or lengths, unreadable) are broken; NaN/inf samples are stored, for the evaluation to
    report the track.

    Returns:
        ``(dataset, broken)``: the split's good tracks, and ``{track name: problem}``.

    Raises:
        StemDatasetError: no such split, a bad stem set, or no good track at all.
    """
    root = Path(root).expanduser().resolve()
    if split not in SPLITS:
        raise StemDatasetError(f"unknown split {split!r}; splits are {list(SPLITS)}")
    tree = assign_splits(root, validation_tracks)
    _require_split(tree, split, root)
    broken = {}
    for track in tree[split]:
        try:
            check_track_files(track, sources)
        except StemDatasetError as error:
            broken[track.name] = str(error)
    if len(broken) == len(tree[split]):
        raise StemDatasetError(
            f"every track of split {split!r} under {str(root)!r} is broken; first: "
            f"{next(iter(broken.values()))}"
        )
    dsd = load_stem_dataset(
        root,
        stem_set,
        cache_dir,
        splits=[split],
        sources=sources,
        validation_tracks=validation_tracks,
        only_splits=(split,),
        skip_tracks=tuple(sorted(broken)),
        check_finite=False,
    )
    return dsd[split], broken


def save_stem_dataset(dsd: datasets.DatasetDict, path: str | os.PathLike) -> Path:
    """``save_to_disk`` into a hidden staging folder beside ``path``, then swap it in as one unit
    (:func:`data_scripts.fileio.publish_folder`): ``path`` is never half-written, and an existing
    ``path`` is replaced only once the new copy is complete."""
    path = Path(path).expanduser().resolve()
    clean_stale_temporaries(path.parent)
    staging = staging_folder(path.parent)
    try:
        dsd.save_to_disk(str(staging))
        publish_folder(staging, path)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return path
