"""Idle life: blinks, breathing, head sway, gaze shifts, and a little emphasis on stressed syllables."""
from __future__ import annotations

import numpy as np

from realtime.animate.programs import _lowpass_noise, eyelid_pulse
from realtime.motion.space import DIM, FPS, INDEX


def blink_track(n: int, rng: np.random.Generator, per_minute: tuple[float, float] = (10, 20)) -> np.ndarray:
    """Eye closure 0..1: blinks of 150–300 ms at a rate drawn from `per_minute`, with a refractory gap."""
    rate = rng.uniform(*per_minute) / 60.0
    closure = np.zeros(n, dtype=np.float32)
    t = np.arange(n) / FPS
    start = rng.exponential(1 / rate) * 0.5
    while start < n / FPS:
        duration = rng.uniform(0.15, 0.3)
        closure = np.maximum(closure, eyelid_pulse(t - start, duration))
        start += duration + max(0.8, rng.exponential(1 / rate))
    return closure


def idle_track(n: int, rng: np.random.Generator, stress_frames: np.ndarray | None = None,
               speaking: np.ndarray | None = None) -> np.ndarray:
    out = np.zeros((n, DIM), dtype=np.float32)
    t = np.arange(n) / FPS
    blink = blink_track(n, rng)
    out[:, INDEX["blink_left"]] = blink
    out[:, INDEX["blink_right"]] = blink
    breath = rng.uniform(0.2, 0.3)
    out[:, INDEX["head_y"]] = 0.012 * np.sin(2 * np.pi * breath * t + rng.uniform(0, 2 * np.pi))
    activity = 1.0 if speaking is None else 1.0 + 0.8 * speaking
    out[:, INDEX["head_yaw"]] = 1.5 * _lowpass_noise(rng, n, 1.2) * activity
    out[:, INDEX["head_pitch"]] = 1.0 * _lowpass_noise(rng, n, 1.0) * activity
    out[:, INDEX["head_roll"]] = 0.8 * _lowpass_noise(rng, n, 1.6)
    # Gaze: small saccades held for 1–3 s.
    gx, gy, i = np.zeros(n), np.zeros(n), 0
    while i < n:
        hold = int(rng.uniform(1.0, 3.0) * FPS)
        gx[i:i + hold], gy[i:i + hold] = rng.normal(0, 0.12), rng.normal(0, 0.08)
        i += hold
    kernel = np.ones(3) / 3
    out[:, INDEX["gaze_x"]] = np.convolve(gx, kernel, mode="same")
    out[:, INDEX["gaze_y"]] = np.convolve(gy, kernel, mode="same")
    if stress_frames is not None and len(stress_frames):
        bump = np.zeros(n)
        for f in stress_frames:
            bump += np.exp(-0.5 * ((np.arange(n) - f) / 2.0) ** 2)
        out[:, INDEX["head_pitch"]] += 1.5 * bump
        out[:, INDEX["brow_outer_up"]] += 0.12 * np.clip(bump, 0, 1)
    return out
