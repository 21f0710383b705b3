"""A face measured on the output pixels: dlib's 68 points on a rendered frame, in inter-ocular units.

The definitions the project's figures are read with (IOD: distance between the centres of points
36-41 and 42-47; image y grows downwards):
- lift: lip-corner lift, (mean y of 62, 66) - (mean y of 48, 54); + = corners above the lip midline.
- brow_height: mean y of the eye corners 36, 39, 42, 45 minus mean y of 17-26 (independent of the lids).
- brow_gap: |21 - 22|, the inner brow ends' distance.
- eye_open: eye aspect ratio, mean of both eyes.
- mouth_open: mean of |61-67|, |62-66|, |63-65|.
- upper_lip: mean y of 50, 51, 52 minus the eye-corner line's y: the upper lip's distance below the eyes
  (smaller = raised, AU10).
- nose: mean y of 31-35 minus the eye-corner line's y (smaller = lifted, AU9).
"""
from __future__ import annotations

import numpy as np

EYE_CORNERS = [36, 39, 42, 45]


def iod(lm: np.ndarray) -> float:
    return float(np.linalg.norm(lm[36:42].mean(0) - lm[42:48].mean(0)))


def _eye_aspect(lm: np.ndarray, first: int) -> float:
    p = lm[first:first + 6]
    return float((np.linalg.norm(p[1] - p[5]) + np.linalg.norm(p[2] - p[4])) / (2 * np.linalg.norm(p[0] - p[3])))


def signature(lm: np.ndarray) -> dict[str, float]:
    """The measures above for one frame's (68, 2) landmarks."""
    lm = np.asarray(lm, np.float64)
    d = iod(lm)
    eye_line = lm[EYE_CORNERS, 1].mean()
    return {
        "lift": float(((lm[62, 1] + lm[66, 1]) / 2 - (lm[48, 1] + lm[54, 1]) / 2) / d),
        "brow_height": float((eye_line - lm[17:27, 1].mean()) / d),
        "brow_gap": float(abs(lm[22, 0] - lm[21, 0]) / d),
        "eye_open": (_eye_aspect(lm, 36) + _eye_aspect(lm, 42)) / 2,
        "mouth_open": float(np.mean([np.linalg.norm(lm[a] - lm[b]) for a, b in ((61, 67), (62, 66), (63, 65))]) / d),
        "upper_lip": float((lm[50:53, 1].mean() - eye_line) / d),
        "nose": float((lm[31:36, 1].mean() - eye_line) / d),
    }


def landmarks(detector, frame: np.ndarray) -> np.ndarray | None:
    """dlib's 68 points of the best-scoring face in a frame, or None when it finds none."""
    faces = detector(np.ascontiguousarray(frame))
    if not faces:
        return None
    return max(faces, key=lambda f: f.score).landmarks.astype(np.float64)


def clip_signature(detector, frames) -> dict[str, float]:
    """Median of each measure over the frames where a face was found (`found` = that share)."""
    rows = [signature(lm) for lm in (landmarks(detector, f) for f in frames) if lm is not None]
    if not rows:
        return {"found": 0.0}
    out = {k: float(np.median([r[k] for r in rows])) for k in rows[0]}
    out["found"] = len(rows) / len(frames)
    return out


def against(clip: dict[str, float], base: dict[str, float]) -> dict[str, float]:
    """The signed changes an expression is judged by, against the uninstructed clip (IOD units, + = more):
    corners_up, brows_up, brows_closer, eyes_wider (eye aspect ratio), upper_lip_up, nose_up, mouth_opener;
    and `lift`, the corners' absolute height over the lip midline."""
    return {
        "lift": clip["lift"],
        "corners_up": clip["lift"] - base["lift"],
        "brows_up": clip["brow_height"] - base["brow_height"],
        "brows_closer": base["brow_gap"] - clip["brow_gap"],
        "eyes_wider": clip["eye_open"] - base["eye_open"],
        "upper_lip_up": base["upper_lip"] - clip["upper_lip"],
        "nose_up": base["nose"] - clip["nose"],
        "mouth_opener": clip["mouth_open"] - base["mouth_open"],
    }


# What each expression must show at intensity 1, as (measure, op, threshold) on `against`'s output.
SIGNATURES: dict[str, tuple[tuple[str, str, float], ...]] = {
    "sad": (("lift", "<=", -0.02),),
    "angry": (("brows_up", "<=", -0.03), ("brows_closer", ">=", 0.02)),
    "serious": (("lift", "<=", 0.04), ("lift", ">=", -0.04)),
    "happy": (("corners_up", ">=", 0.05),),
    "surprised": (("brows_up", ">=", 0.05), ("eyes_wider", ">", 0.0)),
    "disgusted": (("upper_lip_up", ">=", 0.03),),
}


def check(expression: str, changes: dict[str, float]) -> list[str]:
    """The signature conditions an expression's changes fail (empty when it reads as it should)."""
    failed = []
    for measure, op, threshold in SIGNATURES.get(expression, ()):
        value = changes[measure]
        ok = value <= threshold if op == "<=" else value >= threshold if op == ">=" else value > threshold
        if not ok:
            failed.append(f"{measure} {value:+.3f} (needs {op} {threshold:+.2f})")
    return failed
