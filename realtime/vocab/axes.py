"""The motion space: one interpretable vector per video frame at 25 fps.

Every axis is 0 for the portrait as photographed ("neutral"), so a zero vector reproduces the
enrolled image. Expression axes are in the spirit of FACS action units / ARKit blendshapes; head
pose is in degrees and in fractions of the inter-ocular distance (IOD); gaze is in fractions of
the eye's half-width. Landmark indices are dlib's 68-point (iBUG 300-W) scheme.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from realtime.vocab.timebase import FPS


@dataclass(frozen=True)
class Axis:
    name: str
    lo: float
    hi: float
    doc: str
    landmarks: str  # the 68-point landmarks this axis moves (documentation)


AXES: tuple[Axis, ...] = (
    # --- mouth and jaw -------------------------------------------------------------------------
    Axis("jaw_open", 0.0, 1.0, "drops the jaw and lower lip; 1 = mouth wide open (AU26/27)", "5-11, 55-59, 64-67"),
    Axis("lips_close", 0.0, 1.0,
         "brings the inner lips together from the portrait's rest gap; 1 = lips meet (AU24 without press)",
         "48-67, mostly 60-67"),
    Axis("lip_press", 0.0, 1.0, "presses and thins the closed lips, as on /p b m/ (AU24)", "48-67"),
    Axis("lip_funnel", 0.0, 1.0, "rounds and protrudes the lips, as on /u/ /w/ (AU22)", "48-67"),
    Axis("lip_pucker", 0.0, 1.0, "narrows the mouth into a pout/kiss (AU18)", "48-67"),
    Axis("lower_lip_tuck", 0.0, 1.0, "lifts the lower lip under the upper teeth, as on /f v/ (AU28-like)",
         "55-59, 64-67"),
    Axis("mouth_stretch", 0.0, 1.0, "widens the mouth horizontally, as on /i/ (AU20)", "48, 54, 60, 64"),
    Axis("smile", -1.0, 1.0, "> 0 pulls the mouth corners up and out (AU12); < 0 undoes the photograph's own "
         "smile: -1 = a relaxed mouth, corners level with the lip midline, the lips (nearly) closed",
         "48-68, 31, 35, 3, 4, 12, 13"),
    Axis("frown", 0.0, 1.0, "pulls the mouth corners down from wherever they are, the lips arched (AU15)",
         "48-68, 5, 6, 10, 11"),
    Axis("upper_lip_raise", 0.0, 1.0, "raises the upper lip, baring the teeth, as in disgust (AU10)", "49-53, 61-63"),
    Axis("mouth_asym", -1.0, 1.0, "one-sided corner raise: +1 the image-right corner (contempt/smirk, AU14)", "48, 54"),
    Axis("nose_wrinkle", 0.0, 1.0, "wrinkles and lifts the nose (AU9)", "31-35, 27-30"),
    Axis("cheek_raise", 0.0, 1.0, "lifts the cheeks and narrows the eyes from below (AU6)",
         "1-3, 13-15, 40, 41, 46, 47"),
    # --- brows and eyes ------------------------------------------------------------------------
    Axis("brow_inner_up", 0.0, 1.0, "raises the inner brows (AU1)", "19-24, mostly 21, 22"),
    Axis("brow_outer_up", 0.0, 1.0, "raises the outer brows (AU2)", "17-19, 24-26"),
    Axis("brow_down", 0.0, 1.0, "lowers and draws the brows together (AU4)", "17-26"),
    Axis("blink_left", 0.0, 1.0, "closes the image-left eye; 1 = fully closed (AU45/43)", "36-41"),
    Axis("blink_right", 0.0, 1.0, "closes the image-right eye; 1 = fully closed (AU45/43)", "42-47"),
    Axis("eye_wide", 0.0, 1.0, "widens the eyes, upper lids up (AU5), lower lids a little down",
         "37, 38, 40, 41, 43, 44, 46, 47"),
    Axis("eye_squint", 0.0, 1.0, "narrows the eyes, lower lids up (AU7)", "40, 41, 46, 47"),
    # --- gaze ------------------------------------------------------------------------------------
    Axis("gaze_x", -1.0, 1.0, "moves both irises; +1 = towards image right by about a third of the eye width",
         "irises"),
    Axis("gaze_y", -1.0, 1.0, "moves both irises; +1 = down", "irises"),
    # --- head pose -------------------------------------------------------------------------------
    Axis("head_yaw", -20.0, 20.0, "turns the head, degrees; + = towards image right", "all face"),
    Axis("head_pitch", -20.0, 20.0, "tilts the head forward/back, degrees; + = chin down (nod down)", "all face"),
    Axis("head_roll", -20.0, 20.0, "tilts the head sideways, degrees; + = clockwise in the image", "all face"),
    Axis("head_x", -0.3, 0.3, "moves the head sideways, in IOD; + = image right", "all face"),
    Axis("head_y", -0.3, 0.3, "moves the head up/down, in IOD; + = down (breathing, bobbing)", "all face"),
)

NAMES: tuple[str, ...] = tuple(a.name for a in AXES)
DIM = len(AXES)
INDEX: dict[str, int] = {n: i for i, n in enumerate(NAMES)}
LO = np.array([a.lo for a in AXES], dtype=np.float32)
HI = np.array([a.hi for a in AXES], dtype=np.float32)
# Per-axis scale that brings every axis to roughly unit range; the learned model works in these units.
SCALE = np.maximum(np.abs(LO), np.abs(HI)).astype(np.float32)


# Axis groups.
# The mouth shapes of speech: the visemes drive these, so instructions and annotation treat them apart.
SPEECH_AXES: tuple[str, ...] = ("jaw_open", "lips_close", "lip_press", "lip_funnel", "lip_pucker", "lower_lip_tuck",
                                "mouth_stretch")
LIP_AXES: tuple[str, ...] = SPEECH_AXES[1:]  # the speech axes the lips carry (all but the jaw)
OPENING_AXES: tuple[str, ...] = tuple(a for a in SPEECH_AXES if a not in ("lips_close", "lip_press"))  # 0 = shut
EYELID_AXES: tuple[str, ...] = ("blink_left", "blink_right")
assert set(SPEECH_AXES + EYELID_AXES) <= set(NAMES)


def neutral(frames: int = 1) -> np.ndarray:
    return np.zeros((frames, DIM), dtype=np.float32)


def clip(values: np.ndarray) -> np.ndarray:
    """Clamp every axis to its documented range."""
    return np.clip(values, LO, HI).astype(np.float32)


def vector(**axes: float) -> np.ndarray:
    """A single motion vector from keyword axes, e.g. vector(smile=0.5, head_yaw=10)."""
    v = np.zeros(DIM, dtype=np.float32)
    for name, value in axes.items():
        v[INDEX[name]] = value
    return v


@dataclass
class MotionSequence:
    """A (frames, DIM) float32 array at `fps`, with optional per-frame annotations."""

    values: np.ndarray
    fps: int = FPS

    def __post_init__(self) -> None:
        self.values = np.asarray(self.values, dtype=np.float32)
        if self.values.ndim != 2 or self.values.shape[1] != DIM:
            raise ValueError(f"motion must be (frames, {DIM}), got {self.values.shape}")

    def __len__(self) -> int:
        return len(self.values)

    @property
    def duration(self) -> float:
        return len(self) / self.fps

    def axis(self, name: str) -> np.ndarray:
        return self.values[:, INDEX[name]]

    def save(self, path: str | Path) -> None:
        np.savez_compressed(path, values=self.values, fps=self.fps, names=np.array(NAMES))

    @classmethod
    def load(cls, path: str | Path) -> MotionSequence:
        with np.load(path) as data:
            names = tuple(str(n) for n in data["names"])
            if names != NAMES:
                raise ValueError(f"{path}: motion axes {names} do not match this version's {NAMES}")
            return cls(data["values"], int(data["fps"]))


def axes_table_markdown() -> str:
    """The axis documentation as a Markdown table (used for docs/MOTION_SPACE.md)."""
    rows = ["| # | axis | range | what it does | landmarks moved |", "|---|---|---|---|---|"]
    for i, a in enumerate(AXES):
        rows.append(f"| {i} | `{a.name}` | {a.lo:g} … {a.hi:g} | {a.doc} | {a.landmarks} |")
    return "\n".join(rows)
