"""Does the hair move with a turning head, and does the background beside it stay whole?

    python -m benchmarks.head_outline [--portraits default,grace_hopper]

For each portrait and each head pose (roll -10/+10, yaw -20/+20, pitch -10/+10 degrees) renders one frame and
prints two figures:
  hair  mean absolute difference (grey levels) between the render and the photograph moved rigidly by the head
        model, in a band 0.2 IOD deep inside the moved outline of the hair (the face excluded): hair that stays
        behind, or a cut through it, reads high;
  fold  the smallest Jacobian determinant of the pose warp's forward map over the frame: <= 0 where the warp
        folds the picture over itself (a seam torn through the background).
"""
from __future__ import annotations

import argparse
import tempfile

import numpy as np

from benchmarks.expressions import PORTRAITS

CASES = {"roll-10": {"head_roll": -10}, "roll+10": {"head_roll": 10}, "yaw-20": {"head_yaw": -20},
         "yaw+20": {"head_yaw": 20}, "pitch-10": {"head_pitch": -10}, "pitch+10": {"head_pitch": 10}}
POSE = ("head_yaw", "head_pitch", "head_roll", "head_x", "head_y")


def rigid_sources(head, pose: np.ndarray, size: int) -> np.ndarray:
    """(size*size, 2) where each output pixel comes from if the whole frame turned with the head (weight 1)."""
    from dataclasses import replace

    rigid = replace(head, weight=np.ones_like(head.weight))
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float64)
    out = np.stack([xx.ravel(), yy.ravel()], 1)
    src = out.copy()
    for _ in range(20):  # invert the forward displacement by fixed-point iteration
        src = out - rigid.displacement(src, pose[None])[0]
    return src


def moved(image: np.ndarray, src: np.ndarray) -> np.ndarray:
    """A (size, size) image resampled at `src` (rigid_sources)."""
    from scipy.ndimage import map_coordinates

    size = image.shape[0]
    return map_coordinates(image.astype(np.float64), [src[:, 1], src[:, 0]], order=1).reshape(size, size)


def fold(head, pose: np.ndarray, size: int) -> float:
    yy, xx = np.mgrid[0:size:2, 0:size:2].astype(np.float64)
    d = head.displacement(np.stack([xx.ravel(), yy.ravel()], 1), pose[None])[0].reshape(size // 2, size // 2, 2) / 2
    (dxy, dxx), (dyy, dyx) = np.gradient(d[..., 0]), np.gradient(d[..., 1])
    return float(((1 + dxx) * (1 + dyy) - dxy * dyx).min())


def main(argv: list[str] | None = None) -> int:
    from scipy.ndimage import distance_transform_edt

    from realtime.avatar import PortraitCache, RenderConfig, Renderer, enrol
    from realtime.avatar.head import face_mask
    from realtime.vocab import vector

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--portraits", default=",".join(PORTRAITS))
    args = parser.parse_args(argv)
    for name in args.portraits.split(","):
        portrait = enrol(PORTRAITS[name], cache=PortraitCache(tempfile.mkdtemp()))
        if portrait.head is None:
            print(f"{name}: no head outline segmented (the ellipse stands in)")
            continue
        renderer = Renderer(portrait, RenderConfig(device="cpu")).setup()
        head, size = renderer.rig.head, portrait.image.shape[0]
        frames = renderer(np.stack([vector(**kw) for kw in CASES.values()])).numpy()
        hair = portrait.head & ~face_mask(portrait.landmarks, size)
        for (case, kw), frame in zip(CASES.items(), frames):
            pose = np.array([kw.get(n, 0.0) for n in POSE])
            src = rigid_sources(head, pose, size)
            ideal = np.stack([moved(portrait.image[..., c], src) for c in range(3)], -1)
            outline = moved(portrait.head, src) > 0.5
            band = (moved(hair, src) > 0.5) & (distance_transform_edt(outline) <= 0.2 * portrait.iod)
            error = np.abs(frame - ideal).mean(2)[band].mean()
            print(f"{name:13s} {case:9s} hair {error:5.1f}  fold {fold(head, pose, size):+.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
