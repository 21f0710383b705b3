"""Mouth opening read from received pixels: dlib's 68 points in the portrait's face box, inter-ocular units
(mean of |61-67|, |62-66|, |63-65| over the IOD), and the loudness of received audio per video frame."""
from __future__ import annotations

import numpy as np


class MouthMeter:
    """Frames (RGB or gray, the portrait's 512x512 crop) -> mouth opening in IODs. The face stays in the
    portrait's box (head motion is a few degrees), so only the shape predictor runs (no detection)."""

    def __init__(self, portrait):
        from realtime.avatar.landmarks import DlibLandmarkDetector

        self.detector = DlibLandmarkDetector()
        lm = np.asarray(portrait.landmarks, np.float32)
        pad = 0.15 * float(np.ptp(lm[:, 0]))
        (x0, y0), (x1, y1) = lm.min(0) - pad, lm.max(0) + pad
        self.box = (int(x0), int(y0), int(x1), int(y1))

    def __call__(self, frame: np.ndarray) -> float:
        rgb = np.repeat(frame[..., None], 3, axis=2) if frame.ndim == 2 else frame
        lm = self.detector.landmarks_in_box(rgb, self.box).astype(np.float64)
        iod = np.linalg.norm(lm[36:42].mean(0) - lm[42:48].mean(0))
        return float(np.mean([np.linalg.norm(lm[a] - lm[b]) for a, b in ((61, 67), (62, 66), (63, 65))]) / iod)

    def series(self, frames: list[np.ndarray]) -> np.ndarray:
        return np.array([self(f) for f in frames])


def closed_level(openings: np.ndarray) -> float:
    """The project's 'closed' threshold: max(0.05, 0.3 x the 75th-percentile opening)."""
    return max(0.05, 0.3 * float(np.percentile(openings, 75)))


def loudness_at(times: np.ndarray, voice_t: np.ndarray, voice: np.ndarray, window_s: float = 0.04) -> np.ndarray:
    """RMS of the received audio in the `window_s` before each time (audio stamped with its arrival)."""
    out = np.zeros(len(times))
    for i, t in enumerate(times):
        chunk = voice[(voice_t > t - window_s) & (voice_t <= t)]
        out[i] = float(np.sqrt(np.mean(chunk ** 2))) if len(chunk) else 0.0
    return out
