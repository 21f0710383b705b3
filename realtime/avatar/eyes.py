"""Eyes: per column, a piecewise-linear vertical remap on a small crop that moves the eyelids exactly
to the rig's landmarks. Lids slide over a fixed eyeball (lid skin stretches, the iris is covered, never
squashed); gaze moves the portrait's own iris disc over an iris-free copy of the eyeball, and a lid opened
wider than in the portrait uncovers white around an iris that keeps its size."""
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


def sclera_color(image: np.ndarray, eye: np.ndarray, cx: float, cy: float, radius: float) -> np.ndarray:
    """The white an eye opened wider shows above its iris: the brighter eyeball pixels beside the iris half-way
    to white (Grace Hopper's eyes show none of their white in the photograph, only shaded red)."""
    from skimage.draw import polygon

    eye = np.asarray(eye, np.float64).copy()
    eye[1:3, 1] += 2.0  # skip the lashes along the upper margin
    rr, cc = polygon(eye[:, 1], eye[:, 0], image.shape[:2])
    beside = image[rr, cc][np.hypot(cc - cx, rr - cy) > radius + 2].astype(np.float32)
    if len(beside) < 10:
        return np.full(3, 210.0, np.float32)
    luminance = beside.mean(1)
    bright = np.median(beside[luminance >= np.percentile(luminance, 85)], 0)
    return (bright + 225.0) / 2


def complete_iris(image: np.ndarray, cx: float, cy: float, radius: float, upper: tuple, lower: tuple,
                  lashes: float, margin: float) -> np.ndarray:
    """The eye (H, W, 4: colour and how hidden, 0..1) with the part of its iris disc that lids and lashes hide in
    the photograph filled in and marked, for an eye opened wider. Visible: between the rest upper lid line (knots
    (1, K) x and y) `lashes` px down and the lower one `margin` px up. A hidden pixel takes the median colour of the
    visible ones at its distance from the centre (pupil, iris and dark rim are about radially symmetric, so the
    disc stays round; the visible parts of a narrow eye are too few and too shaded near the lids to copy from)."""
    reach = radius + 2.5  # all that Eyes.iris paints
    left, row0 = int(np.floor(cx - reach)), int(np.floor(cy - reach))
    ys, xs = np.mgrid[row0:int(np.ceil(cy + reach)) + 1, left:int(np.ceil(cx + reach)) + 1].astype(np.float32)
    if row0 < 0 or left < 0 or ys[-1, 0] >= image.shape[0] or xs[0, -1] >= image.shape[1]:
        return image
    columns = xs[:1]
    top = polyline_np(*upper, columns, sorted_xs=True) + lashes
    bottom = polyline_np(*lower, columns, sorted_xs=True) - margin
    hidden = np.maximum(clamp_np(top - ys + 0.5), clamp_np(ys - bottom + 0.5))  # 0..1, soft over a pixel
    rho = np.hypot(xs - cx, ys - cy)
    patch = image[row0:row0 + ys.shape[0], left:left + ys.shape[1], :3]
    seen = hidden == 0
    rings = np.arange(int(np.ceil(rho.max())) + 2)
    profile = np.full((len(rings), 3), np.nan, np.float32)
    for ring in rings:
        here = seen & (np.abs(rho - ring) < 0.75)
        if here.sum() >= 3:
            profile[ring] = np.median(patch[here], 0)
    known = ~np.isnan(profile[:, 0])
    if not known.any():
        return image
    for c in range(3):  # rings without visible pixels take their nearest neighbours'
        profile[:, c] = np.interp(rings, rings[known], profile[known, c])
    fill = np.stack([np.interp(rho, rings, profile[:, c]) for c in range(3)], -1)
    out = image.copy()
    out[row0:row0 + ys.shape[0], left:left + ys.shape[1]] = np.concatenate(
        [patch + hidden[..., None] * (fill - patch), hidden[..., None]], -1)
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
        self.lashes = np.float32(0.03 * iod)  # px under the upper lid margin where lashes and their shade lie
        bare = image.astype(np.float32)
        self.discs, self.sclera = {}, {}
        whole = np.concatenate([bare, np.zeros_like(bare[..., :1])], -1)  # colour and how hidden (complete_iris)
        for side, ids in EYE.items():
            cx, cy, radius = find_iris(image, rest[ids], iod)
            self.discs[side] = (cx, cy, radius)
            bare = remove_iris(bare, cx, cy, radius)
            (_, *upper), (_, *lower) = knots[side]
            whole = complete_iris(whole, cx, cy, radius, upper, lower, self.lashes, self.lashes / 2)
            self.sclera[side] = torch.tensor(sclera_color(image, rest[ids], cx, cy, radius), device=device,
                                             dtype=dtype).view(1, 3, 1, 1)
        self.image_bare = torch.from_numpy(bare).permute(2, 0, 1).unsqueeze(0).to(device, dtype)
        # the irises whole, as they show under a lid opened wider than in the portrait, and where they were hidden
        self.image_iris = torch.from_numpy(whole).permute(2, 0, 1).unsqueeze(0).to(device, dtype)

    def remap(self, face, targets, side, gaze, curves_g):
        """Lids slide over a fixed eyeball: lid skin follows the lid margin with a smooth falloff
        towards the brow; the eyeball under a closing lid is covered, never squashed.

        Returns the crop's source positions before the expression warp (n, hc, wc, 2), the visible opening
        (n, hc, wc), the iris's gaze shift (n, 2) px and, for `iris`, (n, 5, hc, wc): how far (px) the nearer lid
        opened wider than in the portrait, whether the eyeball there is hidden in the photograph (0..1), the white's
        shade, the upper lid's lashes (0..1) and how far (px) that lid rose."""
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
        # the eyeball stays fixed: under a closing lid it is covered; where a lid opens wider than in the
        # portrait, `iris` paints what the photograph hides there (white, the iris whole, the lid's shade)
        new_y = np.where(inside, new_y, y)
        above = y < (u_t + l_t) / 2  # nearer the upper lid
        wider = np.where(inside, np.maximum(np.where(above, u_g - u_t, l_t - l_g), 0), 0)  # px the nearer lid opened
        # the eyeball the photograph hides (its lashes' shade included), blending into what it shows
        band = 2 * self.lashes
        hidden = np.where(above, clamp_np((u_g + band - y) / band), clamp_np((y - l_g + band / 2) / (band / 2)))
        opens = clamp_np(wider / self.lashes)  # fades in with the opening (lid lines agree only to ~1e-5 px)
        hidden = hidden * opens
        # the upper lid's margin: its lashes (as photographed under the rest lid) come along with it, over a
        # white that darkens under the lid and towards the corners, where the eyeball turns away
        lashes = clamp_np(1 - (y - u_t) / self.lashes) * opens * above
        lid = 1 - clamp_np((y - u_t) / (2.5 * self.lashes))
        shade = (1 - 0.3 * lid * lid) * (1 - 0.18 * across * across)
        reveal = np.stack([wider, hidden, shade, lashes, np.maximum(u_g - u_t, 0)], 1)
        reveal = torch.from_numpy(reveal).to(face.device)
        # gaze moves the iris disc inside the opening (painted by iris)
        open_g = torch.from_numpy(np.maximum(l_g - u_g, np.float32(1.0)).max(1)).to(face.device)
        shift = torch.stack([gaze[:, 0] * (x_out_t - x_in_t)[:, 0] / 4.0, gaze[:, 1] * open_g * 0.3], 1)
        ball = torch.from_numpy(soft_inside_np(y, u_t, l_t) * inside).to(face.device).view(n, hc, wc)
        local = torch.from_numpy(np.stack([xn, new_y], -1)).to(face.device).view(n, hc, wc, 2)
        return local, ball, shift, reveal.view(n, 5, hc, wc)

    def iris(self, side: str, source: torch.Tensor, ball: torch.Tensor, shift: torch.Tensor, reveal: torch.Tensor):
        """Paint layer for an iris that moves or an eye opened wider than in the portrait: the eyeball with its iris
        removed, white where the photograph hides it, and the iris disc sampled from where it is in the portrait
        (whole where the lids hide part of it), both inside the visible opening only."""
        cx, cy, radius = self.discs[side]
        at = source - shift[:, None, None, :]
        dist = torch.sqrt((at[..., 0] - cx) ** 2 + (at[..., 1] - cy) ** 2).unsqueeze(1)
        disc = (radius + 2.5 - dist).clamp(0, 1)  # covers all that remove_iris touched
        scale = 2.0 / (self.size - 1)
        n = source.shape[0]
        bare = F.grid_sample(self.image_bare.expand(n, -1, -1, -1), source * scale - 1, mode="bilinear",
                             padding_mode="border", align_corners=True)
        iris = F.grid_sample(self.image.expand(n, -1, -1, -1), at * scale - 1, mode="bilinear",
                             padding_mode="border", align_corners=True)
        wider, hidden, shade, lashes, rise = reveal[:, :1], reveal[:, 1:2], reveal[:, 2:3], reveal[:, 3:4], reveal[:, 4]
        widened = bool(wider.amax() > 0.01)  # the rest and warped lid lines agree only to ~1e-5 px
        if widened:
            whole = F.grid_sample(self.image_iris.expand(n, -1, -1, -1), at * scale - 1, mode="bilinear",
                                  padding_mode="border", align_corners=True)
            shown = whole[:, 3:] * (wider / self.lashes).clamp(0, 1)  # a hidden part of the iris uncovered
            iris = iris + shown * (whole[:, :3] - iris)
            # what was hidden is the iris alone, its rim softened over a pixel: the white around it is the eyeball's
            disc = disc + shown * ((radius + 0.5 - dist).clamp(0, 1) - disc)
            bare = bare + hidden * (self.sclera[side] - bare)
        color = (bare + disc * (iris - bare)) * (1 - hidden * (1 - shade))
        if widened:
            lid = source + torch.stack([torch.zeros_like(rise), rise], -1)  # the rest margin's rows, iris-free
            margin = F.grid_sample(self.image_bare.expand(n, -1, -1, -1), lid * scale - 1, mode="bilinear",
                                   padding_mode="border", align_corners=True)
            color = color + lashes * (margin - color)
        return color, ball.unsqueeze(1)
