"""Motion → action units with intensities → programs → instruction text (annotating real footage).

Rules, calibrated against the teacher's programs (realtime/animate/programs.py) (intensity 1 = the program's apex):
- AU intensities are the median of their axis over the window (robust to blinks and speech), clipped to 0..1;
  an AU is reported from `au_threshold` up.
- Hold programs (emotions, brows, mouth shapes, gaze, head turns) are found by greedy non-negative matching
  pursuit of the window's median expression against the programs' apex vectors (in SCALE units), at most one
  emotion, skipping the mouth axes that speech drives; a program counts when its fitted intensity reaches
  `min_intensity`. An open mouth counts only when held wider than speech opens it (median jaw_open, less what the found
  programs open it, > 0.6).
- A wink is one eye closed while the other stays open: |blink_right - blink_left| >= 0.3 for 3+ frames.
- Deliberate blinking: 3+ closures less than 1.9 s apart on average (the blink program repeats every 1-1.9 s;
  idle blinking is 12-18 a minute, and two idle intervals in a row under 1.9 s are rare). Windows under ~3 s
  rarely hold 3 closures, so short windows miss deliberate blinking rather than invent it.
- Nods and head shakes are oscillations: the 1-4 Hz band of head pitch / yaw (3-frame minus 15-frame moving
  average) has a peak-to-peak above 2 degrees; speech bobbing and idle sway stay under ~1.6 degrees.
  Intensity = peak-to-peak / the program's at intensity 1 (about 6.5 degrees for a nod, 15 for a shake).
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from realtime.animate.programs import PROGRAMS
from realtime.instruct.catalogue import EMOTION_ADJECTIVES, canonical_phrase
from realtime.vocab import DIM, FPS, INDEX, SCALE, SPEECH_AXES

AU_AXES = {
    "AU1": "brow_inner_up", "AU2": "brow_outer_up", "AU4": "brow_down", "AU5": "eye_wide", "AU6": "cheek_raise",
    "AU7": "eye_squint", "AU9": "nose_wrinkle", "AU10": "upper_lip_raise", "AU12": "smile", "AU14": "mouth_asym",
    "AU15": "frown", "AU18": "lip_pucker", "AU20": "mouth_stretch", "AU24": "lip_press", "AU26": "jaw_open",
    "AU43": "eyes_closed",
}
# The speech axes, less the pucker: speech rounds the lips briefly, a held pucker is the pout program.
SPOKEN_AXES = tuple(a for a in SPEECH_AXES if a != "lip_pucker")
# The plain adjective per emotion: the catalogue's first synonym ("scared" for fearful).
ADJECTIVE = {emotion: words[0] for emotion, words in EMOTION_ADJECTIVES.items()}


class DescriptionError(ValueError):
    """Motion that cannot be described (wrong shape, too short, not finite)."""


@dataclass
class DescribeConfig:
    au_threshold: float = 0.15
    min_intensity: float = 0.3  # fitted hold-program intensity below this is not reported
    max_hold_programs: int = 3
    wide_open_jaw: float = 0.6  # speech rarely holds the jaw open wider than this
    wink_difference: float = 0.3
    blink_interval_s: float = 1.9  # deliberate blinking: 3+ closures this close on average
    nod_degrees: float = 2.0  # band-passed peak-to-peak above which the head nods / shakes
    nod_full_degrees: float = 6.5  # a nod at intensity 1
    shake_full_degrees: float = 15.0  # a head shake at intensity 1


@dataclass
class Description:
    aus: dict[str, float] = field(default_factory=dict)
    programs: list[tuple[str, float]] = field(default_factory=list)
    text: str = ""


def _checked(motion: np.ndarray) -> np.ndarray:
    motion = np.asarray(motion, dtype=np.float32)
    if motion.ndim != 2 or motion.shape[1] != DIM:
        raise DescriptionError(f"motion must be (frames, {DIM}), got {motion.shape}")
    if len(motion) < 2:
        raise DescriptionError(f"motion has {len(motion)} frame(s); describing needs at least 2")
    if not np.isfinite(motion).all():
        raise DescriptionError("motion contains NaN or infinite values")
    return motion


def detect_aus(motion: np.ndarray, threshold: float = 0.15) -> dict[str, float]:
    """Active action units with intensities 0..1 over a window of motion (T, DIM)."""
    motion = _checked(motion)
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


def oscillation(track: np.ndarray) -> float:
    """Peak-to-peak (degrees) of the 1-4 Hz part of a head-angle track; 0 for windows under 0.6 s."""
    if len(track) < 16:
        return 0.0
    smooth = np.convolve(track, np.ones(3) / 3, mode="same")
    slow = np.convolve(track, np.ones(15) / 15, mode="same")
    band = (smooth - slow)[7:-7]
    return float(band.max() - band.min())


def _hold_programs(motion: np.ndarray, config: DescribeConfig) -> list[tuple[str, float]]:
    keep = np.ones(DIM, np.float32)
    keep[[INDEX[a] for a in SPOKEN_AXES]] = 0.0
    residual = np.median(motion, axis=0) / SCALE * keep
    # a relaxed photographed smile (smile < 0) is not a degree of the emotion: it is left out of the fit
    candidates = {name: np.array([0.0 if a == "smile" and p.apex.get(a, 0.0) < 0 else p.apex.get(a, 0.0)
                                  for a in INDEX], np.float32) / SCALE * keep
                  for name, p in PROGRAMS.items() if p.mode == "hold" and name != "neutral"}
    found: list[tuple[str, float]] = []
    for _ in range(config.max_hold_programs):
        has_emotion = any(PROGRAMS[n].kind == "emotion" for n, _ in found)
        best, best_gain, best_a = None, 0.0, 0.0
        for name, v in candidates.items():
            if name in dict(found) or (has_emotion and PROGRAMS[name].kind == "emotion"):
                continue
            norm = float(v @ v)
            if norm < 1e-6:
                continue
            a = float(np.clip(residual @ v / norm, 0.0, 1.0))
            gain = 2 * a * float(residual @ v) - a * a * norm  # the drop in squared residual
            if gain > best_gain:
                best, best_gain, best_a = name, gain, a
        if best is None or best_a < config.min_intensity:
            break
        found.append((best, round(best_a, 2)))
        residual = residual - best_a * candidates[best]
    return found


def _eye_gestures(motion: np.ndarray, config: DescribeConfig, holds: dict[str, float]) -> list[tuple[str, float]]:
    left, right = motion[:, INDEX["blink_left"]], motion[:, INDEX["blink_right"]]
    difference = np.abs(right - left)
    if np.count_nonzero(difference >= config.wink_difference) >= 3:
        return [("wink", round(float(min(difference.max(), 1.0)), 2))]
    if "close_eyes" in holds:
        return []
    closed = np.minimum(left, right) > 0.25  # light deliberate blinks count too; idle ones are full
    onsets = np.flatnonzero(np.diff(closed.astype(np.int8)) == 1)
    if len(onsets) >= 3 and float(np.mean(np.diff(onsets))) / FPS < config.blink_interval_s:
        return [("blink", round(float(np.median(np.maximum(left, right)[closed])), 2))]
    return []


def _head_gestures(motion: np.ndarray, config: DescribeConfig) -> list[tuple[str, float]]:
    out = []
    for name, axis, full in (("nod", "head_pitch", config.nod_full_degrees),
                             ("shake_head", "head_yaw", config.shake_full_degrees)):
        swing = oscillation(motion[:, INDEX[axis]])
        if swing > config.nod_degrees:
            out.append((name, round(min(swing / full, 1.0), 2)))
    return out


def _intensity_word(intensity: float) -> str:
    return "slightly " if intensity < 0.5 else ("very " if intensity > 0.85 else "")


def instruction_text(programs: list[tuple[str, float]]) -> str:
    """Wording the ProgramMatcher maps back to the same programs and intensity levels."""
    emotions = [f"look {_intensity_word(a)}{ADJECTIVE[n]}" for n, a in programs if PROGRAMS[n].kind == "emotion"]
    motions = [canonical_phrase(n) + (" a little" if a < 0.5 else "")
               for n, a in programs if PROGRAMS[n].kind == "motion"]
    parts = emotions + motions
    if not parts:
        return "stay calm"
    return " while you ".join(parts[:2]) + "".join(" and " + p for p in parts[2:])


def describe(motion: np.ndarray, config: DescribeConfig | None = None) -> Description:
    """AUs, programs (name, intensity 0..1) and an instruction text for a window of motion (T, DIM)."""
    config = config or DescribeConfig()
    motion = _checked(motion)
    programs = _hold_programs(motion, config)
    # the jaw that the found programs (a surprised face) do not explain
    jaw = float(np.median(motion[:, INDEX["jaw_open"]])) - sum(a * PROGRAMS[n].apex.get("jaw_open", 0.0)
                                                              for n, a in programs)
    if jaw > config.wide_open_jaw:
        programs.append(("open_mouth_wide", round(min(jaw, 1.0), 2)))
    programs += _eye_gestures(motion, config, dict(programs))
    programs += _head_gestures(motion, config)
    return Description(detect_aus(motion, config.au_threshold), programs, instruction_text(programs))
