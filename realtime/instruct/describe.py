"""Motion → action units with intensities → programs → instruction text (annotating real footage).

Rules, consistent with the programs in realtime/animate/programs.py:
- AU intensities are the median of their axis over the window (robust to blinks and speech), clipped to 0..1.
- Hold programs are found by greedy non-negative matching pursuit of the window's median expression against
  the programs' apex vectors (in SCALE units), at most one emotion, skipping the mouth axes that speech
  drives; a program counts when its fitted intensity reaches `min_intensity`.
- A wink is one eye closed while the other is open; deliberate blinking is more than 30 closures a minute.
- Nods and head shakes are oscillations: the band-passed head pitch / yaw has a peak-to-peak above 8°.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from realtime.motion.space import INDEX, SCALE

AU_AXES = {
    "AU1": "brow_inner_up", "AU2": "brow_outer_up", "AU4": "brow_down", "AU5": "eye_wide", "AU6": "cheek_raise",
    "AU7": "eye_squint", "AU9": "nose_wrinkle", "AU10": "upper_lip_raise", "AU12": "smile", "AU14": "mouth_asym",
    "AU15": "frown", "AU18": "lip_pucker", "AU20": "mouth_stretch", "AU24": "lip_press", "AU26": "jaw_open",
    "AU43": "eyes_closed",
}
SPEECH_AXES = ("jaw_open", "lips_close", "lip_press", "lip_funnel", "lower_lip_tuck", "mouth_stretch")
ADJECTIVE = {"happy": "happy", "sad": "sad", "angry": "angry", "surprised": "surprised",
             "disgusted": "disgusted", "fearful": "scared", "contemptuous": "contemptuous", "neutral": "calm"}
PHRASE = {"raise_eyebrows": "raise your eyebrows", "frown": "frown", "smile": "smile", "grin": "grin",
          "pout": "pout", "open_mouth_wide": "open your mouth wide", "close_eyes": "close your eyes",
          "look_left": "look to the left", "look_right": "look to the right", "look_up": "look up",
          "look_down": "look down", "turn_head_left": "turn your head to the left",
          "turn_head_right": "turn your head to the right", "tilt_head": "tilt your head", "nod": "nod",
          "shake_head": "shake your head", "blink": "blink", "wink": "wink"}


@dataclass
class Description:
    aus: dict[str, float] = field(default_factory=dict)
    programs: list[tuple[str, float]] = field(default_factory=list)
    text: str = ""


def detect_aus(motion: np.ndarray, threshold: float = 0.15) -> dict[str, float]:
    """Active action units with intensities 0..1 over a window of motion (T, DIM)."""
    median = np.median(motion, axis=0)
    aus = {}
    for au, axis in AU_AXES.items():
        if axis == "eyes_closed":
            value = float(np.median(np.minimum(motion[:, INDEX["blink_left"]], motion[:, INDEX["blink_right"]])))
        else:
            value = float(median[INDEX[axis]])
        if value >= threshold:
            aus[au] = round(min(value, 1.0), 2)
    return aus


def _oscillation(track: np.ndarray) -> float:
    """Peak-to-peak of the 1–4 Hz part of a head-angle track (degrees)."""
    if len(track) < 10:
        return 0.0
    smooth = np.convolve(track, np.ones(3) / 3, mode="same")
    slow = np.convolve(track, np.ones(15) / 15, mode="same")
    band = (smooth - slow)[7:-7]
    return float(band.max() - band.min()) if len(band) else 0.0


def _word(intensity: float) -> str:
    return "slightly " if intensity < 0.5 else ("very " if intensity > 0.85 else "")


def describe(motion: np.ndarray, min_intensity: float = 0.3, max_programs: int = 3) -> Description:
    from realtime.animate.programs import PROGRAMS

    motion = np.asarray(motion, dtype=np.float32)
    residual = np.median(motion, axis=0) / SCALE
    keep = np.ones_like(residual)
    keep[[INDEX[a] for a in SPEECH_AXES]] = 0.0
    residual *= keep
    candidates = {name: np.array([p.apex.get(a, 0.0) for a in INDEX], np.float32) / SCALE * keep
                  for name, p in PROGRAMS.items() if p.mode == "hold" and name != "neutral"}
    programs: list[tuple[str, float]] = []
    for _ in range(max_programs):
        best, best_gain, best_a = None, 0.0, 0.0
        for name, v in candidates.items():
            if any(n == name for n, _ in programs):
                continue
            if PROGRAMS[name].kind == "emotion" and any(PROGRAMS[n].kind == "emotion" for n, _ in programs):
                continue
            norm = float(v @ v)
            if norm < 1e-6:
                continue
            a = float(np.clip(residual @ v / norm, 0.0, 1.0))
            gain = a * a * norm
            if gain > best_gain:
                best, best_gain, best_a = name, gain, a
        if best is None or best_a < min_intensity:
            break
        programs.append((best, round(best_a, 2)))
        residual = residual - best_a * candidates[best]
    if np.median(motion[:, INDEX["jaw_open"]]) > 0.6:  # held far wider than speech opens it
        programs.append(("open_mouth_wide", round(float(np.median(motion[:, INDEX["jaw_open"]])), 2)))
    left, right = motion[:, INDEX["blink_left"]], motion[:, INDEX["blink_right"]]
    if np.any((right > 0.8) & (left < 0.2)) or np.any((left > 0.8) & (right < 0.2)):
        programs.append(("wink", 1.0))
    elif "close_eyes" not in dict(programs):
        closures = np.count_nonzero(np.diff((np.minimum(left, right) > 0.5).astype(int)) == 1)
        if closures / (len(motion) / 25 / 60) > 30:  # idle blinking is 10–20 a minute
            programs.append(("blink", 1.0))
    if _oscillation(motion[:, INDEX["head_pitch"]]) > 8.0:
        programs.append(("nod", 1.0))
    if _oscillation(motion[:, INDEX["head_yaw"]]) > 10.0:
        programs.append(("shake_head", 1.0))
    emotion = [(n, a) for n, a in programs if PROGRAMS[n].kind == "emotion"]
    motions = [PHRASE[n] for n, _ in programs if PROGRAMS[n].kind == "motion"]
    parts = [f"look {_word(a)}{ADJECTIVE[n]}" for n, a in emotion] + motions
    text = " while you ".join(parts[:2]) + ("" if len(parts) <= 2 else " and " + " and ".join(parts[2:]))
    return Description(detect_aus(motion), programs, text or "stay calm")
