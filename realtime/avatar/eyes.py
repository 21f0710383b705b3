"""Eyes: per column, a piecewise-linear vertical remap on a small crop that moves the eyelids exactly
to the rig's landmarks. Lids slide over a fixed eyeball (lid skin stretches, the iris is covered, never
squashed); gaze moves the portrait's own iris disc over an iris-free copy of the eyeball."""
from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from .curves import by_column_np, clamp_np, lip_offset_np, polyline_np, ramp_np, soft_inside_np
from .rig import EYE, LID_LINES


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


class Eyes:
    """Both eyes of one portrait: rest lid knots, the iris discs and the iris-free eyeballs."""

    def __init__(self, image: np.ndarray, rest: np.ndarray, iod: float, knots: dict, device, dtype,
                 frame_bar: np.ndarray | None = None):
        self.iod, self.rest, self.knots = iod, rest.astype(np.float32), knots
        # a spectacle frame's top bar (columns x, top y, bottom y): the lid skin's slide stays below it
        bar = np.zeros((0, 3)) if frame_bar is None else np.asarray(frame_bar)
        self.bar = tuple(np.ascontiguousarray(bar[None, :, i], np.float32) for i in (0, 2))
        self.size = int(image.shape[0])
        self.image = torch.from_numpy(np.ascontiguousarray(image)).to(device).permute(2, 0, 1).unsqueeze(0).to(dtype)
        self.discs, bare = {}, image.astype(np.float32)
        for side, ids in EYE.items():
            cx, cy, radius = find_iris(image, rest[ids], iod)
            self.discs[side] = (cx, cy, radius)
            bare = remove_iris(bare, cx, cy, radius)
        self.image_bare = torch.from_numpy(bare).permute(2, 0, 1).unsqueeze(0).to(device, dtype)

    def remap(self, face, targets, side, gaze, curves_g):
        """Lids slide over a fixed eyeball: lid skin follows the lid margin with a smooth falloff
        towards the brow; the eyeball under a closing lid is covered, never squashed."""
        n, hc, wc, _ = face.shape
        iod = self.iod
        xy = face.cpu().numpy()
        xn, y = xy[..., 0].reshape(n, -1), xy[..., 1].reshape(n, -1)
        upper, lower = LID_LINES[side]
        rest = self.rest
        tg = targets.cpu().numpy()
        x_in, x_out = tg[:, upper[0], 0:1], tg[:, upper[-1], 0:1]
        x_in_t, x_out_t = targets[:, upper[0], 0:1], targets[:, upper[-1], 0:1]
        (k_up, ux_up, uy_up), (k_lo, ux_lo, uy_lo) = self.knots[side]
        g_up, g_lo = (g.cpu().numpy() for g in curves_g[side])
        dy_up, dy_lo = tg[:, upper, 1] - rest[upper, 1], tg[:, lower, 1] - rest[lower, 1]

        def curves(gx):
            across = clamp_np(ramp_np(gx, x_in, x_out) * 2 - 1, -1, 1)
            rx = rest[upper[0], 0] + (across + 1) / 2 * (rest[upper[-1], 0] - rest[upper[0], 0])
            ru = polyline_np(ux_up, uy_up, rx, sorted_xs=True)
            rl = np.maximum(polyline_np(ux_lo, uy_lo, rx, sorted_xs=True), ru)
            u_t = ru + lip_offset_np(k_up, dy_up, across, elliptic=False)
            l_t = rl + lip_offset_np(k_lo, dy_lo, across, elliptic=False)
            u_g = polyline_np(g_up[..., 0], g_up[..., 1], gx)
            l_g = polyline_np(g_lo[..., 0], g_lo[..., 1], gx)
            inside = ((gx > x_in) & (gx < x_out)).astype(np.float32)
            reach = np.full_like(gx, np.float32(0.32 * iod))
            if self.bar[0].shape[1]:  # under a frame the lid skin slides only as far up as the frame's bar
                ceiling = polyline_np(self.bar[0], self.bar[1], gx, sorted_xs=True)
                reach = clamp_np(u_t - ceiling - 1, np.float32(3.0), reach)
            return np.stack([u_t, np.maximum(l_t, u_t), u_g, l_g, across, inside, reach], 1)

        u_t, l_t, u_g, l_g, across, inside, reach_up = by_column_np(xn, curves).transpose(1, 0, 2)
        # per-pixel remap in float32 numpy: the same operations as in torch, at a fraction of the
        # per-call cost on crops this small
        inside = inside > 0.5
        reach_down = np.float32(0.25 * iod)
        d_up = u_t - u_g
        t = clamp_np((y - (u_t - reach_up)) / reach_up)
        new_y = np.where(y < u_t, y - d_up * t * t * (3 - 2 * t), y)
        d_lo = l_t - l_g
        t = clamp_np(((l_t + reach_down) - y) / reach_down)
        new_y = np.where(y >= l_t, y - d_lo * t * t * (3 - 2 * t), new_y)
        # eyeball: fixed under a closing lid; where a lid opened wider than in the portrait the visible
        # eyeball stretches to fill the opening (repeating the margin row would paint a dark band of lashes)
        ball = (y >= u_t) & (y < l_t)
        src_top = np.where(u_t < u_g, u_g + 1, u_t)
        src_bottom = np.where(l_t > l_g, l_g - 1, l_t)
        opened = src_top + (y - u_t) * (src_bottom - src_top) / np.maximum(l_t - u_t, np.float32(1.0))
        new_y = np.where(ball, opened, new_y)
        new_y = np.where(inside, new_y, y)
        # gaze moves the iris disc inside the opening (painted by iris)
        open_g = torch.from_numpy(np.maximum(l_g - u_g, np.float32(1.0)).max(1)).to(face.device)
        shift = torch.stack([gaze[:, 0] * (x_out_t - x_in_t)[:, 0] / 4.0, gaze[:, 1] * open_g * 0.3], 1)
        ball = torch.from_numpy(soft_inside_np(y, u_t, l_t) * inside).to(face.device).view(n, hc, wc)
        local = torch.from_numpy(np.stack([xn, new_y], -1)).to(face.device).view(n, hc, wc, 2)
        return local, ball, shift

    def iris(self, side: str, source: torch.Tensor, ball: torch.Tensor, shift: torch.Tensor):
        """Paint layer for a moved iris: the eyeball with its iris removed, and the iris disc sampled
        from where it is in the portrait, both inside the visible opening only."""
        cx, cy, radius = self.discs[side]
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
