"""Per-column curves for the eye and mouth remaps: piecewise-linear lines through landmark knots,
evaluated once per crop column and looked up per pixel.

float32 numpy where the arrays are tiny (numpy's per-call cost is a fraction of torch's); the torch
twins serve the paint layers, whose colours must match torch's arithmetic.
"""
from __future__ import annotations

import numpy as np
import torch

from .rig import INNER_LIP_LINES, LID_LINES

# the three regions with their own remap, and their (upper, lower) margin landmarks
LINES = {"left": LID_LINES["left"], "right": LID_LINES["right"], "mouth": INNER_LIP_LINES}
SAMPLES = {"left": 17, "right": 17, "mouth": 33}  # dense points per line carried through the smooth warp


def clamp_np(x: np.ndarray, lo=0, hi=1) -> np.ndarray:
    return np.minimum(np.maximum(x, lo), hi)  # np.clip's values at a fraction of its call cost


def polyline_np(xs: np.ndarray, ys: np.ndarray, x: np.ndarray, sorted_xs: bool = False) -> np.ndarray:
    """Piecewise-linear y(x) through knots (N, K) at queries (N, M); flat beyond the ends."""
    if not sorted_xs:
        xs = np.maximum.accumulate(xs, axis=1)
    n, k = x.shape[0], xs.shape[1]
    rows = np.arange(n)[:, None] % xs.shape[0]
    if xs.shape[0] == 1:  # knots shared by every row (the rest curves): one search
        hi = np.searchsorted(xs[0], x.ravel()).reshape(x.shape)
    else:
        hi = np.stack([np.searchsorted(xs[r], x[i]) for i, r in enumerate(rows[:, 0])])
    hi = clamp_np(hi, 1, k - 1)
    lo = hi - 1
    x0, x1 = xs[rows, lo], xs[rows, hi]
    y0, y1 = ys[rows, lo], ys[rows, hi]
    t = clamp_np((x - x0) / np.maximum(x1 - x0, np.float32(1e-3)))
    return y0 + t * (y1 - y0)


def by_column_np(x, compute):
    """Evaluate per-column curves once on a 1-px grid spanning x (n, M), then look them up per pixel.
    `compute(grid (n, G) float32 numpy) -> (n, C, G)`; returns (n, C, M), linearly interpolated, as numpy
    when x is numpy, else as a tensor on x's device (numpy's column lookup costs half of torch's gather)."""
    xn = x if isinstance(x, np.ndarray) else x.cpu().numpy()
    lo, hi = float(np.floor(xn.min())), float(np.ceil(xn.max()))
    grid = np.broadcast_to(np.arange(lo, hi + 2.0, 1.0, dtype=np.float32), (x.shape[0], int(hi + 2.0 - lo)))
    table = np.asarray(compute(grid), np.float32)
    pos = xn - np.float32(lo)
    i0 = np.minimum(np.maximum(np.floor(pos).astype(np.int32), 0), grid.shape[1] - 2)
    w = pos - i0.astype(np.float32)
    out = np.stack([np.take(table[i], i0[i], axis=1) * (1 - w[i]) + np.take(table[i], i0[i] + 1, axis=1) * w[i]
                    for i in range(len(xn))])
    return out if isinstance(x, np.ndarray) else torch.from_numpy(out).to(x.device)


def ramp_np(value: np.ndarray, lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
    return (value - lo) / np.maximum(hi - lo, np.float32(1e-4))


def lip_offset_np(knots_u: np.ndarray, dy: np.ndarray, u: np.ndarray, elliptic: bool = True) -> np.ndarray:
    """Vertical lip displacement at normalised positions u (n, M) from per-knot dy (n, K).
    The segments next to the corners interpolate along an ellipse, so an opening mouth is oval."""
    out = np.zeros_like(u)
    k = knots_u.shape[0]
    for j in range(k - 1):
        a, b = knots_u[j], knots_u[j + 1]
        if j == 0 and elliptic:
            t = np.sqrt(np.maximum(1 - u * u, 0)) / np.float32(np.sqrt(max(1 - float(b) ** 2, 1e-4)))
        elif j == k - 2 and elliptic:
            t = 1 - np.sqrt(np.maximum(1 - u * u, 0)) / np.float32(np.sqrt(max(1 - float(a) ** 2, 1e-4)))
        else:
            t = (u - a) / np.float32(max(float(b - a), 1e-4))
        t = clamp_np(t)
        seg = dy[:, j:j + 1] + t * (dy[:, j + 1:j + 2] - dy[:, j:j + 1])
        out = np.where(u >= a, seg, out)
    return out


def soft_inside_np(value: np.ndarray, lo: np.ndarray, hi: np.ndarray, feather: float = 0.75) -> np.ndarray:
    feather = np.float32(feather)
    return clamp_np((value - lo) / feather + np.float32(0.5)) * clamp_np((hi - value) / feather + np.float32(0.5))


def ramp(value: torch.Tensor, lo: torch.Tensor, hi: torch.Tensor) -> torch.Tensor:
    """Linear map of `value` from [lo, hi] to [0, 1] (safe when hi == lo)."""
    return (value - lo) / (hi - lo).clamp_min(1e-4)


def soft_inside(value: torch.Tensor, lo: torch.Tensor, hi: torch.Tensor, feather: float = 0.75) -> torch.Tensor:
    return ((value - lo) / feather + 0.5).clamp(0, 1) * ((hi - value) / feather + 0.5).clamp(0, 1)


def rest_lines(rest: np.ndarray, device, dtype) -> dict:
    """Each region's rest margins sampled densely {region: (upper (P, 2), lower (P, 2))}, to be carried
    through the smooth warp."""
    out = {}
    for name, (upper, lower) in LINES.items():
        knots = np.concatenate([rest[upper, 0], rest[lower, 0]])
        xs = np.unique(np.concatenate([np.linspace(rest[upper[0], 0], rest[upper[-1], 0], SAMPLES[name]), knots]))
        out[name] = tuple(
            torch.from_numpy(np.stack([xs, np.interp(xs, np.maximum.accumulate(rest[ids, 0]), rest[ids, 1])], 1)
                             ).to(device, dtype)
            for ids in (upper, lower))
    return out


def rest_knots(rest: np.ndarray) -> dict:
    """Each region's knots {region: ((u across -1..1, x (1, K), y (1, K)) upper, (...) lower)}, float32."""
    rest32 = rest.astype(np.float32)
    out = {}
    for name, (upper, lower) in LINES.items():
        first, last = upper[0], upper[-1]
        width = max(rest[last, 0] - rest[first, 0], 1.0)
        out[name] = tuple(
            (np.maximum.accumulate((rest[ids, 0] - rest[first, 0]) / width * 2 - 1).astype(np.float32),
             np.maximum.accumulate(rest32[ids, 0])[None], rest32[ids, 1][None])
            for ids in (upper, lower))
    return out
