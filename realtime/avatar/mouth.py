"""Mouth: per column, a piecewise-linear vertical remap on a small crop that moves the inner lips
exactly to the rig's landmarks. Lips slide over the teeth; a mouth opened beyond the portrait's own gap
keeps the portrait's upper teeth fixed in the face and its lower teeth on the jaw, and paints a
synthesized cavity (and teeth if the portrait shows none) between them."""
from __future__ import annotations

import numpy as np
import torch

from .curves import (
    LINES,
    by_column_np,
    clamp_np,
    monotone_cubic_np,
    polyline_np,
    ramp_np,
    soft_inside_np,
    target_offset_np,
)
from .rig import RIG_INDEX
from .warp import CHEEK_BASES


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
        self.corner_bases = [RIG_INDEX[name] for name in CHEEK_BASES]
        # the rest inner-lip lines (smooth curves through the knots) tabulated every 1/4 px: a lookup per frame
        (_, ux_up, uy_up), (_, ux_lo, uy_lo) = knots["mouth"]
        self.rest_x = np.arange(ux_up.min() - 1, ux_up.max() + 1.25, 0.25, dtype=np.float32)
        self.rest_up, self.rest_lo = (monotone_cubic_np(ux, uy, self.rest_x[None])[0]
                                      for ux, uy in ((ux_up, uy_up), (ux_lo, uy_lo)))
        # shadowed pits at corners pulled down: full at this drop and this depth below the upper lip's middle
        # (IOD), this strong (alpha of the lips' shaded inner colour)
        self.commissure_depth, self.commissure_shade = 0.07, 0.55
        # at a full drop the lips meet over this share of the half-width from each corner, then part over the next
        self.corner_closed, self.corner_taper = 0.22, 0.35
        self.downturn, self.frown_basis = 0.1, RIG_INDEX["frown"]  # IOD of AU15's corner drop for the full closure
        self.downturn_onset = 0.5  # share of it before any
        self.crease_width, self.crease_shade = 1.2, 0.55  # px, alpha: the shadow line where those lips meet
        self.meet_share = 0.75  # of the gap below the upper lip line: where they meet
        self.corner_fade = 0.1  # IOD beside each corner over which the lips' slide fades out (crop margin 0.12)
        # synthesized upper teeth: IOD above the rest lip line to their gum line (gum above), below it to their
        # edges; the gum comes down this far between teeth
        self.crown, self.below, self.papilla = 0.1, 0.09, 0.03
        self.shows_teeth = count_teeth_pixels(image, rest) >= 0.05 * iod ** 2 * 0.1
        self.colors = {k: np.asarray(v, np.float32) for k, v in mouth_colors(image, rest, self.shows_teeth).items()}

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
        (knots_up, _, _), (knots_lo, _, _) = self.knots["mouth"]
        x_left, x_right = tg[:, left_corner, 0:1], tg[:, right_corner, 0:1]
        g_up, g_lo = (g.cpu().numpy() for g in curves_g["mouth"])
        dy_up, dy_lo = tg[:, upper, 1] - rest[upper, 1], tg[:, lower, 1] - rest[lower, 1]
        # the part of the lines' motion that moves the corners (`target_offset_np`)
        corners = (coeffs[:, self.corner_bases] @ self.rig_bases[self.corner_bases][:, :, 1]).cpu().numpy()
        bend_up, bend_lo = corners[:, upper], corners[:, lower]
        # only AU15 turns the mouth down (undoing a photographed smile levels it; an open oval keeps its ends)
        frown = (coeffs[:, self.frown_basis, None] * self.rig_bases[self.frown_basis][None, :, 1]).cpu().numpy()
        drop_left, drop_right = (self._downturn(tg, frown, c) for c in (left_corner, right_corner))

        def curves(gx):
            # rest curves at the same face-frame column (teeth are fixed to the skull)
            u0, l0 = self._rest_lines(gx)
            in_rest = ((gx > rest[left_corner, 0]) & (gx < rest[right_corner, 0])).astype(np.float32)
            # target and warped curves: rest curve at the same relative position + knot displacements
            across = clamp_np(ramp_np(gx, x_left, x_right) * 2 - 1, -1, 1)
            rx = rest[left_corner, 0] + (across + 1) / 2 * (rest[right_corner, 0] - rest[left_corner, 0])
            ru, rl = self._rest_lines(rx)
            u_t = ru + target_offset_np(knots_up, dy_up, bend_up, across)
            l_t = np.maximum(rl + target_offset_np(knots_lo, dy_lo, bend_lo, across), u_t)
            drop = np.where(across < 0, drop_left, drop_right)
            u_t, l_t, keep = self._close_towards_corners(u_t, l_t, across, drop)
            u_g = polyline_np(g_up[..., 0], g_up[..., 1], gx)
            l_g = np.maximum(polyline_np(g_lo[..., 0], g_lo[..., 1], gx), u_g)
            inside = ((gx > x_left) & (gx < x_right)).astype(np.float32)
            shut = (1 - keep) * drop * inside  # how far the lips are shut by a dropped corner
            # the lips' slide fades out beside the corners instead of ending on a vertical cut
            beyond = np.maximum(np.maximum(x_left - gx, gx - x_right), 0)
            beside = clamp_np(1 - beyond / np.float32(self.corner_fade * iod))
            rest_gap = rl - ru
            closing = clamp_np((rest_gap - (l_t - u_t)) / np.maximum(rest_gap, np.float32(1.0))) * (rest_gap > 1.0)
            opening = clamp_np(((l_t - u_t) - rest_gap) / np.float32(0.1 * iod))
            return np.stack([u0, l0, in_rest, u_t, l_t, u_g, l_g, across, inside, closing, opening, beside, shut], 1)

        u0, l0, in_rest, u_t, l_t, u_g, l_g, across, inside, closing, opening, beside, shut = \
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
        ly = y + (ly - y) * (beside * beside * (3 - 2 * beside))
        local = torch.from_numpy(np.stack([xn, ly], -1)).to(dev).view(n, hc, wc, 2)
        source = local + sample(expression, local).permute(0, 2, 3, 1)
        # where the lips meet, a soft shadow line
        arg = -(((y - (u_t + l_t) / np.float32(2)) / np.float32(1.3)) ** 2)
        seam = closing * np.exp(arg) * inside * np.float32(0.25) * clamp_np((1 - np.abs(across)) / np.float32(0.2)) \
            * (1 - shut)  # lips shut by a dropped corner have their own crease
        # where the lips meet towards a dropped corner, the crease between them: a soft shadow, not the cavity
        pits = self._commissures(xn, y, tg, corners)
        if np.any(shut > 0):  # (most frames: none, and no per-pixel cost)
            crease = shut * np.exp(-((y - u_t) / np.float32(self.crease_width)) ** 2)
            pits = pits + np.float32(self.crease_shade) * np.where(crease > 0.02, crease, np.float32(0))

        # teeth: upper row fixed in the face, lower row carried by the jaw (chin displacement)
        jaw = (coeffs @ self.rig_bases[:, 8, 1]).unsqueeze(1).cpu().numpy()  # (n, 1) px
        split = u0 + np.float32(self.upper_teeth_share) * (l0 - u0)
        # a slit shows the lips on either side of it, not the rest seam stretched (its speckles read as teeth)
        opening = (y >= u_t) & (y < l_t) & inside & (l_t - u_t >= np.float32(0.04 * iod))
        tops = np.float32(0.06 * iod)  # just above the rest lip line the teeth continue (their tops), then gum
        upper_y = np.minimum(np.where(y < u0, u0 + np.float32(1.5), y), split)
        teeth_y = np.where(y < split + jaw / np.float32(2), upper_y, np.maximum(y - jaw, split))
        teeth_src = torch.from_numpy(np.stack([xn, teeth_y], -1)).to(dev).view(n, hc, wc, 2)
        in_opening = torch.from_numpy(opening).to(dev).view(n, hc, wc, 1)
        source = torch.where(in_opening, teeth_src, source)

        # paint: gum above the fixed teeth, cavity between the teeth rows (or the lips), soft edges
        f = 2.0  # px of feather on every painted edge: lips end softly, never as a cut-out
        if self.shows_teeth:  # the photograph's teeth show between the rows' edges; paint only the gap
            # and as far as the photograph's own gap holds teeth: towards the corners it narrows to nothing, and its
            # last rows stretched over the opening drew brown streaks
            held = in_rest * clamp_np((l0 - u0 - np.float32(0.04 * iod)) / np.float32(0.05 * iod))
            cav_top = u_t + (np.maximum(u_t, split) - u_t) * held
            cav_bot = l_t + (np.minimum(l_t, split + jaw) - l_t) * held
        else:  # nothing of the photograph belongs in the opening: paint all of it below the gum
            tops = np.float32(self.crown * iod)  # synthesized upper teeth reach this far above the rest lip line
            cav_top, cav_bot = np.maximum(u_t, u0 - tops), l_t
        corner_fade = clamp_np((1 - np.abs(across)) / np.float32(0.12))  # corners blend into the lips
        cavity = _band(y, cav_top, cav_bot, f) * inside * corner_fade
        gum = _band(y, u_t, u0 - tops, f) * (in_rest & inside)
        painted = np.flatnonzero((cavity + gum + seam + pits).ravel() > 0)
        def pick(a):
            return np.ascontiguousarray(np.broadcast_to(a, y.shape).reshape(-1)[painted])

        layer = self._paint(*map(pick, (xn, y, u_t, l_t, u0, cav_top, cav_bot, split, across, cavity, gum, seam,
                                        pits)))
        color = np.zeros((3, n * hc * wc), np.float32)
        alpha = np.zeros(n * hc * wc, np.float32)
        color[:, painted], alpha[painted] = layer
        color = torch.from_numpy(color).to(dev, dt).view(3, n, hc, wc).transpose(0, 1)
        return source, (color, torch.from_numpy(alpha).to(dev, dt).view(n, 1, hc, wc))

    def _rest_lines(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The rest upper and lower inner-lip lines (lower never above upper) at columns x (n, M)."""
        upper = np.interp(x.ravel(), self.rest_x, self.rest_up).reshape(x.shape).astype(np.float32)
        return upper, np.maximum(np.interp(x.ravel(), self.rest_x, self.rest_lo).reshape(x.shape), upper)

    def _corner_drop(self, targets: np.ndarray, moved: np.ndarray, corner: int, full: float) -> np.ndarray:
        """(n, 1) in [0, 1]: how far a corner is pulled down (`moved`: by the given bases, px per landmark) and
        how far it sits below the upper lip's middle, each full at `full` IOD."""
        scale = np.float32(full * self.iod)
        below = targets[:, corner, 1:2] - targets[:, 62, 1:2]
        return clamp_np(moved[:, corner:corner + 1] / scale) * clamp_np(below / scale)

    def _downturn(self, targets: np.ndarray, frown: np.ndarray, corner: int) -> np.ndarray:
        """(n, 1) in [0, 1]: how far AU15 turns a corner down, from `downturn_onset` of `downturn` IOD (a slight
        downturn leaves the opening as it is: sad at 0.35 keeps reading less sad than at 1) to all of it."""
        onset = np.float32(self.downturn_onset)
        return clamp_np((self._corner_drop(targets, frown, corner, self.downturn) - onset) / (1 - onset))

    def _close_towards_corners(self, u_t, l_t, across, drop):
        """Inner-lip lines whose gap closes before corners pulled down: a downturned open mouth is dark only in
        its middle, the lips meet towards the corners (else the opening runs on down to each corner as a thin
        dark horn). Closed over `corner_closed` of the half-width from each corner, opening over the next
        `corner_taper`, both scaled by the drop; they meet `meet_share` of the way down the gap (the upper lip
        drapes over: sad corners then read lower by dlib on both portraits). Also returns the share of the gap kept."""
        reach = 1 - np.abs(across)
        closed, taper = (np.float32(w) * drop for w in (self.corner_closed, self.corner_taper))
        t = clamp_np((reach - closed) / np.maximum(taper, np.float32(1e-3)))
        keep = t * t * (3 - 2 * t)
        meet = u_t + np.float32(self.meet_share) * (l_t - u_t)
        return meet + (u_t - meet) * keep, meet + (l_t - meet) * keep, keep

    def _commissures(self, x: np.ndarray, y: np.ndarray, targets: np.ndarray, corners: np.ndarray):
        """Seam alpha (n, P) of the shadowed pits where the lips meet at each corner, on corners pulled down
        (AU15, a smile undone) below the upper lip's middle: from the inner corner out a little past the outer
        one. The photograph's own pits stay nearer where they were (the smooth warp spreads a corner's drop over
        the cheek), so a dropped corner without them still reads at its old height (dlib on Grace Hopper, sad).
        0.0 when no corner is down."""
        out = np.float32(0.0)
        for inner, outer in ((60, 48), (64, 54)):
            depth = self._corner_drop(targets, corners, inner, self.commissure_depth)
            if not np.any(depth > 0):
                continue
            a, b = targets[:, inner, None, :], targets[:, outer, None, :]
            reach = b + np.float32(0.15) * (b - a)  # the pit's shadow runs on a little along the cheek crease
            dx, dy = reach[..., 0] - a[..., 0], reach[..., 1] - a[..., 1]
            t = clamp_np(((x - a[..., 0]) * dx + (y - a[..., 1]) * dy) / np.maximum(dx * dx + dy * dy, 1e-3))
            gap2 = (x - a[..., 0] - t * dx) ** 2 + (y - a[..., 1] - t * dy) ** 2
            along = clamp_np(np.float32(1.3) * (1 - t)) * clamp_np(np.float32(3) * t + np.float32(0.3))
            out = out + np.float32(self.commissure_shade) * depth * along * np.exp(-gap2 / np.float32(1.6) ** 2)
        return np.where(out > 0.01, out, np.float32(0)) if np.ndim(out) else out  # only the pits' pixels

    def _paint(self, x, y, u_t, l_t, u0, top, bottom, split, across, cavity, gum, seam, pits):
        """Colour (3, P) and alpha (P,) of the painted mouth pixels, in the portrait's own colours: the
        cavity shaded from the lips' wet inner surface inward, a tongue on its floor, the lower teeth rising
        behind the lower lip as the jaw opens, synthesized upper teeth where the photograph shows none, gum,
        a lip seam, shadowed pits at corners pulled down (the lips' shaded inner colour). Teeth are rounded,
        scalloped at their edges and recede into shadow towards the corners; whatever is in shadow in the
        mouth turns towards the cavity's deep red-brown (light bounced off its walls), not to grey."""
        iod, c = np.float32(self.iod), self.colors
        side = np.abs(across)
        gap = np.maximum(bottom - top, np.float32(1.0))
        teeth_show = clamp_np((gap - np.float32(3.0)) / np.float32(3.0))  # no teeth glinting through a lip seam
        # the cavity: the lips' wet inner surface at each edge, darkening inwards over a distance that grows
        # with the opening (a wide mouth is a shaded hollow, not a flat hole), darker in the corners and in the
        # shadow right under the upper teeth or lip
        edge = np.maximum(np.minimum(y - top, bottom - y), 0)
        shade = 1 - np.exp(-edge / (np.float32(0.04) * iod + np.float32(0.22) * gap))
        shade = np.maximum(shade, np.float32(0.8) * clamp_np((side - np.float32(0.55)) / np.float32(0.45))
                           * clamp_np(edge / (np.float32(0.03) * iod)))
        under_top = np.exp(-np.maximum(y - top, 0) / (np.float32(0.08) * iod))
        color = c["inner"][:, None] + (c["deep"] - c["inner"])[:, None] * shade
        color = color * (1 - np.float32(0.3) * under_top * shade)
        deep, shadow = c["deep"][:, None], c["shadow"][:, None]
        phase, curve, tooth = self._teeth_phase(x)
        # each tooth's face is convex (a little darker where it turns away), a soft shadow between teeth
        gap_line = np.exp(-((1 - np.abs(phase)) / np.float32(0.18)) ** 2)
        rounded = (1 - np.float32(0.15) * phase ** 4) * (1 - np.float32(0.18) * gap_line)
        recede = 1 - np.float32(0.6) * across ** 2  # the arch turns away from the light towards the corners
        # tongue: a dome on the floor once the mouth is open, lit at its tip, its back fading into the dark
        dome = np.sqrt(clamp_np(1 - (across / np.float32(0.8)) ** 2))
        height = clamp_np((gap - np.float32(0.1) * iod) * np.float32(0.6), 0, np.float32(0.2) * iod) * dome
        tongue_top = bottom - height
        v = clamp_np((y - tongue_top) / np.maximum(height, 1))
        on_tongue = clamp_np(v / np.float32(0.35)) * soft_inside_np(y, tongue_top, bottom + 2, 2.5) \
            * clamp_np(height - 1)
        lit = (np.float32(0.45) + np.float32(0.5) * v) * recede
        color = color + (deep + (c["tongue"][:, None] - deep) * lit - color) * on_tongue * np.float32(0.95)
        # lower teeth: carried by the jaw behind the lower lip, their scalloped tops rising as the mouth opens
        row = np.sqrt(clamp_np(1 - (across / np.float32(0.62)) ** 2))
        low = clamp_np((gap - np.float32(0.12) * iod) * np.float32(0.3), 0, np.float32(0.06) * iod) * row
        low_top = bottom - low + np.float32(0.12) * low * phase ** 2 * curve
        on_low = soft_inside_np(y, low_top, bottom + 2, 1.0) * clamp_np(low - 0.5)
        lit = (np.float32(0.65) + np.float32(0.25) * clamp_np((y - low_top) / np.maximum(low, 1))) * rounded * recede
        color = color + (shadow + (c["teeth"][:, None] - shadow) * lit - color) * on_low * teeth_show
        if not self.shows_teeth:  # upper teeth where the photograph's would be, partly under the upper lip
            height, above = np.float32(self.below) * iod * LENGTHS[tooth], np.float32(self.crown) * iod
            row = np.sqrt(clamp_np(1 - (across / np.float32(0.78)) ** 2))
            edge_y = split + height * row - np.float32(0.1) * height * phase ** 4 * curve  # rounded incisal edges
            # their necks in the gum: an arch over each tooth, the gum coming down between them
            neck_y = split - above + np.float32(self.papilla) * iod * phase ** 2
            gum_up = soft_inside_np(y, top - 2, neck_y + 1, 1.5)
            color = color + (c["gum"][:, None] * np.float32(0.8) - color) * gum_up
            on_up = soft_inside_np(y, neck_y, edge_y, 1.0) * clamp_np(row * 3)
            v = clamp_np((y - split + above) / (height + above))
            # in the upper lip's soft shadow at the top, a little translucent (darker) at the biting edge
            lip_shadow = 1 - np.float32(0.5) * np.exp(-np.maximum(y - top, 0) / (np.float32(0.04) * iod))
            lit = (np.float32(0.6) + np.float32(0.4) * np.sqrt(v)) * rounded * recede * lip_shadow \
                * (1 - np.float32(0.15) * clamp_np((y - edge_y) / np.float32(3.0) + 1))
            color = color + (shadow + (c["teeth"][:, None] - shadow) * lit - color) * on_up * teeth_show
        ramp_gum = np.float32(0.8) + np.float32(0.2) * clamp_np(ramp_np(y, u_t, u0 - np.float32(0.06) * iod))
        total = cavity + gum + seam + pits
        color = (color * cavity + c["gum"][:, None] * ramp_gum * gum + c["deep"][:, None] * seam
                 + c["inner"][:, None] * pits) \
            / np.maximum(total, np.float32(1e-6))
        return color, np.minimum(total, np.float32(1.0))

    def _teeth_phase(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Position across each tooth (-1 at one gap, 0 at its middle, 1 at the next gap), how much of its face
        turns to the viewer (1 in front, less towards the corners) and which tooth it is (0: a central incisor,
        1: a lateral one, ...). Teeth are `WIDTHS` x 0.09 IOD wide along the dental arch, a gap on the midline;
        the arch's curvature narrows them towards the corners."""
        half = np.float32(0.5) * (self.rest_np[54, 0] - self.rest_np[48, 0]) * np.float32(1.15)
        s = clamp_np((x - self.rest_np[62, 0]) / half, -0.98, 0.98)
        arc = np.abs(np.arcsin(s)) * half / (np.float32(0.09) * np.float32(self.iod))
        at = np.interp(arc, GAPS, np.arange(len(GAPS), dtype=np.float32)).astype(np.float32)
        tooth = np.minimum(at.astype(np.int64), len(WIDTHS) - 1)
        return (at - tooth) * 2 - 1, np.sqrt(1 - s ** 2), tooth


# from the midline out: incisors (central, lateral), canine, premolars, molars; widths along the arch (x 0.09 IOD)
# and lengths (x the synthesized row's height): teeth of one size read as a denture
WIDTHS = np.array([1.15, 0.9, 0.95, 0.85, 0.85, 1.2, 1.2], np.float32)
LENGTHS = np.array([1.0, 0.88, 0.95, 0.85, 0.8, 0.75, 0.75], np.float32)
GAPS = np.concatenate([[0.0], np.cumsum(WIDTHS)]).astype(np.float32)


def _band(y: np.ndarray, lo: np.ndarray, hi: np.ndarray, feather: float) -> np.ndarray:
    """Soft inside-[lo, hi] mask that also fades out as the band gets thinner than the feather."""
    return soft_inside_np(y, lo, hi, feather) * clamp_np((hi - lo) / np.float32(feather))


def mouth_colors(image: np.ndarray, landmarks: np.ndarray, shows_teeth: bool) -> dict[str, np.ndarray]:
    """The mouth's paint colours from the portrait: lips (the ring between outer and inner lip), teeth (the
    photograph's own when it shows them, else `synthetic_teeth`) and what is derived from them."""
    from skimage.draw import polygon

    lm = np.asarray(landmarks, np.float64)
    h, w = image.shape[:2]
    outer = np.zeros((h, w), bool)
    outer[polygon(lm[48:60, 1], lm[48:60, 0], (h, w))] = True
    inner = np.zeros((h, w), bool)
    inner[polygon(lm[60:68, 1], lm[60:68, 0], (h, w))] = True
    pixels = image.astype(np.float32)
    lips = pixels[outer & ~inner]
    lip = np.median(lips, 0) if len(lips) > 20 else np.array([170.0, 95.0, 95.0], np.float32)
    bright = pixels[inner & (pixels[..., 2] > 150) & (pixels[..., 0] - pixels[..., 2] < 40)] if shows_teeth else []
    teeth = np.median(bright, 0) if len(bright) > 20 else synthetic_teeth(image, lm)
    inner, deep = lip * np.array([0.6, 0.4, 0.42]), lip * np.array([0.2, 0.09, 0.1])
    # what teeth in the mouth's shade turn to: light bounced off its red walls
    return {"lip": lip, "inner": inner, "deep": deep, "shadow": (inner + deep) / 2,
            "tongue": np.minimum(lip * np.array([1.0, 0.66, 0.68]), 255.0),
            "gum": lip * np.array([1.0, 0.82, 0.85]), "teeth": np.minimum(teeth, 255.0)}


def face_highlights(image: np.ndarray, landmarks: np.ndarray) -> tuple[np.ndarray, float]:
    """Mean colour of the face's bright skin (the top 3 % between the nose's middle and the upper lip, as wide as
    the mouth) and that 97th percentile of brightness (mean of R, G, B): the face's light and white balance (the
    brightest skin is the least saturated, nearest the light's own colour)."""
    lm = np.asarray(landmarks, np.float64)
    skin = image[int(lm[29, 1]):int(lm[50, 1]), int(lm[48, 0]):int(lm[54, 0])].reshape(-1, 3).astype(np.float32)
    if len(skin) < 20:
        return np.array([235.0, 200.0, 180.0], np.float32), 205.0
    level = float(np.percentile(skin.mean(1), 97))
    return skin[skin.mean(1) >= level].mean(0), level


# ivory teeth under white light; synthesized teeth take half their hue from the face's own highlights
IVORY = np.array([236.0, 226.0, 200.0], np.float32)


def synthetic_teeth(image: np.ndarray, landmarks: np.ndarray) -> np.ndarray:
    """Teeth for a portrait that shows none, lit like its face: ivory half-way to the hue of the face's highlights
    (the light and the photograph's white balance tint both), never bluer than those highlights (a neutral ivory
    beside warm skin reads as a blue-white bar) and at their brightness, never above it."""
    highlight, level = face_highlights(image, landmarks)
    hue = 0.5 * IVORY / IVORY.mean() + 0.5 * highlight / max(float(highlight.mean()), 1.0)
    hue[2] = min(hue[2], hue[0] * highlight[2] / max(float(highlight[0]), 1.0))
    return np.minimum(hue / hue.mean() * level, 255.0)
