"""A composer of multitrack MIDI songs: genres, forms, grooves, bass lines, voicings and a sung melody.

:func:`compose_song` draws one song from ``numpy.random.default_rng([seed, split_id, index])`` and
returns a ``pretty_midi.PrettyMIDI`` (the renderer in :mod:`data_scripts.render` turns it into
stems, exactly as it renders a user's ``.mid`` files), so the same ``(seed, split, index)`` always
gives the same song.

A song has a genre (:data:`GENRES`: rock, pop, funk, electronic, ballad, jazz, metal, reggae),
which chooses its tempo range, meter, swing, drum grooves (16th-note step patterns on the General
MIDI drum map), bass style (roots, octaves, walking, syncopated, sub), chord progressions and
qualities (triads, sevenths, power chords), how chords are played (strummed, stabbed, padded,
arpeggiated, comped) and by which General MIDI programs. A form (intro / verse / chorus / bridge /
outro, 2-4 bars each) sets per section which parts play and how dense they are; drum fills end
sections. The lead vocal line (the instrument named ``vocals``) is sung in phrases with rests,
from chord tones and scale steps, higher in the chorus, one lyric syllable per note from a small
vocabulary (``PrettyMIDI.lyrics``); choruses sometimes carry a harmony line a third above
(instrument ``vocals harmony``). Instrumental sections may carry a lead instrument (sax, synth
lead, guitar) in ``other``, so a melody is not always a voice.

The composer writes notes on the grid with per-genre accents; timing and velocity are humanised by
the renderer (so user MIDI gets the same treatment).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pretty_midi

SPLIT_IDS = {"train": 0, "validation": 1, "test": 2}

# General MIDI drum map.
KICK, SNARE, RIM, CLAP, CLOSED_HAT, PEDAL_HAT, OPEN_HAT = 36, 38, 37, 39, 42, 44, 46
CRASH, RIDE, TOM_LOW, TOM_MID, TOM_HIGH, TAMBOURINE, SHAKER = 49, 51, 45, 47, 50, 54, 70

_QUALITIES = {
    "maj": (0, 4, 7),
    "min": (0, 3, 7),
    "7": (0, 4, 7, 10),
    "maj7": (0, 4, 7, 11),
    "m7": (0, 3, 7, 10),
    "power": (0, 7, 12),
    "sus": (0, 5, 7),
    "dim": (0, 3, 6),
}
_MAJOR = (0, 2, 4, 5, 7, 9, 11)
_MINOR = (0, 2, 3, 5, 7, 8, 10)
LYRICS = (
    "la", "love", "night", "oh", "yeah", "baby", "time", "heart", "go", "fire", "home", "light",
    "you", "me", "now", "say", "way", "all", "day", "run", "free", "sky", "dream", "hold", "on",
    "stay", "feel", "so", "high", "down", "my", "soul", "rain", "come", "back", "know", "why",
)  # fmt: skip


@dataclass(frozen=True)
class Genre:
    """What a genre chooses. Drum grooves: {instrument note: 16-step pattern}, "x" = accent,
    "o" = normal, "g" = ghost, "." = rest (12 steps for 3/4)."""

    tempo: tuple[float, float]
    grooves: tuple[dict, ...]
    bass_styles: tuple[str, ...]
    bass_programs: tuple[int, ...]
    progressions: tuple[tuple[tuple[int, str], ...], ...]
    comping: tuple[str, ...]
    chord_programs: tuple[int, ...]
    lead_programs: tuple[int, ...]
    minor: float = 0.4  # probability of a minor key
    swing: tuple[float, float] = (0.0, 0.0)
    waltz: float = 0.0  # probability of 3/4
    density: tuple[float, float] = (0.6, 1.0)


def _g(**parts: str) -> dict:
    names = {
        "k": KICK, "s": SNARE, "h": CLOSED_HAT, "o": OPEN_HAT, "r": RIDE, "c": CLAP,
        "m": RIM, "p": PEDAL_HAT, "t": TAMBOURINE, "z": SHAKER,
    }  # fmt: skip
    return {names[k]: v for k, v in parts.items()}


GENRES: dict[str, Genre] = {
    "rock": Genre(
        tempo=(96, 150),
        grooves=(
            _g(k="x.......x.o.....", s="....x.......x...", h="o.o.o.o.o.o.o.o."),
            _g(k="x.....o.x.o.....", s="....x.......x..g", h="oooooooooooooooo"),
            _g(k="x.......x.......", s="....x.......x...", r="o.o.o.o.o.o.o.o."),
        ),
        bass_styles=("eighths", "roots", "octaves"),
        bass_programs=(33, 34, 33),
        progressions=(
            ((0, "power"), (10, "power"), (5, "power"), (0, "power")),
            ((0, "maj"), (5, "maj"), (7, "maj"), (5, "maj")),
            ((9, "min"), (5, "maj"), (0, "maj"), (7, "maj")),
        ),
        comping=("strum", "eighths"),
        chord_programs=(29, 30, 27, 25),
        lead_programs=(29, 30, 27),
    ),
    "metal": Genre(
        tempo=(110, 190),
        grooves=(
            _g(k="xoxoxoxoxoxoxoxo", s="....x.......x...", h="o.o.o.o.o.o.o.o."),
            _g(k="x.x...x.x.x...x.", s="....x.......x...", r="o...o...o...o..."),
        ),
        bass_styles=("eighths", "sixteenths"),
        bass_programs=(34, 33),
        progressions=(
            ((0, "power"), (8, "power"), (10, "power"), (0, "power")),
            ((0, "power"), (1, "power"), (0, "power"), (10, "power")),
        ),
        comping=("chug",),
        chord_programs=(30, 29),
        lead_programs=(30,),
        minor=1.0,
    ),
    "pop": Genre(
        tempo=(88, 128),
        grooves=(
            _g(k="x.......x.......", s="....x.......x...", h="o.o.o.o.o.o.o.o."),
            _g(k="x..o..o.x.......", c="....x.......x...", h="..o...o...o...o."),
            _g(k="x.......x..o....", s="....x.......x...", t="oooooooooooooooo"),
        ),
        bass_styles=("roots", "eighths", "sync"),
        bass_programs=(33, 38, 34),
        progressions=(
            ((0, "maj"), (7, "maj"), (9, "min"), (5, "maj")),
            ((9, "min"), (5, "maj"), (0, "maj"), (7, "maj")),
            ((0, "maj"), (9, "min"), (5, "maj"), (7, "maj")),
        ),
        comping=("strum", "pad", "arp", "quarters"),
        chord_programs=(0, 4, 25, 24, 48, 89, 5),
        lead_programs=(80, 81, 65),
        minor=0.3,
    ),
    "funk": Genre(
        tempo=(90, 118),
        grooves=(
            _g(k="x..o..x...o..o..", s="....x..g.g..x..g", h="oooooooooooooooo"),
            _g(k="x.....o.x.o.....", s="....x...g...x.g.", h="o.o.o.oxo.o.o.o."),
        ),
        bass_styles=("funk", "octaves"),
        bass_programs=(36, 37, 33),
        progressions=(((0, "m7"), (0, "m7"), (5, "7"), (0, "m7")), ((0, "7"), (5, "7"))),
        comping=("stabs", "sixteenths"),
        chord_programs=(27, 4, 16, 61),
        lead_programs=(65, 66, 61),
        swing=(0.0, 0.12),
    ),
    "electronic": Genre(
        tempo=(118, 132),
        grooves=(
            _g(k="x...x...x...x...", c="....x.......x...", o="..o...o...o...o."),
            _g(k="x...x...x...x...", s="....x.......x...", h="oooooooooooooooo"),
        ),
        bass_styles=("offbeat", "sub", "sixteenths"),
        bass_programs=(38, 39, 38),
        progressions=(
            ((0, "min"), (8, "maj"), (3, "maj"), (10, "maj")),
            ((0, "min"), (5, "min"), (8, "maj"), (7, "maj")),
        ),
        comping=("pad", "arp", "stabs"),
        chord_programs=(81, 89, 90, 95, 50, 62),
        lead_programs=(80, 81, 84),
        minor=0.8,
    ),
    "ballad": Genre(
        tempo=(62, 84),
        grooves=(
            _g(k="x.......x.......", m="....x.......x...", h="o...o...o...o..."),
            _g(k="x.....o.........", s="........x.......", r="o...o...o...o..."),
            _g(k="x...........", m="......x.....", h="o...o...o..."),
        ),
        bass_styles=("roots", "fifths"),
        bass_programs=(32, 33),
        progressions=(
            ((0, "maj"), (9, "min"), (5, "maj"), (7, "maj")),
            ((0, "maj7"), (5, "maj7"), (9, "m7"), (7, "sus")),
        ),
        comping=("arp", "pad", "quarters"),
        chord_programs=(0, 1, 48, 49, 24, 4),
        lead_programs=(73, 40, 71),
        minor=0.35,
        waltz=0.3,
        density=(0.4, 0.8),
    ),
    "jazz": Genre(
        tempo=(100, 180),
        grooves=(
            _g(r="o..o.oo..o.oo..o", p="....o.......o...", k="x.........g....."),
            _g(r="o...o.o.o...o.o.", p="....o.......o...", s="......g.......g."),
            _g(r="o..o.oo..o.o", p="....o...o..."),
        ),
        bass_styles=("walking",),
        bass_programs=(32,),
        progressions=(
            ((2, "m7"), (7, "7"), (0, "maj7"), (0, "maj7")),
            ((0, "maj7"), (9, "m7"), (2, "m7"), (7, "7")),
        ),
        comping=("comp",),
        chord_programs=(0, 4, 26, 11),
        lead_programs=(65, 66, 56, 73),
        minor=0.25,
        swing=(0.12, 0.25),
        waltz=0.15,
    ),
    "reggae": Genre(
        tempo=(70, 95),
        grooves=(_g(k="........x.......", m="........x.......", h="o.o.o.o.o.o.o.o."),),
        bass_styles=("sync", "roots"),
        bass_programs=(33, 32),
        progressions=(((0, "maj"), (5, "maj")), ((0, "min"), (5, "min"), (10, "maj"), (0, "min"))),
        comping=("offbeat",),
        chord_programs=(27, 16, 0),
        lead_programs=(56, 65),
        swing=(0.0, 0.1),
    ),
}
FORMS = (
    ("intro", "verse", "chorus", "verse", "chorus", "bridge", "chorus", "outro"),
    ("intro", "verse", "verse", "chorus", "bridge", "chorus", "outro"),
    ("verse", "chorus", "verse", "chorus", "bridge", "chorus", "chorus"),
)


@dataclass(frozen=True)
class Section:
    kind: str
    start_bar: int
    bars: int
    progression: tuple
    parts: frozenset  # of "drums", "bass", "chords", "pad", "vocals", "lead"
    density: float


def _section_parts(kind: str, rng: np.random.Generator) -> frozenset:
    parts = {"chords"}
    if kind in ("verse", "chorus") or (kind == "bridge" and rng.random() < 0.4):
        parts.add("vocals")
    if kind != "intro" or rng.random() < 0.4:
        parts.add("bass")
    if kind not in ("intro", "outro") or rng.random() < 0.5:
        parts.add("drums")
    if kind in ("intro", "bridge", "outro") and "vocals" not in parts and rng.random() < 0.6:
        parts.add("lead")
    if kind == "chorus" and rng.random() < 0.5:
        parts.add("pad")
    return frozenset(parts)


def _mode_of(progression) -> bool | None:
    """True for a minor tonic chord in the progression, False for a major one, None otherwise."""
    tonic = {q for root, q in progression if root == 0}
    if tonic & {"min", "m7"}:
        return True
    if tonic & {"maj", "maj7"}:
        return False
    return None


def plan_sections(
    progressions_of_genre, density_range, bars_needed: int, rng: np.random.Generator
) -> list[Section]:
    """Sections of a form covering ``bars_needed`` bars, with parts and density per section."""
    form = FORMS[int(rng.integers(len(FORMS)))]
    # Short songs start anywhere in the form (after the intro) so they still hold verse and chorus.
    position = 0 if bars_needed > 16 or rng.random() < 0.4 else int(rng.integers(1, 3))
    progressions = {}
    sections, bar = [], 0
    while bar < bars_needed:
        kind = form[position % len(form)]
        if kind not in progressions:
            pick = int(rng.integers(len(progressions_of_genre)))
            progressions[kind] = progressions_of_genre[pick]
        bars = int(rng.choice([2, 4, 4])) if kind not in ("intro", "outro") else 2
        density = float(rng.uniform(*density_range)) + (0.15 if kind == "chorus" else 0.0)
        sections.append(
            Section(kind, bar, bars, progressions[kind], _section_parts(kind, rng), density)
        )
        bar += bars
        position += 1
    return sections


class _Writer:
    """Grid -> seconds, notes appended to pretty_midi instruments."""

    def __init__(self, tempo: float, beats: int, swing: float):
        self.beat = 60.0 / tempo
        self.beats = beats
        self.swing = swing

    def time(self, bar: int, step: float) -> float:
        """Onset of 16th-note ``step`` of ``bar`` (swing delays the off-beat 8ths and 16ths)."""
        shift = self.swing * self.beat / 2 if int(step) % 4 == 2 else 0.0
        shift += self.swing * self.beat / 4 if int(step) % 2 == 1 else 0.0
        return (bar * self.beats + step / 4) * self.beat + shift

    def note(self, inst, pitch: int, velocity: int, start: float, end: float) -> None:
        if end - start > 0.02 and 0 <= pitch <= 127:
            inst.notes.append(
                pretty_midi.Note(int(np.clip(velocity, 1, 127)), int(pitch), start, end)
            )


def _chord(key: int, root: int, quality: str, octave: int) -> np.ndarray:
    return octave + (key + root) % 12 + np.array(_QUALITIES[quality])


def _voicing(pitches: np.ndarray, style: str, rng: np.random.Generator) -> np.ndarray:
    """Drop / spread / inversion of a chord (keeps it around middle C)."""
    if style == "power" or len(pitches) < 3:
        return pitches
    inversion = int(rng.integers(len(pitches)))
    v = np.concatenate([pitches[inversion:], pitches[:inversion] + 12])
    if rng.random() < 0.3:
        v = np.append(v, v[0] + 12)  # doubled root on top
    return v - 12 * (v.mean() > 68)


def _drums(w: _Writer, inst, sections, genre: Genre, rng: np.random.Generator) -> None:
    steps = w.beats * 4
    grooves = [g for g in genre.grooves if len(next(iter(g.values()))) == steps] or [
        {n: (p * 2)[:steps] for n, p in genre.grooves[0].items()}
    ]
    for si, sec in enumerate(sections):
        if "drums" not in sec.parts:
            continue
        groove = grooves[int(rng.integers(len(grooves)))]
        if sec.kind == "chorus" and CLOSED_HAT in groove and rng.random() < 0.5:
            groove = {**groove, RIDE: groove[CLOSED_HAT]}
            del groove[CLOSED_HAT]
        for b in range(sec.bars):
            bar = sec.start_bar + b
            last = b == sec.bars - 1 and si + 1 < len(sections)
            if b == 0 and sec.kind in ("chorus", "bridge") and rng.random() < 0.7:
                w.note(inst, CRASH, 110, w.time(bar, 0), w.time(bar, 0) + 1.5)
            for note, pattern in groove.items():
                for step, ch in enumerate(pattern):
                    if ch == "." or (last and step >= steps - 4):
                        continue
                    if (
                        ch == "o"
                        and note in (CLOSED_HAT, RIDE)
                        and rng.random() > sec.density + 0.3
                    ):
                        continue
                    vel = {"x": 110, "o": 88, "g": 40}[ch] + int(rng.integers(-6, 7))
                    vel -= 14 * (note in (CLOSED_HAT, RIDE, SHAKER, TAMBOURINE) and step % 4 != 0)
                    t = w.time(bar, step)
                    w.note(inst, note, vel, t, t + 0.1)
            if last:  # a fill on toms and snare over the last beat
                for k, step in enumerate(range(steps - 4, steps)):
                    note = [SNARE, TOM_HIGH, TOM_MID, TOM_LOW][k] if rng.random() < 0.7 else SNARE
                    t = w.time(bar, step)
                    w.note(inst, note, 90 + 6 * k, t, t + 0.1)


def _bass(w: _Writer, inst, sections, key: int, minor: bool, style: str, rng) -> None:
    scale = np.array(_MINOR if minor else _MAJOR)
    steps = w.beats * 4
    for sec in sections:
        if "bass" not in sec.parts:
            continue
        for b in range(sec.bars):
            bar = sec.start_bar + b
            root, quality = sec.progression[b % len(sec.progression)]
            nxt = sec.progression[(b + 1) % len(sec.progression)][0]
            tones = _chord(key, root, quality, 28)
            r = int(tones[0]) + (12 if tones[0] < 31 else 0)
            fifth = r + 7
            if style == "roots":
                events = [(0, r, steps * 0.9)] + (
                    [(steps // 2 + 2, r, 2)] if rng.random() < 0.5 else []
                )
            elif style == "fifths":
                events = [(0, r, steps / 2 - 1), (steps // 2, fifth, steps / 2 - 1)]
            elif style == "eighths":
                events = [(s, r, 1.7) for s in range(0, steps, 2)]
            elif style == "sixteenths":
                events = [(s, r, 0.9) for s in range(steps)]
            elif style == "octaves":
                events = [(s, r + 12 * ((s // 2) % 2), 1.6) for s in range(0, steps, 2)]
            elif style == "offbeat":
                events = [(s + 2, r, 1.5) for s in range(0, steps, 4)]
            elif style == "sub":
                events = [(0, r - 12 if r > 35 else r, steps * 0.95)]
            elif style == "sync":
                events = [(0, r, 2.5), (3, r, 1), (6, fifth, 1.5), (10, r + 12, 1.5), (12, r, 3)]
            elif style == "funk":
                events = [(0, r, 1.5), (3, r + 12, 0.6), (6, r, 0.8), (7, r + 10, 0.6),
                          (10, r, 1), (11, fifth, 0.6), (14, r + 12, 0.8)]  # fmt: skip
            else:  # walking: a quarter-note line from chord tones to a chromatic approach
                line = [r, int(rng.choice(tones[1:3])) % 12 + r - r % 12, fifth]
                target = r - r % 12 + (key + nxt) % 12
                line.append(target + (1 if rng.random() < 0.5 else -1))
                events = [(4 * i, p, 3.6) for i, p in enumerate(line[: w.beats])]
            for step, pitch, length in events:
                if step >= steps or (style != "walking" and rng.random() > sec.density + 0.35):
                    continue
                pitch = int(pitch)
                if rng.random() < 0.08 and style not in ("walking", "sub"):
                    pitch = int(r - r % 12 + (key + scale[int(rng.integers(7))]) % 12)
                start = w.time(bar, step)
                w.note(inst, pitch, 80 + int(rng.integers(-10, 20)) + 15 * (step == 0), start,
                       w.time(bar, min(step + length, steps)) - 0.01)  # fmt: skip


def _chords(w: _Writer, inst, sections, key: int, comping: str, rng, part: str = "chords"):
    steps = w.beats * 4
    for sec in sections:
        if part not in sec.parts:
            continue
        for b in range(sec.bars):
            bar = sec.start_bar + b
            root, quality = sec.progression[b % len(sec.progression)]
            chord = _voicing(_chord(key, root, quality, 48), quality, rng)
            if comping == "pad":
                hits = [(0, steps, chord, 70)]
            elif comping == "strum":
                hits = [(s, 2 if s % 4 else 3.5, chord, 92 - 12 * (s % 4 != 0))
                        for s in range(0, steps, 2) if s % 4 == 0 or rng.random() < sec.density]  # fmt: skip
            elif comping == "eighths" or comping == "chug":
                c = chord[:2] if comping == "chug" else chord
                hits = [
                    (s, 1.5, c, 96) for s in range(0, steps, 2) if rng.random() < sec.density + 0.3
                ]
            elif comping == "quarters":
                hits = [(s, 3.5, chord, 76) for s in range(0, steps, 4)]
            elif comping == "arp":
                order = np.concatenate([chord, chord[::-1][1:-1]]) if len(chord) > 2 else chord
                hits = [
                    (s, 1.8, order[[i % len(order)]], 74) for i, s in enumerate(range(0, steps, 2))
                ]
            elif comping in ("stabs", "sixteenths"):
                pattern = (
                    rng.random(steps) < (0.35 if comping == "stabs" else 0.6) * sec.density + 0.1
                )
                hits = [(s, 0.8, chord[-3:], 90) for s in range(steps) if pattern[s]]
            elif comping == "offbeat":
                hits = [(s + 2, 1.2, chord, 88) for s in range(0, steps, 4)]
            else:  # comp: jazz, syncopated short chords
                hits = [(int(s), float(rng.choice([1.5, 3])), chord, 72)
                        for s in np.sort(rng.choice(steps, size=3, replace=False))]  # fmt: skip
            for step, length, notes, vel in hits:
                for i, p in enumerate(notes):
                    strum = 0.012 * i if comping in ("strum", "eighths") else 0.0
                    start = w.time(bar, step) + strum
                    w.note(inst, int(p), vel + int(rng.integers(-8, 9)), start,
                           w.time(bar, min(step + length, steps)) - 0.01)  # fmt: skip


def _melody(w: _Writer, sections, key: int, minor: bool, register: int, rng, part: str):
    """Phrases of (start, end, pitch, lyric) for the vocal line or a lead instrument."""
    scale = np.array(_MINOR if minor else _MAJOR)
    steps = w.beats * 4
    out = []
    pitch = register + 5
    for sec in sections:
        if part not in sec.parts:
            continue
        lift = 3 if sec.kind == "chorus" else 0
        for b in range(sec.bars):
            if b % 2 == 1 and rng.random() < 0.25:
                continue  # a breath
            bar = sec.start_bar + b
            root, quality = sec.progression[b % len(sec.progression)]
            chord_pcs = set(int(x) % 12 for x in _chord(key, root, quality, 0))
            n = int(rng.integers(3, 6 if part == "vocals" else 8))
            starts = np.sort(rng.choice(np.arange(0, steps - 2, 2), size=min(n, steps // 2 - 1), replace=False))  # fmt: skip
            for i, s in enumerate(starts):
                candidates = [
                    p for p in range(register + lift, register + lift + 13)
                    if (p - key) % 12 in scale or p % 12 in chord_pcs
                ]  # fmt: skip
                weights = np.array([
                    (3.0 if p % 12 in chord_pcs else 1.0) / (1 + abs(p - pitch)) for p in candidates
                ])  # fmt: skip
                pitch = int(rng.choice(candidates, p=weights / weights.sum()))
                end_step = starts[i + 1] if i + 1 < len(starts) else min(s + 6, steps)
                out.append(
                    (
                        w.time(bar, s),
                        w.time(bar, end_step) - 0.03,
                        pitch,
                        LYRICS[int(rng.integers(len(LYRICS)))],
                    )  # fmt: skip
                )
    return out


def compose_song(seed: int, split: str, index: int, seconds: float, genre: str | None = None):
    """Compose one song.

    Args:
        seed: dataset seed; split: "train", "validation" or "test"; index: song number in the split.
        seconds: the song covers at least this long (the renderer cuts it).
        genre: a key of :data:`GENRES`, or None to draw one.

    Returns:
        (pretty_midi.PrettyMIDI, info dict with genre, tempo, key, meter, form).
        Instruments are named by role: "drums", "bass", "chords", "pad", "lead", "vocals",
        "vocals harmony".
    """
    if split not in SPLIT_IDS:
        raise ValueError(f"split must be one of {sorted(SPLIT_IDS)}, got {split!r}")
    if seconds <= 0:
        raise ValueError(f"seconds must be > 0, got {seconds}")
    rng = np.random.default_rng([int(seed), SPLIT_IDS[split], int(index)])
    names = sorted(GENRES)
    if genre is None:
        genre = names[int(rng.integers(len(names)))]
    elif genre not in GENRES:
        raise ValueError(f"unknown genre {genre!r}; known: {names}")
    g = GENRES[genre]
    tempo = float(rng.uniform(*g.tempo))
    beats = 3 if rng.random() < g.waltz else 4
    swing = float(rng.uniform(*g.swing))
    key = int(rng.integers(12))
    minor = bool(rng.random() < g.minor)
    # Progressions of the song's mode (a tonic chord of the other mode rules one out).
    fitting = tuple(p for p in g.progressions if _mode_of(p) in (None, minor)) or g.progressions
    w = _Writer(tempo, beats, swing)
    bars_needed = int(np.ceil(seconds / (beats * w.beat))) + 1
    sections = plan_sections(fitting, g.density, bars_needed, rng)
    pm = pretty_midi.PrettyMIDI(initial_tempo=tempo)
    pm.time_signature_changes.append(pretty_midi.TimeSignature(beats, 4, 0.0))

    drums = pretty_midi.Instrument(0, is_drum=True, name="drums")
    _drums(w, drums, sections, g, rng)
    bass = pretty_midi.Instrument(int(rng.choice(g.bass_programs)), name="bass")
    _bass(w, bass, sections, key, minor, str(rng.choice(g.bass_styles)), rng)
    chords = pretty_midi.Instrument(int(rng.choice(g.chord_programs)), name="chords")
    _chords(w, chords, sections, key, str(rng.choice(g.comping)), rng)
    pad = pretty_midi.Instrument(int(rng.choice([48, 49, 52, 89, 91, 16, 19])), name="pad")
    _chords(w, pad, sections, key, "pad", rng, part="pad")
    lead = pretty_midi.Instrument(int(rng.choice(g.lead_programs)), name="lead")
    for start, end, pitch, _ in _melody(w, sections, key, minor, 67, rng, "lead"):
        w.note(lead, pitch, 90 + int(rng.integers(-8, 9)), start, end)
    register = int(rng.choice([52, 55, 57, 60, 62]))  # lowest sung note: male .. female
    vocals = pretty_midi.Instrument(int(rng.choice([52, 53, 54, 85])), name="vocals")
    harmony = pretty_midi.Instrument(vocals.program, name="vocals harmony")
    scale = np.array(_MINOR if minor else _MAJOR)
    chorus_times = [
        (w.time(s.start_bar, 0), w.time(s.start_bar + s.bars, 0))
        for s in sections
        if s.kind == "chorus" and rng.random() < 0.5
    ]
    for start, end, pitch, word in _melody(w, sections, key, minor, register, rng, "vocals"):
        w.note(vocals, pitch, 96 + int(rng.integers(-10, 10)), start, end)
        pm.lyrics.append(pretty_midi.Lyric(word, start))
        if any(a <= start < b for a, b in chorus_times):  # a diatonic third above
            degree = int(np.argmin(np.abs((pitch - key) % 12 - scale)))
            up = (scale[(degree + 2) % 7] - scale[degree]) % 12
            w.note(harmony, pitch + int(up), 80, start, end)
    pm.instruments = [i for i in (drums, bass, chords, pad, lead, vocals, harmony) if i.notes]
    info = {
        "genre": genre,
        "tempo": round(tempo, 2),
        "meter": f"{beats}/4",
        "key": int(key),
        "minor": minor,
        "swing": round(swing, 3),
        "form": [s.kind for s in sections],
    }
    return pm, info


__all__ = ["FORMS", "GENRES", "LYRICS", "compose_song"]
