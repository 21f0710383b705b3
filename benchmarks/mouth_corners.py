"""How well the pixel judges find the mouth corners: random mouth poses rendered on the default portrait, the
corners read from the pixels (`benchmarks.pixels.mouth_corners`) and dlib's 48 / 54, each against the corners
the renderer drew (its rig's landmarks for the pose, which the warp carries the portrait's corners to).

    python -m benchmarks.mouth_corners [--poses 160]   -> benchmarks/results/mouth_corners.json
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from realtime.vocab import DIM, INDEX

OUT = Path(__file__).parent / "results" / "mouth_corners.json"


def random_poses(count: int, seed: int) -> np.ndarray:
    """Mouth poses as speech and instructions mix them: the jaw shut on about half, smiles and their undoing,
    now and then a pucker, stretch, frown, raised upper lip, press or a one-sided corner; a little head motion."""
    rng = np.random.default_rng(seed)
    poses = np.zeros((count, DIM), np.float32)
    for pose in poses:
        pose[INDEX["jaw_open"]] = 0.0 if rng.random() < 0.45 else rng.uniform(0, 0.7)
        pose[INDEX["lips_close"]] = rng.uniform(0, 1)
        pose[INDEX["smile"]] = rng.uniform(-1, 1)
        for axis, share in (("lip_pucker", 0.3), ("mouth_stretch", 0.3), ("frown", 0.25), ("lip_funnel", 0.2),
                            ("upper_lip_raise", 0.2), ("lip_press", 0.2)):
            if rng.random() < share:
                pose[INDEX[axis]] = rng.uniform(0, 1)
        if rng.random() < 0.2:
            pose[INDEX["mouth_asym"]] = rng.uniform(-1, 1)
        for axis, sd in (("head_yaw", 4.0), ("head_pitch", 3.0), ("head_roll", 3.0)):
            pose[INDEX[axis]] = rng.normal(0, sd)
    return poses


def corner_errors(renderer, meter, poses: np.ndarray) -> dict[str, np.ndarray]:
    """Per pose: mean distance of the two corners from the drawn ones, in IOD, for the pixels and for dlib; and
    the three widths (drawn, pixels, dlib)."""
    from benchmarks.face_metrics import iod
    from benchmarks.pixels import mouth_corners

    rows = []
    for k in range(0, len(poses), 8):
        frames = renderer(poses[k:k + 8]).numpy()
        for frame, landmarks in zip(frames, renderer.rig.landmarks(poses[k:k + 8])):
            drawn = landmarks[[48, 54]]
            lm = meter.detector.landmarks_in_box(frame, meter.box).astype(np.float64)
            d = iod(lm)
            pixels, dlib = mouth_corners(frame, lm), lm[[48, 54]]
            rows.append([*(np.linalg.norm(c - drawn, axis=1).mean() / d for c in (pixels, dlib)),
                         *(np.linalg.norm(c[1] - c[0]) / d for c in (drawn, pixels, dlib))])
    table = np.asarray(rows)
    return {name: table[:, i] for i, name in enumerate(("pixels", "dlib", "width_drawn", "width_pixels", "width_dlib"))}


def main(argv: list[str] | None = None) -> None:
    from benchmarks.pixels import PixelMeter
    from realtime.avatar import Renderer, enrol

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--poses", type=int, default=160)
    parser.add_argument("--seed", type=int, default=5)
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args(argv)
    portrait = enrol()
    errors = corner_errors(Renderer(portrait).setup(), PixelMeter(portrait), random_poses(args.poses, args.seed))
    result = {"command": f"python -m benchmarks.mouth_corners --poses {args.poses} --seed {args.seed}"}
    for name in ("pixels", "dlib"):
        e = errors[name]
        result[name] = {"median": float(np.median(e)), "p90": float(np.percentile(e, 90)), "max": float(e.max()),
                        "width_r": float(np.corrcoef(errors["width_drawn"], errors[f"width_{name}"])[0, 1])}
        print(f"{name:6}: corner error median {result[name]['median']:.3f}, p90 {result[name]['p90']:.3f}, "
              f"max {result[name]['max']:.3f} IOD; width r with the drawn width {result[name]['width_r']:.2f}")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
