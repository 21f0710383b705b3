"""Brows raised behind a spectacle frame: the brow lifts off the frame's top bar as a mass and the skin that
comes out from behind the bar is painted in.

Where a portrait's brows sit on the bar (`warp.glasses_bar`, which the smooth warp keeps straight), only the brow
itself lies between the raised brow landmarks and the bar: the smooth warp stretched it about 2x into a brown patch
of vertical streaks ending on hard edges where the bar ends. Here, per output column above the bar, the source
advances at least a row per output row (brow and forehead move as a mass; where the warp compresses they still
compress), the bar's edge and its shadow stay on the bar unstretched, and the output rows in between, whose source
would lie behind the bar, show forehead skin from just above the brow in the stretched brow's blurred shading (the
skin under a raised brow lies in the socket's shade; dlib reads a light band there as no brow and puts the brows on
the bar). The lift fades out sideways where the bar ends under the brows (the nose bridge stretches as before).
"""
from __future__ import annotations

import cv2
import numpy as np


def _sample(image: np.ndarray, at: np.ndarray) -> np.ndarray:
    return cv2.remap(image, at, None, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE).astype(np.float32)


class Brows:
    """The lift for one portrait with a frame bar; `lift` rewrites the renderer's source positions in a box."""

    def __init__(self, image: np.ndarray, rest: np.ndarray, iod: float, bar: np.ndarray, shadow: float = 3.0,
                 fade: float = 0.15, skin_gap: float = 0.06, reach: float = 0.14, soft: float = 2.0,
                 shading: float = 0.9, blur: float = 4.0):
        """bar: (M, 3) rows of column x, top y, bottom y (`glasses_bar`, not empty). shadow: px above the bar's
        dark top that stay with the frame (its edge and cast shadow). fade (IOD): the lift's sideways fade. The
        fill is the skin from skin_gap to skin_gap + reach (IOD) above the brow line, mirrored to and fro where the
        gap is taller (a hat or hairline may come soon above the brows); its top edge is blended over `soft` px
        into the brow's underside. shading: how much of the stretched brow's shading (blurred by `blur` px) the
        fill takes: 0.6 read no raised brows by dlib, 0.8-1 read them (+0.07..+0.10 IOD on the talking clip)."""
        self.image, self.shadow, self.soft, self.reach, self.shading = image, shadow, soft, reach * iod, shading
        self.smooth = cv2.GaussianBlur(image.astype(np.float32), (0, 0), blur)
        width = image.shape[1]
        columns = np.arange(width, dtype=np.float64)
        self.frame = np.interp(columns, bar[:, 0], bar[:, 1]).astype(np.float32)  # the bar's dark top per column
        # brow line (the landmarks not on the frame), flat beyond its ends: the fill is skin from above it
        brows = [p for p in range(17, 27) if rest[p, 1] < np.interp(rest[p, 0], bar[:, 0], bar[:, 1]) - 2]
        # the lift works where the bar runs under the brows; the frame's tips (grey wings, hair) are left alone
        spacing = np.median(np.diff(bar[:, 0]))
        covered = (np.abs(columns[:, None] - bar[None, :, 0]).min(1) <= spacing / 2)
        covered &= (columns >= rest[brows, 0].min()) & (columns <= rest[brows, 0].max())
        half = max(int(fade * iod), 1)
        window = np.hanning(2 * half + 3)[1:-1]
        self.weight = np.convolve(covered.astype(np.float64), window / window.sum(), mode="same").astype(np.float32)
        line = np.interp(columns, rest[brows, 0], rest[brows, 1])
        self.skin = (line - skin_gap * iod).astype(np.float32)
        touched = np.flatnonzero(self.weight > 0)
        self.span = (int(touched[0]) - 2, int(touched[-1]) + 2)  # rest columns the lift can touch
        # rest rows: from above where a raised brow's stretch begins to a little below the bar's top
        self.top = float(rest[brows, 1].min() - 0.3 * iod)
        self.bottom = float(self.frame[touched].max() + 0.06 * iod)

    def box(self) -> np.ndarray:
        """The rest-frame corners of the region the lift can touch (4, 2)."""
        (x0, x1), y0, y1 = self.span, self.top, self.bottom
        return np.array([[x0, y0], [x1, y0], [x0, y1], [x1, y1]], np.float64)

    def lift(self, source: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Rewrite source positions (h, w, 2) of one output box in place, rows from top to bottom; returns the
        fill's paint layer, colour (h, w, 3) and alpha (h, w), float32. Columns that do not reach the bar are
        left alone."""
        sx, sy = source[..., 0], source[..., 1]
        h, w = sy.shape
        col = np.clip(np.rint(sx), 0, len(self.frame) - 1).astype(np.intp)
        frame = self.frame[col]
        # the output row where the frame begins, per column (the smooth warp may fold a little near the bar)
        reached = np.maximum.accumulate(sy, axis=0)
        above = reached < frame
        count = above.sum(0)
        k, columns = np.clip(count, 1, h - 1), np.arange(w)
        s0, s1 = reached[k - 1, columns], reached[k, columns]
        bar = k - 1 + np.clip((frame[k - 1, columns] - s0) / np.maximum(s1 - s0, 1e-3), 0, 1)
        weight = self.weight[col] * ((count > 0) & (count < h))
        rows = np.arange(h, dtype=np.float32)[:, None]
        # above the bar the brow and forehead move as a mass: the source advances at least a row per row
        ahead = np.maximum.accumulate(np.where(above, sy - rows, -np.inf), axis=0) + rows
        # the frame's edge and shadow stay on the bar, unstretched
        strip = rows >= bar - self.shadow
        lifted = np.where(above, sy + weight * (np.where(strip, frame - (bar - rows), ahead) - sy), sy)
        depth = lifted - (frame - self.shadow)  # > 0: skin that came out from behind the bar
        # the gap, per column, holds the skin just above the brow (the skin nearest to what the bar hid)
        gap = np.where(above & ~strip, depth, 0).max(0, keepdims=True)
        alpha = np.clip(depth / self.soft + 1, 0, 1) * np.clip(gap / self.soft, 0, 1)
        alpha *= np.clip(bar - self.shadow - rows, 0, 1) * above
        # from the bar up, the skin from just above the brow line upwards, mirrored back every `reach`
        up = np.abs((gap - depth) % (2 * self.reach) - self.reach)
        fill = np.stack([sx, self.skin[col] - self.reach + up], -1).astype(np.float32)
        # its detail, in the blurred colour of what the smooth warp put there (the stretched brow underside)
        shade = _sample(self.smooth, np.ascontiguousarray(source)) - _sample(self.smooth, fill)
        colour = _sample(self.image, fill) + self.shading * shade
        # under the fill, nothing from behind the bar: the brow's underside where the strip begins
        sy[:] = np.where(above & ~strip, np.minimum(lifted, frame - self.shadow), lifted)
        return colour, alpha.astype(np.float32)
