"""Motion vectors -> 512x512 frames of the enrolled portrait, batched, on CUDA or CPU.

Per pixel the output samples the portrait once (`grid_sample` on CUDA, OpenCV's `remap` on CPU) at a
source position made of the smooth global warp (head pose and expression, `warp.py`) and, on small
crops, the eye and mouth remaps that move lids and inner lips exactly to the rig's landmarks
(`eyes.py`, `mouth.py`), with their paint layers (a moved iris; the mouth's cavity, gum, teeth). On a portrait
with a spectacle frame, raised brows then lift off the frame's bar over the skin it hid (`brows.py`).
A zero motion vector gives the identity mapping, so it reproduces the portrait exactly.
"""
from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np
import torch
import torch.nn.functional as F

from realtime.devices import pick_device
from realtime.vocab import DIM, INDEX

from .brows import Brows
from .curves import rest_knots, rest_lines
from .enrol import Portrait
from .eyes import Eyes
from .mouth import Mouth
from .rig import EYE, LOWER_LID, MOUTH, UPPER_LID, Rig, motion_to_rig, pose_of
from .warp import CoarseWarp, glasses_bar, upsample_positions, warp_bases


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
    # an iris moved less than this (px), or under a lid opened less than this wider than in the portrait, is left
    # as the portrait has it: the generator's gaze is mostly a few hundredths, a tenth of a pixel, and painting
    # it is a fifth of the eyes' cost
    iris_min_shift: float = 0.25

    def __post_init__(self):
        # the CPU path enlarges the coarse fields with OpenCV, whose bilinear weights are exact in 1/32 steps
        assert self.field_step in (1, 2, 4, 8, 16, 32), f"field_step must divide 32, got {self.field_step}"
        assert 0 <= self.iris_min_shift < 2, f"iris_min_shift must be in [0, 2) px, got {self.iris_min_shift}"


def set_cpu_threads(n: int) -> None:
    """Intra-op threads of both CPU libraries the renderer uses (process-wide in each)."""
    torch.set_num_threads(n)
    cv2.setNumThreads(n)


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
        self.device = pick_device(cfg.device)
        self.rig = Rig(self.portrait)
        self.size = int(self.portrait.image.shape[0])
        dev, dt = self.device, cfg.dtype
        image = torch.from_numpy(np.ascontiguousarray(self.portrait.image)).to(dev)
        self.image_u8 = image
        self.image = image.permute(2, 0, 1).unsqueeze(0).to(dt)  # (1, 3, H, W), 0..255
        self.warp = CoarseWarp(self.rig, self.size, cfg.field_step, cfg.ring_radii, cfg.pose_iterations, dev, dt)
        self.rig_bases = torch.from_numpy(self.rig.bases * self.rig.iod).to(dev, dt)  # (K, 68, 2) px
        self.warp_bases = torch.from_numpy(warp_bases(self.rig) * self.rig.iod).to(dev, dt)
        self.rest = torch.from_numpy(self.rig.rest).to(dev, dt)  # (68, 2)
        full = torch.arange(self.size, device=dev, dtype=dt)
        fy, fx = torch.meshgrid(full, full, indexing="ij")
        self.identity = torch.stack([fx, fy], -1)  # (H, W, 2) pixel positions
        self._image_np = np.ascontiguousarray(self.portrait.image)  # for the CPU resampler (OpenCV)
        # rest lid and inner-lip lines sampled densely, to follow them through the smooth warp
        rest = self.rig.rest
        self._rest_curves = rest_lines(rest, dev, dt)
        self._rest_curve_points = torch.cat([c for pair in self._rest_curves.values() for c in pair])
        knots = rest_knots(rest)
        bar = glasses_bar(self.portrait.image, rest, self.rig.iod)
        self.eyes = Eyes(self.portrait.image, rest, self.rig.iod, knots, dev, dt, frame_bar=bar)
        self.brows = Brows(self._image_np, rest, self.rig.iod, bar) if len(bar) else None
        self.mouth = Mouth(self.portrait.image, rest, self.rig.iod, knots, self.rig_bases, cfg.lip_margin,
                           cfg.upper_teeth_share, dev, dt)
        self.shows_teeth = self.mouth.shows_teeth
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
        n, h, size, step = len(motion), self.warp.coarse_size, self.size, self.config.field_step

        expression = self.warp.expression(coeffs)  # backward displacement at face-frame points
        pose_back = self.warp.pose_backward(pose_np)  # (n, 2, h, h) or None
        if pose_back is None:
            total = expression
        else:
            face_pts = self.warp.coarse.unsqueeze(0) + pose_back.permute(0, 2, 3, 1)
            total = pose_back + self.warp.sample(expression, face_pts)

        targets = self.rest + torch.einsum("nk,kpc->npc", coeffs, self.rig_bases)  # (n, 68, 2) face frame
        warped = self.rest + torch.einsum("nk,kpc->npc", coeffs, self.warp_bases)
        lifts = self.brows is not None and bool((targets[:, 17:27, 1] - self.rest[17:27, 1]).amin() < -0.5)
        corners = self.brows.box() if lifts else np.zeros((0, 2))  # the brow lift's box, posed with the landmarks
        points = np.concatenate([targets.cpu().double().numpy(), np.repeat(corners[None], n, 0)], 1)
        posed_np = self.rig.posed(points, pose_np)
        posed = torch.from_numpy(posed_np[:, :68]).to(dev, dt)
        regions = [r for r in ("left", "right", "mouth") if self._active(r, targets, warped, gaze, coeffs, pose_np)]
        boxes = {r: self._crop_box(posed, r) for r in regions}
        brow_box = self._brow_box(posed_np[:, 68:]) if lifts else None

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
        for (hh, ww), origins in [boxes[r] for r in regions] + ([brow_box] if lifts else []):
            lo_x += [min(o[0] for o in origins)]
            lo_y += [min(o[1] for o in origins)]
            hi_x += [max(o[0] for o in origins) + ww]
            hi_y += [max(o[1] for o in origins) + hh]
        j0, i0 = max(0, min(lo_y) // step), max(0, min(lo_x) // step)
        j1, i1 = min(h - 1, -(-max(hi_y) // step)), min(h - 1, -(-max(hi_x) // step))
        y0, x0 = j0 * step, i0 * step
        hr, wr = min((j1 - j0) * step + 1, size - y0), min((i1 - i0) * step + 1, size - x0)  # the last coarse
        coarse = total[:, :, j0:j1 + 1, i0:i1 + 1]  # point may lie past the edge

        curves_g = self._warped_curves(expression) if regions else {}
        crops, paints = [], []
        for region in regions:
            source, paint = self._region(region, boxes[region], pose_back, expression, targets, warped, gaze, coeffs,
                                         curves_g)
            crops.append((boxes[region], source))
            if paint is not None:
                paints.append((boxes[region][1], paint))

        if self.device.type == "cpu":
            return self._resample_cpu(coarse, crops, paints, (y0, x0, hr, wr), brow_box)
        flow = F.interpolate(coarse, size=((j1 - j0) * step + 1, (i1 - i0) * step + 1), mode="bilinear",
                             align_corners=True)[:, :, :hr, :wr]
        for ((hh, ww), origins), source in crops:
            for i, (bx, by) in enumerate(origins):
                local = source[i] - self.identity[by:by + hh, bx:bx + ww]
                flow[i, :, by - y0:by - y0 + hh, bx - x0:bx - x0 + ww] = local.permute(2, 0, 1)
        if brow_box is not None:
            (hh, ww), origins = brow_box
            lifted = []
            for i, (bx, by) in enumerate(origins):
                here = self.identity[by:by + hh, bx:bx + ww]
                band = flow[i, :, by - y0:by - y0 + hh, bx - x0:bx - x0 + ww]
                source = (here + band.permute(1, 2, 0)).cpu().numpy()
                lifted.append(self.brows.lift(source))
                band.copy_((torch.from_numpy(source).to(dev, dt) - here).permute(2, 0, 1))
            paints.append((origins, self._brow_paint(lifted)))
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

    def _resample_cpu(self, coarse: torch.Tensor, crops: list, paints: list, box: tuple,
                      brow_box: tuple | None) -> torch.Tensor:
        """The same bilinear resampling as the CUDA path through OpenCV, straight on uint8 pixels (about 4x
        cheaper than float `grid_sample` plus the conversions around it). The source position of every pixel is
        made in one OpenCV call (`upsample_positions`: the coarse grid's own positions plus its backward flow),
        then the crops' own."""
        y0, x0, hr, wr = box
        n, step = coarse.shape[0], self.config.field_step
        hc, wc = coarse.shape[-2:]
        positions = self.warp.coarse[y0 // step:y0 // step + hc, x0 // step:x0 // step + wc]  # (hc, wc, 2)
        absolute = (coarse.permute(0, 2, 3, 1) + positions).numpy()
        out = self.image_u8.unsqueeze(0).repeat(n, 1, 1, 1)
        out_np = out.numpy()
        lifted = []
        for i in range(n):
            grid = upsample_positions(absolute[i], step, (hr, wr))
            for ((hh, ww), origins), source in crops:
                bx, by = origins[i]
                grid[by - y0:by - y0 + hh, bx - x0:bx - x0 + ww] = source[i].numpy()
            if brow_box is not None:
                (hh, ww), origins = brow_box
                bx, by = origins[i]
                lifted.append(self.brows.lift(grid[by - y0:by - y0 + hh, bx - x0:bx - x0 + ww]))
            cv2.remap(self._image_np, grid, None, cv2.INTER_LINEAR, dst=out_np[i, y0:y0 + hr, x0:x0 + wr],
                      borderMode=cv2.BORDER_REPLICATE)
        if brow_box is not None:
            paints = paints + [(brow_box[1], self._brow_paint(lifted))]
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
        ids = UPPER_LID[region] + LOWER_LID[region]
        lids = (targets[:, ids, 1] - warped[:, ids, 1]).abs().amax()
        return bool(lids > 0.05) or bool(gaze.abs().amax() > 0)

    # -- pieces ----------------------------------------------------------------------------------
    def _crop_box(self, posed: torch.Tensor, region: str):
        """Crop size (h, w) shared by the batch and each frame's top-left corner (x, y)."""
        iod, size = self.rig.iod, self.size
        if region == "mouth":
            pts, margins = posed[:, MOUTH], (0.12, 0.36, 0.12, 0.36)  # left, top, right, bottom (IOD)
        else:
            pts, margins = posed[:, EYE[region]], (0.05, 0.38, 0.05, 0.3)
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

    def _brow_box(self, corners: np.ndarray):
        """The brow lift's output box, as `_crop_box`, from its posed corners (n, 4, 2)."""
        lo, hi = np.floor(corners.min(1)), np.ceil(corners.max(1))
        height, width = (min(int((hi - lo)[:, k].max()), self.size) for k in (1, 0))
        x0 = np.clip(lo[:, 0], 0, self.size - width).astype(int)
        y0 = np.clip(lo[:, 1], 0, self.size - height).astype(int)
        return (height, width), list(zip(x0.tolist(), y0.tolist()))

    def _brow_paint(self, lifted: list) -> tuple[torch.Tensor, torch.Tensor]:
        """The brow lift's fills (colour, alpha) per frame as one paint layer (n, 3, h, w), (n, 1, h, w)."""
        dev, dt = self.device, self.config.dtype
        colour = torch.from_numpy(np.stack([c for c, _ in lifted])).to(dev, dt).permute(0, 3, 1, 2)
        alpha = torch.from_numpy(np.stack([a for _, a in lifted])).to(dev, dt).unsqueeze(1)
        return colour, alpha

    def _region(self, region, box, pose_back, expression, targets, warped, gaze, coeffs, curves_g):
        """Source positions (n, hc, wc, 2) for one crop's pixels, and an optional paint layer (colour, alpha)."""
        dev, dt = self.device, self.config.dtype
        (hc, wc), origins = box
        origin = torch.tensor(origins, device=dev, dtype=dt)  # (n, 2)
        ys = torch.arange(hc, device=dev, dtype=dt)
        xs = torch.arange(wc, device=dev, dtype=dt)
        gy, gx = torch.meshgrid(ys, xs, indexing="ij")
        dest = torch.stack([gx, gy], -1).unsqueeze(0) + origin[:, None, None, :]  # (n, hc, wc, 2)
        face = dest if pose_back is None else dest + self.warp.sample(pose_back, dest).permute(0, 2, 3, 1)
        if region == "mouth":
            source, paint = self.mouth.remap(face, targets, coeffs, expression, curves_g, self.warp.sample)
        else:
            local, ball, shift, reveal = self.eyes.remap(face, targets, region, gaze, curves_g)
            source = local + self.warp.sample(expression, local).permute(0, 2, 3, 1)
            moves = bool(gaze.abs().amax() > 0) and bool(shift.abs().amax() >= self.config.iris_min_shift)
            widens = bool(reveal[:, 0].amax() >= self.config.iris_min_shift)
            paint = self.eyes.iris(region, source, ball, shift, reveal) if moves or widens else None
        return source, paint

    def _warped_curves(self, expression: torch.Tensor) -> dict:
        """The rest lid and inner-lip lines carried through the smooth warp, per region (upper, lower)."""
        moved = self.warp.forward(expression, self._rest_curve_points)
        out, start = {}, 0
        for name, (upper, lower) in self._rest_curves.items():
            a, b = start + len(upper), start + len(upper) + len(lower)
            out[name] = (moved[:, start:a], moved[:, a:b])
            start = b
        return out
