"""AudioIngest: the caller's microphone track -> (16 kHz for the model, 48 kHz voice for the return track),
kept aligned with the wall clock.

A session always produces motion in real time: when no audio arrives (no microphone, muted, a network gap)
the gap is filled with silence by the clock, so the face keeps its idle life; when real audio then arrives
ahead of the clock, the surplus is trimmed so latency does not grow. Resampling a 20 ms frame takes tens of
microseconds, so it runs on the event loop; everything heavier is the worker's.
"""
from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable

import numpy as np
from aiortc.mediastreams import MediaStreamError, MediaStreamTrack

from realtime.media.conceal import LossConcealer
from realtime.media.stream import StreamResampler
from realtime.server.pipeline import MotionPipeline
from realtime.server.stats import StageTimes
from realtime.vocab import MODEL_RATE, WEBRTC_AUDIO_RATE

log = logging.getLogger(__name__)


class AudioIngest:
    def __init__(self, pipeline: MotionPipeline, stats: StageTimes, voice_rate: int = WEBRTC_AUDIO_RATE,
                 silence_fill_s: float = 0.12, tick_s: float = 0.02):
        self.pipeline, self.stats = pipeline, stats
        self.voice_rate = voice_rate
        self.silence_fill_s, self.tick_s = silence_fill_s, tick_s
        self.track: MediaStreamTrack | None = None
        self._to_model = StreamResampler(MODEL_RATE)
        self._to_voice = StreamResampler(voice_rate)
        self._conceal = LossConcealer()  # a lost packet's 20 ms, for the model and the returned voice alike
        self._origin: float | None = None
        self._fed = 0  # 16 kHz samples handed to the pipeline
        self._block = int(round(tick_s * MODEL_RATE))  # one packet's worth (20 ms)
        self._task: asyncio.Task | None = None
        self._stopped = False
        self.last_audio = time.monotonic()  # last real audio frame (for the idle timeout)
        # speech that is not the caller's (say, pushed PCM): (audio16k, voice, fed) -> both with it mixed in
        self.mixer: Callable[[np.ndarray, np.ndarray, int], tuple[np.ndarray, np.ndarray]] | None = None

    def attach(self, track: MediaStreamTrack) -> None:
        """The caller's first audio track; later ones are ignored."""
        if self.track is None:
            self.track = track

    def start(self) -> None:
        self._origin = time.monotonic()
        self._task = asyncio.ensure_future(self._run())

    async def stop(self) -> None:
        self._stopped = True
        if self._task is not None:
            self._task.cancel()
            await asyncio.wait({self._task}, timeout=1.0)
            self._task = None

    async def _run(self) -> None:
        # The pending recv() survives a timeout (asyncio.wait does not cancel it): no frame is lost, and no
        # cancellation can be swallowed the way asyncio.wait_for may on Python 3.11.
        receiving: asyncio.Future | None = None
        try:
            while not self._stopped:
                frame = None
                if self.track is not None:
                    receiving = receiving or asyncio.ensure_future(self.track.recv())
                    done, _ = await asyncio.wait({receiving}, timeout=self.tick_s * 2)
                    if done:
                        try:
                            frame = receiving.result()
                        except MediaStreamError:  # the caller stopped sending: carry on in silence
                            self.track = None
                        receiving = None
                else:
                    await asyncio.sleep(self.tick_s)
                now = time.monotonic()
                if frame is not None:
                    for part in self._conceal(frame):
                        self._take(part, now)
                    self.stats.counts["audio_concealed_ms"] = int(self._conceal.concealed_s * 1000)
                self._fill_silence(now)
        finally:
            if receiving is not None:
                receiving.cancel()

    def _due(self, now: float) -> int:
        """16 kHz samples the wall clock says should have been fed by now."""
        return int((now - self._origin) * MODEL_RATE)

    def _take(self, frame, now: float) -> None:
        t0 = time.perf_counter()
        audio16k, voice = self._to_model(frame), self._to_voice(frame)
        self.stats.record("ingest", time.perf_counter() - t0)
        self.stats.count("audio_frames_in")
        self.last_audio = now
        ahead = self._fed + len(audio16k) - self._due(now) - int(self.silence_fill_s * MODEL_RATE)
        if ahead > 0:  # silence was filled in for audio that came late after all: trim to stay in time
            cut = min(-(-ahead // self._block) * self._block, len(audio16k))  # whole packets: see _fill_silence
            audio16k = audio16k[cut:]
            voice = voice[cut * self.voice_rate // MODEL_RATE:]
            self.stats.count("audio_dropped_ms", cut * 1000 // MODEL_RATE)
        if len(audio16k):
            self._feed(audio16k, voice, now)

    def _fill_silence(self, now: float) -> None:
        behind = self._due(now) - self._fed
        # With a live microphone wait for a real gap before filling; without one, follow the clock closely.
        threshold = self.silence_fill_s if self.track is not None else self.tick_s
        if behind >= threshold * MODEL_RATE:
            # Whole packet durations, so the caller's packets keep starting on 40 ms motion-frame borders: a
            # frame boundary inside a packet would make each chunk wait for the rest of that packet.
            n = behind - behind % self._block
            self._feed(np.zeros(n, np.float32), np.zeros(n * self.voice_rate // MODEL_RATE, np.float32), now)
            self.stats.count("silence_filled_ms", n * 1000 // MODEL_RATE)

    @property
    def fed_samples(self) -> int:
        """16 kHz samples handed to the pipeline since the session began (its time in samples)."""
        return self._fed

    def _feed(self, audio16k: np.ndarray, voice: np.ndarray, now: float) -> None:
        if self.mixer is not None:
            audio16k, voice = self.mixer(audio16k, voice, self._fed)
        self._fed += len(audio16k)
        self.pipeline.push_audio(audio16k, voice, now)
