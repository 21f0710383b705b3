"""Cosine-schedule diffusion with x0 prediction, few-step deterministic DDIM and batched classifier-free guidance.

Time is continuous, t in [0, 1]; t = 1 is pure noise. The model predicts the clean window x0 directly,
which suits very few sampling steps and lets the trainer put a velocity loss on the prediction.
"""
from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

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


@dataclass
class DenoiseRequest:
    """One stream's window to denoise: inputs of batch 1 (noise (1, W, DIM), prefix (1, P, DIM), prefix_valid
    (1, P), audio (1, P+W, A)) and its guidance: `cache` holds the null instruction first, then one entry per
    conditional instruction; x0 = x0_null + sum_i weights[i] (x0_i - x0_null)."""

    noise: torch.Tensor
    prefix: torch.Tensor
    prefix_valid: torch.Tensor
    audio: torch.Tensor
    cache: InstructionCache
    weights: Sequence[float]

    def __post_init__(self) -> None:
        if self.cache.batch != len(self.weights) + 1:
            raise ValueError(f"{self.cache.batch} cached instructions for {len(self.weights)} guidance weights "
                             "(+1 null expected)")


def ddim_sample_many(model: MotionGenerator, requests: Sequence[DenoiseRequest], steps: int,
                     lo: torch.Tensor | None = None, hi: torch.Tensor | None = None) -> list[torch.Tensor]:
    """Denoise several streams' windows in one batched model call per DDIM step (every stream's guidance
    branches side by side); returns each window's x0 (1, W, DIM). Deterministic given the noise, and each
    result equals what the stream would get alone. Optional [lo, hi] clamp of every x0 estimate keeps the
    few-step sampler inside the motion space."""
    sizes = [r.cache.batch for r in requests]
    starts = [sum(sizes[:i]) for i in range(len(sizes))]

    def rows(name: str) -> torch.Tensor:
        return torch.cat([getattr(r, name).expand(k, *getattr(r, name).shape[1:]) for r, k in zip(requests, sizes)])

    prefix, prefix_valid, audio = rows("prefix"), rows("prefix_valid"), rows("audio")
    cache = requests[0].cache if len(requests) == 1 else InstructionCache.stack([r.cache for r in requests])
    times = ddim_times(steps).tolist()
    x = torch.cat([r.noise for r in requests])
    for t, t_next in zip(times[:-1], times[1:]):
        x0_all = model(torch.repeat_interleave(x, torch.tensor(sizes), dim=0), torch.full((sum(sizes),), float(t)),
                       prefix, prefix_valid, audio, cache)
        guided = []
        for r, s in zip(requests, starts):
            null = x0_all[s:s + 1]
            out = null
            for i, w in enumerate(r.weights):
                out = out + w * (x0_all[s + i + 1:s + i + 2] - null)
            guided.append(out)
        x0 = torch.cat(guided)
        if lo is not None:
            x0 = torch.maximum(torch.minimum(x0, hi), lo)
        x = ddim_step(x, x0, t, t_next) if t_next > 0 else x0
    return list(x.split(1))


def ddim_sample(model: MotionGenerator, noise: torch.Tensor, steps: int, prefix: torch.Tensor,
                prefix_valid: torch.Tensor, audio: torch.Tensor, cache: InstructionCache, weights: Sequence[float],
                lo: torch.Tensor | None = None, hi: torch.Tensor | None = None) -> torch.Tensor:
    """Denoise one window from `noise` (1, W, DIM); see `ddim_sample_many`."""
    return ddim_sample_many(model, [DenoiseRequest(noise, prefix, prefix_valid, audio, cache, weights)], steps,
                            lo, hi)[0]
