"""Names of the instruction programs (what an instruction can ask the face to do) and their intensity levels.

The teacher (`realtime.animate.programs`) defines how each one moves the face; the catalogue words them; the
annotator names them in real footage. All of them spell the names from here.
"""
from __future__ import annotations

SLIGHT, MODERATE, STRONG = 0.35, 0.65, 1.0
LEVELS: dict[str, float] = {"slight": SLIGHT, "moderate": MODERATE, "strong": STRONG}

EMOTIONS: tuple[str, ...] = ("neutral", "happy", "sad", "angry", "surprised", "disgusted", "fearful", "contemptuous")
FACE_MOTIONS: tuple[str, ...] = ("raise_eyebrows", "frown", "smile", "grin", "pout", "open_mouth_wide", "close_eyes",
                                 "wink")
HEAD_MOTIONS: tuple[str, ...] = ("look_left", "look_right", "look_up", "look_down", "turn_head_left",
                                 "turn_head_right", "tilt_head", "nod", "shake_head", "blink")
MOTIONS: tuple[str, ...] = ("raise_eyebrows", "frown", "smile", "grin", "pout", "open_mouth_wide", "close_eyes",
                            "look_left", "look_right", "look_up", "look_down", "turn_head_left", "turn_head_right",
                            "tilt_head", "nod", "shake_head", "blink", "wink")
PROGRAM_NAMES: tuple[str, ...] = EMOTIONS + MOTIONS

assert set(FACE_MOTIONS) | set(HEAD_MOTIONS) == set(MOTIONS) and not set(FACE_MOTIONS) & set(HEAD_MOTIONS)
