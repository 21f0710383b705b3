"""Idle life: blinks, breathing, head sway, gaze shifts, and a little emphasis on stressed syllables.

Everything here is small and slow on purpose: a face that never moves looks dead, one that moves too
much looks nervous. Rates follow the usual figures for conversation: 10-20 blinks a minute of
150-300 ms, breathing at ~0.25 Hz, head sway of a degree or two that grows while speaking, and
a slight nod with (sometimes) a brow flash on stressed syllables.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy.ndimage import uniform_filter1d

from realtime.animate.programs import _lowpass_noise, eyelid_pulse
from realtime.vocab import DIM, FPS, INDEX


@dataclass
class IdleConfig:
    blinks_per_minute: tuple[float, float] = (11.0, 17.0)  # each sequence draws its own rate from this range
    blink_seconds: tuple[float, float] = (0.15, 0.3)
    blink_refractory_s: float = 0.8  # no second blink sooner than this after one ends
    breath_hz: tuple[float, float] = (0.2, 0.3)
    breath_iod: float = 0.012  # head_y amplitude
    sway_degrees: tuple[float, float, float] = (0.9, 0.6, 0.5)  # std of yaw, pitch, roll
    speech_sway_gain: float = 0.6  # yaw/pitch sway grows by this fraction while speaking
    beat_degrees: float = 1.5  # chin-down nod on a primary-stressed syllable
    beat_brow: float = 0.15  # brow flash on some stressed syllables
    beat_brow_probability: float = 0.35
    gaze_hold_s: tuple[float, float] = (1.0, 3.0)
    gaze_std: tuple[float, float] = (0.12, 0.08)  # x, y


def blink_times(duration_s: float, rng: np.random.Generator, config: IdleConfig) -> list[tuple[float, float]]:
    """(start, length) of each blink: a renewal process with gamma-distributed gaps (more regular than
    Poisson, as real blinking is) and a refractory time."""
    rate = rng.uniform(*config.blinks_per_minute) / 60.0
    shape = 4.0
    blinks: list[tuple[float, float]] = []
    start = rng.uniform(0.2, 1.0 / rate)
    while start < duration_s:
        length = rng.uniform(*config.blink_seconds)
        blinks.append((start, length))
        gap = rng.gamma(shape, 1.0 / (rate * shape))
        start += max(gap, length + config.blink_refractory_s)
    return blinks


def blink_track(n: int, rng: np.random.Generator, config: IdleConfig | None = None) -> np.ndarray:
    """Eye closure 0..1 per frame, the same for both eyes."""
    config = config or IdleConfig()
    t = np.arange(n) / FPS
    closure = np.zeros(n, dtype=np.float32)
    for start, length in blink_times(n / FPS, rng, config):
        closure = np.maximum(closure, eyelid_pulse(t - start, length))
    return closure


def _speaking(phonemes: Sequence, n: int, lead: float) -> np.ndarray:
    """1 while speaking (pauses excluded), smoothed over ~0.36 s."""
    active = np.zeros(n, np.float32)
    for p in phonemes:
        if not p.symbol.startswith("_"):
            active[max(0, int((p.start - lead) * FPS)):max(0, int(np.ceil((p.end - lead) * FPS)))] = 1.0
    return uniform_filter1d(active, 9, mode="nearest")


def idle_track(n: int, rng: np.random.Generator, phonemes: Sequence = (), lead: float = 0.08,
               config: IdleConfig | None = None) -> np.ndarray:
    """Idle motion (n, DIM); with `phonemes` (timed, with stress) the head moves a little more while speaking
    and beats on stressed syllables, `lead` seconds ahead of the sound like the lips."""
    config = config or IdleConfig()
    out = np.zeros((n, DIM), dtype=np.float32)
    t = np.arange(n) / FPS
    blink = blink_track(n, rng, config)
    out[:, INDEX["blink_left"]] = blink
    out[:, INDEX["blink_right"]] = blink

    out[:, INDEX["head_y"]] = config.breath_iod * np.sin(2 * np.pi * rng.uniform(*config.breath_hz) * t
                                                         + rng.uniform(0, 2 * np.pi))
    activity = 1.0 + config.speech_sway_gain * _speaking(phonemes, n, lead)
    yaw, pitch, roll = config.sway_degrees
    out[:, INDEX["head_yaw"]] = yaw * _lowpass_noise(rng, n, 1.2) * activity
    out[:, INDEX["head_pitch"]] = pitch * _lowpass_noise(rng, n, 1.0) * activity
    out[:, INDEX["head_roll"]] = roll * _lowpass_noise(rng, n, 1.6)

    # Gaze: small fixations held for a second or more, with quick (2-3 frame) saccades between them.
    gaze_x, gaze_y, i = np.zeros(n), np.zeros(n), 0
    while i < n:
        hold = max(1, int(rng.uniform(*config.gaze_hold_s) * FPS))
        gaze_x[i:i + hold], gaze_y[i:i + hold] = rng.normal(0, config.gaze_std[0]), rng.normal(0, config.gaze_std[1])
        i += hold
    kernel = np.ones(3) / 3
    out[:, INDEX["gaze_x"]] = np.convolve(np.pad(gaze_x, 1, mode="edge"), kernel, mode="valid")
    out[:, INDEX["gaze_y"]] = np.convolve(np.pad(gaze_y, 1, mode="edge"), kernel, mode="valid")

    frames = np.arange(n)
    for p in phonemes:
        stress = int(getattr(p, "stress", 0))
        if not stress:
            continue
        weight = 0.5 * min(stress, 2) * rng.uniform(0.5, 1.0)
        bump = weight * np.exp(-0.5 * ((frames - (p.start - lead) * FPS) / 2.5) ** 2)
        out[:, INDEX["head_pitch"]] += config.beat_degrees * bump
        if rng.random() < config.beat_brow_probability:
            out[:, INDEX["brow_outer_up"]] += config.beat_brow * bump
            out[:, INDEX["brow_inner_up"]] += 0.5 * config.beat_brow * bump
    return out
