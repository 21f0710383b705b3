"""A session's worker thread: 16 kHz audio -> StreamingSampler -> Renderer -> RenderedFrames for the playout.

The event loop only enqueues (audio chunks, instruction commands); all model and rendering work runs here.
Instruction changes go through the same queue, so they reach the sampler (which is not thread-safe) in order
and the acknowledgement can name the exact frame where the new instruction starts.
"""
from __future__ import annotations

import concurrent.futures
import logging
import queue
import threading
import time
from collections import deque
from dataclasses import dataclass
from typing import Any

import numpy as np

from realtime.media.stream import rgb_to_yuv420
from realtime.server.playout import Playout, RenderedFrame
from realtime.server.stats import StageTimes
from realtime.vocab import FPS, INDEX, MODEL_RATE, OPENING_AXES, SAMPLES_PER_FRAME

log = logging.getLogger(__name__)


@dataclass
class _Audio:
    audio16k: np.ndarray
    voice: np.ndarray  # the same stretch of audio at the playout's rate (returned to the caller)
    arrival: float


@dataclass
class _Instruct:
    text: str | None
    intensity: float
    done: concurrent.futures.Future
    embedding: Any = None  # the text's encoding, made off the loop before the command was sent


# Mouth axes a barge-in closes over CUT_FRAMES frames (the lips meet) instead of waiting one generator latency;
# they stay closed while the generator, whose motion prefix still holds the open mouth, settles on the silence.
_OPENING = [INDEX[name] for name in OPENING_AXES]
_LIPS_CLOSE = INDEX["lips_close"]
CUT_FRAMES, SETTLE_FRAMES, RELEASE_FRAMES = 1, 12, 3
MAX_LATE_RUN = 3  # however far behind, at least every fourth frame gets a picture of its own


def closing(values: np.ndarray, closed: float) -> np.ndarray:
    """`values` with the mouth `closed` (0..1) of the way shut."""
    values = values.copy()
    values[_OPENING] *= 1.0 - closed
    values[_LIPS_CLOSE] = max(values[_LIPS_CLOSE], closed)
    return values


def _as_is(pixels: np.ndarray) -> np.ndarray:
    return pixels


_WAKE = object()  # put in the inbox by `cut` so that an idle worker closes the queued frames' mouths at once


class WorkerGone(RuntimeError):
    """The session's worker stopped or failed: what was sent to it will never be applied."""


class MotionPipeline:
    """One per session. `push_audio` and `instruct` are safe to call from the event loop (they never block)."""

    def __init__(self, sampler, renderer, playout: Playout, stats: StageTimes, name: str = "session",
                 max_backlog_s: float = 0.3, late_frame_s: float = 0.25):
        self.sampler, self.renderer, self.playout, self.stats = sampler, renderer, playout, stats
        self._to_yuv = _as_is if getattr(renderer, "yields_yuv", False) else rgb_to_yuv420  # replay.py's floor
        self.max_backlog = int(max_backlog_s * MODEL_RATE)
        self.late_frame_s = late_frame_s
        self._last_video: np.ndarray | None = None  # what a late frame shows instead of a picture of its own
        self._late_run = 0  # late frames in a row that kept the previous picture
        self.voice_per_frame = playout.audio_rate // FPS
        self._inbox: queue.SimpleQueue = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._run, name=f"avatar-{name}", daemon=True)
        self._arrivals: deque[tuple[int, float]] = deque()  # (16 kHz sample count after a chunk, arrival)
        self._samples_in = 0
        self._voice = np.zeros(0, np.float32)
        self._voice_start = 0  # absolute index (at the playout's rate) of self._voice[0]
        self.error: BaseException | None = None
        self._cut_frame, self._cut_step = -(1 << 30), 0  # frames before _cut_frame carry cleared speech
        self._settled_cut = self._cut_frame  # the cut whose mouth the sampler's prefix was closed for
        self._recut: int | None = None  # a cut whose already-queued frames still show the open mouth
        self.skipped_samples = 0  # audio never sampled (see _process): frame f began at sample f*640 + this
        self._stopping = False
        self._taken: list = []  # what the worker took from its inbox last
        self.busy_since: float | None = None  # monotonic time the worker took its current work (None = idle)

    def stalled(self, limit_s: float, now: float | None = None) -> bool:
        """The worker has held one batch of work for longer than `limit_s` (a hung model call or renderer)."""
        since = self.busy_since
        return since is not None and (now or time.monotonic()) - since > limit_s

    # --- event-loop side ------------------------------------------------------------------------------
    def start(self) -> None:
        self._thread.start()

    def push_audio(self, audio16k: np.ndarray, voice: np.ndarray, arrival: float) -> None:
        self._inbox.put(_Audio(audio16k, voice, arrival))

    def instruct(self, text: str | None, intensity: float, embedding: Any = None) -> concurrent.futures.Future:
        """Resolves to the frame number where the instruction takes effect, or fails (the sampler's error, a
        dead or stopped worker): it never stays pending once the worker is gone."""
        done: concurrent.futures.Future = concurrent.futures.Future()
        if self._stopping or self.error is not None:
            done.set_exception(WorkerGone("the session is ending" if self.error is None
                                          else f"the session's worker failed: {self.error}"))
            return done
        self._inbox.put(_Instruct(text, intensity, done, embedding))
        return done

    def cut(self, sample: int) -> None:
        """Barge-in: frames driven by audio before `sample` that are not rendered yet close the mouth and
        go silent (the generator alone would take one latency to hear that the speech stopped); queued frames
        go silent at once, and the worker re-renders them with the mouth closed before its next frame (they
        are up to a chunk of pictures that would otherwise show the cleared speech for another 80-120 ms).
        Takes effect at the worker's next frame, not after the audio queued before it."""
        frame = -(-(sample - self.skipped_samples) // SAMPLES_PER_FRAME)
        self._cut_step, self._cut_frame = 0, frame  # two int stores: the worker reads them frame by frame
        self.playout.silence(frame)
        self._recut = frame
        self._inbox.put(_WAKE)

    def stop(self, timeout: float = 5.0) -> None:
        self._stopping = True
        self._inbox.put(None)
        if self._thread.is_alive() and threading.current_thread() is not self._thread:
            self._thread.join(timeout)
        if not self._thread.is_alive():
            self._fail_waiting(WorkerGone("the session ended"))

    def _fail_waiting(self, exc: BaseException) -> None:
        """Fails the instructions still queued (and drops the audio): nobody will ever take them."""
        while True:
            try:
                item = self._inbox.get_nowait()
            except queue.Empty:
                return
            if isinstance(item, _Instruct) and not item.done.done():
                item.done.set_exception(exc)

    @property
    def alive(self) -> bool:
        return self._thread.is_alive()

    # --- worker thread ---------------------------------------------------------------------------------
    def _run(self) -> None:
        try:
            while True:
                self.busy_since = None
                items = self._taken = [self._inbox.get()]
                self.busy_since = time.monotonic()
                while True:  # take whatever else is waiting: one sampler call for a backlog of audio
                    try:
                        items.append(self._inbox.get_nowait())
                    except queue.Empty:
                        break
                self._close_queued()
                audio: list[_Audio] = []
                for item in items:
                    if item is _WAKE:
                        continue
                    if item is None:
                        self._process(audio)
                        return
                    if isinstance(item, _Instruct):
                        self._process(audio)  # audio sent before the instruction is sampled under the old one
                        audio = []
                        self._set_instruction(item)
                    else:
                        audio.append(item)
                self._process(audio)
        except BaseException as exc:  # a dead worker must be visible: the session closes on it
            log.exception("session worker failed")
            self.error = exc
        finally:
            self.busy_since = None
            gone = WorkerGone("the session ended" if self.error is None
                              else f"the session's worker failed: {self.error}")
            for item in self._taken:  # taken but not applied (an error, or a stop that came first)
                if isinstance(item, _Instruct) and not item.done.done():
                    item.done.set_exception(gone)
            self._fail_waiting(gone)

    def _set_instruction(self, command: _Instruct) -> None:
        try:
            self.sampler.set_instruction(command.text, command.intensity, command.embedding)
        except Exception as exc:
            command.done.set_exception(exc)
            return
        command.done.set_result(int(self.sampler.frames_emitted))

    def _process(self, chunks: list[_Audio]) -> None:
        if not chunks:
            return
        # Slower than real time (an overloaded CPU): skip the oldest audio rather than fall ever further behind.
        backlog = sum(len(c.audio16k) for c in chunks)
        while len(chunks) > 1 and backlog > self.max_backlog:
            backlog -= len(chunks[0].audio16k)
            skipped = len(chunks.pop(0).audio16k)
            self.skipped_samples += skipped
            self.stats.count("audio_skipped_ms", skipped * 1000 // MODEL_RATE)
        for chunk in chunks:
            self._samples_in += len(chunk.audio16k)
            self._arrivals.append((self._samples_in, chunk.arrival))
        self._voice = np.concatenate([self._voice] + [c.voice for c in chunks])
        audio = np.concatenate([c.audio16k for c in chunks])
        first = int(self.sampler.frames_emitted)
        t0 = time.perf_counter()
        motion = self.sampler.push(audio)
        self.stats.record("sample" if len(motion) else "features", time.perf_counter() - t0)
        if len(motion):
            self._render(first, motion)

    def _render(self, first: int, motion: np.ndarray) -> None:
        # One frame at a time, each published as soon as it exists: the first frame of a chunk goes on air
        # a whole chunk's rendering earlier than with one batch (and batching is no cheaper on CPU).
        for i, values in enumerate(motion):
            self._close_queued()
            index = first + i
            voice = self._voice_for(index)
            closing_now = index < self._cut_frame + SETTLE_FRAMES  # a barge-in's closing mouth: always drawn
            if closing_now:
                if self._settled_cut != self._cut_frame:  # the generator goes on from the closed mouth shown
                    self.sampler.close_mouth()
                    self._settled_cut = self._cut_frame
                closed = min(1.0, (self._cut_step + 1) / CUT_FRAMES,
                             (self._cut_frame + SETTLE_FRAMES - index) / RELEASE_FRAMES)  # in, hold, back out
                values, voice = closing(values, closed), voice if index >= self._cut_frame else np.zeros_like(voice)
                self._cut_step += 1
            arrival = self._arrival_of(index)
            if (time.monotonic() - arrival > self.late_frame_s and self._last_video is not None
                    and self._late_run < MAX_LATE_RUN and not closing_now):
                video, self._late_run = self._last_video, self._late_run + 1  # behind: catch up, keep the voice
                self.stats.count("frames_late_skipped")
            else:
                video = self._last_video = self._picture(values)
                self._late_run = 0
            frame = RenderedFrame(index, video, voice, arrival, time.monotonic(), values)
            self.stats.count("frames_rendered")
            self.playout.put([frame])

    def _picture(self, values: np.ndarray) -> np.ndarray:
        t0 = time.perf_counter()
        video = self._to_yuv(np.asarray(self.renderer(values[None]))[0])
        self.stats.record("render", time.perf_counter() - t0)
        return video

    def _close_queued(self) -> None:
        """After a cut: frames rendered from the cleared speech but not yet on air show the mouth closed (the
        earliest one's pose, rendered once; a frame the playout takes meanwhile keeps the picture it had)."""
        cut, self._recut = self._recut, None
        if cut is None:
            return
        closed_video = None  # one picture for them all: each render is 10-40 ms the closing mouth would wait for
        for frame in self.playout.queued_before(cut):
            if frame.motion is not None:
                frame.motion = closing(frame.motion, 1.0)
                if closed_video is None:
                    closed_video = self._picture(frame.motion)
                frame.video = closed_video
                self.stats.count("frames_reclosed")

    def _voice_for(self, index: int) -> np.ndarray:
        n = self.voice_per_frame
        start = index * n - self._voice_start
        voice = self._voice[max(0, start): start + n]
        if len(voice) < n:  # the two resamplers' outputs differ by a few samples at the edges
            voice = np.pad(voice, (0, n - len(voice)))
        drop = max(0, start + n)  # nothing before the next frame is needed again
        self._voice = self._voice[drop:]
        self._voice_start += drop
        return voice

    def _arrival_of(self, index: int) -> float:
        """When the first sample of frame `index` arrived (the reference for latency)."""
        sample = index * SAMPLES_PER_FRAME
        while len(self._arrivals) > 1 and self._arrivals[0][0] <= sample:
            self._arrivals.popleft()
        return self._arrivals[0][1] if self._arrivals else time.monotonic()
