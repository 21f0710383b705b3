"""Microphones (a sound file or a live device) and frame sinks for the Python client."""
from __future__ import annotations

import asyncio
import threading
import time
from pathlib import Path

import numpy as np
from aiortc.mediastreams import MediaStreamError, MediaStreamTrack

from realtime.media import load_audio
from realtime.media.stream import audio_frame
from realtime.vocab import AUDIO_PTIME_S as PTIME
from realtime.vocab import WEBRTC_AUDIO_RATE as RATE


class PacedAudioTrack(MediaStreamTrack):
    """Base for microphones: 20 ms mono s16 frames at 48 kHz, paced by the wall clock."""

    kind = "audio"

    def __init__(self) -> None:
        super().__init__()
        self.samples = int(RATE * PTIME)
        self._start: float | None = None
        self._sent = 0
        self.first_sent_at: float | None = None  # monotonic time of the first frame (sync measurements)

    def next_samples(self) -> np.ndarray | None:
        raise NotImplementedError

    async def recv(self):
        if self.readyState != "live":
            raise MediaStreamError
        if self._start is None:
            self._start = time.monotonic()
            self.first_sent_at = self._start
        delay = self._start + self._sent * PTIME - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)
        samples = self.next_samples()
        if samples is None:
            self.stop()
            raise MediaStreamError
        frame = audio_frame(samples, RATE, self._sent * self.samples)
        self._sent += 1
        return frame


class FileMicrophone(PacedAudioTrack):
    """A sound file (any rate, any channels) played as a live microphone; silence after its end (or the end of
    the track with `end_with_file`), optionally looped."""

    def __init__(self, path: str | Path, loop: bool = False, end_with_file: bool = False, lead_silence_s: float = 0.0):
        super().__init__()
        audio = load_audio(path, target=RATE)
        self.audio = np.concatenate([np.zeros(int(lead_silence_s * RATE), np.float32), audio])
        self.loop, self.end_with_file = loop, end_with_file
        self._pos = 0

    @property
    def duration_s(self) -> float:
        return len(self.audio) / RATE

    def next_samples(self) -> np.ndarray | None:
        n = self.samples
        if self._pos >= len(self.audio):
            if self.loop:
                self._pos = 0
            elif self.end_with_file:
                return None
            else:
                return np.zeros(n, np.float32)
        chunk = self.audio[self._pos:self._pos + n]
        self._pos += n
        return np.pad(chunk, (0, n - len(chunk)))


class PushMicrophone(PacedAudioTrack):
    """Audio a program produces (a TTS, a mixer), pushed from code and sent as a live microphone: silence when
    nothing is queued. `push` and `clear` are called on the event loop that runs the call."""

    def __init__(self, max_queued_s: float = 60.0):
        super().__init__()
        self._chunks: list[np.ndarray] = []
        self._queued, self.max_queued = 0, int(max_queued_s * RATE)

    @property
    def queued_s(self) -> float:
        return self._queued / RATE

    def push(self, samples: np.ndarray, rate: int = RATE) -> None:
        from realtime.media.audio import resample

        audio = np.asarray(samples, np.float32) if rate == RATE else resample(samples, rate, RATE)
        if self._queued + len(audio) > self.max_queued:
            raise ValueError(f"{self.queued_s:.1f} s already queued (limit {self.max_queued / RATE:g} s)")
        self._chunks.append(audio.astype(np.float32))
        self._queued += len(audio)

    def clear(self) -> None:
        self._chunks, self._queued = [], 0

    def next_samples(self) -> np.ndarray:
        out, need = [], self.samples
        while need and self._chunks:
            head = self._chunks[0]
            out.append(head[:need])
            if len(head) <= need:
                self._chunks.pop(0)
            else:
                self._chunks[0] = head[need:]
            need -= len(out[-1])
        self._queued -= self.samples - need
        return np.pad(np.concatenate(out), (0, need)) if out else np.zeros(self.samples, np.float32)


class DeviceMicrophone(PacedAudioTrack):
    """The default input device through `sounddevice` (optional: pip install sounddevice)."""

    def __init__(self, device: int | str | None = None):
        super().__init__()
        try:
            import sounddevice
        except ImportError as exc:
            raise RuntimeError("a live microphone needs the optional package sounddevice "
                               "(pip install sounddevice); use --wav FILE otherwise") from exc
        self._buffer = np.zeros(0, np.float32)
        self._lock = threading.Lock()
        self._stream = sounddevice.InputStream(samplerate=RATE, channels=1, dtype="float32", device=device,
                                               blocksize=self.samples, callback=self._on_audio)
        self._stream.start()

    def _on_audio(self, data, frames, time_info, status) -> None:
        with self._lock:
            self._buffer = np.concatenate([self._buffer, data[:, 0]])[-RATE:]  # keep at most 1 s

    def next_samples(self) -> np.ndarray:
        with self._lock:
            chunk, self._buffer = self._buffer[:self.samples], self._buffer[self.samples:]
        return np.pad(chunk, (0, self.samples - len(chunk)))

    def stop(self) -> None:
        self._stream.close()
        super().stop()


class Mp4Sink:
    """Collects received frames and returned audio into an mp4 (H.264 + AAC) when closed."""

    def __init__(self, path: str | Path):
        from realtime.media import VideoWriter

        self.path = Path(path)
        self._writer: VideoWriter | None = None
        self._VideoWriter = VideoWriter
        self.audio: list[np.ndarray] = []

    def frame(self, rgb: np.ndarray) -> None:
        if self._writer is None:
            self._writer = self._VideoWriter(self.path, size=rgb.shape[0])
        self._writer.write(rgb[None])

    def voice(self, samples: np.ndarray) -> None:
        self.audio.append(samples)

    def close(self) -> Path | None:
        if self._writer is None:
            return None
        audio = np.concatenate(self.audio) if self.audio else None
        self._writer.close(audio, RATE)
        return self.path

