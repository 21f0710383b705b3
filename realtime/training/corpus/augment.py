"""Audio augmentation: make clean synthetic speech sound like real microphones, rooms and phone lines.

Only the audio is changed; the motion stays the clean teacher. Every transform keeps the length exactly
and is deterministic given the `numpy.random.Generator` it is handed. Speed, pitch and voice variation
happen earlier, at synthesis (espeak rate, pitch and `!v` variants), where they keep phoneme timings exact.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from math import gcd
from typing import Any

import numpy as np
from scipy.signal import butter, fftconvolve, resample_poly, sosfilt

from realtime.vocab import MODEL_RATE as RATE


class AugmentError(ValueError):
    """Audio handed to augmentation is unusable."""


def _check(audio: np.ndarray) -> np.ndarray:
    audio = np.asarray(audio, dtype=np.float32)
    if audio.ndim != 1 or audio.size == 0:
        raise AugmentError(f"augmentation needs non-empty mono audio (S,), got shape {audio.shape}")
    return audio


def active_power(audio: np.ndarray, rate: int = RATE) -> float:
    """Mean power of the 20 ms frames within 40 dB of the loudest, so leading silence does not dilute SNR."""
    n = rate // 50
    frames = audio[: len(audio) // n * n].reshape(-1, n) if len(audio) >= n else audio[None, :]
    power = (frames.astype(np.float64) ** 2).mean(axis=1)
    active = power[power >= power.max() * 1e-4]
    return float(active.mean()) if active.size else 0.0


# --- noise -------------------------------------------------------------------------------------------
def white_noise(n: int, rng: np.random.Generator) -> np.ndarray:
    return rng.standard_normal(n).astype(np.float32)


def pink_noise(n: int, rng: np.random.Generator) -> np.ndarray:
    """1/f power spectrum, made by shaping white noise in the frequency domain."""
    spectrum = np.fft.rfft(rng.standard_normal(n))
    f = np.arange(len(spectrum), dtype=np.float64)
    f[0] = 1.0
    return np.fft.irfft(spectrum / np.sqrt(f), n).astype(np.float32)


def babble_noise(n: int, sources: Sequence[np.ndarray], rng: np.random.Generator, talkers: int = 4) -> np.ndarray:
    """Several other utterances, each looped to length and started at a random point, summed."""
    if not sources:
        raise AugmentError("babble noise needs at least one other utterance")
    out = np.zeros(n, np.float32)
    for _ in range(talkers):
        src = np.asarray(sources[int(rng.integers(len(sources)))], np.float32)
        if src.size == 0:
            continue
        looped = np.resize(np.roll(src, -int(rng.integers(len(src)))), n)
        out += looped / (np.sqrt(active_power(looped)) + 1e-8)
    return out


def add_noise(audio: np.ndarray, noise: np.ndarray, snr_db: float) -> np.ndarray:
    """Mix `noise` in at `snr_db` relative to the speech's active power."""
    audio = _check(audio)
    if len(noise) != len(audio):
        raise AugmentError(f"noise has {len(noise)} samples, audio {len(audio)}")
    scale = np.sqrt(active_power(audio) / (np.mean(noise.astype(np.float64) ** 2) + 1e-12) / 10 ** (snr_db / 10))
    return (audio + scale * noise).astype(np.float32)


# --- rooms, channels, devices -----------------------------------------------------------------------
def room_impulse(rt60: float, rng: np.random.Generator, rate: int = RATE, predelay_ms: float = 5.0) -> np.ndarray:
    """Synthetic room: direct path, then exponentially decaying noise (-60 dB at `rt60` s)."""
    n = int(rate * rt60)
    t = np.arange(n) / rate
    tail = rng.standard_normal(n) * np.exp(-6.9078 * t / rt60)
    tail[: int(rate * predelay_ms / 1000)] = 0.0
    ir = 0.3 * tail / (np.sqrt(np.sum(tail ** 2)) + 1e-12)
    ir[0] = 1.0
    return ir.astype(np.float32)


def reverberate(audio: np.ndarray, rt60: float, rng: np.random.Generator, rate: int = RATE) -> np.ndarray:
    audio = _check(audio)
    wet = fftconvolve(audio, room_impulse(rt60, rng, rate), mode="full")[: len(audio)]
    return (wet * np.sqrt(active_power(audio) / (active_power(wet) + 1e-12))).astype(np.float32)


def mu_law(audio: np.ndarray, mu: int = 255) -> np.ndarray:
    """G.711-style 8-bit companding round trip (the quantisation noise of a phone codec)."""
    x = np.clip(audio, -1.0, 1.0)
    encoded = np.round(np.sign(x) * np.log1p(mu * np.abs(x)) / np.log1p(mu) * 127) / 127
    return (np.sign(encoded) * np.expm1(np.abs(encoded) * np.log1p(mu)) / mu).astype(np.float32)


def telephone(audio: np.ndarray, rate: int = RATE) -> np.ndarray:
    """Down to 8 kHz, mu-law codec, 300–3400 Hz band filter, back up: nothing above 3.4 kHz survives."""
    audio = _check(audio)
    if rate != RATE:
        raise AugmentError(f"telephone() works at {RATE} Hz, got {rate}")
    narrow = resample_poly(audio, 1, 2)
    peak = np.max(np.abs(narrow)) + 1e-9
    narrow = mu_law(narrow / peak) * peak
    narrow = sosfilt(butter(8, [300, 3400], btype="bandpass", fs=8000, output="sos"), narrow)
    return _fit(resample_poly(narrow, 2, 1), len(audio))


def band_limit(audio: np.ndarray, low_hz: float, high_hz: float, rate: int = RATE) -> np.ndarray:
    """A cheap microphone/loudspeaker: high-pass at `low_hz`, low-pass at `high_hz`."""
    audio = _check(audio)
    sos = butter(4, [low_hz, min(high_hz, rate / 2 * 0.98)], btype="bandpass", fs=rate, output="sos")
    return sosfilt(sos, audio).astype(np.float32)


def resample_artefacts(audio: np.ndarray, low_rate: int, aliasing: bool, rate: int = RATE) -> np.ndarray:
    """Through a lower sample rate and back; with `aliasing`, the way down skips the anti-alias filter."""
    audio = _check(audio)
    n_low = int(round(len(audio) * low_rate / rate))
    if aliasing:  # linear interpolation both ways: folds energy above low_rate/2 back, images it up again
        low = np.interp(np.arange(n_low) * rate / low_rate, np.arange(len(audio)), audio)
        back = np.interp(np.arange(len(audio)) * low_rate / rate, np.arange(len(low)), low)
    else:  # clean polyphase both ways: pure band-limiting to low_rate/2
        g = gcd(low_rate, rate)
        back = resample_poly(resample_poly(audio, low_rate // g, rate // g), rate // g, low_rate // g)
    return _fit(back, len(audio))


def gain(audio: np.ndarray, db: float, clip: bool = True) -> np.ndarray:
    out = _check(audio) * np.float32(10 ** (db / 20))
    return np.clip(out, -1.0, 1.0) if clip else out


def _fit(audio: np.ndarray, n: int) -> np.ndarray:
    audio = np.asarray(audio, np.float32)[:n]
    return np.pad(audio, (0, n - len(audio))) if len(audio) < n else audio


# --- the random chain ---------------------------------------------------------------------------------
@dataclass
class AugmentConfig:
    p_clean: float = 0.15  # items left untouched apart from gain
    p_noise: float = 0.6
    noise_kinds: tuple[str, ...] = ("white", "pink", "babble")
    snr_db: tuple[float, float] = (3.0, 35.0)
    p_reverb: float = 0.35
    rt60_s: tuple[float, float] = (0.15, 0.9)
    p_telephone: float = 0.12
    p_band_limit: float = 0.25
    p_resample: float = 0.15
    resample_rates: tuple[int, ...] = (8000, 11025, 12000)
    gain_db: tuple[float, float] = (-18.0, 6.0)
    target_peak: float = 0.5  # level the clean speech to this peak before the chain
    extra: dict[str, Any] = field(default_factory=dict)


class Augmenter:
    """`Augmenter(AugmentConfig())(audio, rng, others)` -> (augmented audio, description of what was done).

    `others` are other utterances, the material for babble noise; the description goes into item meta.
    Order follows the physical path: room -> noise -> device/channel -> level.
    """

    def __init__(self, config: AugmentConfig | None = None):
        self.config = config or AugmentConfig()

    def setup(self) -> Augmenter:
        return self

    def __call__(self, audio: np.ndarray, rng: np.random.Generator,
                 others: Sequence[np.ndarray] = ()) -> tuple[np.ndarray, dict[str, Any]]:
        c = self.config
        audio = _check(audio)
        # Choices come from `rng`, signals (noise, room) from a child generator: the choices then do not
        # depend on the audio's length.
        signal_rng = np.random.default_rng(int(rng.integers(2**63)))
        audio = audio * np.float32(c.target_peak / (np.max(np.abs(audio)) + 1e-9))
        done: dict[str, Any] = {}
        if rng.random() >= c.p_clean:
            if rng.random() < c.p_reverb:
                done["reverb_rt60"] = round(float(rng.uniform(*c.rt60_s)), 3)
                audio = reverberate(audio, done["reverb_rt60"], signal_rng)
            if rng.random() < c.p_noise:
                kinds = [k for k in c.noise_kinds if k != "babble" or len(others)]
                kind = kinds[int(rng.integers(len(kinds)))]
                snr = round(float(rng.uniform(*c.snr_db)), 1)
                talkers = int(rng.integers(3, 7))
                noise = {"white": lambda: white_noise(len(audio), signal_rng),
                         "pink": lambda: pink_noise(len(audio), signal_rng),
                         "babble": lambda: babble_noise(len(audio), others, signal_rng, talkers)}[kind]()
                audio = add_noise(audio, noise, snr)
                done["noise"], done["snr_db"] = kind, snr
            if rng.random() < c.p_telephone:
                audio, done["telephone"] = telephone(audio), True
            else:
                if rng.random() < c.p_band_limit:
                    low, high = float(rng.uniform(60, 300)), float(rng.uniform(3800, 7800))
                    audio, done["band_hz"] = band_limit(audio, low, high), [round(low), round(high)]
                if rng.random() < c.p_resample:
                    low_rate = int(c.resample_rates[int(rng.integers(len(c.resample_rates)))])
                    aliasing = bool(rng.random() < 0.5)
                    audio = resample_artefacts(audio, low_rate, aliasing)
                    done["resample"] = {"rate": low_rate, "aliasing": aliasing}
        db = round(float(rng.uniform(*c.gain_db)), 1)
        done["gain_db"] = db
        return gain(audio, db), done
