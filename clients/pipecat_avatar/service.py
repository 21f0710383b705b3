"""AvatarVideoService: this project's avatar as a Pipecat processor, placed between a TTS and the output
transport (the place Pipecat gives avatar services).

    pipeline = Pipeline([..., tts, AvatarVideoService("ws://127.0.0.1:8080/ws"), transport.output()])

It opens a call on the avatar server (no microphone), sends the TTS audio as PCM over the call's WebSocket
(`pcm` messages: the server queues it, faster than real time is fine), and pushes downstream what comes back:
the avatar's frames as OutputImageRawFrame and its voice, re-timed to match them, as TTSAudioRawFrame. The
TTS's own audio frames are not passed on (the avatar's voice replaces them). On an interruption it sends
`clear`: the server drops the queued speech, the mouth closes and the voice stops.
"""
from __future__ import annotations

import asyncio
import time
from typing import Any

import numpy as np
from pipecat.frames.frames import (
    CancelFrame,
    EndFrame,
    Frame,
    InterruptionFrame,
    OutputImageRawFrame,
    StartFrame,
    TTSAudioRawFrame,
    TTSStoppedFrame,
)
from pipecat.processors.frame_processor import FrameDirection, FrameProcessor

from clients.avatar_client import AvatarClient

SILENCE = 1e-4  # received voice frames quieter than this (RMS) are not pushed: between utterances the server
# sends silence, and pushing it as TTS audio would keep the output transport's bot "speaking"


class AvatarVideoService(FrameProcessor):
    def __init__(self, url: str = "ws://127.0.0.1:8080/ws", *, token: str | None = None,
                 instruction: str | None = None, batch_s: float = 0.1, **kwargs: Any):
        super().__init__(**kwargs)
        self.url, self.token, self.instruction = url, token, instruction
        # TTS audio is sent in pcm messages of about batch_s (each one waits for its acknowledgement)
        self.batch_s = batch_s
        self._pending: list[np.ndarray] = []
        self._pending_rate = 0
        self._muted = False  # after an interruption: the voice still in flight from the server is not played
        self.client: AvatarClient | None = None
        self.session: str | None = None
        self._out: asyncio.Queue = asyncio.Queue(maxsize=256)  # frames from the call, pushed in order
        self._pusher: asyncio.Task | None = None
        self.playback: list[dict[str, Any]] = []  # the server's playback events (+ `received`, monotonic)

    # --- the call ----------------------------------------------------------------------------------------
    async def _start(self) -> None:
        self.client = await AvatarClient(self.url).connect()
        if self.token:
            await self.client.auth(self.token)
        self.session = await self.client.call(None, instruction=self.instruction, on_frame=self._on_frame,
                                              on_audio=self._on_audio)
        self._pusher = self.create_task(self._push_received())

    async def _stop(self) -> None:
        if self._pusher is not None:
            await self.cancel_task(self._pusher)
            self._pusher = None
        if self.client is not None:
            client, self.client = self.client, None
            await client.hangup()
            await client.close()

    def _on_frame(self, rgb: np.ndarray, arrival: float) -> None:
        image = OutputImageRawFrame(image=rgb.tobytes(), size=(rgb.shape[1], rgb.shape[0]), format="RGB")
        self._offer(image)

    def _on_audio(self, pcm: np.ndarray, arrival: float) -> None:
        if self._muted or float(np.sqrt(np.mean(pcm ** 2))) < SILENCE:
            return
        samples = (np.clip(pcm, -1, 1) * 32767).astype(np.int16)
        self._offer(TTSAudioRawFrame(audio=samples.tobytes(), sample_rate=48_000, num_channels=1))

    def _offer(self, frame: Frame) -> None:
        if self._out.full():  # a stalled downstream: drop the oldest rather than grow without bound
            self._out.get_nowait()
        self._out.put_nowait(frame)

    async def _push_received(self) -> None:
        while True:
            await self.push_frame(await self._out.get())
            while self.client is not None and not self.client.events.empty():
                event = self.client.events.get_nowait()
                self.playback.append({**event, "received": time.monotonic()})
                del self.playback[:-32]

    # --- frames ------------------------------------------------------------------------------------------
    async def process_frame(self, frame: Frame, direction: FrameDirection) -> None:
        await super().process_frame(frame, direction)
        if isinstance(frame, StartFrame):
            await self.push_frame(frame, direction)
            await self._start()
        elif isinstance(frame, TTSAudioRawFrame) and direction == FrameDirection.DOWNSTREAM:
            await self._send_speech(frame)
        elif isinstance(frame, TTSStoppedFrame):
            await self._flush()
            await self.push_frame(frame, direction)
        elif isinstance(frame, InterruptionFrame):
            self._pending, self._muted = [], True
            kept = [f for f in _drain(self._out) if not isinstance(f, TTSAudioRawFrame)]
            for f in kept:
                self._out.put_nowait(f)
            if self.client is not None:
                await self.client.clear()
            await self.push_frame(frame, direction)
        elif isinstance(frame, (EndFrame, CancelFrame)):
            await self._stop()
            await self.push_frame(frame, direction)
        else:
            await self.push_frame(frame, direction)

    async def _send_speech(self, frame: TTSAudioRawFrame) -> None:
        self._muted = False
        pcm = np.frombuffer(frame.audio, np.int16)
        if frame.num_channels > 1:
            pcm = pcm.reshape(-1, frame.num_channels).mean(1).astype(np.int16)
        if self._pending and frame.sample_rate != self._pending_rate:
            await self._flush()
        self._pending.append(pcm)
        self._pending_rate = frame.sample_rate
        if sum(len(p) for p in self._pending) >= self.batch_s * frame.sample_rate:
            await self._flush()

    async def _flush(self) -> None:
        if not self._pending or self.client is None:
            return
        pcm, self._pending = np.concatenate(self._pending), []
        step = 2 * self._pending_rate  # at most 2 s a message (the server's message size limit)
        for i in range(0, len(pcm), step):
            await self.client.push_pcm(pcm[i:i + step], self._pending_rate)


def _drain(queue: asyncio.Queue) -> list:
    items = []
    while not queue.empty():
        items.append(queue.get_nowait())
    return items
