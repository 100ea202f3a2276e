"""Deterministic synthetic multitrack songs in the MUSDB18-HQ layout.

Every song is drawn from ``numpy.random.default_rng([seed, split_id, index])`` so the same
``(seed, split, index)`` always gives bit-identical audio, on any machine, in any order.

A song is a sequence of sections (intro / verse / chorus / bridge / outro) of 2-4 bars each, in a
random key (major or minor), tempo (72-160 BPM) and swing. Each section has its own chord
progression, drum pattern and set of active instruments, so stems start and stop (silences), and
the four stems are:

* ``drums``: kick (pitch-swept sine + click), snare (band-passed noise + tone), closed hats
  (high-passed noise), occasional crash; per-song kit tuning and per-hit velocity.
* ``bass``: notes that follow the chord roots (root / fifth / octave patterns), additive
  saw-like or sine-like timbre, low-passed.
* ``other``: the harmony: chords voiced around middle C with one of several timbres
  (detuned-saw pad, plucked string, drawbar organ, electric-piano-like bell), 1-2 layers placed
  at different stereo positions.
* ``vocals``: a sung-like line: additive glottal source (harmonics rolling off ~12 dB/oct) shaped
  by time-varying vowel formants (F1-F4), delayed vibrato, glides between notes, breath noise,
  phrases separated by rests, melody drawn from chord tones and scale steps.

Stems are rendered at 44.1 kHz stereo, levelled to random target loudnesses (RMS in dBFS), given
a faint recording noise floor (-90..-78 dBFS; "silent" parts are quiet, not digital zero, as in
real multitracks) and written as 32-bit float WAV (so the mixture, the exact sample sum of the stems, never clips).

Layout written by :func:`ensure_synthetic_dataset` (same as MUSDB18-HQ, plus a ``validation/``
folder that :mod:`data_scripts.musdb` maps to the validation split)::

    ROOT/train/<name>/{mixture,drums,bass,other,vocals}.wav
    ROOT/validation/<name>/...
    ROOT/test/<name>/...
    ROOT/synthetic_manifest.json
"""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import soundfile as sf
from scipy import signal
from tqdm.auto import tqdm

from data_scripts.fileio import (
    clean_stale_temporaries,
    publish_folder,
    staging_folder,
    write_text_atomic,
    write_via_temporary,
)

SAMPLE_RATE = 44100
SOURCES = ("drums", "bass", "other", "vocals")
SPLIT_IDS = {"train": 0, "validation": 1, "test": 2}
MANIFEST_NAME = "synthetic_manifest.json"
MANIFEST_VERSION = 1

_MAJOR = np.array([0, 2, 4, 5, 7, 9, 11])
_MINOR = np.array([0, 2, 3, 5, 7, 8, 10])
# Chord progressions as scale degrees (0-based); triads are built on the scale.
_PROGRESSIONS = (
    (0, 4, 5, 3),
    (0, 5, 3, 4),
    (5, 3, 0, 4),
    (0, 3, 4, 4),
    (0, 3, 0, 4),
    (1, 4, 0, 0),
    (0, 6, 5, 4),
    (0, 2, 3, 4),
)
# Vowel formants (Hz) F1..F4, roughly a sung soprano/tenor average.
VOWEL_FORMANTS = np.array(
    [
        [800, 1150, 2900, 3900],  # a
        [400, 1600, 2700, 3800],  # e
        [350, 2300, 3000, 4000],  # i
        [450, 800, 2830, 3800],  # o
        [325, 700, 2530, 3500],  # u
    ],
    dtype=np.float64,
)
_FORMANT_BW = np.array([80.0, 90.0, 120.0, 130.0])
_FORMANT_GAIN = np.array([1.0, 0.6, 0.25, 0.12])


@dataclass(frozen=True)
class SongPlan:
    """The musical skeleton shared by all stems of one song."""

    tempo: float  # beats per minute
    key: int  # MIDI pitch class of the tonic
    minor: bool
    swing: float  # 0 = straight eighths, up to ~0.2 = shuffled
    sections: tuple  # of (kind, n_bars, chords (tuple of degree), active dict)
    num_samples: int

    @property
    def beat(self) -> float:
        return 60.0 / self.tempo


def midi_to_hz(m):
    return 440.0 * 2.0 ** ((np.asarray(m, dtype=np.float64) - 69.0) / 12.0)


def _pan(mono: np.ndarray, position: float) -> np.ndarray:
    """Constant-power pan. mono (T,), position in [-1, 1] -> (T, 2)."""
    angle = (position + 1.0) * np.pi / 4.0
    return np.stack([mono * np.cos(angle), mono * np.sin(angle)], axis=1)


def _add(buffer: np.ndarray, start: int, sound: np.ndarray) -> None:
    """Add ``sound`` (L, ...) into ``buffer`` (T, ...) at ``start``, cropping at the end."""
    if start >= buffer.shape[0] or start < 0:
        return
    n = min(sound.shape[0], buffer.shape[0] - start)
    buffer[start : start + n] += sound[:n]


def _adsr(n: int, attack: float, decay: float, sustain: float, release: float) -> np.ndarray:
    """Envelope of n samples; times in seconds, release taken from the end."""
    t = np.arange(n) / SAMPLE_RATE
    env = np.minimum(1.0, t / max(attack, 1e-4))
    d = np.clip((t - attack) / max(decay, 1e-4), 0.0, 1.0)
    env = np.where(t > attack, 1.0 - (1.0 - sustain) * d, env)
    rel = np.clip((t[-1] - t) / max(release, 1e-4), 0.0, 1.0) if n else t
    return env * rel


def _sin_multiples(phase: np.ndarray):
    """Yield sin(k * phase) for k = 1, 2, ... by the Chebyshev recurrence.

    sin((k+1)x) = 2 cos(x) sin(kx) - sin((k-1)x): one multiply-add per harmonic instead of a
    sine evaluation, ~4x faster for the tens of partials every note needs.
    """
    prev = np.zeros_like(phase)
    cur = np.sin(phase)
    twice_cos = 2.0 * np.cos(phase)
    while True:
        yield cur
        prev, cur = cur, twice_cos * cur - prev


def formant_harmonics(
    f0: np.ndarray, formants: np.ndarray, ctrl: np.ndarray, tilt: float, sample_rate: int
) -> np.ndarray:
    """A sung vowel: the harmonics of `f0` (m,) in Hz up to 0.45 `sample_rate`, weighted by the
    spectral tilt `k ** -tilt` and by four formant resonances `formants` (n_ctrl, 4) in Hz given at
    the sample positions `ctrl` (n_ctrl,) and interpolated between them -> (m,)."""
    f0_ctrl = f0[ctrl]
    phase = 2 * np.pi * np.cumsum(f0) / sample_rate
    voice = np.zeros(f0.size)
    pos = np.arange(f0.size)
    for k, partial in zip(range(1, 60), _sin_multiples(phase)):
        fk = k * f0_ctrl  # (n_ctrl,)
        if fk.min() > 0.45 * sample_rate:
            break
        resonance = (_FORMANT_GAIN / (1 + ((fk[:, None] - formants) / _FORMANT_BW) ** 2)).sum(1)
        voice += np.interp(pos, ctrl, resonance * k**-tilt * (fk < 0.45 * sample_rate)) * partial
    return voice


def _harmonic_tone(
    freq, n: int, weights: np.ndarray, rng: np.random.Generator, decay_per_k: float = 0.0
) -> np.ndarray:
    """Additive tone: sum_k w_k sin(k (2 pi f t + phi)), harmonics above 0.45 sr dropped.

    freq: scalar Hz, or (n,) instantaneous frequency. Returns (n,).
    decay_per_k: extra exponential decay rate (1/s) per harmonic index (plucks: highs die first).
    """
    t = np.arange(n) / SAMPLE_RATE
    start = rng.uniform(0, 2 * np.pi)
    if np.ndim(freq) == 0:
        phase = 2 * np.pi * float(freq) * t + start
        fmax = float(freq)
    else:
        phase = 2 * np.pi * np.cumsum(freq) / SAMPLE_RATE + start
        fmax = float(np.max(freq))
    if not decay_per_k and np.ndim(freq) == 0:
        # Steady spectrum: one period as a wavetable, read at the phase (one interp, any K).
        grid = np.linspace(0, 2 * np.pi, 2049)
        table = np.zeros_like(grid)
        for k, (w, partial) in enumerate(zip(weights, _sin_multiples(grid)), start=1):
            if k * fmax > 0.45 * SAMPLE_RATE:
                break
            table += w * partial
        return np.interp(phase, grid, table, period=2 * np.pi)
    out = np.zeros(n)
    decay = np.exp(-decay_per_k * t) if decay_per_k else None
    envelope = np.ones(n) if decay_per_k else None
    for k, (w, partial) in enumerate(zip(weights, _sin_multiples(phase)), start=1):
        if k * fmax > 0.45 * SAMPLE_RATE:
            break
        if w:
            out += w * partial if envelope is None else w * partial * envelope
        if envelope is not None:
            envelope *= decay
    return out


def plan_song(rng: np.random.Generator, seconds: float) -> SongPlan:
    """Draw key, tempo, sections, chords and per-section instrument activity."""
    tempo = float(rng.uniform(72, 160))
    minor = bool(rng.random() < 0.45)
    bar = 4 * 60.0 / tempo
    total_bars = max(1, int(np.ceil(seconds / bar)))
    kinds = ["intro", "verse", "chorus", "verse", "chorus", "bridge", "chorus", "outro"]
    start_kind = 0 if rng.random() < 0.6 else 1
    sections, bars_used, i = [], 0, start_kind
    progression_of = {}
    while bars_used < total_bars:
        kind = kinds[i % len(kinds)]
        longest = 3 if kind in ("intro", "outro") else 5
        n_bars = int(min(rng.integers(1 if longest == 3 else 2, longest), total_bars - bars_used))
        if kind not in progression_of:
            progression_of[kind] = _PROGRESSIONS[rng.integers(len(_PROGRESSIONS))]
        active = {
            "drums": kind not in ("intro", "outro") or rng.random() < 0.5,
            "bass": kind != "intro" or rng.random() < 0.4,
            "other": True if kind in ("intro", "bridge") else rng.random() < 0.9,
            "vocals": kind in ("verse", "chorus") or (kind == "bridge" and rng.random() < 0.5),
        }
        sections.append((kind, n_bars, progression_of[kind], active))
        bars_used += n_bars
        i += 1
    # Every stem sounds somewhere (MUSDB stems are all present), except an occasional
    # instrumental song without vocals, which real data also has.
    no_vocals = rng.random() < 0.05
    for source in SOURCES:
        if source == "vocals" and no_vocals:
            continue
        if not any(s[3][source] for s in sections):
            pick = int(rng.integers(len(sections)))
            sections[pick][3][source] = True
    return SongPlan(
        tempo=tempo,
        key=int(rng.integers(12)),
        minor=minor,
        swing=float(rng.uniform(0.0, 0.2) if rng.random() < 0.3 else 0.0),
        sections=tuple(sections),
        num_samples=int(round(seconds * SAMPLE_RATE)),
    )


def _bars(plan: SongPlan):
    """Yield (bar_start_seconds, chord_degree, section_kind, active) for each bar."""
    t = 0.0
    bar = 4 * plan.beat
    for kind, n_bars, chords, active in plan.sections:
        for b in range(n_bars):
            yield t, chords[b % len(chords)], kind, active
            t += bar


def _chord_pitches(plan: SongPlan, degree: int, octave_base: int) -> np.ndarray:
    """Triad (plus 7th sometimes handled by caller) MIDI pitches on ``degree`` of the key."""
    scale = _MINOR if plan.minor else _MAJOR
    idx = np.array([degree, degree + 2, degree + 4])
    return octave_base + plan.key + scale[idx % 7] + 12 * (idx // 7)


def _eighth_time(plan: SongPlan, bar_start: float, step: int) -> float:
    """Onset of eighth-note ``step`` (0-7) in a bar, with swing on off-beats."""
    shift = plan.swing * plan.beat / 2 if step % 2 else 0.0
    return bar_start + step * plan.beat / 2 + shift


def render_drums(plan: SongPlan, rng: np.random.Generator) -> np.ndarray:
    """Drum stem (T, 2)."""
    n = plan.num_samples
    out = np.zeros((n, 2))
    kick_f = rng.uniform(45, 65)
    kick_sweep = rng.uniform(80, 200)
    snare_f = rng.uniform(160, 240)
    snare_bw = rng.uniform(0.25, 0.6)
    hat_pan = rng.uniform(-0.5, 0.5)
    hat_decay = rng.uniform(0.02, 0.08)
    # One-shot samples per song, varied per hit by velocity and a little filtering noise.
    tk = np.arange(int(0.5 * SAMPLE_RATE)) / SAMPLE_RATE
    kick_freq = kick_f + kick_sweep * np.exp(-tk * rng.uniform(20, 45))
    kick = np.sin(2 * np.pi * np.cumsum(kick_freq) / SAMPLE_RATE) * np.exp(-tk * rng.uniform(6, 14))
    kick[:64] += rng.standard_normal(64) * np.linspace(0.5, 0, 64)
    ts = tk[: int(0.35 * SAMPLE_RATE)]
    sos_snare = signal.butter(
        2,
        [1500 * (1 - snare_bw), min(9000, 3000 * (1 + snare_bw))],
        "bandpass",
        fs=SAMPLE_RATE,
        output="sos",
    )
    sos_hat = signal.butter(4, rng.uniform(6000, 9000), "highpass", fs=SAMPLE_RATE, output="sos")
    sos_crash = signal.butter(2, 4000, "highpass", fs=SAMPLE_RATE, output="sos")

    def snare_hit():
        noise = signal.sosfilt(sos_snare, rng.standard_normal(ts.size))
        tone = np.sin(2 * np.pi * snare_f * ts) * np.exp(-ts * 30)
        return (0.9 * noise * np.exp(-ts * rng.uniform(12, 22)) + 0.5 * tone) * 1.5

    def hat_hit(open_hat: bool):
        m = int((0.3 if open_hat else 0.12) * SAMPLE_RATE)
        th = ts[:m] if m <= ts.size else np.arange(m) / SAMPLE_RATE
        decay = hat_decay * (4 if open_hat else 1)
        return signal.sosfilt(sos_hat, rng.standard_normal(th.size)) * np.exp(-th / decay)

    # Pattern per section: 8 eighth steps; kick/snare/hat probabilities.
    patterns = {}
    for t0, _deg, kind, active in _bars(plan):
        if not active["drums"]:
            continue
        if kind not in patterns:
            kick_p = np.array([1, 0, 0.2, 0.3, 0.05, 0.6, 0.1, 0.2]) * rng.uniform(0.7, 1.0)
            kick_p[0] = 1.0
            snare_p = np.array([0, 0, 0.95, 0.05, 0, 0.1, 0.95, 0.2])
            half_time = rng.random() < 0.2
            if half_time:
                snare_p = np.array([0, 0, 0, 0, 0.95, 0, 0, 0.15])
            hat_density = rng.choice([1, 2, 2, 2])  # eighths or quarters
            patterns[kind] = (kick_p, snare_p, hat_density, rng.random() < 0.3)
        kick_p, snare_p, hat_density, open_hats = patterns[kind]
        for step in range(8):
            onset = int(_eighth_time(plan, t0, step) * SAMPLE_RATE)
            vel = rng.uniform(0.75, 1.0)
            if rng.random() < kick_p[step]:
                _add(out, onset, _pan(kick * vel, 0.0))
            if rng.random() < snare_p[step]:
                _add(out, onset, _pan(snare_hit() * vel, rng.uniform(-0.1, 0.1)))
            if step % (3 - hat_density) == 0 or (hat_density == 2):
                is_open = open_hats and step % 4 == 3
                _add(out, onset, _pan(hat_hit(is_open) * vel * 0.35, hat_pan))
        if kind == "chorus" and t0 > 0 and rng.random() < 0.35:
            tc = np.arange(int(1.5 * SAMPLE_RATE)) / SAMPLE_RATE
            crash = signal.sosfilt(sos_crash, rng.standard_normal(tc.size)) * np.exp(-tc * 2.5)
            _add(out, int(t0 * SAMPLE_RATE), np.stack([crash, np.roll(crash, 37)], 1) * 0.4)
    # Bus saturation, as drum mixes are compressed: lowers the crest factor of the raw hits.
    peak = np.abs(out).max()
    return np.tanh(2.5 * out / peak) if peak > 0 else out


def render_bass(plan: SongPlan, rng: np.random.Generator) -> np.ndarray:
    """Bass stem (T, 2): chord-root patterns, additive timbre, low-passed, near centre."""
    n = plan.num_samples
    mono = np.zeros(n)
    bright = rng.uniform(0.3, 1.0)
    k = np.arange(1, 25)
    weights = (1.0 / k) * (bright ** (k - 1))
    if rng.random() < 0.35:  # hollow, square-ish
        weights[1::2] *= 0.15
    styles = {}
    for t0, degree, kind, active in _bars(plan):
        if not active["bass"]:
            continue
        if kind not in styles:
            styles[kind] = rng.choice(["roots", "eighths", "fifths", "octaves", "sync"])
        style = styles[kind]
        root = _chord_pitches(plan, degree, 36)[0]
        if root > 47:
            root -= 12
        steps = {
            "roots": [(0, 0, 4)],
            "eighths": [(s, 0, 1) for s in range(8)],
            "fifths": [(0, 0, 2), (2, 7, 2), (4, 0, 2), (6, 7, 2)],
            "octaves": [(s, 12 * (s % 2), 1) for s in range(8)],
            "sync": [(0, 0, 3), (3, 0, 2), (5, 7, 1), (6, 12, 2)],
        }[style]
        for step, interval, length in steps:
            onset = _eighth_time(plan, t0, step)
            dur = length * plan.beat / 2 * rng.uniform(0.7, 0.95)
            m = int(dur * SAMPLE_RATE)
            if m < 32:
                continue
            tone = _harmonic_tone(midi_to_hz(root + interval), m, weights, rng, decay_per_k=1.5)
            env = _adsr(m, 0.005, 0.25, rng.uniform(0.4, 0.8), 0.03)
            _add(mono, int(onset * SAMPLE_RATE), tone * env * rng.uniform(0.8, 1.0))
    sos = signal.butter(2, rng.uniform(500, 1500), "lowpass", fs=SAMPLE_RATE, output="sos")
    mono = signal.sosfilt(sos, mono)
    return _pan(mono, rng.uniform(-0.1, 0.1))


def _timbre(name: str, rng: np.random.Generator):
    """(harmonic weights, adsr params, per-harmonic decay, detune cents) of one 'other' timbre."""
    k = np.arange(1, 31)
    if name == "pad":
        w = 1.0 / k * (0.8 ** (k - 1))
        return w, (rng.uniform(0.1, 0.4), 0.5, 0.8, 0.3), 0.0, rng.uniform(6, 15)
    if name == "pluck":
        w = 1.0 / k**1.2
        return w, (0.003, 0.6, 0.0, 0.05), rng.uniform(3, 8), 0.0
    if name == "organ":
        w = np.zeros(30)
        drawbars = rng.uniform(0.2, 1.0, size=6)
        for h, v in zip((1, 2, 3, 4, 6, 8), drawbars):
            w[h - 1] = v
        return w, (0.01, 0.05, 1.0, 0.03), 0.0, 0.0
    # "epiano": bell-like, partials decaying quickly
    w = np.zeros(30)
    w[[0, 1, 3, 6]] = [1.0, 0.4, 0.25, 0.15]
    return w, (0.002, 1.2, 0.2, 0.1), 2.0, 0.0


def render_other(plan: SongPlan, rng: np.random.Generator) -> np.ndarray:
    """Harmony stem (T, 2): 1-2 chord layers with different timbres and stereo positions."""
    n = plan.num_samples
    out = np.zeros((n, 2))
    names = ["pad", "pluck", "organ", "epiano"]
    n_layers = int(rng.integers(1, 3))
    layers = rng.choice(names, size=n_layers, replace=False)
    for li, name in enumerate(layers):
        weights, (a, d, s, r), decay_k, detune = _timbre(str(name), rng)
        position = rng.uniform(-0.7, 0.7) if n_layers > 1 else rng.uniform(-0.2, 0.2)
        rhythm = rng.choice(["whole", "half", "quarter", "arp"]) if name != "pad" else "whole"
        layer = np.zeros((n, 2))
        for t0, degree, _kind, active in _bars(plan):
            if not active["other"]:
                continue
            pitches = _chord_pitches(plan, degree, 48 + 12 * (li % 2))
            if rng.random() < 0.3:
                pitches = np.append(pitches, pitches[0] + 10 + (0 if plan.minor else 1))
            events = {
                "whole": [(0.0, 4.0, pitches)],
                "half": [(0.0, 2.0, pitches), (2.0, 2.0, pitches)],
                "quarter": [(b, 1.0, pitches) for b in range(4)],
                "arp": [(b * 0.5, 0.5, pitches[[b % len(pitches)]]) for b in range(8)],
            }[rhythm]
            for beat, length, chord in events:
                m = int(length * plan.beat * SAMPLE_RATE * 0.98)
                env = _adsr(m, a, d, s, r)
                for p in chord:
                    f = midi_to_hz(p)
                    tone = _harmonic_tone(f, m, weights, rng, decay_per_k=decay_k)
                    if detune:
                        f2 = f * 2 ** (detune / 1200)
                        tone2 = _harmonic_tone(f2, m, weights, rng)
                        sound = np.stack([tone + 0.6 * tone2, 0.6 * tone + tone2], 1) / 1.6
                    else:
                        sound = _pan(tone, 0.0)
                    _add(layer, int((t0 + beat * plan.beat) * SAMPLE_RATE), sound * env[:, None])
        angle = (position + 1.0) * np.pi / 4.0
        layer *= np.array([np.cos(angle), np.sin(angle)]) * np.sqrt(2)
        out += layer / max(1, len(pitches)) * rng.uniform(0.5, 1.0)
    sos = signal.butter(1, rng.uniform(2500, 9000), "lowpass", fs=SAMPLE_RATE, output="sos")
    return signal.sosfilt(sos, out, axis=0)


def render_vocals(plan: SongPlan, rng: np.random.Generator) -> np.ndarray:
    """Vocal stem (T, 2): formant-filtered glottal source, vibrato, glides, phrases with rests."""
    n = plan.num_samples
    mono = np.zeros(n)
    register = int(rng.choice([57, 60, 64, 67]))  # lowest comfortable note (MIDI), male..female
    tilt = rng.uniform(1.0, 1.6)  # source spectral slope exponent (breathy..pressed)
    vib_rate, vib_depth = rng.uniform(4.5, 6.5), rng.uniform(0.2, 0.6)  # Hz, semitones
    glide_time = rng.uniform(0.03, 0.12)
    scale = _MINOR if plan.minor else _MAJOR
    bar = 4 * plan.beat
    hop = 128
    # Phrases: each vocal bar is sung with probability, as 2-6 notes with a rest at the end.
    sung_any = False
    for t0, degree, _kind, active in _bars(plan):
        # Some bars of a vocal section rest, but the first one is always sung.
        if not active["vocals"] or (sung_any and rng.random() < 0.2):
            continue
        sung_any = True
        n_notes = int(rng.integers(2, 7))
        starts = np.sort(rng.choice(np.arange(0, 7), size=n_notes, replace=False)) * plan.beat / 2
        phrase_end = min(
            bar * rng.uniform(0.75, 0.95), starts[-1] + rng.uniform(0.3, 1.0) * plan.beat
        )
        chord = _chord_pitches(plan, degree, 0) % 12
        notes = []
        for _ in range(n_notes):
            if rng.random() < 0.6:  # chord tone
                pc = int(rng.choice(chord))
            else:
                pc = int((plan.key + scale[rng.integers(7)]) % 12)
            p = register + ((pc - register) % 12)
            notes.append(p + (12 if rng.random() < 0.15 else 0))
        notes = np.array(notes, dtype=np.float64)
        m = int(phrase_end * SAMPLE_RATE)
        if m < hop * 4:
            continue
        t = np.arange(m) / SAMPLE_RATE
        idx = np.searchsorted(starts, t, side="right") - 1
        pitch = notes[np.clip(idx, 0, None)]
        # Glides: one-pole smoothing of the step contour (portamento), run at control rate.
        ctrl = pitch[::hop]
        alpha = 1.0 - np.exp(-hop / (glide_time * SAMPLE_RATE))
        ctrl = signal.lfilter([alpha], [1, alpha - 1], ctrl, zi=[ctrl[0] * (1 - alpha)])[0]
        pitch = np.interp(np.arange(m), np.arange(ctrl.size) * hop, ctrl)
        since_onset = t - starts[np.clip(idx, 0, None)]
        vib = vib_depth * np.clip(since_onset / 0.35 - 0.3, 0, 1) * np.sin(2 * np.pi * vib_rate * t)
        drift = 0.08 * np.sin(2 * np.pi * rng.uniform(0.2, 0.7) * t + rng.uniform(0, 6))
        f0 = midi_to_hz(pitch + vib + drift)
        # Vowel per note, formants interpolated at control rate.
        vowel_idx = rng.integers(len(VOWEL_FORMANTS), size=n_notes)
        formants_per_note = VOWEL_FORMANTS[vowel_idx] * rng.uniform(0.95, 1.1)
        ctrl_t = np.arange(0, m, hop) / SAMPLE_RATE
        ctrl_note = np.clip(np.searchsorted(starts, ctrl_t, side="right") - 1, 0, None)
        formants = formants_per_note[ctrl_note]  # (n_ctrl, 4)
        formants = signal.lfilter([0.3], [1, -0.7], formants, axis=0, zi=formants[:1] * 0.7)[0]
        voice = formant_harmonics(f0, formants, np.arange(ctrl_t.size) * hop, tilt, SAMPLE_RATE)
        # Note-level envelope: soft onsets, short gaps between detached notes, phrase fade-out.
        env = np.clip(since_onset / 0.04, 0, 1) * np.clip((phrase_end - t) / 0.12, 0, 1)
        breath = signal.lfilter([0.05], [1, -0.95], rng.standard_normal(m)) * 0.01
        # Consonant-like noise burst at some note onsets.
        for s in starts[rng.random(n_notes) < 0.4]:
            burst_n = int(0.04 * SAMPLE_RATE)
            burst = rng.standard_normal(burst_n) * np.linspace(1, 0, burst_n) * 0.15
            _add(breath, int(s * SAMPLE_RATE), burst)
        _add(mono, int(t0 * SAMPLE_RATE), voice * env + breath * env.clip(0.2, 1))
    sos = signal.butter(2, 90, "highpass", fs=SAMPLE_RATE, output="sos")
    mono = signal.sosfilt(sos, mono)
    # A little stereo width from a short decorrelating delay (mostly centred, as in real mixes).
    dry = _pan(mono, rng.uniform(-0.1, 0.1))
    delay = int(rng.uniform(0.011, 0.025) * SAMPLE_RATE)
    wet = np.zeros_like(dry)
    wet[delay:, 0] = mono[: n - delay]
    wet[2 * delay :, 1] = mono[: n - 2 * delay]
    return dry + 0.15 * wet


_RENDERERS = {
    "drums": render_drums,
    "bass": render_bass,
    "other": render_other,
    "vocals": render_vocals,
}
# Target loudness (dBFS RMS over the active part) per stem: (mean, spread).
_LEVELS = {
    "drums": (-19.0, 3.0),
    "bass": (-21.0, 3.0),
    "other": (-22.0, 3.5),
    "vocals": (-19.0, 3.0),
}


def generate_song(seed: int, split: str, index: int, seconds: float) -> dict[str, np.ndarray]:
    """Render one song.

    Args:
        seed: dataset seed.
        split: "train", "validation" or "test" (part of the per-song random stream).
        index: song number within the split.
        seconds: duration.

    Returns:
        {"drums", "bass", "other", "vocals", "mixture"} -> float32 (T, 2), T = round(seconds *
        44100); mixture is the float32 sum of the four float32 stems.
    """
    if split not in SPLIT_IDS:
        raise ValueError(f"split must be one of {sorted(SPLIT_IDS)}, got {split!r}")
    if seconds <= 0:
        raise ValueError(f"seconds must be > 0, got {seconds}")
    rng = np.random.default_rng([int(seed), SPLIT_IDS[split], int(index)])
    plan = plan_song(rng, seconds)
    stems = {}
    for source in SOURCES:
        # Each stem gets its own child stream so a change in one renderer leaves the others intact.
        child = np.random.default_rng(rng.integers(2**63))
        audio = _RENDERERS[source](plan, child)
        active = np.abs(audio).max(1) > 1e-4
        rms = np.sqrt(np.mean(audio[active] ** 2)) if active.any() else 0.0
        mean, spread = _LEVELS[source]
        target_db = mean + rng.uniform(-spread, spread)
        if rms > 0:
            audio = audio * (10 ** (target_db / 20) / rms)
        # A recording noise floor (-90..-78 dBFS, independent per channel), as real stems have:
        # it keeps references full-band, which BSSEval's SIR/ISR/SAR projections need.
        floor_db = rng.uniform(-90.0, -78.0)
        audio = audio + rng.standard_normal(audio.shape) * 10 ** (floor_db / 20)
        stems[source] = audio
    # Keep the mixture below full scale like a mastered song (float WAV would not clip anyway).
    peak = np.abs(sum(stems.values())).max()
    scale = min(1.0, 0.95 / peak) if peak > 0 else 1.0
    out = {s: (a * scale).astype(np.float32) for s, a in stems.items()}
    mixture = np.zeros_like(out["drums"])
    for source in SOURCES:
        mixture += out[source]
    out["mixture"] = mixture
    return out


def plot_song(song: dict[str, np.ndarray], path: str | os.PathLike, title: str = "") -> Path:
    """Save log-spectrograms (0-8 kHz) of every stem and the mixture of a song as a PNG.

    song: {name: float (T, 2)} as from :func:`generate_song`. Written atomically.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = [n for n in (*SOURCES, "mixture") if n in song]
    fig, axes = plt.subplots(len(names), 1, figsize=(12, 2.2 * len(names)), sharex=True)
    for ax, name in zip(np.atleast_1d(axes), names):
        f, t, power = signal.spectrogram(
            song[name].mean(1), SAMPLE_RATE, nperseg=2048, noverlap=1536
        )
        ax.pcolormesh(t, f, 10 * np.log10(power + 1e-12), vmin=-120, vmax=-30, shading="auto")
        ax.set_ylim(0, 8000)
        ax.set_ylabel(f"{name}\nHz")
    np.atleast_1d(axes)[-1].set_xlabel("seconds")
    fig.suptitle(title)
    fig.tight_layout()
    path = Path(path)
    try:
        write_via_temporary(path, lambda temporary: fig.savefig(temporary, dpi=80, format="png"))
    finally:
        plt.close(fig)
    return path


def track_name(split: str, index: int) -> str:
    return f"synthetic-{split}-{index:04d}"


def _write_track(directory: Path, song: dict[str, np.ndarray]) -> None:
    """Write one track folder atomically: fill a temp sibling folder, then rename it."""
    tmp = staging_folder(directory.parent)
    try:
        for name, audio in song.items():
            sf.write(tmp / f"{name}.wav", audio, SAMPLE_RATE, subtype="FLOAT")
        publish_folder(tmp, directory)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


@dataclass(frozen=True)
class SyntheticSpec:
    num_train: int
    num_validation: int
    num_test: int
    seconds: float
    seed: int
    version: int = MANIFEST_VERSION

    def tracks(self):
        for split, count in (
            ("train", self.num_train),
            ("validation", self.num_validation),
            ("test", self.num_test),
        ):
            for i in range(count):
                yield split, i


def _track_complete(directory: Path, seconds: float) -> bool:
    try:
        for name in (*SOURCES, "mixture"):
            info = sf.info(str(directory / f"{name}.wav"))
            if info.frames != int(round(seconds * SAMPLE_RATE)) or info.channels != 2:
                return False
    except (sf.LibsndfileError, RuntimeError, OSError):
        return False
    return True


def ensure_synthetic_dataset(
    root: str | os.PathLike,
    num_train: int = 8,
    num_validation: int = 2,
    num_test: int = 2,
    seconds: float = 10.0,
    seed: int = 0,
    progress: bool = True,
) -> Path:
    """Create (or complete) a synthetic MUSDB18-HQ-layout dataset under ``root``; idempotent.

    A manifest (``synthetic_manifest.json``) records the spec. If it matches and every track
    folder is complete, nothing is done. Otherwise missing or incomplete tracks are rendered
    (deterministically, so a partial run is completed with the same audio), track folders left
    from a different spec are removed, and the manifest is written last (atomically).

    Returns:
        The root path.

    Not safe to run from several processes at once: with Accelerate, call it inside
    ``accelerator.main_process_first()``.
    """
    for field, value in (
        ("num_train", num_train),
        ("num_validation", num_validation),
        ("num_test", num_test),
    ):
        if value < 0:
            raise ValueError(f"{field} must be >= 0, got {value}")
    if seconds <= 0:
        raise ValueError(f"seconds must be > 0, got {seconds}")
    root = Path(root)
    spec = SyntheticSpec(num_train, num_validation, num_test, float(seconds), int(seed))
    manifest_path = root / MANIFEST_NAME
    old = None
    if manifest_path.exists():
        try:
            old = json.loads(manifest_path.read_text())
        except json.JSONDecodeError:
            old = None
    same_spec = old is not None and old.get("spec") == asdict(spec)
    wanted = {(split, track_name(split, i)) for split, i in spec.tracks()}
    todo = [
        (split, i)
        for split, i in spec.tracks()
        if not (same_spec and _track_complete(root / split / track_name(split, i), seconds))
    ]
    if not todo and same_spec:
        return root
    if manifest_path.exists():
        manifest_path.unlink()  # the tree is about to change: no manifest until it is complete
    for split in SPLIT_IDS:
        split_dir = root / split
        if split_dir.is_dir():
            for child in split_dir.iterdir():
                if (
                    child.is_dir()
                    and (split, child.name) not in wanted
                    and child.name.startswith(("synthetic-", ".synthetic-"))
                ):
                    shutil.rmtree(child)
            clean_stale_temporaries(split_dir)  # staging folders of a killed generator
    for split, i in tqdm(todo, desc="synthetic songs", disable=not progress):
        song = generate_song(seed, split, i, seconds)
        _write_track(root / split / track_name(split, i), song)
    manifest = {
        "spec": asdict(spec),
        "sample_rate": SAMPLE_RATE,
        "sources": list(SOURCES),
        "tracks": {
            split: [track_name(split, i) for i in range(n)]
            for split, n in (
                ("train", num_train),
                ("validation", num_validation),
                ("test", num_test),
            )
        },
    }
    write_text_atomic(manifest_path, json.dumps(manifest, indent=2))
    return root
