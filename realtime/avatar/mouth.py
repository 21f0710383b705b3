"""Mouth: per column, a piecewise-linear vertical remap on a small crop that moves the inner lips
exactly to the rig's landmarks. Lips slide over the teeth; a mouth opened beyond the portrait's own gap
keeps the portrait's upper teeth fixed in the face and its lower teeth on the jaw, and paints a
synthesized cavity (and teeth if the portrait shows none) between them."""
from __future__ import annotations

import numpy as np
import torch

from .curves import (LINES, by_column_np, clamp_np, lip_offset_np, polyline_np, ramp, ramp_np, soft_inside,
                     soft_inside_np)


def count_teeth_pixels(image: np.ndarray, landmarks: np.ndarray) -> int:
    """Near-white pixels between the inner lips: does the portrait show its teeth?"""
    from skimage.draw import polygon

    upper, lower = LINES["mouth"]
    inner = np.asarray(landmarks, np.float64)[upper + lower[::-1][1:-1]]
    rr, cc = polygon(inner[:, 1], inner[:, 0], image.shape[:2])
    px = image[rr, cc].astype(np.int32)
    return int(((px[:, 2] > 170) & (px[:, 0] - px[:, 2] < 40)).sum())


class Mouth:
    """The mouth of one portrait: rest inner-lip knots and whether the photograph shows teeth."""

    def __init__(self, image: np.ndarray, rest: np.ndarray, iod: float, knots: dict, rig_bases: torch.Tensor,
                 lip_margin: float, upper_teeth_share: float, device, dtype):
        self.iod, self.knots, self.rig_bases = iod, knots, rig_bases
        self.rest_np = rest.astype(np.float32)
        self.rest = torch.from_numpy(rest).to(device, dtype)
        self.lip_margin, self.upper_teeth_share = lip_margin, upper_teeth_share
        self.shows_teeth = count_teeth_pixels(image, rest) >= 0.05 * iod ** 2 * 0.1

    def remap(self, face, targets, coeffs, expression, curves_g, sample):
        """Lips slide over fixed upper teeth and jaw-borne lower teeth; a cavity fills what opens.
        `sample(field, points)` reads the coarse expression field."""
        n, hc, wc, _ = face.shape
        iod, dt, dev = self.iod, face.dtype, face.device
        xy = face.cpu().numpy()
        xn, y = xy[..., 0].reshape(n, -1), xy[..., 1].reshape(n, -1)
        upper, lower = LINES["mouth"]
        left_corner, right_corner = upper[0], upper[-1]
        rest = self.rest_np
        tg = targets.cpu().numpy()
        (knots_up, ux_up, uy_up), (knots_lo, ux_lo, uy_lo) = self.knots["mouth"]
        x_left, x_right = tg[:, left_corner, 0:1], tg[:, right_corner, 0:1]
        g_up, g_lo = (g.cpu().numpy() for g in curves_g["mouth"])
        dy_up, dy_lo = tg[:, upper, 1] - rest[upper, 1], tg[:, lower, 1] - rest[lower, 1]

        def curves(gx):
            # rest curves at the same face-frame column (teeth are fixed to the skull)
            u0 = polyline_np(ux_up, uy_up, gx, sorted_xs=True)
            l0 = np.maximum(polyline_np(ux_lo, uy_lo, gx, sorted_xs=True), u0)
            in_rest = ((gx > rest[left_corner, 0]) & (gx < rest[right_corner, 0])).astype(np.float32)
            # target and warped curves: rest curve at the same relative position + knot displacements
            across = clamp_np(ramp_np(gx, x_left, x_right) * 2 - 1, -1, 1)
            rx = rest[left_corner, 0] + (across + 1) / 2 * (rest[right_corner, 0] - rest[left_corner, 0])
            ru = polyline_np(ux_up, uy_up, rx, sorted_xs=True)
            rl = np.maximum(polyline_np(ux_lo, uy_lo, rx, sorted_xs=True), ru)
            u_t = ru + lip_offset_np(knots_up, dy_up, across)
            l_t = np.maximum(rl + lip_offset_np(knots_lo, dy_lo, across), u_t)
            u_g = polyline_np(g_up[..., 0], g_up[..., 1], gx)
            l_g = np.maximum(polyline_np(g_lo[..., 0], g_lo[..., 1], gx), u_g)
            inside = ((gx > x_left) & (gx < x_right)).astype(np.float32)
            rest_gap = rl - ru
            closing = clamp_np((rest_gap - (l_t - u_t)) / np.maximum(rest_gap, np.float32(1.0))) * (rest_gap > 1.0)
            opening = clamp_np(((l_t - u_t) - rest_gap) / np.float32(0.1 * iod))
            return np.stack([u0, l0, in_rest, u_t, l_t, u_g, l_g, across, inside, closing, opening], 1)

        u0, l0, in_rest, u_t, l_t, u_g, l_g, across, inside, closing, opening = \
            by_column_np(xn, curves).transpose(1, 0, 2)
        # per-pixel remap in float32 numpy (same operations as torch, far less per-call cost on a crop)
        # lips that close or part show their own red edge, not the bright teeth right behind it
        u_g = u_g - np.float32(self.lip_margin) * closing
        l_g = l_g + np.float32(self.lip_margin) * (closing + opening)
        in_rest, inside = in_rest > 0.5, inside > 0.5
        top, bottom = u_g - np.float32(0.3 * iod), l_g + np.float32(0.3 * iod)

        # lips: skin above the upper inner lip and below the lower one slides with the lip line
        zone = (y >= top) & (y < u_t)
        ly = np.where(zone, top + ramp_np(y, top, u_t) * (u_g - top), y)
        zone = (y >= l_t) & (y < bottom)
        ly = np.where(zone, l_g + ramp_np(y, l_t, bottom) * (bottom - l_g), ly)
        ly = np.where(inside, ly, y)
        local = torch.from_numpy(np.stack([xn, ly], -1)).to(dev).view(n, hc, wc, 2)
        source = local + sample(expression, local).permute(0, 2, 3, 1)
        # where the lips meet, a soft shadow line
        arg = -(((y - (u_t + l_t) / np.float32(2)) / np.float32(1.2)) ** 2)
        seam = closing * torch.exp(torch.from_numpy(arg)).numpy() * inside * np.float32(0.35)

        # teeth: upper row fixed in the face, lower row carried by the jaw (chin displacement)
        jaw = (coeffs @ self.rig_bases[:, 8, 1]).unsqueeze(1).cpu().numpy()  # (n, 1) px
        split = u0 + np.float32(self.upper_teeth_share) * (l0 - u0)
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
            return soft_inside_np(y, lo, hi, f) * clamp_np((hi - lo) / np.float32(f))

        cav_top = np.where(in_rest, np.maximum(u_t, split), u_t)
        cav_bot = np.where(in_rest, np.minimum(l_t, split + jaw), l_t)
        cavity = band(cav_top, cav_bot) * inside
        gum = band(u_t, u0 - tops) * (in_rest & inside)
        gap_t = np.maximum(l_t - u_t, np.float32(1.0))
        depth = clamp_np(ramp_np(y, u_t, l_t))  # 0 at the upper lip, 1 at the lower lip
        # the colour layer stays in torch (its sin/pow must match torch's to the bit), and is computed
        # only where it is painted (alpha > 0): elsewhere the paint adds alpha * (colour - frame) = 0
        painted = np.flatnonzero((cavity + gum + seam).ravel() > 0)
        jaw = np.broadcast_to(jaw, y.shape)
        to_t = lambda a: torch.from_numpy(np.ascontiguousarray(a.reshape(-1)[painted])[None]).to(dev)
        x, y, u_t, l_t, u0, split, jaw, across, cavity, gum, seam, gap_t, depth = map(
            to_t, (xn, y, u_t, l_t, u0, split, jaw, across, cavity, gum, seam, gap_t, depth))
        tops = float(tops)
        side = across.abs()
        col = lambda r, g, b: torch.tensor([r, g, b], device=dev, dtype=dt).view(1, 3, 1)
        deep = ((1 - side ** 2) * torch.sin(torch.pi * depth)).unsqueeze(1)  # 0 at the lips, 1 deep inside
        color = col(92, 38, 40) + (col(30, 10, 12) - col(92, 38, 40)) * deep
        color = color * (1 - 0.4 * side.unsqueeze(1) ** 4)  # corners in shadow
        # tongue: a soft dome on the floor of the mouth once it is well open
        dome = ((depth - 0.7) / 0.3).clamp(0, 1) * (1 - (side / 0.7).clamp(0, 1) ** 2)
        dome = dome * ((gap_t - 0.2 * iod) / (0.2 * iod)).clamp(0, 1)
        color = color + (col(155, 72, 76) * (0.75 + 0.25 * depth.unsqueeze(1)) - color) * (0.85 * dome).unsqueeze(1)
        if not self.shows_teeth:  # synthesize rows where the portrait's teeth would be
            rest = self.rest
            width = rest[right_corner, 0] - rest[left_corner, 0]
            u = (x - rest[62, 0]) / (0.55 * width)
            row = (1 - (u ** 2).clamp(0, 1)) ** 0.5
            tooth = (x - rest[62, 0]) / (0.09 * iod)  # tooth gaps every ~0.09 IOD, one on the midline
            gaps = 1 - 0.2 * torch.exp(-(((tooth - torch.round(tooth)) / 0.07) ** 2))
            side = (1 - 0.45 * u.abs().clamp(max=1) ** 2)
            height = 0.09 * iod
            v = ((y - split) / height).clamp(0, 1)
            top_row = soft_inside(y, split - 1, split + height) * row
            top_shade = (gaps * side * (0.8 + 0.2 * torch.sin(torch.pi * v))).unsqueeze(1)
            v = ((split + jaw - y) / (0.06 * iod)).clamp(0, 1)
            low_row = soft_inside(y, split + jaw - 0.06 * iod, split + jaw + 1) * row
            low_shade = (gaps * side * (0.7 + 0.2 * torch.sin(torch.pi * v))).unsqueeze(1)
            color = color + (col(238, 230, 216) * top_shade - color) * top_row.unsqueeze(1)
            color = color + (col(225, 217, 203) * low_shade - color) * (0.9 * low_row).unsqueeze(1)
        gum_color = col(176, 86, 90) * (0.75 + 0.25 * ramp(y, u_t, u0 - tops).clamp(0, 1).unsqueeze(1))
        g = gum
        shadow = col(70, 30, 32)
        alpha = (cavity + g + seam).clamp_max(1)
        color = (color * cavity.unsqueeze(1) + gum_color * g.unsqueeze(1) + shadow * seam.unsqueeze(1)) \
            / (cavity + g + seam).clamp_min(1e-6).unsqueeze(1)
        index = torch.from_numpy(painted).to(dev)
        color_full = torch.zeros(3, n * hc * wc, device=dev, dtype=dt).index_copy_(1, index, color[0])
        alpha_full = torch.zeros(n * hc * wc, device=dev, dtype=dt).index_copy_(0, index, alpha[0])
        return source, (color_full.view(3, n, hc, wc).transpose(0, 1), alpha_full.view(n, 1, hc, wc))
