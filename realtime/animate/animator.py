"""The procedural animator (the teacher): speech visemes + instruction programs + idle life → motion.

How the layers combine, axis by axis:
- Most axes: idle + programs (sums of offsets), clipped to the axis range.
- Eyelids: an instructed closure (close_eyes, wink, blink) and idle blinks take the larger value, so an
  instruction to keep the eyes closed is never reopened by a blink and never "over-closed" by one.
- Jaw: speech and programs take the larger opening plus half the smaller, so talking with a surprised open
  mouth opens it a little more instead of twice as much.
- Lips: speech decides where the lips meet; a program that opens the jaw parts the lips that rest closed in
  silence. Other mouth offsets (stretch, pucker, press) add to the visemes.
- /p b m/: after everything else, their frames are forced shut (lips_close 1, lip press, jaw 0), so a smiling,
  surprised or pouting speaker still closes the lips on /m/.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from realtime.animate.idle import IdleConfig, idle_track
from realtime.animate.programs import PROGRAMS, UnknownProgramError, program_track, smoothstep
from realtime.animate.visemes import apply_closure, bilabial_closure, viseme_track
from realtime.vocab import DIM, EYELID_AXES, FPS, INDEX, LIP_AXES, MotionSequence, clip

Programs = Sequence[tuple[str, float]]
Segment = tuple[int, Programs]  # (first frame, programs active from there on)

_ADDED_MOUTH_AXES = LIP_AXES[1:]  # offsets that add to the visemes (lips_close is speech's alone)


class AnimationError(ValueError):
    """The animator was asked for something it cannot produce (no length, bad segments)."""


@dataclass
class AnimatorConfig:
    lead_s: float = 0.08  # lips move this far ahead of the sound (60-100 ms is natural)
    long_pause_s: float = 0.15  # pauses at least this long close the lips
    transition_s: float = 0.4  # cross-fade when the instruction changes
    idle: bool = True  # blinks, breathing, head sway, gaze
    idle_config: IdleConfig = field(default_factory=IdleConfig)


class Animator:
    """Stateless apart from its config: the same arguments and seed give the same motion."""

    def __init__(self, config: AnimatorConfig | None = None):
        self.config = config or AnimatorConfig()

    def setup(self) -> Animator:
        return self

    def __call__(self, speech=None, n_frames: int | None = None, programs: Programs = (), seed: int = 0,
                 starts: Sequence[int] | None = None) -> MotionSequence:
        """Motion for `speech` (a Speech with timed phonemes, or None for silence) under `programs`
        [(name, intensity 0..1)]; `starts[k]` is the frame where programs[k] begins (default: all at 0)."""
        n_frames = self._length(speech, n_frames)
        programs = list(programs)
        _check_programs(programs)
        if starts is None:
            starts = [0] * len(programs)
        if len(starts) != len(programs):
            raise AnimationError(f"{len(starts)} start frames for {len(programs)} programs")
        rng = np.random.default_rng([seed, 1])
        layer = np.zeros((n_frames, DIM), np.float32)
        for (name, intensity), start in zip(programs, starts):
            layer += program_track(name, n_frames, intensity, rng, start=int(start))
        return self._compose(speech, n_frames, layer, seed)

    def animate_segments(self, speech, n_frames: int | None, segments: Sequence[Segment],
                         seed: int = 0) -> MotionSequence:
        """Instructions that change over time: segments[k] = (start_frame, programs), each active until the next
        segment starts; the outgoing programs fade out over `transition_s` while the new ones ease in."""
        n_frames = self._length(speech, n_frames)
        for _, programs in segments:
            _check_programs(list(programs))
        # Programs and idle life draw from separate streams: the same seed gives the same idle under any instruction.
        layer = self._segments_layer(n_frames, segments, np.random.default_rng([seed, 1]))
        return self._compose(speech, n_frames, layer, seed)

    def _length(self, speech, n_frames: int | None) -> int:
        if n_frames is None:
            if speech is None:
                raise AnimationError("give n_frames when there is no speech")
            n_frames = int(np.ceil(speech.duration * FPS))
        if n_frames <= 0:
            raise AnimationError(f"n_frames must be positive, got {n_frames}")
        return int(n_frames)

    def _segments_layer(self, n: int, segments: Sequence[Segment], rng: np.random.Generator) -> np.ndarray:
        layer = np.zeros((n, DIM), np.float32)
        ordered = sorted(segments, key=lambda s: s[0])
        fade = max(1.0, self.config.transition_s * FPS)
        frames = np.arange(n)
        for k, (start, programs) in enumerate(ordered):
            end = ordered[k + 1][0] if k + 1 < len(ordered) else None
            if start >= n or (end is not None and end + fade <= 0):  # starts after, or has faded before, the window
                continue
            keep = np.ones(n) if end is None else 1.0 - smoothstep((frames - end) / fade)
            for name, intensity in programs:
                layer += program_track(name, n, intensity, rng, start=int(start)) * keep[:, None]
        return layer

    def _compose(self, speech, n: int, programs: np.ndarray, seed: int) -> MotionSequence:
        c = self.config
        phonemes = list(speech.phonemes) if speech is not None else []
        mouth = viseme_track(phonemes, n, lead=c.lead_s, long_pause=c.long_pause_s)
        closure = bilabial_closure(phonemes, n, lead=c.lead_s)
        idle = (idle_track(n, np.random.default_rng([seed, 0]), phonemes, c.lead_s, c.idle_config) if c.idle
                else np.zeros((n, DIM), np.float32))

        out = idle + programs
        for eye in EYELID_AXES:
            out[:, INDEX[eye]] = np.maximum(idle[:, INDEX[eye]], programs[:, INDEX[eye]])
        jaw_speech, jaw_program = mouth[:, INDEX["jaw_open"]], programs[:, INDEX["jaw_open"]]
        out[:, INDEX["jaw_open"]] = np.maximum(jaw_speech, jaw_program) + 0.5 * np.minimum(jaw_speech, jaw_program)
        parted = np.clip(2.5 * jaw_program, 0.0, 1.0)  # a program's open jaw parts the resting lips
        out[:, INDEX["lips_close"]] = np.maximum(mouth[:, INDEX["lips_close"]] * (1.0 - parted),
                                                 programs[:, INDEX["lips_close"]])
        for axis in _ADDED_MOUTH_AXES:
            out[:, INDEX[axis]] += mouth[:, INDEX[axis]]
        return MotionSequence(clip(apply_closure(out, closure)))


def animate_segments(speech, n_frames: int | None, segments: Sequence[Segment], seed: int = 0,
                     config: AnimatorConfig | None = None) -> MotionSequence:
    """Motion for timed instruction changes (training windows); see `Animator.animate_segments`."""
    return Animator(config).animate_segments(speech, n_frames, segments, seed)


def _check_programs(programs: Programs) -> None:
    for item in programs:
        if not (isinstance(item, (tuple, list)) and len(item) == 2):
            raise AnimationError(f"programs are (name, intensity) pairs, got {item!r}")
        name, intensity = item
        if name not in PROGRAMS:
            raise UnknownProgramError(f"unknown program {name!r}; known: {', '.join(PROGRAMS)}")
        if not isinstance(intensity, (int, float, np.floating)) or not 0.0 <= float(intensity) <= 1.0:
            raise AnimationError(f"program {name!r}: intensity must be in 0..1, got {intensity!r}")
