"""Sung vocals for rendered songs: a melody (notes + lyric syllables) in, a mono voice out.

Engines (chosen per song by the renderer; which one trains the best separator on real songs was
measured, see the README's "Data" section):

* ``"soundfont"``: the melody through a General MIDI voice patch of the song's SoundFont (choir
  aahs 52, voice oohs 53, synth voice 54, lead voice 85), rendered by FluidSynth like any part.
* ``"formant"``: the project's formant synthesiser (:mod:`data_scripts.synthetic`: glottal source
  with harmonics shaped by moving vowel formants F1-F4), here driven by the melody's notes, with
  delayed vibrato, glides, consonant bursts.
* ``"speech"``: espeak-ng sings the lyric syllables: each word is spoken once per voice on a flat
  pitch (SSML ``range="0"``), cached, then time-stretched to the note and pitch-shifted to it with
  formants preserved (Rubber Band through ``pedalboard.time_stretch``), vibrato added by a short
  modulated delay. Real consonants and vowels, sung on the melody.

Every engine adds breaths before phrases. Own code, with the reason: no offline singing
synthesiser is packaged for Debian/PyPI (Festival's singing mode needs voices not in Debian's
main archive); these are the candidates the machine has.
"""

from __future__ import annotations

import functools
import shutil
import subprocess
import tempfile
from pathlib import Path

import numpy as np
import pedalboard as pb
import soundfile as sf
from scipy import signal

from data_scripts.synthetic import VOWEL_FORMANTS, formant_harmonics, midi_to_hz

VOCAL_ENGINES = ("soundfont", "formant", "speech")
VOICE_PROGRAMS = (52, 53, 54, 85)
ESPEAK_VOICES = ("en+f3", "en+f4", "en+m3", "en+m5", "en-us+f2", "en-us+m2")


class VocalEngineError(RuntimeError):
    """An engine cannot run here (e.g. espeak-ng is not installed)."""


def breaths(notes, n: int, sample_rate: int, rng: np.random.Generator) -> np.ndarray:
    """Filtered-noise in-breaths before phrases (a gap of more than 0.35 s before a note)."""
    out = np.zeros(n, dtype=np.float32)
    previous_end = -1.0
    sos = signal.butter(2, [800, 6000], "bandpass", fs=sample_rate, output="sos")
    for start, end, _pitch, _vel in notes:
        if start - previous_end > 0.35 and rng.random() < 0.7:
            m = int(rng.uniform(0.15, 0.3) * sample_rate)
            s = int(start * sample_rate) - m - int(0.03 * sample_rate)
            if s >= 0 and s + m <= n:
                env = np.sin(np.linspace(0, np.pi, m)) ** 2
                noise = signal.sosfilt(sos, rng.standard_normal(m)) * env
                out[s : s + m] += (noise * rng.uniform(0.02, 0.06)).astype(np.float32)
        previous_end = end
    return out


def formant_voice(notes, n: int, sample_rate: int, rng: np.random.Generator) -> np.ndarray:
    """The formant synthesiser on notes [(start_s, end_s, midi_pitch, velocity)] -> (n,)."""
    out = np.zeros(n)
    tilt = rng.uniform(1.0, 1.6)
    vib_rate, vib_depth = rng.uniform(4.5, 6.5), rng.uniform(0.2, 0.6)
    scale_formants = rng.uniform(0.95, 1.1)
    hop = 128
    for start, end, pitch, velocity in notes:
        s, m = int(start * sample_rate), int((end - start) * sample_rate)
        m = min(m, n - s)
        if m < hop * 4:
            continue
        t = np.arange(m) / sample_rate
        scoop = -0.6 * np.exp(-t / rng.uniform(0.03, 0.09))  # attack from below, as singers do
        vib = vib_depth * np.clip(t / 0.35 - 0.3, 0, 1) * np.sin(2 * np.pi * vib_rate * t)
        f0 = midi_to_hz(pitch + scoop + vib)
        vowels = VOWEL_FORMANTS[rng.integers(len(VOWEL_FORMANTS), size=2)] * scale_formants
        ctrl_t = np.arange(0, m, hop)
        glide = np.clip(ctrl_t / m * 1.5 - 0.25, 0, 1)[:, None]  # diphthong: vowel a -> vowel b
        formants = vowels[0] * (1 - glide) + vowels[1] * glide
        voice = formant_harmonics(f0, formants, ctrl_t, tilt, sample_rate)
        env = np.clip(t / 0.04, 0, 1) * np.clip((t[-1] - t) / 0.06, 0, 1)
        if rng.random() < 0.5:  # consonant burst
            b = min(m, int(0.04 * sample_rate))
            voice[:b] += rng.standard_normal(b) * np.linspace(1, 0, b) * 0.15
        out[s : s + m] += voice * env * (velocity / 100)
    peak = np.abs(out).max()
    return (out / peak * 0.5 if peak > 0 else out).astype(np.float32)


def yin_f0(frame: np.ndarray, sample_rate: int, low: float = 60.0, high: float = 600.0) -> float:
    """Fundamental frequency of one voiced frame by YIN (de Cheveigne & Kawahara 2002): the first
    lag whose cumulative-mean-normalised difference dips below 0.15 (else the deepest dip)."""
    x = frame.astype(np.float64)
    w = x.size // 2
    lags = np.arange(1, int(sample_rate / low))
    energy = np.cumsum(x**2)
    # d(tau) = sum_t (x_t - x_{t+tau})^2 over the first half, via correlations.
    corr = np.correlate(x, x[:w], "valid")[: lags[-1] + 1]
    d = energy[w - 1] + (energy[lags + w - 1] - energy[lags - 1]) - 2 * corr[lags]
    cmnd = d * lags / np.maximum(np.cumsum(d), 1e-12)
    first = int(sample_rate / high)
    below = np.flatnonzero(cmnd[first:] < 0.15)
    if below.size:
        i = first + int(below[0])
        while i + 1 < cmnd.size and cmnd[i + 1] < cmnd[i]:
            i += 1
    else:
        i = first + int(np.argmin(cmnd[first:]))
    return sample_rate / float(lags[i])


@functools.lru_cache(maxsize=512)
def _spoken(word: str, voice: str, sample_rate: int) -> tuple[np.ndarray, float]:
    """espeak-ng says ``word`` on a flat pitch; returns (trimmed audio at sample_rate, f0 in Hz)."""
    exe = shutil.which("espeak-ng")
    if exe is None:
        raise VocalEngineError(
            "the 'speech' vocal engine needs espeak-ng (apt-get install espeak-ng)"
        )
    ssml = f'<speak><prosody pitch="50" range="0">{word}</prosody></speak>'
    with tempfile.TemporaryDirectory() as tmp:
        wav = Path(tmp) / "w.wav"
        subprocess.run(
            [exe, "-v", voice, "-s", "120", "-m", "-w", str(wav), ssml],
            check=True,
            capture_output=True,
        )
        audio, rate = sf.read(wav, dtype="float32")
    voiced = np.flatnonzero(np.abs(audio) > 0.01)
    audio = audio[voiced[0] : voiced[-1] + 1] if voiced.size else audio
    audio = pb.Resample(sample_rate)(audio[None], rate)[0] if rate != sample_rate else audio
    frames = [
        audio[i : i + 2048] for i in range(0, max(1, audio.size - 2048), 1024)
        if np.sqrt(np.mean(audio[i : i + 2048] ** 2)) > 0.02
    ]  # fmt: skip
    estimates = [yin_f0(x, sample_rate) for x in frames if x.size == 2048]
    f0 = float(np.median(estimates)) if estimates else 150.0
    return audio.astype(np.float32), f0


def speech_voice(notes, lyrics, n: int, sample_rate: int, rng: np.random.Generator) -> np.ndarray:
    """espeak-ng syllables fitted to notes [(start_s, end_s, pitch, velocity)] -> (n,)."""
    voice = str(rng.choice(ESPEAK_VOICES))
    out = np.zeros(n, dtype=np.float32)
    for (start, end, pitch, velocity), word in zip(notes, lyrics):
        spoken, f0 = _spoken(word, voice, sample_rate)
        duration = end - start
        if duration < 0.06 or spoken.size < 256:
            continue
        shift = float(pitch - (69 + 12 * np.log2(f0 / 440.0)))
        stretch = (spoken.size / sample_rate) / duration  # > 1 is faster
        sung = pb.time_stretch(
            spoken[None], sample_rate, stretch_factor=float(np.clip(stretch, 0.05, 20)),
            pitch_shift_in_semitones=float(np.clip(shift, -24, 24)), preserve_formants=True,
        )[0]  # fmt: skip
        s = int(start * sample_rate)
        m = min(sung.size, n - s, int(duration * sample_rate))
        if m <= 0:
            continue
        fade = np.clip(np.arange(m)[::-1] / (0.03 * sample_rate), 0, 1)
        out[s : s + m] += sung[:m] * fade * (velocity / 100)
    vibrato = pb.Chorus(
        rate_hz=float(rng.uniform(4.5, 6.0)), depth=float(rng.uniform(0.05, 0.15)),
        centre_delay_ms=2.0, feedback=0.0, mix=1.0,
    )  # fmt: skip
    out = vibrato(out[None], sample_rate)[0]
    peak = np.abs(out).max()
    return out / peak * 0.5 if peak > 0 else out


__all__ = [
    "ESPEAK_VOICES",
    "VOCAL_ENGINES",
    "VOICE_PROGRAMS",
    "VocalEngineError",
    "breaths",
    "formant_voice",
    "speech_voice",
]
