"""Speech that is not the caller's: text said with espeak-ng, PCM pushed by a program (an agent's TTS).

It is queued per session and mixed into the caller's audio as the ingest feeds it, so it drives the learned
generator through the same path as a microphone, and it is heard in the returned voice by the caller and by
every viewer. `clear` (barge-in) drops what is queued. Playback events follow what is on air: an utterance
has `started` when the first frame its audio drove is shown, `finished` when its last one is (or at once,
`interrupted`, when it is cleared).
"""
from __future__ import annotations

import asyncio
import logging
import secrets
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from realtime.media.stream import StreamResampler, audio_frame
from realtime.vocab import MODEL_RATE, SAMPLES_PER_FRAME, WEBRTC_AUDIO_RATE

log = logging.getLogger(__name__)
MAX_QUEUED_S = 60.0  # speech waiting in one session's queue
MAX_LISTENERS = 16
Listener = Callable[[dict[str, Any]], Awaitable[None] | None]


class SpeechQueueFull(ValueError):
    """More speech than a session may queue."""


@dataclass(eq=False)  # compared by identity (it holds arrays)
class Utterance:
    id: str
    source: str  # "say" or "pcm"
    audio16k: np.ndarray  # what the generator hears
    voice: np.ndarray  # the same audio at the playout's rate (what callers and viewers hear)
    pos: int = 0  # 16 kHz samples already mixed in
    first_sample: int | None = None  # absolute 16 kHz sample (session time) of its first mixed sample
    last_sample: int | None = None  # ... and of its end, once it has all been mixed in

    @property
    def remaining(self) -> int:
        return len(self.audio16k) - self.pos


class SpeechQueue:
    """Event-loop side only: `say`/`push` add audio, `mix` (from the ingest) takes it in feed order."""

    def __init__(self, voice_rate: int = WEBRTC_AUDIO_RATE, max_queued_s: float = MAX_QUEUED_S):
        self.voice_rate, self.ratio = voice_rate, voice_rate // MODEL_RATE
        self.max_queued = int(max_queued_s * MODEL_RATE)
        self.queue: deque[Utterance] = deque()
        self.playing: list[Utterance] = []  # mixed in completely or partly, not yet reported finished
        self._stream: tuple[Utterance, StreamResampler, StreamResampler, int] | None = None  # the open PCM stream

    @property
    def queued_s(self) -> float:
        return sum(u.remaining for u in self.queue) / MODEL_RATE

    def _room(self, samples16k: int) -> None:
        if sum(u.remaining for u in self.queue) + samples16k > self.max_queued:
            raise SpeechQueueFull(f"speech queue full: {self.queued_s:.1f} s queued, the limit is "
                                  f"{self.max_queued / MODEL_RATE:g} s (send clear, or wait for playback events)")

    def say(self, audio: np.ndarray, rate: int) -> Utterance:
        from realtime.media.audio import resample

        audio16k = resample(audio, rate, MODEL_RATE).astype(np.float32)
        self._room(len(audio16k))
        voice = resample(audio, rate, self.voice_rate).astype(np.float32)
        utterance = Utterance(secrets.token_urlsafe(6), "say", audio16k, _fit(voice, len(audio16k) * self.ratio))
        self.queue.append(utterance)
        return utterance

    def push(self, pcm: np.ndarray, rate: int) -> Utterance:
        """PCM from a program: consecutive pushes continue one utterance while it is still queued."""
        if self._stream is None or self._stream[0] not in self.queue or self._stream[3] != rate:
            utterance = Utterance(secrets.token_urlsafe(6), "pcm", np.zeros(0, np.float32), np.zeros(0, np.float32))
            self._stream = (utterance, StreamResampler(MODEL_RATE), StreamResampler(self.voice_rate), rate)
            self.queue.append(utterance)
        utterance, to_model, to_voice, _ = self._stream
        self._room(len(pcm) * MODEL_RATE // rate)
        audio16k = to_model(audio_frame(pcm, rate, 0))
        voice = _fit(to_voice(audio_frame(pcm, rate, 0)), len(audio16k) * self.ratio)
        utterance.audio16k = np.concatenate([utterance.audio16k, audio16k])
        utterance.voice = np.concatenate([utterance.voice, voice])
        return utterance

    def clear(self) -> list[Utterance]:
        dropped = list(self.playing) + [u for u in self.queue if u not in self.playing]
        self.queue.clear()
        self.playing.clear()
        self._stream = None
        return dropped

    def mix(self, audio16k: np.ndarray, voice: np.ndarray, fed: int) -> tuple[np.ndarray, np.ndarray]:
        """Adds queued speech to the next `len(audio16k)` samples the ingest feeds (session sample `fed` on)."""
        if not self.queue:
            return audio16k, voice
        audio16k, voice = audio16k.copy(), _fit(voice.copy(), len(audio16k) * self.ratio)
        at = 0
        while at < len(audio16k) and self.queue:
            utterance = self.queue[0]
            n = min(utterance.remaining, len(audio16k) - at)
            if utterance.first_sample is None:
                utterance.first_sample = fed + at
                self.playing.append(utterance)
            audio16k[at:at + n] += utterance.audio16k[utterance.pos:utterance.pos + n]
            r = self.ratio
            voice[at * r:(at + n) * r] += utterance.voice[utterance.pos * r:(utterance.pos + n) * r]
            utterance.pos += n
            at += n
            if utterance.remaining == 0:
                utterance.last_sample = fed + at
                self.queue.popleft()
        return np.clip(audio16k, -1.0, 1.0), np.clip(voice, -1.0, 1.0)


def _fit(samples: np.ndarray, n: int) -> np.ndarray:
    return samples[:n] if len(samples) >= n else np.pad(samples, (0, n - len(samples)))


class SessionSpeech:
    """A session's speech queue, the listeners of its playback events, and the task that watches the playout."""

    def __init__(self, session_id: str, on_air: Callable[[], int], voice_rate: int = WEBRTC_AUDIO_RATE):
        self.session_id, self.on_air = session_id, on_air  # on_air(): session sample where the shown frame began
        self.queue = SpeechQueue(voice_rate)
        self.listeners: dict[Any, Listener] = {}
        self._started: set[str] = set()
        self._task: asyncio.Task | None = None

    def listen(self, key: Any, send: Listener) -> None:
        """`send(event)` gets this session's playback events (one per key; the oldest goes past the limit)."""
        if key not in self.listeners and len(self.listeners) >= MAX_LISTENERS:
            self.listeners.pop(next(iter(self.listeners)))
        self.listeners[key] = send

    def say(self, audio: np.ndarray, rate: int) -> Utterance:
        utterance = self.queue.say(audio, rate)
        self._watch()
        return utterance

    def push(self, pcm: np.ndarray, rate: int) -> Utterance:
        utterance = self.queue.push(pcm, rate)
        self._watch()
        return utterance

    def forget(self, key: Any) -> None:
        self.listeners.pop(key, None)

    def _watch(self) -> None:
        if self._task is None or self._task.done():
            self._task = asyncio.ensure_future(self._run())

    def clear(self) -> list[str]:
        dropped = self.queue.clear()
        for utterance in dropped:
            self._event(utterance, "finished", interrupted=True)
        return [u.id for u in dropped]

    def _event(self, utterance: Utterance, state: str, **extra: Any) -> None:
        if state == "started":
            self._started.add(utterance.id)
        elif utterance.id in self._started:
            self._started.discard(utterance.id)
        elif not extra.get("interrupted"):
            self._event(utterance, "started")  # too short to be seen starting: still report both
        event = {"type": "playback", "session": self.session_id, "state": state, "utterance": utterance.id,
                 "source": utterance.source, **extra}
        for key, send in list(self.listeners.items()):
            try:
                result = send(event)
                if asyncio.iscoroutine(result):
                    asyncio.ensure_future(_quietly(result, lambda k=key: self.forget(k)))
            except Exception:  # a listener that went away
                self.forget(key)

    async def _run(self) -> None:
        """Every 20 ms: report utterances whose first/last frame is on air."""
        while self.queue.queue or self.queue.playing:
            shown_until = self.on_air() + SAMPLES_PER_FRAME
            for utterance in list(self.queue.playing):
                if utterance.id not in self._started and shown_until > utterance.first_sample:
                    self._event(utterance, "started")
                if utterance.last_sample is not None and shown_until >= utterance.last_sample:
                    self.queue.playing.remove(utterance)
                    self._event(utterance, "finished")
            await asyncio.sleep(0.02)

    def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
        self.listeners.clear()


async def _quietly(coro: Awaitable[None], on_error: Callable[[], None]) -> None:
    try:
        await coro
    except Exception:
        on_error()
