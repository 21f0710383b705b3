"""Motion vectors -> 512x512 frames of the enrolled portrait, batched, on CUDA or CPU.

Per pixel the output samples the portrait once (`grid_sample` on CUDA, OpenCV's `remap` on CPU) at a source position
made of:
  1. head pose: the inverse of a smooth 3-D rotation of the head model, weighted to fade into the
     static background (computed on a coarse grid, inverted by fixed-point iteration);
  2. expression: one small matmul (N, K) @ (K, h*w*2) over per-coefficient backward flow fields
     that were interpolated at setup with thin-plate splines through the rig's landmark
     displacements, pinned to zero on the image border and on a ring around the face;
  3. eyes and mouth: per column, a piecewise-linear vertical remap on small crops that moves
     eyelids and inner lips exactly to the rig's landmarks. Lids slide over the eyeball (lid skin
     stretches, the iris is covered, never squashed); lips slide over the teeth; a mouth opened
     beyond the portrait's own gap keeps the portrait's upper teeth fixed in the face and its lower
     teeth on the jaw, and paints a synthesized cavity (and teeth if the portrait shows none)
     between them. Gaze moves the portrait's own iris disc over an iris-free copy of the eyeball.
A zero motion vector gives the identity mapping, so it reproduces the portrait exactly.
"""
from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np
import torch
import torch.nn.functional as F

from realtime.vocab import DIM, INDEX

from .enrol import Portrait
from .rig import (
    INNER_LOWER,
    INNER_UPPER,
    LOWER_LID,
    OUTER_LOWER,
    OUTER_UPPER,
    RIG_INDEX,
    RIG_NAMES,
    UPPER_LID,
    Rig,
    motion_to_rig,
    pose_of,
    rotation_matrices,
)


class MotionShapeError(ValueError):
    """The motion array does not have the (N, DIM) shape the renderer needs."""


@dataclass
class RenderConfig:
    device: str = "auto"  # "auto" (CUDA when present), "cpu" or "cuda"
    dtype: torch.dtype = torch.float32
    threads: int | None = None  # torch and OpenCV intra-op threads on CPU (process-wide); None = leave as is
    field_step: int = 4  # pixel spacing of the coarse grid that holds the flow fields
    pose_iterations: int = 4  # fixed-point iterations that invert the pose warp
    lip_margin: float = 2.0  # px of inner lip edge skipped where lips close or part, so no teeth show on it
    upper_teeth_share: float = 0.85  # share of the portrait's inner-lip gap that stays on the upper lip
    ring_radii: tuple[float, float, float] = (1.6, 1.25, 3.0)  # expression pinned to 0: x, above, below the eyes (IOD)


def set_cpu_threads(n: int) -> None:
    """Intra-op threads of both CPU libraries the renderer uses (process-wide in each)."""
    torch.set_num_threads(n)
    cv2.setNumThreads(n)


def _pick_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise RuntimeError("RenderConfig(device='cuda') but torch sees no CUDA device")
    return torch.device(name)


def warp_bases(rig: Rig) -> np.ndarray:
    """The rig's bases as the smooth global warp should see them (K, 68, 2) IOD units: eyelids ride
    rigidly with the eye corners and inner lips with the outer lips; the eye/mouth remaps do the rest."""
    bases = rig.bases.copy()
    for side in ("left", "right"):
        corners = [36, 39] if side == "left" else [42, 45]
        for p in UPPER_LID[side] + LOWER_LID[side]:
            bases[:, p, 1] = bases[:, corners, 1].mean(1)
    for inner, outer in zip(INNER_UPPER + INNER_LOWER, OUTER_UPPER + OUTER_LOWER):
        bases[:, inner, 1] = bases[:, outer, 1]
    # pressing thins the lip bodies but leaves the meeting line alone; a tuck is mostly rolled under:
    # keeps the warp's inner lips from crossing when these add to a closure
    bases[RIG_INDEX["lip_press"], INNER_UPPER + INNER_LOWER, 1] = 0.0
    bases[RIG_INDEX["lower_lip_tuck"], INNER_LOWER, 1] *= 0.5
    return bases


def _anchor_points(rig: Rig, radii: tuple[float, float, float], size: int) -> np.ndarray:
    eyes = (rig.rest[36:42].mean(0) + rig.rest[42:48].mean(0)) / 2
    rx, up, down = (r * rig.iod for r in radii)
    cy = eyes[1] + (down - up) / 2
    ry = (down + up) / 2
    angles = np.linspace(0, 2 * np.pi, 40, endpoint=False)
    ring = np.stack([eyes[0] + rx * np.cos(angles), cy + ry * np.sin(angles)], 1)
    edge = np.linspace(0, size - 1, 9)
    border = np.concatenate([np.stack([edge, np.zeros(9)], 1), np.stack([edge, np.full(9, size - 1.0)], 1),
                             np.stack([np.zeros(7), edge[1:-1]], 1), np.stack([np.full(7, size - 1.0), edge[1:-1]], 1)])
    return np.concatenate([ring, border])


def coarse_axis(size: int, step: int) -> np.ndarray:
    """Coarse grid positions 0, step, ... covering [0, size - 1] (the last may lie past the edge)."""
    return np.arange(int(np.ceil((size - 1) / step)) + 1, dtype=np.float64) * step


def expression_fields(rig: Rig, size: int, step: int, radii) -> np.ndarray:
    """(K, 2, h, w) backward displacement fields in pixels, one per rig coefficient at value 1."""
    from scipy.interpolate import RBFInterpolator

    axis = coarse_axis(size, step)
    field_size = len(axis)
    grid = np.stack(np.meshgrid(axis, axis, indexing="xy"), -1).reshape(-1, 2)
    anchors = _anchor_points(rig, radii, size)
    fields = np.zeros((len(RIG_NAMES), 2, field_size, field_size), np.float32)
    for k, basis in enumerate(warp_bases(rig)):
        moved = basis * rig.iod
        if not np.any(moved):
            continue
        centres = np.concatenate([rig.rest + moved, anchors])
        values = np.concatenate([-moved, np.zeros_like(anchors)])
        spline = RBFInterpolator(centres, values, kernel="thin_plate_spline", smoothing=1e-3)
        fields[k] = spline(grid).T.reshape(2, field_size, field_size)
    return fields


def find_iris(image: np.ndarray, eye: np.ndarray, iod: float) -> tuple[float, float, float]:
    """Iris centre and radius (px) from the darkest pixels inside one eye's six landmarks."""
    from skimage.draw import polygon

    eye = np.asarray(eye, np.float64).copy()
    eye[1:3, 1] += 2.0  # skip the lashes along the upper margin
    rr, cc = polygon(eye[:, 1], eye[:, 0], image.shape[:2])
    if len(rr) < 10:
        centre = eye.mean(0)
        return float(centre[0]), float(centre[1]), float(0.095 * iod)
    luminance = image[rr, cc].astype(np.float64).mean(1)
    dark = luminance <= np.percentile(luminance, 35)
    return float(cc[dark].mean()), float(rr[dark].mean()), float(0.095 * iod)


def count_teeth_pixels(image: np.ndarray, landmarks: np.ndarray) -> int:
    """Near-white pixels between the inner lips: does the portrait show its teeth?"""
    from skimage.draw import polygon

    inner = np.asarray(landmarks, np.float64)[60:68]
    rr, cc = polygon(inner[:, 1], inner[:, 0], image.shape[:2])
    px = image[rr, cc].astype(np.int32)
    return int(((px[:, 2] > 170) & (px[:, 0] - px[:, 2] < 40)).sum())


def remove_iris(image: np.ndarray, cx: float, cy: float, radius: float) -> np.ndarray:
    """The eye with its iris replaced by sclera interpolated across each row (for moving the iris)."""
    out = image.copy()
    reach = radius + 2.0
    left, right = int(np.floor(cx - reach)), int(np.ceil(cx + reach))
    for row in range(int(np.floor(cy - reach)), int(np.ceil(cy + reach)) + 1):
        if not (0 <= row < image.shape[0] and 0 <= left and right < image.shape[1]):
            continue
        t = (np.arange(left, right + 1) - left) / max(right - left, 1)
        fill = (1 - t)[:, None] * image[row, left] + t[:, None] * image[row, right]
        dist = np.hypot(np.arange(left, right + 1) - cx, row - cy)
        weight = np.clip(radius + 1.5 - dist, 0, 1)[:, None]
        out[row, left:right + 1] = image[row, left:right + 1] * (1 - weight) + fill * weight
    return out


def _clamp_np(x: np.ndarray, lo=0, hi=1) -> np.ndarray:
    return np.minimum(np.maximum(x, lo), hi)  # np.clip's values at a fraction of its call cost


def _polyline_np(xs: np.ndarray, ys: np.ndarray, x: np.ndarray, sorted_xs: bool = False) -> np.ndarray:
    """Piecewise-linear y(x) through knots (N, K) at queries (N, M); flat beyond the ends.
    float32 numpy: per-column curves are tiny arrays, where numpy's per-call cost is a fraction of torch's."""
    if not sorted_xs:
        xs = np.maximum.accumulate(xs, axis=1)
    n, k = x.shape[0], xs.shape[1]
    rows = np.arange(n)[:, None] % xs.shape[0]
    hi = np.stack([np.searchsorted(xs[r], x[i]) for i, r in enumerate(rows[:, 0])])
    hi = _clamp_np(hi, 1, k - 1)
    lo = hi - 1
    x0, x1 = xs[rows, lo], xs[rows, hi]
    y0, y1 = ys[rows, lo], ys[rows, hi]
    t = _clamp_np((x - x0) / np.maximum(x1 - x0, np.float32(1e-3)))
    return y0 + t * (y1 - y0)


def _by_column_np(x, compute):
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


def _ramp_np(value: np.ndarray, lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
    return (value - lo) / np.maximum(hi - lo, np.float32(1e-4))


def _lip_offset_np(knots_u: np.ndarray, dy: np.ndarray, u: np.ndarray, elliptic: bool = True) -> np.ndarray:
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
        t = _clamp_np(t)
        seg = dy[:, j:j + 1] + t * (dy[:, j + 1:j + 2] - dy[:, j:j + 1])
        out = np.where(u >= a, seg, out)
    return out


def _soft_inside_np(value: np.ndarray, lo: np.ndarray, hi: np.ndarray, feather: float = 0.75) -> np.ndarray:
    feather = np.float32(feather)
    return _clamp_np((value - lo) / feather + np.float32(0.5)) * _clamp_np((hi - value) / feather + np.float32(0.5))


def _ramp(value: torch.Tensor, lo: torch.Tensor, hi: torch.Tensor) -> torch.Tensor:
    """Linear map of `value` from [lo, hi] to [0, 1] (safe when hi == lo)."""
    return (value - lo) / (hi - lo).clamp_min(1e-4)


def _soft_inside(value: torch.Tensor, lo: torch.Tensor, hi: torch.Tensor, feather: float = 0.75) -> torch.Tensor:
    return ((value - lo) / feather + 0.5).clamp(0, 1) * ((hi - value) / feather + 0.5).clamp(0, 1)


class Renderer:
    """`Renderer(portrait, config).setup()`, then `renderer(motion (N, DIM)) -> uint8 (N, 512, 512, 3)` on CPU.

    Holds only its own tensors, so one instance per worker thread is safe.
    """

    def __init__(self, portrait: Portrait, config: RenderConfig | None = None):
        self.portrait = portrait
        self.config = config or RenderConfig()
        self.device = torch.device("cpu")
        self.ready = False

    # -- setup -----------------------------------------------------------------------------------
    def setup(self) -> Renderer:
        cfg = self.config
        if cfg.threads is not None:
            set_cpu_threads(cfg.threads)
        self.device = _pick_device(cfg.device)
        self.rig = Rig(self.portrait)
        self.size = int(self.portrait.image.shape[0])
        dev, dt = self.device, cfg.dtype
        image = torch.from_numpy(np.ascontiguousarray(self.portrait.image)).to(dev)
        self.image_u8 = image
        self.image = image.permute(2, 0, 1).unsqueeze(0).to(dt)  # (1, 3, H, W), 0..255
        fields = expression_fields(self.rig, self.size, cfg.field_step, cfg.ring_radii)
        self.fields = torch.from_numpy(fields.reshape(len(RIG_NAMES), -1)).to(dev, dt)  # (K, 2*h*w)
        self.rig_bases = torch.from_numpy(self.rig.bases * self.rig.iod).to(dev, dt)  # (K, 68, 2) px
        self.warp_bases = torch.from_numpy(warp_bases(self.rig) * self.rig.iod).to(dev, dt)
        self.rest = torch.from_numpy(self.rig.rest).to(dev, dt)  # (68, 2)
        # coarse grid and the head model sampled on it
        axis_np = coarse_axis(self.size, cfg.field_step)
        self.coarse_size = len(axis_np)
        self.coarse_extent = float(axis_np[-1])
        axis = torch.from_numpy(axis_np).to(dev, dt)
        gy, gx = torch.meshgrid(axis, axis, indexing="ij")
        self.coarse = torch.stack([gx, gy], -1)  # (h, w, 2) pixel positions
        full = torch.arange(self.size, device=dev, dtype=dt)
        fy, fx = torch.meshgrid(full, full, indexing="ij")
        self.identity = torch.stack([fx, fy], -1)  # (H, W, 2) pixel positions
        # for the CPU resampler (OpenCV): contiguous pixels and the identity map as broadcastable rows/columns
        self._image_np = np.ascontiguousarray(self.portrait.image)
        axis = np.arange(self.size, dtype=np.float32)
        self._identity_np = (axis[None, :], axis[:, None])
        pts = self.coarse.reshape(-1, 2).cpu().numpy()
        head = self.rig.head
        rel = np.stack([pts[:, 0] - head.centre[0], pts[:, 1] - head.centre[1], head.depth_at(pts)], -1)
        self.head_rel = torch.from_numpy(rel).to(dev, dt)  # (h*w, 3)
        self.head_weight = torch.from_numpy(head.weight_at(pts)).to(dev, dt)  # (h*w,)
        # portrait's own inner-lip gap per mouth column, for the teeth bands
        rest = self.rig.rest
        # rest lid and inner-lip lines sampled densely, to follow them through the smooth warp
        self._rest_curves = {}
        for name, (upper, lower), count in (("left", ([36, 37, 38, 39], [36, 41, 40, 39]), 17),
                                            ("right", ([42, 43, 44, 45], [42, 47, 46, 45]), 17),
                                            ("mouth", ([60, 61, 62, 63, 64], [60, 67, 66, 65, 64]), 33)):
            knots = np.concatenate([rest[upper, 0], rest[lower, 0]])
            xs = np.unique(np.concatenate([np.linspace(rest[upper[0], 0], rest[upper[-1], 0], count), knots]))
            self._rest_curves[name] = tuple(
                torch.from_numpy(np.stack([xs, np.interp(xs, np.maximum.accumulate(rest[ids, 0]), rest[ids, 1])], 1))
                .to(dev, dt)
                for ids in (upper, lower))
        rest32 = rest.astype(np.float32)  # the same values as self.rest, for the numpy per-column curves
        self._rest_np = rest32
        self._knots_np = {}
        for name, (upper, lower) in (("left", ([36, 37, 38, 39], [36, 41, 40, 39])),
                                     ("right", ([42, 43, 44, 45], [42, 47, 46, 45])),
                                     ("mouth", ([60, 61, 62, 63, 64], [60, 67, 66, 65, 64]))):
            first, last = upper[0], upper[-1]
            width = max(rest[last, 0] - rest[first, 0], 1.0)
            self._knots_np[name] = tuple(
                (np.maximum.accumulate((rest[ids, 0] - rest[first, 0]) / width * 2 - 1).astype(np.float32),
                 np.maximum.accumulate(rest32[ids, 0])[None], rest32[ids, 1][None])
                for ids in (upper, lower))
        self._rest_curve_points = torch.cat([c for pair in self._rest_curves.values() for c in pair])
        self._iris_discs, bare = {}, self.portrait.image.astype(np.float32)
        for side, ids in (("left", [36, 37, 38, 39, 40, 41]), ("right", [42, 43, 44, 45, 46, 47])):
            cx, cy, radius = find_iris(self.portrait.image, rest[ids], self.rig.iod)
            self._iris_discs[side] = (cx, cy, radius)
            bare = remove_iris(bare, cx, cy, radius)
        self.image_bare = torch.from_numpy(bare).permute(2, 0, 1).unsqueeze(0).to(dev, dt)
        self.shows_teeth = count_teeth_pixels(self.portrait.image, rest) >= 0.05 * self.rig.iod ** 2 * 0.1
        self.ready = True
        return self

    # -- per frame -------------------------------------------------------------------------------
    @torch.no_grad()
    def __call__(self, motion) -> torch.Tensor:
        if not self.ready:
            raise RuntimeError("Renderer.setup() must run before rendering")
        if isinstance(motion, torch.Tensor):
            motion = motion.detach().cpu().numpy()
        motion = np.asarray(motion, np.float32)
        if motion.ndim == 1:
            motion = motion[None]
        if motion.ndim != 2 or motion.shape[1] != DIM:
            raise MotionShapeError(f"motion must be (N, {DIM}), got {motion.shape}")
        if not np.isfinite(motion).all():
            raise MotionShapeError("motion contains NaN or infinite values")
        if len(motion) == 0:
            return torch.zeros((0, self.size, self.size, 3), dtype=torch.uint8)
        dev, dt = self.device, self.config.dtype
        coeffs_np = motion_to_rig(motion)
        pose_np = pose_of(motion)
        gaze = torch.from_numpy(motion[:, [INDEX["gaze_x"], INDEX["gaze_y"]]]).to(dev, dt).clamp(-1, 1)
        coeffs = torch.from_numpy(coeffs_np).to(dev, dt)
        n, h, size, step = len(motion), self.coarse_size, self.size, self.config.field_step

        expression = (coeffs @ self.fields).view(n, 2, h, h)  # backward displacement at face-frame points
        pose_back = self._pose_backward(pose_np)  # (n, 2, h, h) or None
        if pose_back is None:
            total = expression
        else:
            face_pts = self.coarse.unsqueeze(0) + pose_back.permute(0, 2, 3, 1)
            total = pose_back + self._sample(expression, face_pts)

        targets = self.rest + torch.einsum("nk,kpc->npc", coeffs, self.rig_bases)  # (n, 68, 2) face frame
        warped = self.rest + torch.einsum("nk,kpc->npc", coeffs, self.warp_bases)
        posed = torch.from_numpy(self.rig.posed(targets.cpu().double().numpy(), pose_np)).to(dev, dt)
        regions = [r for r in ("left", "right", "mouth") if self._active(r, targets, warped, gaze, coeffs, pose_np)]
        boxes = {r: self._crop_box(posed, r) for r in regions}

        # only the part of the frame that moves is resampled: the coarse cells with any displacement
        # plus the eye/mouth crops, snapped to the coarse grid
        moving = total.abs().amax(dim=(0, 1)) > 0.02  # (h, h)
        rows, cols = torch.nonzero(moving.any(1)).flatten(), torch.nonzero(moving.any(0)).flatten()
        if len(rows) == 0 and not regions:
            return self.image_u8.unsqueeze(0).expand(n, -1, -1, -1).contiguous().cpu()
        lo_y = [int(rows.min()) * step - step] if len(rows) else []
        hi_y = [int(rows.max()) * step + step] if len(rows) else []
        lo_x = [int(cols.min()) * step - step] if len(cols) else []
        hi_x = [int(cols.max()) * step + step] if len(cols) else []
        for r in regions:
            (hh, ww), origins = boxes[r]
            lo_x += [min(o[0] for o in origins)]
            lo_y += [min(o[1] for o in origins)]
            hi_x += [max(o[0] for o in origins) + ww]
            hi_y += [max(o[1] for o in origins) + hh]
        j0, i0 = max(0, min(lo_y) // step), max(0, min(lo_x) // step)
        j1, i1 = min(h - 1, -(-max(hi_y) // step)), min(h - 1, -(-max(hi_x) // step))
        y0, x0 = j0 * step, i0 * step
        flow = F.interpolate(total[:, :, j0:j1 + 1, i0:i1 + 1], size=((j1 - j0) * step + 1, (i1 - i0) * step + 1),
                             mode="bilinear", align_corners=True)
        flow = flow[:, :, :size - y0, :size - x0]  # the last coarse point may lie past the edge
        hr, wr = flow.shape[-2:]

        curves_g = self._warped_curves(expression) if regions else {}
        paints = []
        for region in regions:
            (hh, ww), origins = boxes[region]
            local, paint = self._region(region, boxes[region], pose_back, expression, targets, warped, gaze, coeffs,
                                        curves_g)
            for i, (bx, by) in enumerate(origins):
                flow[i, :, by - y0:by - y0 + hh, bx - x0:bx - x0 + ww] = local[i]
            if paint is not None:
                paints.append((origins, paint))

        if self.device.type == "cpu":
            return self._resample_cpu(flow, paints, y0, x0)
        grid = torch.add(self.identity[y0:y0 + hr, x0:x0 + wr].unsqueeze(0), flow.permute(0, 2, 3, 1))
        grid.mul_(2.0 / (size - 1)).sub_(1.0)
        frames = F.grid_sample(self.image.expand(n, -1, -1, -1), grid, mode="bilinear",
                               padding_mode="border", align_corners=True)
        for origins, (color, alpha) in paints:
            hh, ww = alpha.shape[-2:]
            for i, (bx, by) in enumerate(origins):
                patch = frames[i, :, by - y0:by - y0 + hh, bx - x0:bx - x0 + ww]
                patch.add_(alpha[i] * (color[i] - patch))
        out = self.image_u8.unsqueeze(0).repeat(n, 1, 1, 1)
        out[:, y0:y0 + hr, x0:x0 + wr] = frames.round_().clamp_(0, 255).to(torch.uint8).permute(0, 2, 3, 1)
        return out.cpu()

    def _resample_cpu(self, flow: torch.Tensor, paints: list, y0: int, x0: int) -> torch.Tensor:
        """The same bilinear resampling as the CUDA path through OpenCV's remap, straight on uint8 pixels:
        about 4x cheaper per frame than float `grid_sample` plus the conversions around it (one CPU thread)."""
        n, _, hr, wr = flow.shape
        flow_np = flow.numpy()
        out = self.image_u8.unsqueeze(0).repeat(n, 1, 1, 1)
        out_np = out.numpy()
        xs, ys = self._identity_np[0][:, x0:x0 + wr], self._identity_np[1][y0:y0 + hr]
        for i in range(n):
            cv2.remap(self._image_np, xs + flow_np[i, 0], ys + flow_np[i, 1], cv2.INTER_LINEAR,
                      dst=out_np[i, y0:y0 + hr, x0:x0 + wr], borderMode=cv2.BORDER_REPLICATE)
        for origins, (color, alpha) in paints:
            hh, ww = alpha.shape[-2:]
            for i, (bx, by) in enumerate(origins):
                patch = out[i, by:by + hh, bx:bx + ww].permute(2, 0, 1).to(color.dtype)
                patch.add_(alpha[i] * (color[i] - patch))
                out[i, by:by + hh, bx:bx + ww] = patch.round_().clamp_(0, 255).to(torch.uint8).permute(1, 2, 0)
        return out

    def _active(self, region, targets, warped, gaze, coeffs, pose_np) -> bool:
        """Whether a crop needs its own remap (otherwise the smooth global flow is already exact)."""
        if region == "mouth":
            return bool(coeffs.abs().amax() > 0) or bool(np.any(pose_np))
        ids = [37, 38, 40, 41] if region == "left" else [43, 44, 46, 47]
        lids = (targets[:, ids, 1] - warped[:, ids, 1]).abs().amax()
        return bool(lids > 0.05) or bool(gaze.abs().amax() > 0)

    # -- pieces ----------------------------------------------------------------------------------
    def _sample(self, field: torch.Tensor, points: torch.Tensor) -> torch.Tensor:
        """Bilinear sample of a coarse (n, C, h, w) field at pixel positions (n, ..., ..., 2)."""
        return F.grid_sample(field, points * (2.0 / self.coarse_extent) - 1.0, mode="bilinear",
                             padding_mode="border", align_corners=True)

    def _warped_curves(self, expression: torch.Tensor) -> dict:
        """The rest lid and inner-lip lines carried through the smooth warp, per region (upper, lower)."""
        moved = self._forward(expression, self._rest_curve_points)
        out, start = {}, 0
        for name, (upper, lower) in self._rest_curves.items():
            a, b = start + len(upper), start + len(upper) + len(lower)
            out[name] = (moved[:, start:a], moved[:, a:b])
            start = b
        return out

    def _forward(self, expression: torch.Tensor, points: torch.Tensor, iterations: int = 12) -> torch.Tensor:
        """Where rest points (P, 2) land under the backward expression field: q with q + E(q) = p."""
        p = points.unsqueeze(0).expand(expression.shape[0], -1, -1)
        q = p
        for _ in range(iterations):
            q = p - self._sample(expression, q.unsqueeze(1)).squeeze(2).permute(0, 2, 1)
        return q

    def _pose_backward(self, pose_np: np.ndarray) -> torch.Tensor | None:
        """Backward displacement (n, 2, h, w) that undoes the head pose on the coarse grid."""
        if not np.any(pose_np):
            return None
        dev, dt, h = self.device, self.config.dtype, self.coarse_size
        rot = torch.from_numpy(rotation_matrices(pose_np[:, :3])).to(dev, dt)  # (n, 3, 3)
        moved = torch.einsum("nij,pj->npi", rot, self.head_rel)[..., :2] - self.head_rel[None, :, :2]
        shift = torch.from_numpy(pose_np[:, 3:5] * self.rig.iod).to(dev, dt)[:, None, :]
        forward = (self.head_weight[None, :, None] * (moved + shift)).view(-1, h, h, 2).permute(0, 3, 1, 2)
        back = -forward
        for _ in range(self.config.pose_iterations):
            at = self.coarse.unsqueeze(0) + back.permute(0, 2, 3, 1)
            back = -self._sample(forward, at)
        return back

    def _crop_box(self, posed: torch.Tensor, region: str):
        """Crop size (h, w) shared by the batch and each frame's top-left corner (x, y)."""
        iod, size = self.rig.iod, self.size
        if region == "mouth":
            pts, margins = posed[:, 48:68], (0.12, 0.36, 0.12, 0.36)  # left, top, right, bottom (IOD)
        else:
            idx = slice(36, 42) if region == "left" else slice(42, 48)
            pts, margins = posed[:, idx], (0.05, 0.38, 0.05, 0.3)
        lo = pts.min(1).values.cpu().numpy()
        hi = pts.max(1).values.cpu().numpy()
        x0 = np.floor(lo[:, 0] - margins[0] * iod)
        y0 = np.floor(lo[:, 1] - margins[1] * iod)
        width = int(np.ceil((hi[:, 0] - lo[:, 0]).max() + (margins[0] + margins[2]) * iod))
        height = int(np.ceil((hi[:, 1] - lo[:, 1]).max() + (margins[1] + margins[3]) * iod))
        width, height = min(width, size), min(height, size)
        x0 = np.clip(x0, 0, size - width).astype(int)
        y0 = np.clip(y0, 0, size - height).astype(int)
        return (height, width), list(zip(x0.tolist(), y0.tolist()))

    def _region(self, region, box, pose_back, expression, targets, warped, gaze, coeffs, curves_g):
        """Backward flow (n, 2, hc, wc) for one crop, and an optional paint layer (colour, alpha)."""
        dev, dt = self.device, self.config.dtype
        (hc, wc), origins = box
        origin = torch.tensor(origins, device=dev, dtype=dt)  # (n, 2)
        ys = torch.arange(hc, device=dev, dtype=dt)
        xs = torch.arange(wc, device=dev, dtype=dt)
        gy, gx = torch.meshgrid(ys, xs, indexing="ij")
        dest = torch.stack([gx, gy], -1).unsqueeze(0) + origin[:, None, None, :]  # (n, hc, wc, 2)
        face = dest if pose_back is None else dest + self._sample(pose_back, dest).permute(0, 2, 3, 1)
        if region == "mouth":
            source, paint = self._mouth(face, targets, warped, coeffs, expression, curves_g)
        else:
            local, ball, shift = self._eye(face, targets, warped, region, gaze, curves_g)
            source = local + self._sample(expression, local).permute(0, 2, 3, 1)
            paint = self._iris(region, source, ball, shift) if bool(gaze.abs().amax() > 0) else None
        return (source - dest).permute(0, 3, 1, 2), paint

    def _eye(self, face, targets, warped, side, gaze, curves_g):
        """Lids slide over a fixed eyeball: lid skin follows the lid margin with a smooth falloff
        towards the brow; the eyeball under a closing lid is covered, never squashed."""
        n, hc, wc, _ = face.shape
        iod = self.rig.iod
        xy = face.cpu().numpy()
        xn, y = xy[..., 0].reshape(n, -1), xy[..., 1].reshape(n, -1)
        upper = [36, 37, 38, 39] if side == "left" else [42, 43, 44, 45]
        lower = [36, 41, 40, 39] if side == "left" else [42, 47, 46, 45]
        rest = self._rest_np
        tg = targets.cpu().numpy()
        x_in, x_out = tg[:, upper[0], 0:1], tg[:, upper[-1], 0:1]
        x_in_t, x_out_t = targets[:, upper[0], 0:1], targets[:, upper[-1], 0:1]
        (k_up, ux_up, uy_up), (k_lo, ux_lo, uy_lo) = self._knots_np[side]
        g_up, g_lo = (g.cpu().numpy() for g in curves_g[side])
        dy_up, dy_lo = tg[:, upper, 1] - rest[upper, 1], tg[:, lower, 1] - rest[lower, 1]

        def curves(gx):
            across = _clamp_np(_ramp_np(gx, x_in, x_out) * 2 - 1, -1, 1)
            rx = rest[upper[0], 0] + (across + 1) / 2 * (rest[upper[-1], 0] - rest[upper[0], 0])
            ru = _polyline_np(ux_up, uy_up, rx, sorted_xs=True)
            rl = np.maximum(_polyline_np(ux_lo, uy_lo, rx, sorted_xs=True), ru)
            u_t = ru + _lip_offset_np(k_up, dy_up, across, elliptic=False)
            l_t = rl + _lip_offset_np(k_lo, dy_lo, across, elliptic=False)
            u_g = _polyline_np(g_up[..., 0], g_up[..., 1], gx)
            l_g = _polyline_np(g_lo[..., 0], g_lo[..., 1], gx)
            inside = ((gx > x_in) & (gx < x_out)).astype(np.float32)
            return np.stack([u_t, np.maximum(l_t, u_t), u_g, l_g, across, inside], 1)

        u_t, l_t, u_g, l_g, across, inside = _by_column_np(xn, curves).transpose(1, 0, 2)
        # per-pixel remap in float32 numpy: the same operations as in torch, at a fraction of the
        # per-call cost on crops this small
        inside = inside > 0.5
        reach_up, reach_down = np.float32(0.32 * iod), np.float32(0.25 * iod)
        d_up = u_t - u_g
        t = _clamp_np((y - (u_t - reach_up)) / reach_up)
        new_y = np.where(y < u_t, y - d_up * t * t * (3 - 2 * t), y)
        d_lo = l_t - l_g
        t = _clamp_np(((l_t + reach_down) - y) / reach_down)
        new_y = np.where(y >= l_t, y - d_lo * t * t * (3 - 2 * t), new_y)
        # eyeball: fixed; where a lid opened wider than in the portrait, repeat the row at the margin
        ball = (y >= u_t) & (y < l_t)
        opened = np.where(y < u_g, u_g + 1, np.where(y > l_g, l_g - 1, y))
        new_y = np.where(ball, opened, new_y)
        new_y = np.where(inside, new_y, y)
        # gaze moves the iris disc inside the opening (painted by _iris)
        open_g = torch.from_numpy(np.maximum(l_g - u_g, np.float32(1.0)).max(1)).to(face.device)
        shift = torch.stack([gaze[:, 0] * (x_out_t - x_in_t)[:, 0] / 4.0, gaze[:, 1] * open_g * 0.3], 1)
        ball = torch.from_numpy(_soft_inside_np(y, u_t, l_t) * inside).to(face.device).view(n, hc, wc)
        local = torch.from_numpy(np.stack([xn, new_y], -1)).to(face.device).view(n, hc, wc, 2)
        return local, ball, shift

    def _iris(self, side: str, source: torch.Tensor, ball: torch.Tensor, shift: torch.Tensor):
        """Paint layer for a moved iris: the eyeball with its iris removed, and the iris disc sampled
        from where it is in the portrait, both inside the visible opening only."""
        cx, cy, radius = self._iris_discs[side]
        moved = source - shift[:, None, None, :]
        dist = torch.sqrt((moved[..., 0] - cx) ** 2 + (moved[..., 1] - cy) ** 2)
        disc = (radius + 2.5 - dist).clamp(0, 1).unsqueeze(1)  # covers all that remove_iris touched
        scale = 2.0 / (self.size - 1)
        n = source.shape[0]
        bare = F.grid_sample(self.image_bare.expand(n, -1, -1, -1), source * scale - 1, mode="bilinear",
                             padding_mode="border", align_corners=True)
        iris = F.grid_sample(self.image.expand(n, -1, -1, -1), moved * scale - 1, mode="bilinear",
                             padding_mode="border", align_corners=True)
        return bare + disc * (iris - bare), ball.unsqueeze(1)

    def _mouth(self, face, targets, warped, coeffs, expression, curves_g):
        """Lips slide over fixed upper teeth and jaw-borne lower teeth; a cavity fills what opens."""
        n, hc, wc, _ = face.shape
        iod, dt, dev = self.rig.iod, face.dtype, face.device
        xy = face.cpu().numpy()
        xn, y = xy[..., 0].reshape(n, -1), xy[..., 1].reshape(n, -1)
        upper, lower = [60, 61, 62, 63, 64], [60, 67, 66, 65, 64]
        rest = self._rest_np
        tg = targets.cpu().numpy()
        (knots_up, ux_up, uy_up), (knots_lo, ux_lo, uy_lo) = self._knots_np["mouth"]
        x_left, x_right = tg[:, 60, 0:1], tg[:, 64, 0:1]
        g_up, g_lo = (g.cpu().numpy() for g in curves_g["mouth"])
        dy_up, dy_lo = tg[:, upper, 1] - rest[upper, 1], tg[:, lower, 1] - rest[lower, 1]

        def curves(gx):
            # rest curves at the same face-frame column (teeth are fixed to the skull)
            u0 = _polyline_np(ux_up, uy_up, gx, sorted_xs=True)
            l0 = np.maximum(_polyline_np(ux_lo, uy_lo, gx, sorted_xs=True), u0)
            in_rest = ((gx > rest[60, 0]) & (gx < rest[64, 0])).astype(np.float32)
            # target and warped curves: rest curve at the same relative position + knot displacements
            across = _clamp_np(_ramp_np(gx, x_left, x_right) * 2 - 1, -1, 1)
            rx = rest[60, 0] + (across + 1) / 2 * (rest[64, 0] - rest[60, 0])
            ru = _polyline_np(ux_up, uy_up, rx, sorted_xs=True)
            rl = np.maximum(_polyline_np(ux_lo, uy_lo, rx, sorted_xs=True), ru)
            u_t = ru + _lip_offset_np(knots_up, dy_up, across)
            l_t = np.maximum(rl + _lip_offset_np(knots_lo, dy_lo, across), u_t)
            u_g = _polyline_np(g_up[..., 0], g_up[..., 1], gx)
            l_g = np.maximum(_polyline_np(g_lo[..., 0], g_lo[..., 1], gx), u_g)
            inside = ((gx > x_left) & (gx < x_right)).astype(np.float32)
            rest_gap = rl - ru
            closing = _clamp_np((rest_gap - (l_t - u_t)) / np.maximum(rest_gap, np.float32(1.0))) * (rest_gap > 1.0)
            opening = _clamp_np(((l_t - u_t) - rest_gap) / np.float32(0.1 * iod))
            return np.stack([u0, l0, in_rest, u_t, l_t, u_g, l_g, across, inside, closing, opening], 1)

        u0, l0, in_rest, u_t, l_t, u_g, l_g, across, inside, closing, opening = \
            _by_column_np(xn, curves).transpose(1, 0, 2)
        # per-pixel remap in float32 numpy (same operations as torch, far less per-call cost on a crop)
        cfg = self.config
        # lips that close or part show their own red edge, not the bright teeth right behind it
        u_g = u_g - np.float32(cfg.lip_margin) * closing
        l_g = l_g + np.float32(cfg.lip_margin) * (closing + opening)
        in_rest, inside = in_rest > 0.5, inside > 0.5
        top, bottom = u_g - np.float32(0.3 * iod), l_g + np.float32(0.3 * iod)

        # lips: skin above the upper inner lip and below the lower one slides with the lip line
        zone = (y >= top) & (y < u_t)
        ly = np.where(zone, top + _ramp_np(y, top, u_t) * (u_g - top), y)
        zone = (y >= l_t) & (y < bottom)
        ly = np.where(zone, l_g + _ramp_np(y, l_t, bottom) * (bottom - l_g), ly)
        ly = np.where(inside, ly, y)
        local = torch.from_numpy(np.stack([xn, ly], -1)).to(dev).view(n, hc, wc, 2)
        source = local + self._sample(expression, local).permute(0, 2, 3, 1)
        # where the lips meet, a soft shadow line
        arg = -(((y - (u_t + l_t) / np.float32(2)) / np.float32(1.2)) ** 2)
        seam = closing * torch.exp(torch.from_numpy(arg)).numpy() * inside * np.float32(0.35)

        # teeth: upper row fixed in the face, lower row carried by the jaw (chin displacement)
        jaw = (coeffs @ self.rig_bases[:, 8, 1]).unsqueeze(1).cpu().numpy()  # (n, 1) px
        split = u0 + np.float32(cfg.upper_teeth_share) * (l0 - u0)
        opening = (y >= u_t) & (y < l_t) & inside
        f = 0.75
        tops = np.float32(0.06 * iod)  # just above the rest lip line the teeth continue (their tops), then gum
        upper_y = np.minimum(np.where(y < u0, u0 + np.float32(1.5), y), split)
        teeth_y = np.where(y < split + jaw / np.float32(2), upper_y, np.maximum(y - jaw, split))
        teeth_src = torch.from_numpy(np.stack([xn, teeth_y], -1)).to(dev).view(n, hc, wc, 2)
        in_opening = torch.from_numpy(opening).to(dev).view(n, hc, wc, 1)
        source = torch.where(in_opening, teeth_src, source)

        # paint: gum above the fixed teeth, cavity between the teeth rows (or the lips), soft edges
        def band(lo, hi):
            return _soft_inside_np(y, lo, hi, f) * _clamp_np((hi - lo) / np.float32(f))

        cav_top = np.where(in_rest, np.maximum(u_t, split), u_t)
        cav_bot = np.where(in_rest, np.minimum(l_t, split + jaw), l_t)
        cavity = band(cav_top, cav_bot) * inside
        gum = band(u_t, u0 - tops) * (in_rest & inside)
        gap_t = np.maximum(l_t - u_t, np.float32(1.0))
        depth = _clamp_np(_ramp_np(y, u_t, l_t))  # 0 at the upper lip, 1 at the lower lip
        # the colour layer stays in torch (its sin/pow must match torch's to the bit), and is computed
        # only where it is painted (alpha > 0): elsewhere the paint adds alpha * (colour - frame) = 0
        painted = np.flatnonzero((cavity + gum + seam).ravel() > 0)
        jaw = np.broadcast_to(jaw, y.shape)
        def to_t(a: np.ndarray) -> torch.Tensor:
            return torch.from_numpy(np.ascontiguousarray(a.reshape(-1)[painted])[None]).to(dev)

        x, y, u_t, l_t, u0, split, jaw, across, cavity, gum, seam, gap_t, depth = map(
            to_t, (xn, y, u_t, l_t, u0, split, jaw, across, cavity, gum, seam, gap_t, depth))
        tops = float(tops)
        side = across.abs()
        def col(r: float, g: float, b: float) -> torch.Tensor:
            return torch.tensor([r, g, b], device=dev, dtype=dt).view(1, 3, 1)

        deep = ((1 - side ** 2) * torch.sin(torch.pi * depth)).unsqueeze(1)  # 0 at the lips, 1 deep inside
        color = col(92, 38, 40) + (col(30, 10, 12) - col(92, 38, 40)) * deep
        color = color * (1 - 0.4 * side.unsqueeze(1) ** 4)  # corners in shadow
        # tongue: a soft dome on the floor of the mouth once it is well open
        dome = ((depth - 0.7) / 0.3).clamp(0, 1) * (1 - (side / 0.7).clamp(0, 1) ** 2)
        dome = dome * ((gap_t - 0.2 * iod) / (0.2 * iod)).clamp(0, 1)
        color = color + (col(155, 72, 76) * (0.75 + 0.25 * depth.unsqueeze(1)) - color) * (0.85 * dome).unsqueeze(1)
        if not self.shows_teeth:  # synthesize rows where the portrait's teeth would be
            rest = self.rest
            width = rest[64, 0] - rest[60, 0]
            u = (x - rest[62, 0]) / (0.55 * width)
            row = (1 - (u ** 2).clamp(0, 1)) ** 0.5
            tooth = (x - rest[62, 0]) / (0.09 * iod)  # tooth gaps every ~0.09 IOD, one on the midline
            gaps = 1 - 0.2 * torch.exp(-(((tooth - torch.round(tooth)) / 0.07) ** 2))
            side = (1 - 0.45 * u.abs().clamp(max=1) ** 2)
            height = 0.09 * iod
            v = ((y - split) / height).clamp(0, 1)
            top_row = _soft_inside(y, split - 1, split + height) * row
            top_shade = (gaps * side * (0.8 + 0.2 * torch.sin(torch.pi * v))).unsqueeze(1)
            v = ((split + jaw - y) / (0.06 * iod)).clamp(0, 1)
            low_row = _soft_inside(y, split + jaw - 0.06 * iod, split + jaw + 1) * row
            low_shade = (gaps * side * (0.7 + 0.2 * torch.sin(torch.pi * v))).unsqueeze(1)
            color = color + (col(238, 230, 216) * top_shade - color) * top_row.unsqueeze(1)
            color = color + (col(225, 217, 203) * low_shade - color) * (0.9 * low_row).unsqueeze(1)
        gum_color = col(176, 86, 90) * (0.75 + 0.25 * _ramp(y, u_t, u0 - tops).clamp(0, 1).unsqueeze(1))
        g = gum
        shadow = col(70, 30, 32)
        alpha = (cavity + g + seam).clamp_max(1)
        color = (color * cavity.unsqueeze(1) + gum_color * g.unsqueeze(1) + shadow * seam.unsqueeze(1)) \
            / (cavity + g + seam).clamp_min(1e-6).unsqueeze(1)
        index = torch.from_numpy(painted).to(dev)
        color_full = torch.zeros(3, n * hc * wc, device=dev, dtype=dt).index_copy_(1, index, color[0])
        alpha_full = torch.zeros(n * hc * wc, device=dev, dtype=dt).index_copy_(0, index, alpha[0])
        return source, (color_full.view(3, n, hc, wc).transpose(0, 1), alpha_full.view(n, 1, hc, wc))
