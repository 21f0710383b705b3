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
# regions whose lines are smooth curves through their knots (a wide-open mouth drawn through five knots with
# straight segments showed a polygon); lids stay piecewise linear (short, nearly straight segments)
SMOOTH = {"mouth"}


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


def _monotone_slopes(h: np.ndarray, delta: np.ndarray) -> np.ndarray:
    """Knot slopes (..., K) of the Fritsch-Carlson monotone cubic (as scipy's PchipInterpolator) from the
    segment widths h and slopes delta (..., K-1): no overshoot between knots, flat at a knot that is a local
    extreme (the lip's middle, its corners)."""
    w1, w2 = 2 * h[..., 1:] + h[..., :-1], h[..., 1:] + 2 * h[..., :-1]
    a, b = delta[..., :-1], delta[..., 1:]
    same = (a * b) > 0
    inner = np.where(same, (w1 + w2) / np.where(same, w1 / np.where(same, a, 1) + w2 / np.where(same, b, 1), 1), 0)

    def end(h0, h1, d0, d1):
        d = ((2 * h0 + h1) * d0 - h0 * d1) / (h0 + h1)
        d = np.where(np.sign(d) != np.sign(d0), 0, d)
        return np.where((np.sign(d0) != np.sign(d1)) & (np.abs(d) > 3 * np.abs(d0)), 3 * d0, d)

    first = end(h[..., 0], h[..., 1], delta[..., 0], delta[..., 1])
    last = end(h[..., -1], h[..., -2], delta[..., -1], delta[..., -2])
    return np.concatenate([first[..., None], inner, last[..., None]], -1).astype(np.float32)


def monotone_cubic_np(xs: np.ndarray, ys: np.ndarray, x: np.ndarray) -> np.ndarray:
    """Smooth y(x) through knots (N or 1, K) at queries (N, M), monotone between knots; flat beyond the ends.
    Knot xs must be non-decreasing (coincident knots are held 1e-3 apart)."""
    xs = np.maximum.accumulate(np.asarray(xs, np.float32), axis=-1)
    n, k = x.shape[0], xs.shape[-1]
    if xs.shape[0] == 1:  # knots shared by every row: one search
        hi = np.searchsorted(xs[0], x.ravel()).reshape(x.shape)
    else:
        hi = np.stack([np.searchsorted(xs[i], x[i]) for i in range(n)])
    shape = np.broadcast_shapes(xs.shape, np.shape(ys))
    xs, ys = np.broadcast_to(xs, shape), np.broadcast_to(np.asarray(ys, np.float32), shape)
    h = np.maximum(np.diff(xs, axis=-1), np.float32(1e-3))
    slopes = _monotone_slopes(h, np.diff(ys, axis=-1) / h)
    rows = (np.arange(n) % xs.shape[0])[:, None]
    lo = clamp_np(hi, 1, k - 1) - 1
    width = h[rows, lo]
    t = clamp_np((x - xs[rows, lo]) / width)
    t2, t3 = t * t, t * t * t
    return ((2 * t3 - 3 * t2 + 1) * ys[rows, lo] + (t3 - 2 * t2 + t) * width * slopes[rows, lo]
            + (-2 * t3 + 3 * t2) * ys[rows, lo + 1] + (t3 - t2) * width * slopes[rows, lo + 1])


def line_np(region: str, xs: np.ndarray, ys: np.ndarray, x: np.ndarray) -> np.ndarray:
    """A region's margin through its knots: smooth for the mouth (`SMOOTH`), piecewise linear otherwise."""
    return monotone_cubic_np(xs, ys, x) if region in SMOOTH else polyline_np(xs, ys, x)


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
    The segments next to the corners interpolate along an ellipse, so an opening mouth is oval (the line
    leaves the corner vertically: right for an opening, a hook for corners that move; see `Mouth.remap`)."""
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


def target_offset_np(knots_u: np.ndarray, dy: np.ndarray, bend: np.ndarray, u: np.ndarray) -> np.ndarray:
    """Vertical displacement of a lip line at u (n, M) from per-knot dy (n, K), of which `bend` is what moves
    the corners (smile, its undoing, frown): that part bends the line smoothly with them, the rest (an
    opening, a closure) keeps the oval ends. Elliptic ends on corners that move drew hooks at the corners."""
    return lip_offset_np(knots_u, dy - bend, u) + monotone_cubic_np(knots_u[None], bend, u)


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
            torch.from_numpy(np.stack([xs, line_np(name, rest[ids, 0][None], rest[ids, 1][None], xs[None])[0]], 1)
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
