"""The procedural animator (the teacher): speech visemes + instruction programs + idle life → motion."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np

from realtime.animate.idle import idle_track
from realtime.animate.programs import program_track, smoothstep
from realtime.animate.visemes import is_vowel, viseme_track
from realtime.motion.space import FPS, INDEX, MotionSequence, clip

Programs = Sequence[tuple[str, float]]
I = INDEX


@dataclass
class AnimatorConfig:
    lead_s: float = 0.08  # lips move this far ahead of the sound
    transition_s: float = 0.4  # cross-fade when the instruction changes
    idle: bool = True


class Animator:
    def __init__(self, config: AnimatorConfig | None = None):
        self.config = config or AnimatorConfig()

    def __call__(self, speech, n_frames: int | None = None, programs: Programs = (), seed: int = 0,
                 starts: Sequence[int] | None = None) -> MotionSequence:
        """`starts[k]` is the frame where programs[k] begins (default 0 for all)."""
        if n_frames is None:
            if speech is None:
                raise ValueError("give n_frames when there is no speech")
            n_frames = int(np.ceil(speech.duration * FPS))
        if starts is None:
            return self.animate_segments(speech, n_frames, [(0, list(programs))], seed)
        rng = np.random.default_rng([seed, 1])
        layer = np.zeros((n_frames, len(I)), np.float32)
        for (name, intensity), start in zip(programs, starts):
            layer += program_track(name, n_frames, intensity, rng, start=start)
        return self._compose(speech, n_frames, layer, seed)

    def animate_segments(self, speech, n_frames: int, segments: Sequence[tuple[int, Programs]],
                         seed: int = 0) -> MotionSequence:
        """Instructions that change over time: segments[k] = (start_frame, programs) with smooth transitions."""
        # Separate streams for programs and idle life: the same seed gives the same idle under any instruction.
        layer = self._segments_layer(n_frames, segments, np.random.default_rng([seed, 1]))
        return self._compose(speech, n_frames, layer, seed)

    def _segments_layer(self, n: int, segments, rng) -> np.ndarray:
        layer = np.zeros((n, len(I)), np.float32)
        segments = sorted(segments, key=lambda s: s[0])
        fade = max(1, int(self.config.transition_s * FPS))
        frames = np.arange(n)
        for k, (start, programs) in enumerate(segments):
            end = segments[k + 1][0] if k + 1 < len(segments) else None
            keep = np.ones(n) if end is None else 1 - smoothstep((frames - end) / fade)
            for name, intensity in programs:
                layer += program_track(name, n, intensity, rng, start=start) * keep[:, None]
        return layer

    def _compose(self, speech, n: int, programs: np.ndarray, seed: int) -> MotionSequence:
        rng = np.random.default_rng([seed, 0])
        phonemes = speech.phonemes if speech is not None else []
        mouth, bilabial = viseme_track(phonemes, n, lead=self.config.lead_s)
        speaking = np.zeros(n, np.float32)
        stress = []
        for p in phonemes:
            if p.symbol != "_":
                speaking[int(p.start * FPS):int(np.ceil(p.end * FPS))] = 1.0
            if p.stress and is_vowel(p.symbol):
                stress.append(int((p.start - self.config.lead_s) * FPS))
        speaking = np.convolve(speaking, np.ones(9) / 9, mode="same")
        out = idle_track(n, rng, np.array(stress), speaking) if self.config.idle else np.zeros_like(programs)
        out = out + programs
        # Eyes: an instructed closure replaces idle blinks rather than adding to them.
        for eye in ("blink_left", "blink_right"):
            instructed = programs[:, I[eye]]
            out[:, I[eye]] = np.maximum(instructed, out[:, I[eye]] - programs[:, I[eye]])
        # Mouth: speech shapes the mouth; a program that opens the mouth (surprise, "open wide") lifts the rest
        # closure of silence, but never a /p b m/ closure.
        program_open = np.clip(programs[:, I["jaw_open"]] * 2.5, 0, 1)
        for axis in ("jaw_open", "lip_funnel", "lip_pucker", "lower_lip_tuck", "mouth_stretch", "lip_press"):
            out[:, I[axis]] += mouth[:, I[axis]]
        out[:, I["jaw_open"]] = np.maximum(mouth[:, I["jaw_open"]], programs[:, I["jaw_open"]]) + \
            0.5 * np.minimum(mouth[:, I["jaw_open"]], programs[:, I["jaw_open"]])
        out[:, I["lips_close"]] = np.maximum(mouth[:, I["lips_close"]] * (1 - program_open),
                                             programs[:, I["lips_close"]])
        b = bilabial
        out[:, I["lips_close"]] = np.maximum(out[:, I["lips_close"]], b)
        out[:, I["lip_press"]] = np.maximum(out[:, I["lip_press"]], 0.6 * b)
        out[:, I["jaw_open"]] *= 1 - b
        out[:, I["lower_lip_tuck"]] *= 1 - b
        return MotionSequence(clip(out))
