"""Own code vs libraries for three jobs: resampling at the edges, pitch/tempo augmentation, and
the inverse STFT.

    python benchmarks/library_choices.py [--rounds 3] [--seconds 30]

Resampling (`modeling_tfswa.audio.resample`, a Kaiser-windowed sinc polyphase filter in torch) vs
`soxr` (libsoxr, qualities HQ and VHQ) and `julius.resample_frac` (torch, Demucs' resampler), for
44100 -> 48000, 48000 -> 44100 and 22050 -> 44100 Hz:
- quality: SNR (dB) of a resampled linear sine sweep against the same sweep computed analytically
  at the new rate, for sweeps from 20 Hz to 18 kHz (or 0.85 of the lower Nyquist frequency, if
  lower) and to 20 kHz (0.9 of it); and, when downsampling, the level (dB relative to the input) of
  what is left of a sweep lying wholly above the new Nyquist frequency (aliasing / leakage).
  The first and last 50 ms are left out (filter start-up).
- speed: seconds of compute per minute of stereo audio (`--seconds` of audio, scaled), best of
  `--rounds` interleaved rounds, wall and process CPU time.

Pitch/tempo (`modeling_tfswa.training.augment.pitch_tempo`: phase vocoder + band-limited
resampling in torch) vs `pedalboard.time_stretch` (Rubber Band; `preserve_formants=False` so that
a pitch shift moves the whole spectrum as ours does, and `high_quality` True and False), for +3
semitones at tempo 1.1 and -2 semitones at tempo 0.9, output cut or padded to the input length:
- stationary tones: a harmonic tone (220 Hz, 12 harmonics, 1/k amplitudes) must come out as the
  same tone at `220 * 2**(semitones / 12)` Hz: SNR (dB) of the least-squares fit of its 12
  harmonics against the rest (phasiness, smearing, amplitude wobble count as error), with the
  fundamental searched within +-5 cents, to 0.01 cent (a pitch off by 0.03 cent, irrelevant to augmentation,
  would otherwise dominate), and that fundamental's error in cents.
- transients: a click train (one click every 250 ms, 2-ms decaying noise bursts) must come out as
  clicks every `250 / tempo` ms: the share (dB) of the output energy outside +-10 ms of the expected
  clicks, after the best global alignment within +-30 ms (smeared or pre-echoed clicks count).
- real music (the MUSDB18 sample mixture, when present): shift and back (semitones s at tempo r,
  then -s at 1/r), log-spectral distance (dB) to the original; lower is better.
- speed: seconds of compute per minute of audio for one training example of 4 stereo stems (8
  channels) of 6 s, best of `--rounds`.

Inverse STFT (`modeling_tfswa.spectral.istft`: inverse FFT, window, overlap-add by padded pieces,
envelope; chunks of signals on the CPU) vs `torch.istft` (one call), for the separated stems of
one 6-s segment (4 stems x 2 channels) at n_fft 2048 with hops 1024 and 512: the largest absolute
difference between the two, and seconds of compute per minute of audio, best of `--rounds` (at
least 5: one call takes milliseconds).

Requires `pip install soxr julius pedalboard` (not dependencies of the project). One torch thread.
Prints one JSON object last.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from functools import partial
from pathlib import Path

import julius
import numpy as np
import pedalboard
import soxr
import torch

from modeling_tfswa.audio import fit_length, resample
from modeling_tfswa.spectral import istft, stft
from modeling_tfswa.training.augment import pitch_tempo

SAMPLE_RATE = 44100
RATES = [(44100, 48000), (48000, 44100), (22050, 44100)]
EDGE = 0.05  # seconds left out at both ends
SHIFTS = [(3.0, 1.1), (-2.0, 0.9)]
MUSDB_SAMPLE = (
    Path(__file__).resolve().parents[1].parent
    / "shared/data/musdb18-sample/train/Music Delta - 80s Rock.stem.mp4"
)


# --------------------------------------------------------------------------------------------------
# Resampling
# --------------------------------------------------------------------------------------------------
def resample_ours(x: np.ndarray, orig: int, new: int) -> np.ndarray:
    return resample(torch.from_numpy(x), orig, new).numpy()


def resample_soxr(quality: str):
    def run(x: np.ndarray, orig: int, new: int) -> np.ndarray:
        out = soxr.resample(x.T, orig, new, quality=quality).T  # soxr is (samples, channels)
        return np.ascontiguousarray(out)

    return run


def resample_julius(x: np.ndarray, orig: int, new: int) -> np.ndarray:
    return julius.resample_frac(torch.from_numpy(x), orig, new).numpy()


RESAMPLERS = {
    "ours": resample_ours,
    "soxr_hq": resample_soxr("HQ"),
    "soxr_vhq": resample_soxr("VHQ"),
    "julius": resample_julius,
}


def sweep(rate: int, seconds: float, low: float, high: float) -> np.ndarray:
    """Linear sine sweep from `low` to `high` Hz, computed in float64 at `rate`."""
    t = np.arange(round(seconds * rate)) / rate
    return np.sin(2 * np.pi * (low * t + (high - low) * t**2 / (2 * seconds)))


def snr_db(reference: np.ndarray, estimate: np.ndarray) -> float:
    error = np.sum((reference - estimate) ** 2)
    return float(10 * np.log10(np.sum(reference**2) / max(error, 1e-30)))


def resampling_quality(name: str, seconds: float = 2.0) -> dict:
    fn = RESAMPLERS[name]
    out = {}
    for orig, new in RATES:
        nyquist = min(orig, new) / 2
        key = f"{orig}->{new}"
        for label, top in (
            ("snr_to_18k", min(18000, 0.85 * nyquist)),
            ("snr_to_20k", 0.9 * nyquist),
        ):
            x = sweep(orig, seconds, 20, top)[None].astype(np.float32)
            y = fn(x, orig, new)[0].astype(np.float64)
            reference = sweep(new, seconds, 20, top)
            n = min(len(y), len(reference))
            edge = round(EDGE * new)
            out[f"{key} {label}"] = round(snr_db(reference[edge : n - edge], y[edge : n - edge]), 1)
        if new < orig:
            x = sweep(orig, seconds, 1.02 * new / 2, 0.98 * orig / 2)[None].astype(np.float32)
            y = fn(x, orig, new)[0].astype(np.float64)
            edge = round(EDGE * new)
            leak = np.mean(y[edge:-edge] ** 2) / np.mean(x[0].astype(np.float64) ** 2)
            out[f"{key} leakage_db"] = round(float(10 * np.log10(max(leak, 1e-30))), 1)
    return out


def resampling_speed(seconds: float, rounds: int) -> dict:
    generator = np.random.default_rng(0)
    best: dict[str, list[float]] = {}
    for _ in range(rounds):
        for name, fn in RESAMPLERS.items():
            for orig, new in RATES[:2]:
                x = generator.standard_normal((2, round(seconds * orig))).astype(np.float32)
                wall, cpu = time.perf_counter(), time.process_time()
                fn(x, orig, new)
                wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
                scale = 60 / seconds
                key = f"{name} {orig}->{new}"
                old = best.get(key, [math.inf, math.inf])
                best[key] = [min(old[0], wall * scale), min(old[1], cpu * scale)]
    return {
        k: {"wall_s_per_min": round(w, 4), "cpu_s_per_min": round(c, 4)}
        for k, (w, c) in best.items()
    }


# --------------------------------------------------------------------------------------------------
# Pitch / tempo
# --------------------------------------------------------------------------------------------------
def shift_ours(x: np.ndarray, semitones: float, tempo: float) -> np.ndarray:
    return pitch_tempo(torch.from_numpy(x), semitones, tempo).numpy()


def shift_pedalboard(high_quality: bool):
    def run(x: np.ndarray, semitones: float, tempo: float) -> np.ndarray:
        out = pedalboard.time_stretch(
            x,
            SAMPLE_RATE,
            stretch_factor=tempo,
            pitch_shift_in_semitones=semitones,
            high_quality=high_quality,
            preserve_formants=False,
        )
        return fit_length(torch.from_numpy(out), x.shape[-1]).numpy()

    return run


SHIFTERS = {
    "ours": shift_ours,
    "pedalboard_hq": shift_pedalboard(True),
    "pedalboard_fast": shift_pedalboard(False),
}


def harmonic_tone(frequency: float, seconds: float) -> np.ndarray:
    t = np.arange(round(seconds * SAMPLE_RATE)) / SAMPLE_RATE
    return sum(np.sin(2 * np.pi * k * frequency * t) / k for k in range(1, 13)) * 0.3


def tone_fit(y: np.ndarray, frequency: float, start: int, stop: int) -> tuple[float, float]:
    """SNR (dB) of the least-squares fit of 12 harmonics to `y[start:stop]`, with the fundamental
    searched within +-5 cents of `frequency`, and the error (cents) of the best fundamental."""
    t = np.arange(start, stop) / SAMPLE_RATE
    segment = y[start:stop].astype(np.float64)

    def fit(cents: float) -> tuple[float, float]:
        f0 = frequency * 2 ** (cents / 1200)
        phases = 2 * np.pi * f0 * t[:, None] * np.arange(1, 13)[None, :]
        basis = np.concatenate([np.sin(phases), np.cos(phases)], axis=1)
        coefficients, *_ = np.linalg.lstsq(basis, segment, rcond=None)
        return snr_db(basis @ coefficients, segment), float(cents)

    best = max(fit(cents) for cents in np.linspace(-5, 5, 41))  # 0.25-cent steps, then finer
    best = max(best, *(fit(best[1] + cents) for cents in np.linspace(-0.25, 0.25, 51)))
    return best[0], round(best[1], 3)


def click_train(seconds: float, period: float) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(1)
    x = np.zeros(round(seconds * SAMPLE_RATE))
    length = round(0.002 * SAMPLE_RATE)
    burst = rng.standard_normal(length) * np.exp(-np.arange(length) / (length / 5))
    starts = np.arange(0.1, seconds - 0.1, period)
    for s in starts:
        i = round(s * SAMPLE_RATE)
        x[i : i + length] += burst
    return x * 0.5, starts


def transient_spread_db(y: np.ndarray, starts: np.ndarray, tempo: float) -> float:
    """Energy share (dB) outside +-10 ms of the expected clicks, best alignment within +-30 ms."""
    expected = [round(s / tempo * SAMPLE_RATE) for s in starts]
    expected = [e for e in expected if e < len(y) - round(0.05 * SAMPLE_RATE)]
    window, search = round(0.010 * SAMPLE_RATE), round(0.030 * SAMPLE_RATE)
    energy = y.astype(np.float64) ** 2
    cumulative = np.concatenate([[0.0], np.cumsum(energy)])
    considered = cumulative[expected[-1] + window + 1] - cumulative[0]
    best = 0.0
    for offset in range(-search, search + 1, 16):
        inside = sum(
            cumulative[min(e + offset + window, len(y))] - cumulative[max(e + offset - window, 0)]
            for e in expected
        )
        best = max(best, inside)
    outside = max(considered - best, 1e-30) / considered
    return float(10 * np.log10(outside))


def log_spectral_distance(a: np.ndarray, b: np.ndarray) -> float:
    """Root-mean-square difference (dB) of the 2048-point STFT magnitudes of two signals."""

    sa = stft(torch.from_numpy(a).float(), 2048, 512).abs()
    sb = stft(torch.from_numpy(b).float(), 2048, 512).abs()
    floor = 1e-4 * float(sa.max())
    diff = 20 * (torch.log10(sa.clamp_min(floor)) - torch.log10(sb.clamp_min(floor)))
    return float(diff.square().mean().sqrt())


def load_musdb_mixture() -> np.ndarray | None:
    if not MUSDB_SAMPLE.exists():
        return None
    from data_scripts.musdb import decode_stem_mp4

    return np.ascontiguousarray(decode_stem_mp4(MUSDB_SAMPLE, 0).T.astype(np.float32))


def pitch_tempo_quality(name: str, music: np.ndarray | None) -> dict:
    fn = SHIFTERS[name]
    out = {}
    for semitones, tempo in SHIFTS:
        key = f"{semitones:+g}st x{tempo:g}"
        tone = harmonic_tone(220, 3.0).astype(np.float32)[None]
        y = fn(tone, semitones, tempo)[0]
        stop = min(len(y), round(len(tone[0]) / tempo)) - round(0.25 * SAMPLE_RATE)
        target = 220 * 2 ** (semitones / 12)
        snr, cents = tone_fit(y, target, round(0.25 * SAMPLE_RATE), stop)
        out[f"{key} tone_snr_db"], out[f"{key} tone_pitch_error_cents"] = round(snr, 1), cents
        clicks, starts = click_train(3.0, 0.25)
        y = fn(clicks.astype(np.float32)[None], semitones, tempo)[0]
        out[f"{key} click_spread_db"] = round(transient_spread_db(y, starts, tempo), 1)
        if music is not None:
            there = fn(music, semitones, tempo)
            back = fn(there, -semitones, 1 / tempo)
            edge = round(0.5 * SAMPLE_RATE)
            usable = round(music.shape[-1] * min(1.0, 1 / tempo)) - edge
            out[f"{key} music_roundtrip_lsd_db"] = round(
                log_spectral_distance(music[:, edge:usable], back[:, edge:usable]), 2
            )
    return out


def pitch_tempo_speed(rounds: int) -> dict:
    x = np.random.default_rng(0).standard_normal((8, 6 * SAMPLE_RATE)).astype(np.float32) * 0.1
    best: dict[str, list[float]] = {}
    for _ in range(rounds):
        for name, fn in SHIFTERS.items():
            wall, cpu = time.perf_counter(), time.process_time()
            for semitones, tempo in SHIFTS:
                fn(x, semitones, tempo)
            wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
            scale = 60 / (6 * len(SHIFTS))  # per minute of 8-channel example audio
            old = best.get(name, [math.inf, math.inf])
            best[name] = [min(old[0], wall * scale), min(old[1], cpu * scale)]
    return {
        k: {"wall_s_per_min": round(w, 3), "cpu_s_per_min": round(c, 3)}
        for k, (w, c) in best.items()
    }


ISTFT_CASES = [(2048, 1024), (2048, 512)]


def inverse_stft(rounds: int) -> dict:
    """Ours against `torch.istft` on the stems of one separated 6-s segment (8 signals)."""
    length = 6 * SAMPLE_RATE
    x = torch.from_numpy(np.random.default_rng(0).standard_normal((8, length)).astype(np.float32))
    out = {}
    for n_fft, hop in ISTFT_CASES:
        spec = stft(x, n_fft, hop) * (1 + torch.rand(8, n_fft // 2 + 1, 1))  # not consistent
        window = torch.hann_window(n_fft)
        inverses = {
            "ours": partial(istft, spec, n_fft, hop, length, window),
            "torch.istft": partial(
                torch.istft, spec, n_fft, hop, window=window, center=True, length=length
            ),
        }
        difference = (inverses["ours"]() - inverses["torch.istft"]()).abs().max().item()
        best = dict.fromkeys(inverses, math.inf)
        for _ in range(rounds):
            for name, fn in inverses.items():
                cpu = time.process_time()
                fn()
                best[name] = min(best[name], (time.process_time() - cpu) * 60 / 6)
        out[f"n_fft {n_fft} hop {hop}"] = {
            "max_abs_difference": difference,
            **{f"{name}_cpu_s_per_min": round(t, 4) for name, t in best.items()},
        }
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=30.0)
    args = parser.parse_args()
    torch.set_num_threads(1)
    summary = {
        "threads": 1,
        "resampling_quality": {name: resampling_quality(name) for name in RESAMPLERS},
        "resampling_speed": resampling_speed(args.seconds, args.rounds),
    }
    print(json.dumps(summary["resampling_quality"]), file=sys.stderr)
    music = load_musdb_mixture()
    summary["pitch_tempo_quality"] = {name: pitch_tempo_quality(name, music) for name in SHIFTERS}
    print(json.dumps(summary["pitch_tempo_quality"]), file=sys.stderr)
    summary["pitch_tempo_speed"] = pitch_tempo_speed(args.rounds)
    summary["inverse_stft"] = inverse_stft(max(args.rounds, 5))
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
