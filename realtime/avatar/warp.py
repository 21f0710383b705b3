"""The smooth global warp on a coarse grid: head pose and the expression flow fields.

  - head pose: the inverse of a smooth 3-D rotation of the head model, weighted to fade into the
    static background (computed on the coarse grid, inverted by fixed-point iteration);
  - expression: one small matmul (N, K) @ (K, h*w*2) over per-coefficient backward flow fields
    interpolated at setup with thin-plate splines through the rig's landmark displacements, pinned to
    zero on the image border and on a ring around the face.
"""
from __future__ import annotations

import cv2
import numpy as np
import torch
import torch.nn.functional as F

from .rig import (
    EYE,
    EYE_CORNERS,
    INNER_LOWER,
    INNER_UPPER,
    LID_LINES,
    LOWER_LID,
    OUTER_LOWER,
    OUTER_UPPER,
    RIG_INDEX,
    RIG_NAMES,
    UPPER_LID,
    Rig,
)


def warp_bases(rig: Rig) -> np.ndarray:
    """The rig's bases as the smooth global warp should see them (K, 68, 2) IOD units: eyelids ride
    rigidly with the eye corners and inner lips with the outer lips; the eye/mouth remaps do the rest."""
    bases = rig.bases.copy()
    for side, corners in EYE_CORNERS.items():
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
    eyes = (rig.rest[EYE["left"]].mean(0) + rig.rest[EYE["right"]].mean(0)) / 2
    rx, up, down = (r * rig.iod for r in radii)
    cy = eyes[1] + (down - up) / 2
    ry = (down + up) / 2
    angles = np.linspace(0, 2 * np.pi, 40, endpoint=False)
    ring = np.stack([eyes[0] + rx * np.cos(angles), cy + ry * np.sin(angles)], 1)
    edge = np.linspace(0, size - 1, 9)
    border = np.concatenate([np.stack([edge, np.zeros(9)], 1), np.stack([edge, np.full(9, size - 1.0)], 1),
                             np.stack([np.zeros(7), edge[1:-1]], 1), np.stack([np.full(7, size - 1.0), edge[1:-1]], 1)])
    return np.concatenate([ring, border])


def _lid_skin(rig: Rig, basis: np.ndarray, rise: float = 0.06) -> tuple[np.ndarray, np.ndarray]:
    """Points a little above each upper lid margin (rest positions, displacements in px) that move with
    the lid: the lashes and the lid fold stay one rigid band, so raising or lowering the brows stretches
    the skin between fold and brow instead of smearing the lashes upwards."""
    ids = [p for side in EYE_CORNERS for p in LID_LINES[side][0]]
    rest = rig.rest[ids] - np.array([0.0, rise * rig.iod])
    return rest, basis[ids] * rig.iod


def _forehead(rig: Rig, basis: np.ndarray, rise: float = 0.4, up: float = 0.6, down: float = 0.25):
    """Points above the brows that follow them in part (rest positions, displacements in px): raised brows
    push the forehead up with them, lowered ones leave it (and the hairline) nearly in place."""
    ids = list(range(17, 27))
    moved = basis[ids] * rig.iod
    share = np.where(moved[:, 1:] < 0, up, down)
    return rig.rest[ids] - np.array([0.0, rise * rig.iod]), share * moved


def glasses_bar(image: np.ndarray, lm: np.ndarray, iod: float, dark: float = 60.0, spacing: int = 4) -> np.ndarray:
    """The top bar of a spectacle frame as (M, 3) rows of column x, top y, bottom y every `spacing` px (rest
    positions), or none: the large near-black regions between the brows and the lash bands, out to the frame's
    tips. Raised brows must not bend the frame (`expression_fields` pins it) and lids rise under it (`Eyes`)."""
    from scipy import ndimage

    grey = image.astype(np.float32).mean(2)
    y0, y1 = int(lm[17:27, 1].min() - 0.1 * iod), int(lm[36:48, 1].max())
    x0, x1 = max(int(lm[0, 0] - 0.2 * iod), 0), min(int(lm[16, 0] + 0.2 * iod), grey.shape[1])
    mask = np.zeros(grey.shape, bool)
    mask[y0:y1, x0:x1] = grey[y0:y1, x0:x1] < dark
    mask = ndimage.binary_closing(mask, np.ones((5, 5)))  # bridge the frame's highlights
    gy, gx = np.mgrid[:grey.shape[0], :grey.shape[1]]
    for eye in (EYE["left"], EYE["right"]):  # iris, lashes and lid crease are not the frame
        centre = lm[eye].mean(0)
        mask &= ((gx - centre[0]) / (0.32 * iod)) ** 2 + ((gy - centre[1]) / (0.16 * iod)) ** 2 > 1
    labels, _ = ndimage.label(mask)
    # a frame's bar runs above both eyes' centres, between brow and lashes (hair at the temples, a mole or a
    # dark brow does not): keep the dark regions that cross those columns, if both eyes have one
    crossing = []
    for eye in (EYE["left"], EYE["right"]):
        x = int(round(lm[eye, 0].mean()))
        column = labels[int(lm[eye[1:3], 1].min() - 0.35 * iod):int(lm[eye[1:3], 1].min()), x]
        crossing.append(set(column[column > 0].tolist()))
    if not all(crossing):
        return np.zeros((0, 3))
    mask = np.isin(labels, list(crossing[0] | crossing[1]))
    rows = []
    for x in range(x0 - x0 % spacing, x1, spacing):
        ys = np.flatnonzero(mask[:, x])
        if len(ys):
            rows.append((x, ys[0], ys[-1]))
    return np.array(rows, np.float64)


def _bar_pins(bar: np.ndarray) -> np.ndarray:
    """Points just outside the bar's upper and lower edge: the warp leaves them where they are."""
    return np.concatenate([np.stack([bar[:, 0], bar[:, 1] - 1.0], 1), np.stack([bar[:, 0], bar[:, 2] + 1.0], 1)])


# bases whose corner motion is the cheek's (AU12 and undoing it, AU15, AU14): the cheek mass goes with the corners
CHEEK_BASES = ("smile", "smile_relax", "frown", "mouth_asym_right", "mouth_asym_left")
JAW_SIDES = {48: [1, 2, 3, 4, 5, 6], 54: [15, 14, 13, 12, 11, 10]}


def _cheek_mass(rig: Rig, basis: np.ndarray, reach: float = 1.1, reach_up: float = 0.75, wing_reach: float = 0.5,
                wing_hold: float = 0.7):
    """Cheek skin around each mouth corner that follows the corner with a smooth, wide falloff (rest
    positions, displacements in px), and the jaw contour beside it pulled along the same way.

    A corner moved alone drags a narrow band of skin (the nasolabial crease becomes a long stretched fold);
    moving the cheek as one mass spreads the strain over the whole cheek, from the jaw line to below the eye."""
    lm, iod = rig.rest, rig.iod
    points, moves = [], []
    for corner, jaw in JAW_SIDES.items():
        shift = basis[corner] * iod
        if not np.any(shift):
            continue
        eye = lm[[41, 40]].mean(0) if corner == 48 else lm[[47, 46]].mean(0)
        wing = lm[31] if corner == 48 else lm[35]
        fan = [lm[corner] + t * (lm[j] - lm[corner]) for j in jaw[:5] for t in (0.45, 0.75)]
        fan += [lm[corner] + t * (eye - lm[corner]) for t in (0.3, 0.55)]
        fan += [lm[corner] + t * (wing - lm[corner]) for t in (0.5,)]
        fan += [lm[j] for j in jaw]
        fan = np.array(fan)
        # the skin under the eye is held by the lids: the mass thins out sooner upwards
        off = fan - lm[corner]
        t = np.hypot(off[:, 0] / reach, off[:, 1] / np.where(off[:, 1] < 0, reach_up, reach)) / iod
        weight = np.clip(1 - t ** 2, 0, 1) ** 2
        # the nose wing holds the skin next to it: the mass thins out towards the wing too, so the stretch
        # between wing and a dropped corner spreads over the cheek instead of one hooked crease beside the nose
        near = np.clip(np.hypot(*(fan - wing).T) / (wing_reach * iod), 0, 1)
        weight = weight * (1 - wing_hold + wing_hold * near * near * (3 - 2 * near))
        points.append(fan)
        moves.append(weight[:, None] * shift)
    if not points:
        return np.zeros((0, 2)), np.zeros((0, 2))
    return np.concatenate(points), np.concatenate(moves)


def upsample_positions(coarse: np.ndarray, step: int, shape: tuple[int, int]) -> np.ndarray:
    """Per-pixel positions (h, w, 2) float32 from positions on a coarse grid (hc, wc, 2) spaced `step` pixels,
    bilinear between coarse points as `interpolate(align_corners=True)`: one OpenCV `warpAffine` that scales
    by `step` (the fractions k/step are exact in its 1/32 interpolation table for step 1, 2, 4, 8, ...)."""
    scale = np.array([[step, 0, 0], [0, step, 0]], np.float64)
    return cv2.warpAffine(np.ascontiguousarray(coarse, np.float32), scale, (shape[1], shape[0]),
                          flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)


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
    gap = rig.rest[INNER_LOWER, 1] - rig.rest[INNER_UPPER, 1]
    closed = [p for pair, g in zip(zip(INNER_UPPER, INNER_LOWER), gap) if g < 0.05 * rig.iod for p in pair]
    fields = np.zeros((len(RIG_NAMES), 2, field_size, field_size), np.float32)
    bar = glasses_bar(rig.portrait.image, rig.rest, rig.iod)
    rim = _bar_pins(bar)
    # brow landmarks that the detector put on the frame itself (its tips) are the frame's, not the brows'
    on_frame = [p for p in range(17, 27)
                if len(bar) and rig.rest[p, 1] > np.interp(rig.rest[p, 0], bar[:, 0], bar[:, 1]) - 2]
    for k, basis in enumerate(warp_bases(rig)):
        moved = basis * rig.iod
        if not np.any(moved):
            continue
        skin, skin_moved = _lid_skin(rig, basis)
        brow, brow_moved = _forehead(rig, basis)
        cheek, cheek_moved = _cheek_mass(rig, basis) if RIG_NAMES[k] in CHEEK_BASES else (np.zeros((0, 2)),) * 2
        # brows that move while the lids stay leave a spectacle frame where it is (lids moving under it are the
        # eye remap's: pinning the frame there would fold the lid band into it)
        pins = rim if np.any(basis[17:27]) and not np.any(basis[UPPER_LID["left"] + UPPER_LID["right"]]) else rim[:0]
        # inner lips that meet in the photograph are left to the mouth remap: upper and lower coincide
        # there, and moving them apart through a smooth field would fold it over (a torn mouth)
        # the cheek's jaw contour points replace the landmarks' own (the rig barely moves them)
        keep = [p for p in range(68) if p not in closed and not (len(cheek) and p in sum(JAW_SIDES.values(), []))
                and not (len(pins) and p in on_frame)]
        centres = np.concatenate([rig.rest[keep] + moved[keep], skin + skin_moved, brow + brow_moved,
                                  cheek + cheek_moved, anchors, pins])
        values = np.concatenate([-moved[keep], -skin_moved, -brow_moved, -cheek_moved, np.zeros_like(anchors),
                                 np.zeros_like(pins)])
        spline = RBFInterpolator(centres, values, kernel="thin_plate_spline", smoothing=1e-3)
        fields[k] = spline(grid).T.reshape(2, field_size, field_size)
    return fields


class CoarseWarp:
    """Expression fields and the head model on the coarse grid, with the lookups the renderer needs."""

    def __init__(self, rig: Rig, size: int, step: int, radii, pose_iterations: int, device, dtype):
        self.rig, self.size, self.step, self.pose_iterations = rig, size, step, pose_iterations
        self.device, self.dtype = device, dtype
        fields = expression_fields(rig, size, step, radii)
        self.fields = torch.from_numpy(fields.reshape(len(RIG_NAMES), -1)).to(device, dtype)  # (K, 2*h*w)
        axis_np = coarse_axis(size, step)
        self.coarse_size = len(axis_np)
        self.coarse_extent = float(axis_np[-1])
        axis = torch.from_numpy(axis_np).to(device, dtype)
        gy, gx = torch.meshgrid(axis, axis, indexing="ij")
        self.coarse = torch.stack([gx, gy], -1)  # (h, w, 2) pixel positions
        pts = self.coarse.reshape(-1, 2).cpu().numpy()
        head = rig.head
        rel = np.stack([pts[:, 0] - head.centre[0], pts[:, 1] - head.centre[1], head.depth_at(pts)], -1)
        self.head_rel = torch.from_numpy(rel).to(device, dtype)  # (h*w, 3)
        self.head_weight = torch.from_numpy(head.weight_at(pts)).to(device, dtype)  # (h*w,)

    def expression(self, coeffs: torch.Tensor) -> torch.Tensor:
        """Backward displacement (n, 2, h, w) at face-frame points."""
        h = self.coarse_size
        return (coeffs @ self.fields).view(len(coeffs), 2, h, h)

    def sample(self, field: torch.Tensor, points: torch.Tensor) -> torch.Tensor:
        """Bilinear sample of a coarse (n, C, h, w) field at pixel positions (n, ..., ..., 2)."""
        return F.grid_sample(field, points * (2.0 / self.coarse_extent) - 1.0, mode="bilinear",
                             padding_mode="border", align_corners=True)

    def forward(self, expression: torch.Tensor, points: torch.Tensor, iterations: int = 10,
                tolerance: float = 0.01) -> torch.Tensor:
        """Where rest points (P, 2) land under the backward expression field: q with q + E(q) = p.

        Newton steps with the field's finite-difference Jacobian: the plain fixed-point iteration q = p - E(q)
        oscillates where the warp compresses skin (a closing mouth) and crawls where it stretches it; it stopped
        up to 8 px off on the lip lines (sad), which the mouth remap then stretched into the upper lip. Up to ten
        steps, ending once every point is within `tolerance` px (talking frames: a few): six left a fully open jaw's
        lines 0.1-5 px off (the steps are clamped to 8 px and the lower lip travels ~40), and one point 0.09 px
        off where disgust compresses the upper lip."""
        n, count = expression.shape[0], points.shape[0]
        p = points.unsqueeze(0).expand(n, -1, -1)
        offsets = torch.tensor([[0.0, 0.0], [1.0, 0.0], [0.0, 1.0]], device=points.device, dtype=points.dtype)
        q = p
        for _ in range(iterations):
            at = (q.unsqueeze(1) + offsets[None, :, None, :]).reshape(n, 1, 3 * count, 2)
            e = self.sample(expression, at).reshape(n, 2, 3, count).permute(0, 2, 3, 1)  # (n, 3, P, 2)
            residual = q + e[:, 0] - p
            if float(residual.abs().amax()) < tolerance:
                break
            jx, jy = e[:, 1] - e[:, 0], e[:, 2] - e[:, 0]  # dE/dx, dE/dy per point
            a, b, c, d = 1 + jx[..., 0], jy[..., 0], jx[..., 1], 1 + jy[..., 1]
            det = a * d - b * c
            det = torch.where(det.abs() < 0.05, torch.full_like(det, 0.05), det)
            step = torch.stack([d * residual[..., 0] - b * residual[..., 1],
                                a * residual[..., 1] - c * residual[..., 0]], -1) / det.unsqueeze(-1)
            q = q - step.clamp(-8.0, 8.0)
        return q

    def pose_backward(self, pose_np: np.ndarray) -> torch.Tensor | None:
        """Backward displacement (n, 2, h, w) that undoes the head pose on the coarse grid."""
        if not np.any(pose_np):
            return None
        dev, dt, h = self.device, self.dtype, self.coarse_size
        rot, offset = (torch.from_numpy(a).to(dev, dt) for a in self.rig.head.rotation(pose_np[:, :3]))
        moved = torch.einsum("nij,pj->npi", rot, self.head_rel) + offset[:, None]
        moved = moved[..., :2] - self.head_rel[None, :, :2]
        shift = torch.from_numpy(pose_np[:, 3:5] * self.rig.iod).to(dev, dt)[:, None, :]
        forward = (self.head_weight[None, :, None] * (moved + shift)).view(-1, h, h, 2).permute(0, 3, 1, 2)
        back = -forward
        for _ in range(self.pose_iterations):
            at = self.coarse.unsqueeze(0) + back.permute(0, 2, 3, 1)
            back = -self.sample(forward, at)
        return back
