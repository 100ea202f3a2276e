"""Mix production for rendered songs: per-instrument and per-stem effects, a per-song room, a bus
compressor and limiter, all applied so that the stems still sum exactly to the mixture.

Effects come from Spotify's ``pedalboard`` (JUCE DSP: EQ filters, compressor, distortion, chorus,
Freeverb reverb). Everything non-linear (drive, compression, chorus) runs on one instrument or one
stem before the stems are summed; the song's room is a linear, time-invariant reverb, so running it
per stem (a send per stem) gives exactly the reverb of the sum; the master bus (compressor, then
limiter) is applied as one gain curve computed from the mix and multiplied into every stem.

Own code, with the reason: pedalboard's ``Compressor`` / ``Limiter`` do not expose the gain they
apply, and applying them to the mixture alone would break ``mixture == sum(stems)``; the bus gain
computer below (feed-forward, RMS detector with attack/release, soft knee; a peak limiter with
look-ahead) is that gain made explicit (~30 lines, vectorised with scipy filters).
"""

from __future__ import annotations

import numpy as np
import pedalboard as pb
from scipy import ndimage, signal

#: General MIDI program families (program // 8), the names the stem mapping uses.
FAMILIES = (
    "piano", "chromatic_percussion", "organ", "guitar", "bass", "strings", "ensemble", "brass",
    "reed", "pipe", "synth_lead", "synth_pad", "synth_effects", "ethnic", "percussive",
    "sound_effects",
)  # fmt: skip


def family_of(program: int) -> str:
    return FAMILIES[int(program) // 8]


def _u(rng: np.random.Generator, low: float, high: float) -> float:
    return float(rng.uniform(low, high))


def instrument_chain(role: str, program: int, rng: np.random.Generator) -> pb.Pedalboard:
    """Effects for one instrument, by its role ("drums", "vocals") or General MIDI family."""
    family = role if role in ("drums", "vocals") else family_of(program)
    fx: list = [pb.HighpassFilter(_u(rng, 20, 60))]
    if family == "guitar":
        if (
            program in (29, 30) or rng.random() < 0.25
        ):  # overdrive / distortion patches, or a dirty amp
            fx += [pb.Distortion(_u(rng, 8, 24)), pb.LowpassFilter(_u(rng, 3500, 7000))]
        if rng.random() < 0.4:
            fx.append(pb.Chorus(rate_hz=_u(rng, 0.3, 1.5), depth=_u(rng, 0.1, 0.3), mix=0.4))
        fx.append(pb.PeakFilter(_u(rng, 1500, 3500), _u(rng, -3, 4), 1.0))
    elif family == "bass":
        if rng.random() < 0.4:
            fx += [pb.Distortion(_u(rng, 3, 12)), pb.LowpassFilter(_u(rng, 1500, 4000))]
        fx.append(pb.Compressor(_u(rng, -24, -14), _u(rng, 3, 6), _u(rng, 3, 15), _u(rng, 80, 200)))
    elif family in ("synth_pad", "ensemble", "strings", "organ") and rng.random() < 0.5:
        fx.append(
            pb.Chorus(rate_hz=_u(rng, 0.2, 1.0), depth=_u(rng, 0.1, 0.4), mix=_u(rng, 0.2, 0.5))
        )
    elif family == "piano" and program in (4, 5) and rng.random() < 0.6:  # electric pianos
        fx.append(pb.Chorus(rate_hz=_u(rng, 0.5, 2.0), depth=0.2, mix=0.35))
    elif family == "drums":
        fx += [
            pb.LowShelfFilter(_u(rng, 60, 120), _u(rng, -2, 5)),
            pb.Compressor(_u(rng, -22, -10), _u(rng, 2, 5), _u(rng, 2, 20), _u(rng, 60, 250)),
        ]
    elif family == "vocals":
        fx += [
            pb.PeakFilter(_u(rng, 200, 400), _u(rng, -4, 0), 1.0),
            pb.HighShelfFilter(_u(rng, 6000, 10000), _u(rng, 0, 5)),
            pb.Compressor(_u(rng, -26, -16), _u(rng, 3, 6), _u(rng, 2, 8), _u(rng, 60, 150)),
        ]
    if rng.random() < 0.5:  # a random tonal tilt per instrument: every engineer EQs differently
        fx.append(pb.PeakFilter(_u(rng, 150, 6000), _u(rng, -5, 5), _u(rng, 0.5, 2.0)))
    return pb.Pedalboard(fx)


def pan(mono_or_stereo: np.ndarray, position: float) -> np.ndarray:
    """Constant-power pan of (T,) or balance of (T, 2) at ``position`` in [-1, 1] -> (T, 2)."""
    angle = (position + 1.0) * np.pi / 4.0
    gains = np.array([np.cos(angle), np.sin(angle)]) * np.sqrt(2)
    x = mono_or_stereo if mono_or_stereo.ndim == 2 else mono_or_stereo[:, None]
    return (x * gains).astype(np.float32)


def level_automation(n: int, sample_rate: int, rng: np.random.Generator, depth_db: float = 4.0):
    """A slow gain curve (T,): random breakpoints every 1-4 s joined linearly, +-depth_db."""
    points = [0]
    while points[-1] < n:
        points.append(points[-1] + int(rng.uniform(1, 4) * sample_rate))
    gains = 10 ** (rng.uniform(-depth_db, depth_db, size=len(points)) / 20)
    return np.interp(np.arange(n, dtype=np.float32), points, gains).astype(np.float32)


def room(rng: np.random.Generator) -> dict:
    """A per-song space: Freeverb settings (small room .. large hall, dark .. bright)."""
    kind = rng.choice(["room", "plate", "hall"])
    size = {"room": (0.2, 0.5), "plate": (0.5, 0.75), "hall": (0.75, 0.95)}[str(kind)]
    return {
        "kind": str(kind),
        "room_size": _u(rng, *size),
        "damping": _u(rng, 0.2, 0.8),
        "width": _u(rng, 0.6, 1.0),
    }


def reverb_send(stem: np.ndarray, space: dict, send_db: float, sample_rate: int) -> np.ndarray:
    """The wet reverb of one stem (T, 2) for a send level: linear, so sends sum to the mix's."""
    verb = pb.Reverb(
        room_size=space["room_size"], damping=space["damping"], width=space["width"],
        wet_level=1.0, dry_level=0.0,
    )  # fmt: skip
    return verb(np.ascontiguousarray(stem.T), sample_rate).T * np.float32(10 ** (send_db / 20))


def _smooth(x: np.ndarray, seconds: float, rate: float) -> np.ndarray:
    a = np.exp(-1.0 / max(1.0, seconds * rate))
    return signal.lfilter([1 - a], [1, -a], x)


def bus_gain(
    mix: np.ndarray,
    sample_rate: int,
    rng: np.random.Generator,
    ceiling_db: float = -1.0,
    hop: int = 32,
) -> np.ndarray:
    """Gain curve (T,) of a master bus compressor followed by a look-ahead peak limiter.

    The compressor: RMS detector (10 ms), threshold 12..24 dB below the mix's loudest RMS, ratio
    1.5..4, soft knee 6 dB, attack ~10 ms / release ~150 ms (the gain reduction follows the faster
    of two one-pole smoothers up and the slower down), make-up gain to the same RMS. The limiter:
    the peak over a 5 ms look-ahead window held to ``ceiling_db``. Computed on blocks of ``hop``
    samples (0.7 ms) and interpolated.
    """
    n = mix.shape[0]
    blocks = -(-n // hop)
    padded = np.zeros((blocks * hop, mix.shape[1]), dtype=np.float32)
    padded[:n] = mix
    frames = padded.reshape(blocks, hop, -1)
    power = np.mean(frames.astype(np.float64) ** 2, axis=(1, 2))
    peak_in = np.abs(frames).max(axis=(1, 2))
    rate = sample_rate / hop
    rms_db = 10 * np.log10(_smooth(power, 0.01, rate) + 1e-12)
    threshold = rms_db.max() - _u(rng, 12, 24)
    ratio, knee = _u(rng, 1.5, 4.0), 6.0
    over = rms_db - threshold
    soft = np.where(over > knee / 2, over, (over + knee / 2).clip(0) ** 2 / (2 * knee))
    reduction = soft * (1 - 1 / ratio)  # dB, >= 0
    reduction = np.maximum(_smooth(reduction, 0.01, rate), _smooth(reduction, 0.15, rate))
    gain = 10 ** (-reduction / 20)
    gain *= np.sqrt(np.sum(power) / max(np.sum(power * gain**2), 1e-20))
    # Limiter: the block peaks (one block of look-ahead each side) held below the ceiling.
    peak = ndimage.maximum_filter1d(peak_in * gain, 2 * max(1, int(0.005 * rate)) + 1)
    gain *= np.minimum(1.0, 10 ** (ceiling_db / 20) / np.maximum(peak, 1e-12))
    centres = np.arange(blocks) * hop + hop / 2
    return np.interp(np.arange(n, dtype=np.float32), centres, gain).astype(np.float32)


__all__ = [
    "FAMILIES",
    "bus_gain",
    "family_of",
    "instrument_chain",
    "level_automation",
    "pan",
    "reverb_send",
    "room",
]
