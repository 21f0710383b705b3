"""Per-frame face measures read from rendered pixels (dlib's 68 points in the portrait's box), never from the
motion vectors that made them. The definitions are `benchmarks/face_metrics.py`'s and ../shared/NOTES.md's,
plus the few a gesture or gaze needs:

- width: the lip-corner distance / IOD (a pout narrows it, a smile widens it), the corners read from the pixels
  (`mouth_corners`): dlib's 48 and 54 slide down to the chin on a closed, smiling mouth (on 160 random rendered
  mouth poses, corner error against the corners the renderer drew: median 0.070, p90 0.333 IOD; the pixel
  corners 0.038 / 0.059; `python -m benchmarks.mouth_corners`); width_dlib keeps dlib's;
- mouth_asym: |height difference of the lip corners 48, 54| against the eye line's slope, / IOD (contempt);
- eye_l / eye_r: each eye's aspect ratio (image-left eye = points 36-41), for winks and blinks;
- gaze_x / gaze_y: the iris centre (the darkest pixels inside the eye's outline, as enrolment finds it)
  off the eye's centre, in eye widths, mean of both eyes (+x = image-right, +y = down);
- nose_x / nose_y: the nose tip's position in the frame, in IOD (nods and shakes move it);
- yaw: nose tip (30) off the jaw midline (0, 16) in jaw widths (+ = image-right);
- pitch: nose tip below the eye line, in IOD (+ = head down);
- roll: the eye line's angle in degrees (+ = image-right eye lower, i.e. the head tilts to image-right).

Read from the pixels themselves where dlib's shape prior moves both eyes' points together (a wink) or does not
follow the iris (vertical gaze). Each eye's box is laid along dlib's eye corners (36-39, 42-45: width w; the
corners stay put when the lids move); "dark" is below the midpoint of the 5th and 95th luminance percentiles of
that box on the portrait itself (one threshold per eye and portrait, so a shut eye does not re-scale it):
- open_l / open_r: each eye's dark area (iris, pupil, lash line) within 0.45 w either side of the eye's centre and
  0.5 w above and below the corner line, / w^2; a closing lid covers the iris, so it falls (winks, closed eyes);
- iris_y: the centroid of the box's darkness ((threshold - luminance)^2, dark pixels only) below the corner line,
  in eye widths, mean of both eyes (+ = down; the lash line weighs in too, so lids that move read on it);
- iris_lid: the iris against the lids: the same centroid over the columns within 0.15 w of the box's darkness
  centroid (the iris) minus the one over the columns 0.3 w or more from it (lash line and corners), in eye widths,
  mean of both eyes (+ = down; lids that move read less on it, an iris moved sideways more);
- without a portrait (`measures(frame, lm)` alone) the threshold is the frame's own.
"""
from __future__ import annotations

import cv2
import numpy as np

from benchmarks.face_metrics import EYE_CORNERS, iod, signature

MEASURES = ("mouth_open", "lift", "brow_height", "brow_gap", "eye_open", "upper_lip", "nose", "width", "width_dlib",
            "mouth_asym",
            "eye_l", "nose_x", "nose_y",
            "eye_r", "gaze_x", "gaze_y", "yaw", "pitch", "roll", "open_l", "open_r", "iris_y",
            "iris_lid")
EYE_BOX = (0.45, 0.5)  # half-width, half-height of an eye's box, in eye widths
# Mouth corners: the lips (redder than the skin: Lab a* above the mouth box's median by LIP_REDNESS of the way to
# its 99th percentile) joined with the seam between them (thin dark lines: a black-hat above SEAM_DARKNESS of its
# 99.5th percentile), in a box MOUTH_BOX (half-width, half-height, IOD) around dlib's mouth centre.
LIP_REDNESS, SEAM_DARKNESS, MOUTH_BOX = 0.45, 0.35, (0.9, 0.45)


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


def _eye_grid(lum: np.ndarray, inner: np.ndarray, outer: np.ndarray) -> tuple[np.ndarray, np.ndarray, float]:
    """Luminance sampled along the eye line (rows: 1 px steps across it, + = down; columns: along it), the rows'
    offsets and the eye's width w."""
    from scipy.ndimage import map_coordinates

    w = float(np.linalg.norm(outer - inner))
    ux, uy = (outer - inner) / max(w, 1e-6)
    c = (inner + outer) / 2
    u = np.arange(-EYE_BOX[0] * w, EYE_BOX[0] * w + 0.5)
    v = np.arange(-EYE_BOX[1] * w, EYE_BOX[1] * w + 0.5)
    uu, vv = np.meshgrid(u, v)
    xs, ys = c[0] + uu * ux - vv * uy, c[1] + uu * uy + vv * ux
    return map_coordinates(lum, [ys, xs], order=1, mode="nearest"), v, w


def _luminance(frame: np.ndarray) -> np.ndarray:
    return np.asarray(frame, np.float64).mean(2)


class EyeReference:
    """One portrait's dark threshold per eye (see the docstring)."""

    def __init__(self, image: np.ndarray, landmarks: np.ndarray):
        lm = np.asarray(landmarks, np.float64)
        lum = _luminance(image)
        self.dark = []
        for first in (36, 42):
            box, _, _ = _eye_grid(lum, lm[first], lm[first + 3])
            self.dark.append(float(np.mean(np.percentile(box, [5, 95]))))


def _centroid(weight: np.ndarray, v: np.ndarray) -> float:
    return float((weight.sum(1) @ v) / max(weight.sum(), 1e-9))


def eye_pixels(frame: np.ndarray, lm: np.ndarray, ref: EyeReference | None = None) -> dict[str, float]:
    """open_l, open_r, iris_y and iris_lid (see the docstring) for one frame."""
    lum = _luminance(frame)
    corners = [(lm[36], lm[39]), (lm[42], lm[45])]
    out, ys, lids = {}, [], []
    for k, (name, (inner, outer)) in enumerate(zip(("open_l", "open_r"), corners)):
        box, v, w = _eye_grid(lum, inner, outer)
        dark = ref.dark[k] if ref is not None else float(np.mean(np.percentile(box, [5, 95])))
        out[name] = float((box < dark).sum() / w ** 2)
        weight = np.clip(dark - box, 0, None) ** 2
        ys.append(_centroid(weight, v) / w)
        u = np.linspace(-EYE_BOX[0] * w, EYE_BOX[0] * w, box.shape[1])
        across = np.abs(u - (weight.sum(0) @ u) / max(weight.sum(), 1e-9))
        lids.append((_centroid(weight * (across <= 0.15 * w), v) - _centroid(weight * (across >= 0.3 * w), v)) / w)
    out["iris_y"], out["iris_lid"] = float(np.mean(ys)), float(np.mean(lids))
    return out


def mouth_corners(frame: np.ndarray, lm: np.ndarray) -> np.ndarray:
    """(2, 2) image-left and image-right mouth corners read from the pixels: the lateral ends of the region of
    lips and seam that crosses the mouth's centre column (dlib's points only place the box: its mouth centre
    stays near the lips even where its corners do not)."""
    d = iod(lm)
    cx, cy = lm[48:68, 0].mean(), lm[[51, 57, 62, 66], 1].mean()
    x0, y0 = max(int(cx - MOUTH_BOX[0] * d), 0), max(int(cy - MOUTH_BOX[1] * d), 0)
    crop = np.ascontiguousarray(frame[y0:int(cy + MOUTH_BOX[1] * d), x0:int(cx + MOUTH_BOX[0] * d)])
    lab = cv2.cvtColor(crop, cv2.COLOR_RGB2LAB)
    red = cv2.GaussianBlur(lab[..., 1].astype(np.float32), (0, 0), 1.0)
    skin = float(np.median(red))
    mask = (red > skin + LIP_REDNESS * (float(np.percentile(red, 99)) - skin)).astype(np.uint8)
    lum = cv2.GaussianBlur(lab[..., 0].astype(np.float32), (0, 0), 0.7)
    line = cv2.morphologyEx(lum, cv2.MORPH_BLACKHAT, _disc(0.08 * d))
    mask |= (line > SEAM_DARKNESS * float(np.percentile(line, 99.5))).astype(np.uint8)
    mask = cv2.morphologyEx(mask, cv2.MORPH_CLOSE, _disc(0.06 * d))
    _, labels, stats, _ = cv2.connectedComponentsWithStats(mask)
    centre, half = int(cx) - x0, int(0.1 * d)
    crossing = [c for c in np.unique(labels[:, max(centre - half, 0):centre + half + 1]) if c]
    if not crossing:
        return lm[[48, 54]].astype(np.float64)
    ys, xs = np.nonzero(labels == max(crossing, key=lambda c: stats[c, cv2.CC_STAT_AREA]))
    return np.array([(x + x0, ys[np.abs(xs - x) <= 1].mean() + y0) for x in (xs.min(), xs.max())], np.float64)


def _disc(size: float) -> np.ndarray:
    side = max(3, int(size) | 1)
    return cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (side, side))


def measures(frame: np.ndarray, lm: np.ndarray, ref: EyeReference | None = None) -> dict[str, float]:
    """Every measure above for one frame and its (68, 2) landmarks (`ref`: the portrait's rest eyes)."""
    lm = np.asarray(lm, np.float64)
    d = iod(lm)
    out = signature(lm)
    corner_l, corner_r = mouth_corners(frame, lm)
    out["width"] = float(np.linalg.norm(corner_r - corner_l) / d)
    out["width_dlib"] = float(np.linalg.norm(lm[54] - lm[48]) / d)
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
    out.update(eye_pixels(frame, lm, ref))
    return out


class PixelMeter:
    """Rendered frames -> (n, len(MEASURES)) array. The face stays inside the portrait's box (head turns are
    tens of pixels), so only dlib's shape predictor runs, as in `benchmarks/mouth.py`."""

    def __init__(self, portrait):
        from benchmarks.mouth import MouthMeter

        meter = MouthMeter(portrait)
        self.detector, self.box = meter.detector, meter.box
        self.eyes = EyeReference(portrait.image, portrait.landmarks)

    def __call__(self, frames: np.ndarray) -> np.ndarray:
        rows = []
        for frame in np.asarray(frames):
            lm = self.detector.landmarks_in_box(frame, self.box)
            m = measures(frame, lm, self.eyes)
            rows.append([m[k] for k in MEASURES])
        return np.asarray(rows, np.float64).reshape(-1, len(MEASURES))


def column(table: np.ndarray, name: str) -> np.ndarray:
    return table[:, MEASURES.index(name)]
