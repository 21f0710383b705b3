"""A causal silence gate for the mouth: frames whose audio sits at the line's noise floor get a closed mouth.

Why: trained on clean synthetic speech with light noise augmentation, the generator reads line noise in the
pauses of noisy or telephone speech as faint speech and leaves the lips parted (on output pixels, 15 dB SNR:
68 % of silent frames closed, clean speech 89 %; benchmarks/generalisation.py). The gate tracks the noise
floor (a low percentile of the last few seconds' frame energies) and the speech level (a high one); a frame
is silent when it, the two frames before it and the one after it (the sampler's lookahead, so no added
latency) are all within `margin_db` of the floor and well under the speech level. Digital silence is always
silent.

A level cannot tell a reverberant room's tail from faint speech: under reverb the pauses never reach the floor
(sox reverb on real speech, 88 % of silent frames closed on output pixels). The model's own viseme head can: its
P(silence), trained on speech through simulated rooms, lines and noise, is > 0.5 on 95-100 % of the silent
frames of every held-out real-speech condition, reverb included, and on 0.1-0.8 % of the speech frames of a
held-out corpus; but at onsets it is unsure (the first syllables after a silence got 0.5-0.9). So a frame is
also silent when the head's P(silence) is >= `heard_p` on it and the two frames before it (`hear()`; the head
reads one frame ahead already, so no `AFTER` is needed) and none of the three is within `headroom_db` of the
speech level. Silent frames get the
opening axes at 0 (but the pucker and stretch that a pout, fear or a grin hold with closed lips) and the lips at
least `lips_closed` closed, as the teacher rests them.
"""
from __future__ import annotations

from collections import deque

import numpy as np

HISTORY_FRAMES = 125  # 5 s of 40 ms frames
MIN_HISTORY = 12  # frames before the floor is trusted (digital silence is gated from the start)
FLOOR_PERCENTILE, PEAK_PERCENTILE = 5, 95
BEFORE, AFTER = 2, 1  # frames around a frame that must be quiet too (AFTER <= the sampler's lookahead)
DIGITAL_SILENCE_DB = -80.0


class SilenceGate:
    def __init__(self, margin_db: float = 6.0, headroom_db: float = 12.0, heard_p: float = 0.0):
        self.margin_db, self.headroom_db, self.heard_p = margin_db, headroom_db, heard_p
        self._heard: deque[float] = deque(maxlen=64)  # the viseme head's P(silence) of the latest frames
        self._heard_end = 0  # _heard[-1] is frame _heard_end - 1
        self._history: deque[float] = deque(maxlen=HISTORY_FRAMES)
        self._db: deque[float] = deque(maxlen=64)  # the latest frames' energies (dB)
        self._count = 0  # frames measured so far: _db[-1] is frame _count - 1
        self._pending = np.zeros(0, np.float32)

    def push(self, audio16k: np.ndarray, samples_per_frame: int) -> None:
        """Audio as it arrives; whole frames are measured."""
        buf = np.concatenate([self._pending, audio16k])
        n = len(buf) // samples_per_frame
        if n:
            frames = buf[: n * samples_per_frame].reshape(n, samples_per_frame).astype(np.float64)
            for db in 10 * np.log10((frames ** 2).mean(1) + 1e-12):
                self._db.append(float(db))
                self._history.append(float(db))
                self._count += 1
        self._pending = buf[n * samples_per_frame:]

    def hear(self, first: int, p_silence: np.ndarray) -> None:
        """The model's P(silence) for frames first .. first + len - 1 (the frames after those heard so far)."""
        assert first == self._heard_end, (first, self._heard_end)
        self._heard.extend(float(p) for p in p_silence)
        self._heard_end += len(p_silence)

    def _heard_silent(self, index: int, levels: tuple[float, float] | None) -> bool:
        """The head hears silence on the frame and the two before it, and none of them is near the speech level
        (the head is unsure at onsets: it heard the first syllables after a silence as silence, 0.5-0.9)."""
        if not self.heard_p or levels is None:
            return False
        for j in range(index - BEFORE, index + 1):
            if j < 0:
                continue  # before the stream: silence
            if j >= self._heard_end or j < self._heard_end - len(self._heard) or j >= self._count or \
                    j < self._count - len(self._db):
                return False
            heard, db = self._heard[j - self._heard_end], self._db[j - self._count]
            if heard < self.heard_p or db >= levels[1] - self.headroom_db:
                return False
        return True

    def _quiet(self, index: int, levels: tuple[float, float] | None) -> bool:
        if index < 0:
            return True  # before the stream: silence
        if index >= self._count or index < self._count - len(self._db):
            return False  # not heard yet (or long gone): do not gate
        db = self._db[index - self._count]
        if db < DIGITAL_SILENCE_DB:
            return True
        if levels is None:
            return False
        floor, peak = levels
        return db < floor + self.margin_db and db < peak - self.headroom_db

    def silent(self, first: int, count: int) -> np.ndarray:
        """(count,) bool for frames first .. first + count - 1."""
        levels = None  # (noise floor, speech level) once enough has been heard
        if len(self._history) >= MIN_HISTORY:
            floor, peak = np.percentile(np.fromiter(self._history, float), [FLOOR_PERCENTILE, PEAK_PERCENTILE])
            levels = (float(floor), float(peak))
        quiet = {i: self._quiet(i, levels) for i in range(first - BEFORE, first + count + AFTER)}
        energy = self.margin_db > 0  # 0: the level rule is off
        return np.array([(energy and all(quiet[j] for j in range(i - BEFORE, i + AFTER + 1)))
                         or self._heard_silent(i, levels) for i in range(first, first + count)])
