"""Cosine-schedule diffusion with x0 prediction, few-step deterministic DDIM and batched classifier-free guidance.

Time is continuous, t in [0, 1]; t = 1 is pure noise. The model predicts the clean window x0 directly,
which suits very few sampling steps and lets the trainer put a velocity loss on the prediction.
"""
from __future__ import annotations

import math
from collections.abc import Sequence

import torch

from realtime.motion.model import InstructionCache, MotionGenerator

COSINE_OFFSET = 0.008


def alpha_bar(t: torch.Tensor) -> torch.Tensor:
    """Signal fraction ᾱ(t) of the cosine schedule (Nichol & Dhariwal), 1 at t=0, 0 at t=1."""
    s = COSINE_OFFSET
    f = torch.cos((t + s) / (1 + s) * math.pi / 2) ** 2 / math.cos(s / (1 + s) * math.pi / 2) ** 2
    return f.clamp(0.0, 1.0)


def add_noise(x0: torch.Tensor, t: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
    """x_t = sqrt(ᾱ) x0 + sqrt(1-ᾱ) ε, t (B,) broadcast over the remaining axes."""
    ab = alpha_bar(t).view(-1, *([1] * (x0.ndim - 1)))
    return ab.sqrt() * x0 + (1 - ab).sqrt() * noise


def ddim_times(steps: int) -> torch.Tensor:
    if not 1 <= steps <= 8:
        raise ValueError(f"DDIM steps must be between 1 and 8, got {steps}")
    return torch.linspace(1.0, 0.0, steps + 1)


def ddim_step(x_t: torch.Tensor, x0: torch.Tensor, t: float, t_next: float) -> torch.Tensor:
    """Deterministic DDIM (η = 0) move from t to t_next given the predicted x0."""
    ab, ab_next = alpha_bar(torch.tensor(t)), alpha_bar(torch.tensor(t_next))
    eps = (x_t - ab.sqrt() * x0) / (1 - ab).sqrt().clamp_min(1e-8)
    return ab_next.sqrt() * x0 + (1 - ab_next).sqrt() * eps


def guided_x0(model: MotionGenerator, x_t: torch.Tensor, t: float, prefix: torch.Tensor, prefix_valid: torch.Tensor,
              audio: torch.Tensor, cache: InstructionCache, weights: Sequence[float]) -> torch.Tensor:
    """Classifier-free guidance in ONE batched pass.

    `cache` holds the null instruction first, then one entry per conditional instruction; the result is
    x0_null + Σ_i weights[i] (x0_i - x0_null). With no conditional entries it is the unconditional x0.
    Inputs other than the cache have batch 1 and are shared.
    """
    k = cache.batch
    if k != len(weights) + 1:
        raise ValueError(f"{k} cached instructions for {len(weights)} guidance weights (+1 null expected)")
    expand = (lambda x: x.expand(k, *x.shape[1:]))
    tt = torch.full((k,), float(t))
    x0 = model(expand(x_t), tt, expand(prefix), expand(prefix_valid), expand(audio), cache)
    out = x0[:1]
    for i, w in enumerate(weights):
        out = out + w * (x0[i + 1:i + 2] - x0[:1])
    return out


def ddim_sample(model: MotionGenerator, noise: torch.Tensor, steps: int, prefix: torch.Tensor,
                prefix_valid: torch.Tensor, audio: torch.Tensor, cache: InstructionCache, weights: Sequence[float],
                lo: torch.Tensor | None = None, hi: torch.Tensor | None = None) -> torch.Tensor:
    """Denoise one window from `noise` (1, W, DIM); deterministic given the noise. Optional [lo, hi] clamp
    of every x0 estimate keeps the few-step sampler inside the motion space."""
    times = ddim_times(steps).tolist()
    x = noise
    for t, t_next in zip(times[:-1], times[1:]):
        x0 = guided_x0(model, x, t, prefix, prefix_valid, audio, cache, weights)
        if lo is not None:
            x0 = torch.maximum(torch.minimum(x0, hi), lo)
        x = ddim_step(x, x0, t, t_next) if t_next > 0 else x0
    return x
