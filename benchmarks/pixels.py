"""Per-frame face measures read from rendered pixels (dlib's 68 points in the portrait's box), never from the
motion vectors that made them. The definitions are `benchmarks/face_metrics.py`'s and ../shared/NOTES.md's,
plus the few a gesture or gaze needs:

- width: lip-corner distance |48-54| / IOD (a pout narrows it);
- mouth_asym: |height difference of the lip corners 48, 54| against the eye line's slope, / IOD (contempt);
- eye_l / eye_r: each eye's aspect ratio (image-left eye = points 36-41), for winks and blinks;
- gaze_x / gaze_y: the iris centre (the darkest pixels inside the eye's outline, as enrolment finds it)
  off the eye's centre, in eye widths, mean of both eyes (+x = image-right, +y = down);
- nose_x / nose_y: the nose tip's position in the frame, in IOD (nods and shakes move it);
- yaw: nose tip (30) off the jaw midline (0, 16) in jaw widths (+ = image-right);
- pitch: nose tip below the eye line, in IOD (+ = head down);
- roll: the eye line's angle in degrees (+ = image-right eye lower, i.e. the head tilts to image-right).
"""
from __future__ import annotations

import numpy as np

from benchmarks.face_metrics import EYE_CORNERS, iod, signature

MEASURES = ("mouth_open", "lift", "brow_height", "brow_gap", "eye_open", "upper_lip", "nose", "width", "mouth_asym",
            "eye_l", "nose_x", "nose_y",
            "eye_r", "gaze_x", "gaze_y", "yaw", "pitch", "roll")


def _ear(p: np.ndarray) -> float:
    return float((np.linalg.norm(p[1] - p[5]) + np.linalg.norm(p[2] - p[4])) / (2 * np.linalg.norm(p[0] - p[3])))


def _gaze(frame: np.ndarray, lm: np.ndarray, d: float) -> tuple[float, float]:
    from realtime.avatar.eyes import find_iris

    xs, ys = [], []
    for first in (36, 42):
        eye = lm[first:first + 6]
        cx, cy, _ = find_iris(frame, eye, d)
        centre, width = eye.mean(0), float(np.linalg.norm(eye[3] - eye[0]))
        xs.append((cx - centre[0]) / width), ys.append((cy - centre[1]) / width)
    return float(np.mean(xs)), float(np.mean(ys))


def measures(frame: np.ndarray, lm: np.ndarray) -> dict[str, float]:
    """Every measure above for one frame and its (68, 2) landmarks."""
    lm = np.asarray(lm, np.float64)
    d = iod(lm)
    out = signature(lm)
    out["width"] = float(np.linalg.norm(lm[54] - lm[48]) / d)
    slope = (lm[45, 1] - lm[36, 1]) / max(lm[45, 0] - lm[36, 0], 1e-6)
    out["mouth_asym"] = float(abs((lm[48, 1] - lm[54, 1]) - slope * (lm[48, 0] - lm[54, 0])) / d)
    out["eye_l"], out["eye_r"] = _ear(lm[36:42]), _ear(lm[42:48])
    out["gaze_x"], out["gaze_y"] = _gaze(frame, lm, d)
    out["nose_x"], out["nose_y"] = float(lm[30, 0] / d), float(lm[30, 1] / d)
    jaw_mid = (lm[0] + lm[16]) / 2
    out["yaw"] = float((lm[30, 0] - jaw_mid[0]) / max(abs(lm[16, 0] - lm[0, 0]), 1e-6))
    out["pitch"] = float((lm[30, 1] - lm[EYE_CORNERS, 1].mean()) / d)
    left, right = lm[36:42].mean(0), lm[42:48].mean(0)
    out["roll"] = float(np.degrees(np.arctan2(right[1] - left[1], right[0] - left[0])))
    return out


class PixelMeter:
    """Rendered frames -> (n, len(MEASURES)) array. The face stays inside the portrait's box (head turns are
    tens of pixels), so only dlib's shape predictor runs, as in `benchmarks/mouth.py`."""

    def __init__(self, portrait):
        from benchmarks.mouth import MouthMeter

        meter = MouthMeter(portrait)
        self.detector, self.box = meter.detector, meter.box

    def __call__(self, frames: np.ndarray) -> np.ndarray:
        rows = []
        for frame in np.asarray(frames):
            lm = self.detector.landmarks_in_box(frame, self.box)
            m = measures(frame, lm)
            rows.append([m[k] for k in MEASURES])
        return np.asarray(rows, np.float64).reshape(-1, len(MEASURES))


def column(table: np.ndarray, name: str) -> np.ndarray:
    return table[:, MEASURES.index(name)]
