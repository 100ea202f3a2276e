"""Multitrack songs rendered from MIDI through SoundFont instruments, produced, in the MUSDB18-HQ layout.

MIDI comes from a folder of ``.mid`` files (e.g. a Lakh MIDI copy, read with ``pretty_midi``) or
from the project's composer (:mod:`data_scripts.composer`). Every instrument of a song is rendered
on its own by FluidSynth (``pyfluidsynth``; General MIDI SoundFonts such as Debian's
``fluid-soundfont-gm`` FluidR3_GM.sf2 and ``timgm6mb-soundfont`` TimGM6mb.sf2, or any .sf2/.sf3),
with humanised timing and velocity, then produced (:mod:`data_scripts.production`: EQ, compression,
drive, chorus, panning, level automation per instrument; a per-song room as reverb sends; a master
bus compressor and limiter as one gain on every stem) and summed into stems by a stem mapping:

* ``drums``: the MIDI drum channel (role ``drums``), played by the song's SoundFont's drum kit, or,
  with ``drum_soundfonts``, by a kit drawn per song from that one and the drum-kit SoundFonts
  (e.g. Debian's ``avldrums.lv2-soundfont``: Black Pearl and Red Zeppelin, multi-sampled
  acoustic kits, General MIDI note layout);
* ``vocals``: the lead vocal line (role ``vocals``: an instrument whose name says vocal / voice /
  vox / sing / lyric, like the composer's ``vocals`` and ``vocals harmony``), sung by a vocal engine
  of :mod:`data_scripts.vocals`;
* every other instrument by its General MIDI program family (:data:`production.FAMILIES`, e.g.
  ``bass`` -> bass, ``guitar`` -> other). Change it with ``mapping={"synth_lead": "vocals"}``.

``mixture.wav`` is the exact float32 sum of the four stems. A stem with no instrument in a song is
silence (with the recording noise floor every stem has) and is said in that song's manifest.

Layout (like :mod:`data_scripts.synthetic`)::

    ROOT/{train,validation,test}/<name>/{mixture,drums,bass,other,vocals}.wav + manifest.json
    ROOT/render_manifest.json      the spec, the tracks, the skipped inputs

:func:`ensure_rendered_dataset` is idempotent and resumable: a song folder is written under a
temporary name and renamed; its ``manifest.json`` (written last) records the spec it was rendered
with, so a killed run re-renders only what is missing, and a changed spec re-renders everything.
Songs render in ``workers`` processes (each loads its SoundFonts once).
"""

from __future__ import annotations

import ctypes
import hashlib
import json
import os
import re
import shutil
import zlib
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass, field
from multiprocessing import get_context
from pathlib import Path

import numpy as np
import soundfile as sf

from data_scripts import production
from data_scripts.fileio import (
    clean_stale_temporaries,
    publish_folder,
    safe_name,
    staging_folder,
    write_text_atomic,
)
from data_scripts.synthetic import SOURCES, SPLIT_IDS, plot_song

SAMPLE_RATE = 44100
MANIFEST_NAME = "render_manifest.json"
SONG_MANIFEST = "manifest.json"
MANIFEST_VERSION = 1
ROLES = ("drums", "vocals")
#: Default stem of each role / General MIDI family; anything not listed goes to "other".
DEFAULT_MAPPING = {"drums": "drums", "vocals": "vocals", "bass": "bass"}
DEFAULT_SOUNDFONT_DIRS = ("/usr/share/sounds/sf2", "/usr/share/sounds/sf3", "/usr/share/soundfonts")
#: The Debian/Ubuntu package of each General MIDI SoundFont the project names (configs, tests,
#: benchmarks), for the error that says one is missing.
SOUNDFONT_PACKAGES = {
    "FluidR3_GM.sf2": "fluid-soundfont-gm",
    "TimGM6mb.sf2": "timgm6mb-soundfont",
    "sf_GMbank.sf2": "csound-soundfont",
    "MuseScore_General_Lite.sf3": "musescore-general-soundfont-small",
    "Black_Pearl_4_LV2.sf2": "avldrums.lv2-soundfont",
    "Red_Zeppelin_4_LV2.sf2": "avldrums.lv2-soundfont",
}
_VOCAL_NAME = re.compile(r"vocal|voice|vox|sing|lyric|chant", re.IGNORECASE)
# Target loudness per stem (dBFS RMS over its active part): (mean, spread), as the synthetic set.
_LEVELS = {
    "drums": (-19.0, 3.0),
    "bass": (-21.0, 3.0),
    "other": (-21.0, 3.5),
    "vocals": (-18.0, 3.0),
}


class RenderError(ValueError):
    """Bad input for the whole batch (a missing SoundFont, a bad mapping): one line naming it."""


class SongSkipped(ValueError):
    """One input cannot be rendered (corrupt or empty MIDI): the batch goes on without it."""


# --------------------------------------------------------------------------------------------------
# Stem mapping
# --------------------------------------------------------------------------------------------------
def resolve_mapping(overrides: dict[str, str] | None = None) -> dict[str, str]:
    """The full role/family -> stem mapping: defaults, then ``overrides``.

    Raises:
        RenderError: an unknown role or family, a target that is not a stem, or a mapping that
            sends nothing to some stem (it would be empty in every song).
    """
    keys = (*ROLES, *production.FAMILIES)
    mapping = {k: DEFAULT_MAPPING.get(k, "other") for k in keys}
    for key, stem in (overrides or {}).items():
        if key not in mapping:
            raise RenderError(f"stem mapping: unknown program family {key!r}; known: {list(keys)}")
        if stem not in SOURCES:
            raise RenderError(f"stem mapping: {key!r} -> {stem!r} is not a stem of {list(SOURCES)}")
        mapping[key] = stem
    empty = [s for s in SOURCES if s not in mapping.values()]
    if empty:
        raise RenderError(
            f"stem mapping leaves stem {empty[0]!r} empty for every song; map a family to it"
        )
    return mapping


def parse_mapping(text: str) -> dict[str, str]:
    """``"guitar=other,synth_lead=vocals"`` -> overrides (checked by :func:`resolve_mapping`)."""
    out = {}
    for part in filter(None, (p.strip() for p in text.split(","))):
        key, sep, stem = part.partition("=")
        if not sep or not key.strip() or not stem.strip():
            raise RenderError(f"stem mapping: expected family=stem, got {part!r}")
        out[key.strip()] = stem.strip()
    resolve_mapping(out)
    return out


def role_of(instrument) -> str:
    """ "drums", "vocals" or the instrument's General MIDI family."""
    if instrument.is_drum:
        return "drums"
    if _VOCAL_NAME.search(instrument.name or ""):
        return "vocals"
    return production.family_of(instrument.program)


# --------------------------------------------------------------------------------------------------
# FluidSynth
# --------------------------------------------------------------------------------------------------
def find_soundfonts(names: list[str] | tuple[str, ...]) -> list[Path]:
    """Paths of SoundFonts given as paths or as names in the Debian folders (``FluidR3_GM.sf2``)."""
    out = []
    for name in names:
        path = Path(name).expanduser()
        if not path.is_file():
            for folder in DEFAULT_SOUNDFONT_DIRS:
                if (Path(folder) / name).is_file():
                    path = Path(folder) / name
                    break
        if not path.is_file():
            package = SOUNDFONT_PACKAGES.get(Path(name).name)
            hint = f"apt-get install {package}" if package else "pass a path to an .sf2/.sf3"
            raise RenderError(f"soundfont {name}: no such file ({hint})")
        out.append(path.resolve())
    if not out:
        raise RenderError("no soundfont given")
    return out


class _FluidSynth:
    """SoundFonts loaded once per process; every part is rendered by a fresh FluidSynth instance
    that borrows them (FluidSynth carries state from one render to the next even after a reset,
    so a shared instance would make a song depend on what was rendered before it). Float output,
    FluidSynth's own reverb and chorus off (production adds the song's own)."""

    def __init__(self):
        import fluidsynth

        self.fluidsynth = fluidsynth
        lib = fluidsynth._fl
        lib.fluid_set_log_function(2, None, None)  # no FLUID_WARN chatter on stderr
        lib.fluid_synth_get_sfont_by_id.restype = ctypes.c_void_p
        lib.fluid_synth_get_sfont_by_id.argtypes = [ctypes.c_void_p, ctypes.c_int]
        lib.fluid_synth_add_sfont.argtypes = [ctypes.c_void_p, ctypes.c_void_p]
        lib.fluid_synth_remove_sfont.argtypes = [ctypes.c_void_p, ctypes.c_void_p]
        lib.fluid_sfont_get_preset.restype = ctypes.c_void_p
        lib.fluid_sfont_get_preset.argtypes = [ctypes.c_void_p, ctypes.c_int, ctypes.c_int]
        lib.fluid_synth_write_float.argtypes = [ctypes.c_void_p, ctypes.c_int] + [
            ctypes.c_void_p, ctypes.c_int, ctypes.c_int] * 2  # fmt: skip
        self.lib = lib
        self.owner = self._new_synth()
        self.fonts: dict[str, int] = {}  # path -> fluid_sfont_t pointer, owned by self.owner

    def _new_synth(self):
        return self.fluidsynth.Synth(
            gain=0.4, samplerate=float(SAMPLE_RATE), channels=16,
            **{"synth.reverb.active": 0, "synth.chorus.active": 0, "synth.polyphony": 512},
        )  # fmt: skip

    def font(self, path: Path) -> int:
        """The SoundFont at `path`, loaded once (a `fluid_sfont_t` pointer). The pointer is kept,
        not FluidSynth's id: lending the font to another synth renumbers it, so with several
        fonts an id would soon name another font, or none (a crash)."""
        key = str(path)
        if key not in self.fonts:
            sfid = self.owner.sfload(key)
            if sfid < 0:
                raise RenderError(f"soundfont {path}: FluidSynth cannot load it")
            self.fonts[key] = self.lib.fluid_synth_get_sfont_by_id(self.owner.synth, sfid)
        return self.fonts[key]

    def has_preset(self, font: Path, program: int, drum: bool) -> bool:
        """Whether `font` holds `program` (of the drum bank 128 if `drum`); a missing one is
        played as program 0 of that bank (see [`_FluidSynth.preset`])."""
        return bool(self.lib.fluid_sfont_get_preset(self.font(font), 128 if drum else 0, program))

    def preset(self, font: Path, program: int, drum: bool) -> tuple[int, int]:
        """`(bank, program)` that plays `program` (a kit of the drum bank 128 if `drum`) from
        `font`: the program itself, else program 0 of its bank, else, for a drum part of a font
        with no drum bank (a drum-kit SoundFont such as the AVL kits, whose kit is preset 0:0),
        preset 0:0. Looked up without FluidSynth's error messages."""
        bank = 128 if drum else 0
        for candidate in ((bank, program), (bank, 0), (0, 0)):
            if self.lib.fluid_sfont_get_preset(self.font(font), *candidate):
                return candidate
        raise RenderError(f"soundfont {font}: no preset to play program {program} with")

    def render(self, font: Path, notes, program: int, drum: bool, n: int, extra=()) -> np.ndarray:
        """Notes [(start_s, end_s, pitch, velocity)] on one channel -> (n, 2) float32.

        ``extra``: [(time_s, "bend" | "cc", a, b)] pitch bends and control changes."""
        sfont = self.font(font)
        synth = self._new_synth()
        try:
            sfid = self.lib.fluid_synth_add_sfont(synth.synth, sfont)
            return self._play(synth, sfid, notes, self.preset(font, program, drum), drum, n, extra)
        finally:
            self.lib.fluid_synth_remove_sfont(synth.synth, sfont)  # borrowed: not freed
            synth.delete()

    def _play(self, synth, sfid: int, notes, preset: tuple[int, int], drum: bool, n: int, extra):
        chan = 9 if drum else 0
        synth.program_select(chan, sfid, *preset)
        # FluidSynth applies events at its 64-sample block boundaries: put them there explicitly.
        block = 64

        def at(seconds: float) -> int:
            return int(round(seconds * SAMPLE_RATE / block)) * block

        events = []
        for start, end, pitch, velocity in notes:
            events.append((at(start), 1, int(pitch), int(velocity)))
            events.append((at(end), 0, int(pitch), 0))
        for time, kind, a, b in extra:
            events.append((at(time), 2 if kind == "bend" else 3, int(a), int(b)))
        events.sort()
        total = -(-n // block) * block
        out = np.zeros((2, total), dtype=np.float32)
        pos = 0
        for sample, kind, a, b in events:
            sample = min(max(sample, 0), total)
            if sample > pos:
                self._write(synth, out, pos, sample)
                pos = sample
            if kind == 1:
                synth.noteon(chan, a, int(np.clip(b, 1, 127)))
            elif kind == 0:
                synth.noteoff(chan, a)
            elif kind == 2:
                synth.pitch_bend(chan, a)
            else:
                synth.cc(chan, a, b)
        if pos < total:
            self._write(synth, out, pos, total)
        return np.ascontiguousarray(out[:, :n].T)

    def _write(self, synth, out: np.ndarray, start: int, stop: int) -> None:
        left, right = out[0, start:].ctypes.data, out[1, start:].ctypes.data
        self.lib.fluid_synth_write_float(synth.synth, stop - start, left, 0, 1, right, 0, 1)


_SYNTH: _FluidSynth | None = None


def _synth() -> _FluidSynth:
    global _SYNTH
    if _SYNTH is None:
        _SYNTH = _FluidSynth()
    return _SYNTH


# --------------------------------------------------------------------------------------------------
# One song
# --------------------------------------------------------------------------------------------------
def _humanise(notes, rng: np.random.Generator, timing_s: float, velocity: float):
    out = []
    for n in notes:
        shift = float(np.clip(rng.normal(0, timing_s), -3 * timing_s, 3 * timing_s))
        vel = int(np.clip(n.velocity + rng.normal(0, velocity), 1, 127))
        out.append(
            (max(0.0, n.start + shift), max(n.start + shift + 0.02, n.end + shift), n.pitch, vel)
        )
    return out


def _lyrics_for(pm, notes, rng: np.random.Generator) -> list[str]:
    from data_scripts.composer import LYRICS

    words = sorted((ly.time, ly.text.strip().lower()) for ly in getattr(pm, "lyrics", []))
    times = np.array([t for t, _ in words]) if words else np.zeros(0)
    out = []
    for start, *_ in notes:
        if times.size:
            i = int(np.argmin(np.abs(times - start)))
            word = re.sub(r"[^a-z']", "", words[i][1])
            if abs(times[i] - start) < 0.08 and word:
                out.append(word)
                continue
        out.append(LYRICS[int(rng.integers(len(LYRICS)))])
    return out


def _level(audio: np.ndarray, stem: str, rng: np.random.Generator) -> np.ndarray:
    """Scale a stem to a random loudness around its target (RMS over its non-silent 23 ms blocks)."""
    blocks = audio[: audio.shape[0] // 1024 * 1024].reshape(-1, 2048)
    power = np.einsum("ij,ij->i", blocks, blocks) / 2048
    active = power > 1e-8
    if not active.any():
        return audio
    rms = float(np.sqrt(power[active].mean()))
    mean, spread = _LEVELS[stem]
    target = mean + rng.uniform(-spread, spread)
    return audio * np.float32(10 ** (target / 20) / max(rms, 1e-9))


def _sing(engine: str, font: Path, inst, notes, lyrics, n: int, rng) -> np.ndarray:
    from data_scripts import vocals

    if engine == "soundfont":
        program = (
            inst.program
            if inst.program in vocals.VOICE_PROGRAMS
            else int(rng.choice(vocals.VOICE_PROGRAMS))
        )
        return _synth().render(font, notes, program, False, n)
    if engine == "formant":
        mono = vocals.formant_voice(notes, n, SAMPLE_RATE, rng)
    elif engine == "speech":
        mono = vocals.speech_voice(notes, lyrics, n, SAMPLE_RATE, rng)
    else:
        raise RenderError(f"vocal engine {engine!r}: known {list(vocals.VOCAL_ENGINES)}")
    mono = mono + vocals.breaths(notes, n, SAMPLE_RATE, rng)
    return production.pan(mono, 0.0)


def render_song(
    pm,
    font: Path,
    mapping: dict[str, str],
    seconds: float | None,
    rng: np.random.Generator,
    vocal_engine: str = "soundfont",
    drum_font: Path | None = None,
) -> tuple[dict[str, np.ndarray], dict]:
    """Render and produce one ``pretty_midi.PrettyMIDI``.

    ``drum_font``: the SoundFont that plays the drum parts (default ``font``): a General MIDI
    font's drum bank, or a drum-kit font whose kit is its preset 0:0.

    Returns:
        ({drums, bass, other, vocals, mixture}: float32 (T, 2)}, info for the manifest).

    Raises:
        SongSkipped: the MIDI has no notes in the rendered span.
    """
    end = pm.get_end_time()
    if seconds is None or seconds <= 0:
        seconds = end + 1.0
    n = int(round(seconds * SAMPLE_RATE))
    instruments = [i for i in pm.instruments if any(note.start < seconds for note in i.notes)]
    if not instruments:
        raise SongSkipped("no notes to render")
    space = production.room(rng)
    stems = {s: np.zeros((n, 2), dtype=np.float32) for s in SOURCES}
    parts: dict[str, list[str]] = {s: [] for s in SOURCES}
    lead_done = False
    for inst in instruments:
        role = role_of(inst)
        stem = mapping[role]
        child = np.random.default_rng(rng.integers(2**63))
        notes = _humanise(inst.notes, child, 0.004 if inst.is_drum else 0.008, 6.0)
        if role == "vocals":
            takes = [notes]
            if not lead_done and child.random() < 0.4:  # a double-tracked lead
                takes.append(_humanise(inst.notes, child, 0.015, 8.0))
            lead_done = True
            lyrics = _lyrics_for(pm, notes, child)
            audio = np.zeros((n, 2), dtype=np.float32)
            for k, take in enumerate(takes):
                sung = _sing(vocal_engine, font, inst, take, lyrics, n, child)
                side = 0.0 if len(takes) == 1 else (-0.35 if k == 0 else 0.35)
                audio += production.pan(sung, side + child.uniform(-0.1, 0.1))
            if "harmony" in (inst.name or "").lower():
                audio *= np.float32(10 ** (child.uniform(-9, -4) / 20))
        else:
            extra = [(b.time, "bend", b.pitch, 0) for b in inst.pitch_bends]
            extra += [(c.time, "cc", c.number, c.value) for c in inst.control_changes]
            part_font = drum_font if inst.is_drum and drum_font is not None else font
            audio = _synth().render(part_font, notes, inst.program, inst.is_drum, n, extra)
            spread = {"drums": 0.1, "bass": 0.15}.get(role, 0.8)
            audio = production.pan(audio, child.uniform(-spread, spread))
        if not np.any(audio):
            continue
        chain = production.instrument_chain(role, inst.program, child)
        audio = chain(np.ascontiguousarray(audio.T), SAMPLE_RATE).T
        audio = audio * production.level_automation(n, SAMPLE_RATE, child, 3.0)[:, None]
        stems[stem] += audio.astype(np.float32)
        part = f"{inst.name or 'unnamed'} ({role}, program {inst.program}"
        if role != "vocals" and part_font != font:
            part += f", the kit of {part_font.name}"
        elif role != "vocals" and not _synth().has_preset(font, inst.program, inst.is_drum):
            part += f", missing from {font.name}: played as program 0"
        parts[stem].append(part + ")")
    info_levels = {}
    for stem in SOURCES:
        if not parts[stem]:
            continue
        stems[stem] = _level(stems[stem], stem, rng)
        send = {"drums": (-20, -10), "vocals": (-16, -8)}.get(stem, (-18, -8))
        send_db = float(rng.uniform(*send))
        if stem != "bass":  # a bass send is inaudible (and costs a reverb)
            stems[stem] += production.reverb_send(stems[stem], space, send_db, SAMPLE_RATE)
        info_levels[stem] = round(send_db, 1)
    mix = sum(stems.values())
    gain = production.bus_gain(mix, SAMPLE_RATE, rng)[:, None]
    for stem in SOURCES:
        floor_db = rng.uniform(-90.0, -78.0)  # the recording noise floor real stems have
        stems[stem] = stems[stem] * gain + rng.standard_normal((n, 2)).astype(
            np.float32
        ) * np.float32(10 ** (floor_db / 20))
    peak = float(np.abs(sum(stems.values())).max())
    scale = np.float32(min(1.0, 0.95 / peak) if peak > 0 else 1.0)
    out = {s: (stems[s] * scale).astype(np.float32) for s in SOURCES}
    mixture = np.zeros_like(out[SOURCES[0]])
    for s in SOURCES:
        mixture += out[s]
    out["mixture"] = mixture
    info = {
        "soundfont": font.name,
        "drum_soundfont": (drum_font or font).name,
        "vocal_engine": vocal_engine,
        "room": {k: (round(v, 3) if isinstance(v, float) else v) for k, v in space.items()},
        "reverb_send_db": info_levels,
        "stems": {s: {"silent": not parts[s], "instruments": parts[s]} for s in SOURCES},
    }
    return out, info


# --------------------------------------------------------------------------------------------------
# A dataset of songs
# --------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class RenderSpec:
    """What a rendered dataset is made of (its manifest; a change re-renders)."""

    num_train: int = 12
    num_validation: int = 3
    num_test: int = 1
    seconds: float | None = 10.0
    seed: int = 0
    soundfonts: tuple[str, ...] = ("FluidR3_GM.sf2",)
    drum_soundfonts: tuple[str, ...] = ()
    mapping: dict = field(default_factory=dict)
    vocal_engines: tuple[str, ...] = ("soundfont",)
    midi_dir: str | None = None
    validation_fraction: float = 0.1
    test_fraction: float = 0.1
    version: int = MANIFEST_VERSION

    def key(self) -> str:
        values = asdict(self)
        if not self.drum_soundfonts:  # the key of a spec from before the field: no re-render
            del values["drum_soundfonts"]
        return hashlib.sha256(json.dumps(values, sort_keys=True).encode()).hexdigest()[:16]


def plan_jobs(spec: RenderSpec) -> list[tuple[str, str, str]]:
    """(split, track name, source) of every song: ``composer:<index>`` or a MIDI file path."""
    if spec.midi_dir is None:
        return [
            (split, f"rendered-{split}-{i:04d}", f"composer:{i}")
            for split, count in (
                ("train", spec.num_train),
                ("validation", spec.num_validation),
                ("test", spec.num_test),
            )
            for i in range(count)
        ]
    folder = Path(spec.midi_dir)
    if not folder.is_dir():
        raise RenderError(f"MIDI folder {folder}: no such folder")
    files = sorted(
        p for p in folder.rglob("*") if p.suffix.lower() in (".mid", ".midi") and p.is_file()
    )
    if not files:
        raise RenderError(f"MIDI folder {folder}: no .mid files in it")
    jobs, seen = [], set()
    for path in files:
        rel = path.relative_to(folder)
        # The split is a hash of the file's relative name: stable when files are added.
        u = (zlib.crc32(str(rel).encode()) % 10_000) / 10_000
        split = (
            "validation"
            if u < spec.validation_fraction
            else "test"
            if u < spec.validation_fraction + spec.test_fraction
            else "train"
        )
        name = safe_name(str(rel.with_suffix("")))
        while name in seen:
            name += "_"
        seen.add(name)
        jobs.append((split, name, str(path)))
    return jobs


def _song_rng(spec: RenderSpec, split: str, source: str, stream: int = 1) -> np.random.Generator:
    """A song's random stream: 1 for everything but its drum kit, 2 for the kit draw (so that
    drawing kits changes only the kits of songs that are otherwise the same)."""
    tag = zlib.crc32(source.encode()) if not source.startswith("composer:") else int(source[9:])
    return np.random.default_rng([spec.seed, SPLIT_IDS[split], tag, stream])


def render_job(spec: RenderSpec, split: str, name: str, source: str) -> tuple[dict, dict]:
    """Render one planned song; returns (stems with mixture, manifest). Raises SongSkipped."""
    import pretty_midi

    rng = _song_rng(spec, split, source)
    if source.startswith("composer:"):
        from data_scripts.composer import compose_song

        pm, info = compose_song(spec.seed, split, int(source[9:]), spec.seconds or 30.0)
    else:
        try:
            pm = pretty_midi.PrettyMIDI(source)
        except Exception as err:  # mido/pretty_midi raise many types on corrupt files
            raise SongSkipped(f"not a readable MIDI file ({type(err).__name__}: {err})") from None
        info = {"midi": source}
    fonts = find_soundfonts(spec.soundfonts)
    font = fonts[int(rng.integers(len(fonts)))]
    engine = spec.vocal_engines[int(rng.integers(len(spec.vocal_engines)))]
    drum_font = None
    if spec.drum_soundfonts:  # the kit: the song's SoundFont's own or one of the drum fonts
        kits = [font, *find_soundfonts(spec.drum_soundfonts)]
        kit = kits[int(_song_rng(spec, split, source, stream=2).integers(len(kits)))]
        drum_font = None if kit == font else kit
    mapping = resolve_mapping(spec.mapping)
    song, render_info = render_song(pm, font, mapping, spec.seconds, rng, engine, drum_font)
    manifest = {"spec": spec.key(), "name": name, "split": split, **info, **render_info}
    return song, manifest


def song_complete(directory: Path, spec: RenderSpec) -> bool:
    try:
        manifest = json.loads((directory / SONG_MANIFEST).read_text())
        if manifest.get("spec") != spec.key():
            return False
        frames = {sf.info(str(directory / f"{s}.wav")).frames for s in (*SOURCES, "mixture")}
    except (OSError, ValueError, RuntimeError):
        return False
    return len(frames) == 1


def _work(args) -> tuple[str, str, str, dict | None, str | None]:
    """Render and write one song (in a worker): (split, name, source, manifest, skip reason)."""
    spec, root, split, name, source = args
    try:
        song, manifest = render_job(spec, split, name, source)
    except SongSkipped as err:
        return split, name, source, None, str(err)
    directory = Path(root) / split / name
    directory.parent.mkdir(parents=True, exist_ok=True)
    staging = staging_folder(directory.parent)  # the song appears whole or not at all
    try:
        for stem, audio in song.items():
            sf.write(staging / f"{stem}.wav", audio, SAMPLE_RATE, subtype="FLOAT")
        (staging / SONG_MANIFEST).write_text(json.dumps(manifest, indent=2))
        publish_folder(staging, directory)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return split, name, source, manifest, None


def ensure_rendered_dataset(
    root: str | os.PathLike,
    spec: RenderSpec | None = None,
    workers: int = 2,
    progress: bool = True,
    log=print,
) -> Path:
    """Render (or complete) a dataset of songs under ``root``; idempotent and resumable.

    Songs already complete for this spec are kept; others are rendered in ``workers`` processes.
    A MIDI file that cannot be rendered is skipped with one line naming it (``log``), and listed
    in ``render_manifest.json``; a stem silent in every song is reported the same way.

    Raises:
        RenderError: bad spec (missing SoundFont, bad mapping, unknown vocal engine, no MIDI).
    """
    from tqdm.auto import tqdm

    from data_scripts.vocals import VOCAL_ENGINES

    spec = spec or RenderSpec()
    root = Path(root)
    find_soundfonts(spec.soundfonts)
    if spec.drum_soundfonts:
        find_soundfonts(spec.drum_soundfonts)
    resolve_mapping(spec.mapping)
    for engine in spec.vocal_engines:
        if engine not in VOCAL_ENGINES:
            raise RenderError(f"vocal engine {engine!r}: known {list(VOCAL_ENGINES)}")
    manifest_path = root / MANIFEST_NAME
    jobs = plan_jobs(spec)
    if manifest_path.exists():
        try:
            old = json.loads(manifest_path.read_text())
        except ValueError:
            old = {}
        if old.get("key") == spec.key() and all(
            song_complete(root / s, spec) for s in old.get("tracks", [])
        ):
            return root
        manifest_path.unlink()
    todo = [
        (spec, str(root), *job) for job in jobs if not song_complete(root / job[0] / job[1], spec)
    ]
    for split in SPLIT_IDS:  # staging folders of a killed run (hidden names, never read)
        clean_stale_temporaries(root / split)
    results: dict[str, dict] = {}
    for split, name, _ in jobs:
        if song_complete(root / split / name, spec):
            results[f"{split}/{name}"] = json.loads(
                (root / split / name / SONG_MANIFEST).read_text()
            )
    skipped = {}
    bar = tqdm(total=len(todo), desc="rendering songs", disable=not progress, unit="song")
    if workers > 1 and len(todo) > 1:
        # spawn: safe when the caller has torch / OpenMP threads running (fork is not).
        with ProcessPoolExecutor(workers, mp_context=get_context("spawn")) as pool:
            outcomes = pool.map(_work, todo)
            for outcome in outcomes:
                _record(outcome, results, skipped, log, bar)
    else:
        for job in todo:
            _record(_work(job), results, skipped, log, bar)
    bar.close()
    wanted = {f"{s}/{n}" for s, n, _ in jobs}
    for split in SPLIT_IDS:  # songs of an older spec that this one no longer has
        for child in sorted((root / split).glob("*")) if (root / split).is_dir() else []:
            if f"{split}/{child.name}" not in wanted and (child / SONG_MANIFEST).is_file():
                shutil.rmtree(child)
    tracks = sorted(results)
    for stem in SOURCES:
        if tracks and all(results[t]["stems"][stem]["silent"] for t in tracks):
            log(f"warning: stem {stem!r} is silent in every rendered song under {root}")
    if not tracks:
        raise RenderError(f"no song could be rendered into {root} ({len(skipped)} skipped)")
    write_text_atomic(
        manifest_path,
        json.dumps({"key": spec.key(), "spec": asdict(spec), "sample_rate": SAMPLE_RATE, "sources": list(SOURCES),
         "tracks": tracks, "skipped": skipped}, indent=2),
    )  # fmt: skip
    return root


def _record(outcome, results, skipped, log, bar) -> None:
    split, name, source, manifest, reason = outcome
    if manifest is None:
        skipped[source] = reason
        log(f"skipped {source}: {reason}")
    else:
        results[f"{split}/{name}"] = manifest
    bar.update(1)


def plot_rendered_song(directory: str | os.PathLike, path: str | os.PathLike) -> Path:
    """Spectrogram PNG of a rendered song folder (every stem and the mixture)."""
    directory = Path(directory)
    song = {}
    for name in (*SOURCES, "mixture"):
        song[name], _ = sf.read(directory / f"{name}.wav", dtype="float32")
    return plot_song(song, path, title=directory.name)


__all__ = [
    "DEFAULT_MAPPING",
    "RenderError",
    "RenderSpec",
    "SongSkipped",
    "ensure_rendered_dataset",
    "find_soundfonts",
    "parse_mapping",
    "plot_rendered_song",
    "render_song",
    "resolve_mapping",
    "role_of",
]
