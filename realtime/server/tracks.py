"""The outgoing media: AvatarVideoTrack (25 fps, 90 kHz pts) and VoiceTrack (the caller's voice, delayed to
match), both paced by their timestamps against the session's wall clock, never by production speed."""
from __future__ import annotations

import asyncio
import time
from fractions import Fraction

from aiortc.mediastreams import MediaStreamError, MediaStreamTrack

from realtime.media.stream import audio_frame, yuv420_frame
from realtime.server.playout import Playout
from realtime.server.stats import StageTimes
from realtime.vocab import AUDIO_PTIME_S as AUDIO_PTIME
from realtime.vocab import VIDEO_CLOCK

# A frame up to this late still goes out (receivers' jitter buffers absorb it); beyond it the ticks missed
# are skipped, so a stalled loop never answers with a burst.
CATCH_UP_S = 0.15


async def _wait_until(deadline: float) -> float:
    """Sleeps until `deadline` (monotonic); returns how late we are (>= 0)."""
    delay = deadline - time.monotonic()
    if delay > 0:
        await asyncio.sleep(delay)
    return max(0.0, time.monotonic() - deadline)


class AvatarVideoTrack(MediaStreamTrack):
    kind = "video"

    def __init__(self, playout: Playout, stats: StageTimes):
        super().__init__()
        self.playout, self.stats = playout, stats
        self._next: int | None = None
        self._time_base = Fraction(1, VIDEO_CLOCK)

    async def recv(self):
        if self.readyState != "live":
            raise MediaStreamError
        playout = self.playout
        if self._next is None:
            self._next = playout.current_tick() + 1
        late = await _wait_until(playout.tick_time(self._next))
        tick = self._next
        if late > CATCH_UP_S:  # the loop stalled: skip to now instead of bursting the missed ticks
            tick = playout.current_tick()
        self.stats.record("pace_late", late)
        self._next = tick + 1
        if self.readyState != "live":
            raise MediaStreamError
        return yuv420_frame(playout.tick(tick).frame.video, tick * (VIDEO_CLOCK // playout.fps), self._time_base)


class VoiceTrack(MediaStreamTrack):
    """The caller's own audio, shown tick by tick alongside the frame it drove."""

    kind = "audio"

    def __init__(self, playout: Playout):
        super().__init__()
        self.playout = playout
        self.samples = int(playout.audio_rate * AUDIO_PTIME)
        self.per_tick = playout.samples_per_tick // self.samples
        self._next: int | None = None

    async def recv(self):
        if self.readyState != "live":
            raise MediaStreamError
        playout = self.playout
        origin = playout.clock.origin()
        if self._next is None:
            self._next = int((time.monotonic() - origin) / AUDIO_PTIME) + 1
        late = await _wait_until(origin + self._next * AUDIO_PTIME)
        n = self._next
        if late > CATCH_UP_S:
            n = int((time.monotonic() - origin) / AUDIO_PTIME)
        self._next = n + 1
        tick, part = divmod(n, self.per_tick)
        voice = playout.tick(tick).voice[part * self.samples:(part + 1) * self.samples]
        return audio_frame(voice, playout.audio_rate, n * self.samples)


class TimedTrack(MediaStreamTrack):
    """Wraps the track a sender reads and records the time between handing over a frame and the next request:
    that is aiortc's encode + packetise + send for the frame (the `encode` stage)."""

    def __init__(self, source: MediaStreamTrack, stats: StageTimes):
        super().__init__()
        self.kind = source.kind
        self.source, self.stats = source, stats
        self._handed: float | None = None

    async def recv(self):
        if self._handed is not None:
            self.stats.record("encode", time.perf_counter() - self._handed)
        frame = await self.source.recv()
        self._handed = time.perf_counter()
        return frame

    def stop(self) -> None:
        self.source.stop()
        super().stop()
