"""Emotion and facial-motion programs: FACS-style targets with natural onset, apex and offset.

- Intensity is 0..1; the documented levels are slight 0.35, moderate 0.65, strong 1.0 (`LEVELS`).
- "Left" and "right" are as the viewer sees the image (image-left / image-right), like the motion space's
  axes: `look_left` moves the irises towards the image's left edge, `wink` closes the image-right eye.
- Hold programs (emotions, brows, smile, gaze, head turns, close_eyes...) ease in over 200-500 ms
  (smoothstep) and stay at their apex, with a slow ±5 % drift, while the instruction holds; the animator fades
  them out when it changes.
- Gestures repeat while instructed, each with its own onset and offset: nod = 2-3 damped down-and-up pitch
  swings, shake_head = 2-3 damped yaw swings, blink = 150-250 ms closures, wink = one eye for ~0.5 s.
- The photograph may already smile: emotions without AU12 (neutral, sad, angry, disgusted, fearful...) relax
  it (`smile` < 0). Undoing the photograph is not a degree of the emotion (a slightly sad face does not
  smile either), so a relaxing apex is reached at intensity 0.5 and held above (`relax_scale`).
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from realtime.vocab import DIM, EMOTIONS, FPS, GESTURES, INDEX, MOTIONS, relax_scale


@dataclass(frozen=True)
class Program:
    """An instruction the animator can perform.

    `claims` maps each axis the program moves to the direction it moves it (+1/-1); hold programs derive it
    from `apex`, their axis values at intensity 1. A program that opens the jaw also claims to part the lips
    (lips_close -1), since the lips rest closed in silence.
    """

    name: str
    kind: str  # "emotion" | "motion"
    claims: dict[str, int] = field(default_factory=dict)
    mode: str = "hold"  # "hold": onset then apex while instructed | "gesture": repeated onset-apex-offset
    description: str = ""
    apex: dict[str, float] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.kind not in ("emotion", "motion") or self.mode not in ("hold", "gesture"):
            raise ValueError(f"program {self.name}: bad kind {self.kind!r} or mode {self.mode!r}")
        if not self.claims:
            claims = {a: int(np.sign(v)) for a, v in self.apex.items() if v}
            if self.apex.get("jaw_open", 0) > 0:
                claims["lips_close"] = -1
            object.__setattr__(self, "claims", claims)


def _hold(name: str, kind: str, description: str, **apex: float) -> Program:
    return Program(name, kind, mode="hold", description=description, apex=apex)


def _gesture(name: str, description: str, claims: dict[str, int]) -> Program:
    return Program(name, "motion", claims=claims, mode="gesture", description=description)


PROGRAMS: dict[str, Program] = {p.name: p for p in (
    # Emotions (FACS prototypes). Every emotion without AU12 relaxes the photograph's own smile (smile < 0),
    # so its action units act on a relaxed face, not on the photographed smile.
    _hold("neutral", "emotion", "relaxed: the photograph's smile undone, nothing else", smile=-1.0),
    _hold("happy", "emotion", "AU6+12: smile with raised cheeks, eyes narrowed", smile=0.8, cheek_raise=0.7,
          eye_squint=0.2),
    _hold("sad", "emotion", "AU1+4+15: inner brows up, corners down, gaze and chin lowered",
          smile=-1.0, frown=1.0, brow_inner_up=0.9, brow_down=0.3, gaze_y=0.35, head_pitch=4.0),
    _hold("angry", "emotion", "AU4+7+24: brows down and together, lids tight, lips pressed",
          smile=-1.0, brow_down=1.0, eye_squint=0.45, lip_press=0.7, frown=0.2, nose_wrinkle=0.15),
    _hold("surprised", "emotion", "AU1+2+5+26: brows up, eyes wide, jaw dropped",
          smile=-1.0, brow_inner_up=1.0, brow_outer_up=1.0, eye_wide=1.0, jaw_open=0.45),
    _hold("disgusted", "emotion", "AU9+10+4+15: nose wrinkled, upper lip raised, corners down",
          smile=-1.0, nose_wrinkle=1.0, upper_lip_raise=1.0, brow_down=0.5, frown=0.3, eye_squint=0.35),
    _hold("fearful", "emotion", "AU1+2+4+5+20: brows up and drawn, eyes wide, lips stretched",
          smile=-1.0, brow_inner_up=1.0, brow_outer_up=0.5, brow_down=0.3, eye_wide=1.0, mouth_stretch=0.7,
          jaw_open=0.15),
    _hold("contemptuous", "emotion", "AU14 unilateral: one corner raised on a relaxed mouth, chin up",
          smile=-1.0, mouth_asym=0.8, eye_squint=0.2, head_pitch=-4.0),
    # Facial motions
    _hold("raise_eyebrows", "motion", "AU1+2", brow_inner_up=1.0, brow_outer_up=1.0),
    _hold("frown", "motion", "AU4: brows lowered and drawn together", brow_down=1.0, eye_squint=0.2),
    _hold("smile", "motion", "AU12+6", smile=0.8, cheek_raise=0.4),
    _hold("grin", "motion", "AU12+6+10+20: broad smile baring the teeth",
          smile=1.0, cheek_raise=0.6, upper_lip_raise=0.3, mouth_stretch=0.4),
    _hold("pout", "motion", "AU18+15+24: lips pushed out, corners down", lip_pucker=1.0, frown=0.4, smile=-0.6),
    _hold("open_mouth_wide", "motion", "AU27: mouth stretched open", jaw_open=1.0),
    _hold("close_eyes", "motion", "AU43: both eyes closed", blink_left=1.0, blink_right=1.0),
    _hold("look_left", "motion", "gaze to image-left", gaze_x=-0.9, head_yaw=-3.0),
    _hold("look_right", "motion", "gaze to image-right", gaze_x=0.9, head_yaw=3.0),
    _hold("look_up", "motion", "gaze up", gaze_y=-0.9, head_pitch=-3.0, brow_outer_up=0.15),
    _hold("look_down", "motion", "gaze down", gaze_y=0.9, head_pitch=3.0),
    _hold("turn_head_left", "motion", "head turned to image-left", head_yaw=-15.0),
    _hold("turn_head_right", "motion", "head turned to image-right", head_yaw=15.0),
    _hold("tilt_head_left", "motion", "head tilted towards image-left", head_roll=-10.0),
    _hold("tilt_head_right", "motion", "head tilted towards image-right", head_roll=10.0),
    _gesture("nod", "two or three nods (head pitch oscillation)", {"head_pitch": 1}),
    _gesture("shake_head", "two or three head shakes (yaw oscillation)", {"head_yaw": 1}),
    _gesture("blink", "deliberate blinks of both eyes", {"blink_left": 1, "blink_right": 1}),
    _gesture("wink", "the image-right eye winks", {"blink_right": 1, "cheek_raise": 1, "mouth_asym": 1}),
)}

# The vocabulary names every program; here is how each one moves the face.
assert tuple(n for n, p in PROGRAMS.items() if p.kind == "emotion") == EMOTIONS
assert tuple(n for n, p in PROGRAMS.items() if p.kind == "motion") == MOTIONS
assert tuple(n for n, p in PROGRAMS.items() if p.mode == "gesture") == GESTURES


class UnknownProgramError(KeyError):
    """A program name that is not in PROGRAMS."""


def smoothstep(x: np.ndarray) -> np.ndarray:
    x = np.clip(x, 0.0, 1.0)
    return x * x * (3 - 2 * x)


def _lowpass_noise(rng: np.random.Generator, n: int, seconds: float) -> np.ndarray:
    """Unit-variance noise smoothed over about `seconds`."""
    width = max(1, int(seconds * FPS))
    kernel = np.hanning(2 * width + 1)
    noise = np.convolve(rng.standard_normal(n + 2 * width), kernel / kernel.sum(), mode="same")[width:width + n]
    return noise / (noise.std() + 1e-8)


def eyelid_pulse(t: np.ndarray, duration: float) -> np.ndarray:
    """Blink shape over t (seconds from its start): quick close, short hold, slower reopening."""
    close, hold = 0.35 * duration, 0.15 * duration
    down = smoothstep(t / close)
    up = 1 - smoothstep((t - close - hold) / (duration - close - hold))
    return np.where((t >= 0) & (t <= duration), np.minimum(down, up), 0.0)


def _oscillation(local: np.ndarray, freq: float, cycles: int, one_sided: bool) -> np.ndarray:
    """`cycles` damped oscillations starting at local time 0; one-sided ones (nods) go down and back up."""
    phase = freq * local
    wave = np.sin(np.pi * phase) ** 2 if one_sided else np.sin(2 * np.pi * phase) * smoothstep(local / 0.12)
    wave = wave * np.exp(-0.35 * np.maximum(phase, 0))  # each swing a little smaller than the last
    return np.where((phase >= 0) & (phase <= cycles), wave, 0.0)


@dataclass(frozen=True)
class _Gesture:
    """One performance of a gesture: `length` seconds from its onset, then `gap` seconds before the next."""

    program: str
    intensity: float
    params: tuple[float, ...]
    length: float
    gap: float

    def add(self, local: np.ndarray, out: np.ndarray) -> None:
        """Add this gesture at `local` (seconds from its onset; zero outside it) into the (n, DIM) `out`."""
        if self.program in ("nod", "shake_head"):
            freq, cycles, amplitude = self.params
            nod = self.program == "nod"
            out[:, INDEX["head_pitch" if nod else "head_yaw"]] += amplitude * _oscillation(local, freq, int(cycles),
                                                                                          nod)
            return
        pulse = self.intensity * eyelid_pulse(local, self.length)
        if self.program == "blink":
            for eye in ("blink_left", "blink_right"):
                out[:, INDEX[eye]] = np.maximum(out[:, INDEX[eye]], pulse)
        else:  # wink: the image-right eye, held a little longer than a blink, with a half smile
            out[:, INDEX["blink_right"]] = np.maximum(out[:, INDEX["blink_right"]], pulse)
            out[:, INDEX["cheek_raise"]] = np.maximum(out[:, INDEX["cheek_raise"]], 0.4 * pulse)
            out[:, INDEX["mouth_asym"]] += 0.3 * pulse


def _draw_gesture(program: Program, intensity: float, rng: np.random.Generator) -> _Gesture:
    """The next performance of a gesture program, with its natural variation."""
    if program.name in ("nod", "shake_head"):
        nod = program.name == "nod"
        freq = rng.uniform(1.6, 2.2) if nod else rng.uniform(1.8, 2.4)
        cycles = int(rng.integers(2, 4))
        amplitude = (8.0 if nod else 10.0) * intensity * rng.uniform(0.85, 1.15)
        return _Gesture(program.name, intensity, (freq, cycles, amplitude), cycles / freq, rng.uniform(1.5, 3.0))
    if program.name == "blink":
        return _Gesture(program.name, intensity, (), rng.uniform(0.15, 0.25), rng.uniform(0.8, 1.6))
    if program.name == "wink":
        return _Gesture(program.name, intensity, (), rng.uniform(0.4, 0.55), rng.uniform(1.5, 3.0))
    raise UnknownProgramError(program.name)  # pragma: no cover - every gesture is listed above


FIRST_GESTURE_S = 0.15  # a gesture starts this soon after it is instructed


def _gesture_track(program: Program, n: int, intensity: float, rng: np.random.Generator) -> np.ndarray:
    """A gesture repeated while instructed: first within 150 ms, then again after a natural gap."""
    out = np.zeros((n, DIM), dtype=np.float32)
    t0, t = FIRST_GESTURE_S, np.arange(n) / FPS
    while t0 < n / FPS:
        gesture = _draw_gesture(program, intensity, rng)
        gesture.add(t - t0, out)
        t0 += gesture.length + gesture.gap
    return out


class GestureStream:
    """A gesture program performed frame by frame on an open-ended stream (the generator's sampler uses it):
    the same performances `program_track` draws for a window, without recomputing the past. `stop()` lets the
    performance under way finish and starts no new one."""

    def __init__(self, name: str, intensity: float, seed: int | Sequence[int] = 0):
        if name not in GESTURES:
            raise UnknownProgramError(f"{name!r} is not a gesture program; gestures: {', '.join(GESTURES)}")
        program = PROGRAMS[name]
        self.program, self.intensity = program, float(np.clip(intensity, 0.0, 1.0))
        self._rng = np.random.default_rng(seed)
        self._frame = 0
        self._next_onset = FIRST_GESTURE_S
        self._under_way: list[tuple[float, _Gesture]] = []
        self.stopped = False

    def stop(self) -> None:
        self.stopped = True

    @property
    def finished(self) -> bool:
        return self.stopped and not self._under_way

    def take(self, n: int) -> np.ndarray:
        """The next n frames (n, DIM) of the gesture layer."""
        t = (self._frame + np.arange(n)) / FPS
        self._frame += n
        end = self._frame / FPS
        while not self.stopped and self._next_onset < end:
            gesture = _draw_gesture(self.program, self.intensity, self._rng)
            self._under_way.append((self._next_onset, gesture))
            self._next_onset += gesture.length + gesture.gap
        out = np.zeros((n, DIM), dtype=np.float32)
        for onset, gesture in self._under_way:
            gesture.add(t - onset, out)
        self._under_way = [(o, g) for o, g in self._under_way if o + g.length > end]
        return out


def _apex(program: Program, intensity: float) -> dict[str, float]:
    """A hold program's axis values at its apex for an intensity (relaxing the photograph's smile is full from
    intensity 0.5: `relax_scale`)."""
    return {axis: value * (relax_scale(intensity) if axis == "smile" and value < 0 else intensity)
            for axis, value in program.apex.items()}


class HoldStream:
    """A hold program performed frame by frame on an open-ended stream: eased in over its onset, held at its apex
    while asked for, eased out over `release_s` once stopped (the animator's transition)."""

    def __init__(self, name: str, intensity: float, seed: int | Sequence[int] = 0, release_s: float = 0.4):
        if name not in PROGRAMS or PROGRAMS[name].mode != "hold":
            raise UnknownProgramError(f"{name!r} is not a hold program")
        self.program, self.intensity = PROGRAMS[name], float(np.clip(intensity, 0.0, 1.0))
        self._rise = 1.0 / (np.random.default_rng(seed).uniform(0.2, 0.5) * FPS)  # per frame, like program_track
        self._fall = 1.0 / (release_s * FPS)
        self._ramp = 0.0  # 0..1, eased by smoothstep
        self.stopped = False

    def stop(self) -> None:
        self.stopped = True

    @property
    def finished(self) -> bool:
        return self.stopped and self._ramp <= 0.0

    def take(self, n: int) -> np.ndarray:
        ramps = np.empty(n, np.float32)
        for i in range(n):
            self._ramp = max(self._ramp - self._fall, 0.0) if self.stopped else min(self._ramp + self._rise, 1.0)
            ramps[i] = self._ramp
        out = np.zeros((n, DIM), dtype=np.float32)
        envelope = smoothstep(ramps)
        for axis, value in _apex(self.program, self.intensity).items():
            out[:, INDEX[axis]] = value * envelope
        return out


def perform_program(name: str, intensity: float, seed: int | Sequence[int] = 0) -> GestureStream | HoldStream:
    """A program performed frame by frame on a stream (the generator's sampler performs the gestures and what its
    checkpoint never learned with these)."""
    if name in GESTURES:
        return GestureStream(name, intensity, seed)
    return HoldStream(name, intensity, seed)


def program_track(name: str, n_frames: int, intensity: float, rng: np.random.Generator,
                  start: int = 0) -> np.ndarray:
    """The program's motion (n_frames, DIM) from frame `start` on (zeros before), intensity in 0..1.

    A negative `start` means the program began before this window (its onset is already under way or over).
    """
    if name not in PROGRAMS:
        raise UnknownProgramError(f"unknown program {name!r}; known: {', '.join(PROGRAMS)}")
    program = PROGRAMS[name]
    if not np.isfinite(intensity):
        raise ValueError(f"program {name!r}: intensity must be a number in 0..1, got {intensity}")
    intensity = float(np.clip(intensity, 0.0, 1.0))
    if start < 0:
        return program_track(name, n_frames - start, intensity, rng)[-start:]
    out = np.zeros((n_frames, DIM), dtype=np.float32)
    n = n_frames - start
    if n <= 0:
        return out
    if program.mode == "gesture":
        out[start:] = _gesture_track(program, n, intensity, rng)
        return out
    onset = rng.uniform(0.2, 0.5)
    envelope = smoothstep(np.arange(n) / FPS / onset)
    wobble = 1.0 + 0.05 * _lowpass_noise(rng, n, 1.5)  # a living apex, not a frozen one
    for axis, value in _apex(program, intensity).items():
        steady = axis in ("blink_left", "blink_right")  # closed eyes stay closed, not 95 % closed
        out[start:, INDEX[axis]] = value * envelope * (1.0 if steady else wobble)
    return out
