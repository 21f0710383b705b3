"""Playout: decides, once per 40 ms tick of a wall clock, which rendered frame (and which 40 ms of the caller's
voice) is on air. The video track and the delayed audio track both read these decisions, so returned voice and
face stay in sync by construction, whatever the generator's speed.

Frames arrive from the worker thread in bursts (one chunk at a time). A tick takes the next queued frame if
one is ready (after an optional jitter buffer), repeats the last frame with silence if none is (the generator
is late), and drops the oldest frames when too many wait (latency stays bounded). The ticks' phase is set once,
by the first frame: the clock starts late enough that ticks fall `align_margin_s` after frames become ready,
instead of up to a whole tick after. When the frames' phase drifts later (a slow start, a caller whose packets
settle), each window in which every frame waited longer than the margin brings the ticks that much earlier.
"""
from __future__ import annotations

import threading
import time
from collections import deque
from dataclasses import dataclass

import numpy as np

from realtime.server.stats import StageTimes
from realtime.vocab import FPS, WEBRTC_AUDIO_RATE


@dataclass
class RenderedFrame:
    index: int  # motion frame number (25 fps since the session began)
    video: object  # (H * 3 // 2, W) uint8 yuv420p pixels; each track wraps them in a fresh av.VideoFrame
    voice: np.ndarray  # the caller's audio for this frame, float32 at the playout's audio rate
    audio_arrival: float  # monotonic time the first sample of this frame's audio arrived
    rendered_at: float  # monotonic time the frame was ready
    motion: np.ndarray | None = None  # the motion vector it was rendered from (a barge-in re-renders it closed)


@dataclass
class Tick:
    frame: RenderedFrame | None  # None = nothing rendered yet (show the still portrait)
    voice: np.ndarray  # samples_per_tick float32 (silence when the frame is a repeat)
    repeated: bool


class MediaClock:
    """The session's shared time origin: both outgoing tracks count ticks from it."""

    def __init__(self) -> None:
        self.start: float | None = None

    def origin(self) -> float:
        if self.start is None:
            self.start = time.monotonic()
        return self.start

    def align(self, ready: float, margin: float, period: float) -> float:
        """Delay the origin (never advance it: ticks already sent stay sent) so that a tick boundary falls
        `margin` seconds after `ready`. Returns the shift."""
        origin = self.origin()
        wait = (origin - ready) % period  # from `ready` to the next boundary under the current origin
        shift = (margin - wait) % period
        if period - shift < 1e-6:  # aligned up to rounding
            shift = 0.0
        self.start = origin + shift
        return shift


class Playout:
    def __init__(self, still: object, stats: StageTimes, fps: int = FPS, audio_rate: int = WEBRTC_AUDIO_RATE,
                 jitter_frames: int = 0, max_buffered: int = 10, align_margin_s: float | None = 0.01,
                 trim_window_s: float = 1.0):
        self.fps, self.audio_rate = fps, audio_rate
        self.samples_per_tick = audio_rate // fps
        self.jitter_frames, self.max_buffered = jitter_frames, max(max_buffered, jitter_frames + 2)
        self.clock = MediaClock()
        self.align_margin_s = align_margin_s  # None = keep the phase the tracks started with
        self.trim_window = max(1, int(round(trim_window_s * fps)))
        self.stats = stats
        self._queue: deque[RenderedFrame] = deque()
        self._lock = threading.Lock()
        self._decided: dict[int, Tick] = {}
        self._last_tick: int | None = None
        self._still = Tick(RenderedFrame(-1, still, np.zeros(0, np.float32), 0.0, 0.0),
                           np.zeros(self.samples_per_tick, np.float32), False)
        self._current: Tick = self._still
        self._start_tick: int | None = None  # first tick allowed to show a rendered frame
        self.shown_index = -1
        self._window_ticks, self._least_spare = 0, 1 << 30  # latency trimming (see _decide)
        self._shown = 0
        self._least_wait = float("inf")  # shortest time a shown frame waited in this window (phase tracking)

    # --- producer side (worker thread) ---------------------------------------------------------------
    def put(self, frames: list[RenderedFrame]) -> None:
        with self._lock:
            if frames and self._start_tick is None and not self._queue and self.align_margin_s is not None:
                self.clock.align(frames[0].rendered_at, self.align_margin_s, 1.0 / self.fps)
            self._queue.extend(frames)
            # Nobody reading (a peer that never connected): keep a bounded backlog, never the whole call.
            while len(self._queue) > 2 * self.max_buffered:
                self._queue.popleft()
                self.stats.count("frames_dropped")

    def clear(self) -> None:
        """Drops every frame held (the call ended)."""
        with self._lock:
            self._queue.clear()
        self._decided.clear()

    def silence(self, before: int) -> None:
        """Barge-in: frames still queued whose index is below `before` keep their pictures, lose their sound."""
        with self._lock:
            for frame in self._queue:
                if frame.index < before:
                    frame.voice = np.zeros_like(frame.voice)

    def queued_before(self, before: int) -> list[RenderedFrame]:
        """The frames still waiting to go on air whose index is below `before`, first to air first."""
        with self._lock:
            return [frame for frame in self._queue if frame.index < before]

    @property
    def buffered(self) -> int:
        return len(self._queue)

    # --- consumer side (event loop: the two tracks) ----------------------------------------------------
    def tick_time(self, tick: int) -> float:
        return self.clock.origin() + tick / self.fps

    def current_tick(self) -> int:
        return int((time.monotonic() - self.clock.origin()) * self.fps)

    def tick(self, k: int) -> Tick:
        """The decision for tick k (made now if nobody asked for it yet; ticks are decided in order)."""
        if k in self._decided:
            return self._decided[k]
        if self._last_tick is not None and k < self._last_tick:
            return self._current  # older than what we remember: show what is on air
        first = k if self._last_tick is None else self._last_tick + 1
        for t in range(first, k + 1):
            self._decided[t] = self._decide(t)
            self._last_tick = t
        for old in [t for t in self._decided if t < k - 2 * self.fps]:
            del self._decided[old]
        return self._decided[k]

    def _decide(self, k: int) -> Tick:
        with self._lock:
            if self._start_tick is None and self._queue:
                self._start_tick = k + self.jitter_frames
            if self._start_tick is None or k < self._start_tick:
                return self._still
            excess = len(self._queue) - self.max_buffered
            # A late chunk adds a tick of delay for good (its frames are shown later, not skipped), and so does
            # a generator catching up after a slow start. When the queue has held k spare frames at every tick
            # of a whole window, that delay is no longer needed: drop k frames (without excess the queue runs
            # down to its last frame once per chunk).
            self._least_spare = min(self._least_spare, max(0, len(self._queue) - 1))
            self._window_ticks += 1
            # the first second uses short windows: a generator that starts slowly then catches up must not
            # leave that start-up delay in place for the rest of the call
            window = self.trim_window if self._shown >= self.fps else min(4, self.trim_window)
            if self._window_ticks >= window:
                excess = max(excess, self._least_spare)
                early = self._least_wait - (self.align_margin_s or 0.0)
                if not excess and self.align_margin_s is not None and 0.003 < early < 1.0 / self.fps:
                    self.clock.start -= early  # sub-tick delay: no frame to drop, the ticks come earlier
                self._window_ticks, self._least_spare, self._least_wait = 0, 1 << 30, float("inf")
            for _ in range(max(0, excess)):
                self._queue.popleft()
                self.stats.count("frames_dropped")
            frame = self._queue.popleft() if self._queue else None
        if frame is None:
            self.stats.count("frames_repeated")
            self._current = Tick(self._current.frame, self._still.voice, True)
            return self._current
        shown_at = self.tick_time(k)
        self.stats.count("frames_shown")
        self._shown += 1
        self.stats.record("buffer", max(0.0, shown_at - frame.rendered_at))
        self._least_wait = min(self._least_wait, shown_at - frame.rendered_at)
        self.stats.record("latency", max(0.0, shown_at - frame.audio_arrival))
        voice = frame.voice
        if len(voice) != self.samples_per_tick:
            voice = np.pad(voice[: self.samples_per_tick], (0, max(0, self.samples_per_tick - len(voice))))
        self._current = Tick(frame, voice, False)
        self.shown_index = frame.index
        return self._current
