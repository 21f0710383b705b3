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
                                 "turn_head_right", "tilt_head_left", "tilt_head_right", "nod", "shake_head", "blink")
MOTIONS: tuple[str, ...] = ("raise_eyebrows", "frown", "smile", "grin", "pout", "open_mouth_wide", "close_eyes",
                            "look_left", "look_right", "look_up", "look_down", "turn_head_left", "turn_head_right",
                            "tilt_head_left", "tilt_head_right", "nod", "shake_head", "blink", "wink")
PROGRAM_NAMES: tuple[str, ...] = EMOTIONS + MOTIONS
# Before the head tilt had a direction, one program tilted it (to the image's right): what checkpoints trained
# then know (realtime.motion.checkpoint reads the programs a checkpoint learned from its meta).
LEGACY_PROGRAM_NAMES: tuple[str, ...] = tuple("tilt_head" if n == "tilt_head_left" else n
                                             for n in PROGRAM_NAMES if n != "tilt_head_right")
# Performed as repeated onset-apex-offset movements while instructed, not held (realtime.animate.programs).
GESTURES: tuple[str, ...] = ("nod", "shake_head", "blink", "wink")

# The photograph may already smile: every emotion without AU12 relaxes it (the teacher's `smile` < 0 on these);
# SMILING programs pull the corners up instead, and a combination with one of them relaxes nothing.
RELAXES_SMILE: frozenset[str] = frozenset(EMOTIONS) - {"happy"}
SMILING: frozenset[str] = frozenset({"happy", "smile", "grin"})


def relax_scale(level: float) -> float:
    """How far a relaxing program undoes the photograph's smile at an intensity: fully from 0.5 on (undoing the
    photograph is not a degree of the emotion: a slightly sad face does not smile either)."""
    return float(min(1.0, 2.0 * level))


def smile_relax(programs) -> float:
    """How far (0..1) a set of (program, level) pairs relaxes the photograph's smile."""
    names = {name for name, _ in programs}
    if names & SMILING:
        return 0.0
    return max((relax_scale(level) for name, level in programs if name in RELAXES_SMILE), default=0.0)


assert set(FACE_MOTIONS) | set(HEAD_MOTIONS) == set(MOTIONS) and not set(FACE_MOTIONS) & set(HEAD_MOTIONS)
assert set(GESTURES) <= set(MOTIONS)
