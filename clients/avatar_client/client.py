"""AvatarClient: call the avatar server from Python (signalling over /ws, media over WebRTC).

    async with AvatarClient("ws://127.0.0.1:8080/ws") as client:
        await client.call(FileMicrophone("speech.wav"), instruction="smile warmly", on_frame=show)
        await client.instruct("look surprised", intensity=0.7)
        await asyncio.sleep(10)
        print(client.measurements())
"""
from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import msgpack
import numpy as np
from aiortc import RTCPeerConnection, RTCSessionDescription
from aiortc.mediastreams import MediaStreamError, MediaStreamTrack
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from realtime.media.conceal import LossConcealer
from realtime.media.jitter import MarkerFrameBuffer, install_fast_buffer
from realtime.vocab import WEBRTC_AUDIO_RATE

# (pixels, arrival time.monotonic()); pixels are (H, W, 3) RGB, or (H, W) luma with frame_format="gray"
FrameCallback = Callable[[np.ndarray, float], None]
AudioCallback = Callable[[np.ndarray, float], None]  # (mono float32 at 48 kHz, arrival time)


class AvatarError(RuntimeError):
    """The server answered {"type": "error"} (its message is the exception's text)."""


class AvatarClosed(AvatarError):
    """The connection to the server is gone."""


@dataclass
class Received:
    """What arrived on one incoming track, with arrival times for measurements."""

    times: list[float] = field(default_factory=list)
    pts: list[int] = field(default_factory=list)
    size: tuple[int, int] | None = None
    concealed_s: float = 0.0  # audio: lost packets filled in by concealment

    def presented(self, clock_hz: int) -> np.ndarray:
        """Each frame's time on the sender's clock (its RTP timestamp, unwrapped), placed on the monotonic clock
        by the least-delayed arrival: when a player that syncs by timestamps shows it. Arrival times also carry
        this process's own queueing, which a player's jitter buffer absorbs."""
        if not self.pts:
            return np.zeros(0)
        steps = np.diff(np.asarray(self.pts, np.int64)) % 2**32
        steps[steps >= 2**31] -= 2**32  # a packet reordered across a wrap steps back, not 2^32 forward
        sent = np.concatenate([[0], np.cumsum(steps)]) / clock_hz
        return sent + float(np.min(np.asarray(self.times) - sent))

    def fps(self, skip_s: float = 1.0) -> float:
        """Mean frame rate after the first `skip_s` (connection start-up)."""
        if len(self.times) < 3:
            return 0.0
        t = np.asarray(self.times)
        t = t[t >= t[0] + skip_s] if t[-1] - t[0] > 2 * skip_s else t
        return float((len(t) - 1) / max(t[-1] - t[0], 1e-9))


class AvatarClient:
    def __init__(self, url: str = "ws://127.0.0.1:8080/ws", binary: bool = True, timeout_s: float = 20.0,
                 ssl: Any = None, origin: str | None = None):
        """`ssl`: an `ssl.SSLContext` for wss:// (e.g. one that trusts a self-signed certificate); `origin`: send
        this Origin header, as a browser page would (programs send none)."""
        self.url, self.binary, self.timeout_s = url, binary, timeout_s
        self.ssl, self.origin = ssl, origin
        self.ws: ClientConnection | None = None
        self.pc: RTCPeerConnection | None = None
        self.channel = None
        self.session: str | None = None
        self.view_key: str | None = None  # lets others watch this call: view(session, key=...)
        self.ended: dict[str, Any] | None = None  # the server's {"type": "closed", "reason": ...} for our call
        self.video = Received()
        self.audio = Received()
        self.rtts: list[float] = []
        self.video_buffer: MarkerFrameBuffer | None = None  # the video buffer (frames_given_up to packet loss)
        self._inbox: asyncio.Queue = asyncio.Queue()
        self.events: asyncio.Queue = asyncio.Queue()  # {"type": "playback", "state": "started"|"finished", …}
        self._channel_inbox: asyncio.Queue = asyncio.Queue()
        self._lock = asyncio.Lock()
        self._reader: asyncio.Task | None = None
        self._tasks: list[asyncio.Task] = []
        self._first_frame = asyncio.Event()
        self.call_started: float | None = None

    # --- connection --------------------------------------------------------------------------------------
    async def connect(self) -> AvatarClient:
        extra = {"ssl": self.ssl} if self.ssl is not None else {}
        if self.origin is not None:
            extra["origin"] = self.origin
        self.ws = await connect(self.url, max_size=1 << 22, open_timeout=self.timeout_s, **extra)
        self._reader = asyncio.ensure_future(self._read())
        return self

    async def __aenter__(self) -> AvatarClient:
        return await self.connect()

    async def __aexit__(self, *exc) -> None:
        await self.close()

    async def _read(self) -> None:
        try:
            async for raw in self.ws:
                message = _decode(raw)
                if message.get("type") == "closed" and message.get("session") == self.session:
                    self.ended = message
                # events the server sends on its own (playback) are kept apart from the answers to requests
                (self.events if message.get("type") == "playback" else self._inbox).put_nowait(message)
        except ConnectionClosed:
            pass
        finally:
            self._inbox.put_nowait(None)

    async def request(self, message: dict[str, Any], expect: str) -> dict[str, Any]:
        """Send one message over /ws; return the answer of type `expect` (AvatarError on {"type":"error"})."""
        if self.ws is None:
            raise AvatarClosed("not connected: call connect() first")
        async with self._lock:
            await self.ws.send(_encode(message, self.binary))
            return await _expect(self._inbox, expect, self.timeout_s)

    async def send_raw(self, raw: str | bytes) -> dict[str, Any]:
        """Send bytes or text as they are (tests of malformed input) and return the next answer."""
        async with self._lock:
            await self.ws.send(raw)
            reply = await asyncio.wait_for(self._inbox.get(), self.timeout_s)
            if reply is None:
                raise AvatarClosed("the server closed the connection")
            return reply

    # --- the call ----------------------------------------------------------------------------------------
    async def call(self, microphone: MediaStreamTrack | None = None, instruction: str | None = None,
                   intensity: float | None = None, on_frame: FrameCallback | None = None,
                   on_audio: AudioCallback | None = None, control_channel: bool = True,
                   frame_format: str = "rgb24", portrait: str | None = None) -> str:
        """Offer a call (mic = the first audio track), receive video + the delayed voice; -> session id.
        `portrait` names one of the server's portraits (GET /api/portraits) instead of its default face."""
        self.pc = pc = RTCPeerConnection()
        if microphone is not None:
            pc.addTrack(microphone)
        else:
            pc.addTransceiver("audio", direction="recvonly")
        pc.addTransceiver("video", direction="recvonly")
        if control_channel:
            self.channel = pc.createDataChannel("control")
            self.channel.on("message", lambda raw: self._channel_inbox.put_nowait(_decode(raw)))

        self._receive(pc, on_frame, on_audio, frame_format)

        await pc.setLocalDescription(await pc.createOffer())
        message: dict[str, Any] = {"type": "offer", "sdp": pc.localDescription.sdp, "sdpType": "offer"}
        if instruction is not None:
            message["instruction"] = instruction
        if intensity is not None:
            message["intensity"] = intensity
        if portrait is not None:
            message["portrait"] = portrait
        try:
            answer = await self.request(message, "answer")
            await pc.setRemoteDescription(RTCSessionDescription(sdp=answer["sdp"], type=answer["sdpType"]))
        except BaseException:
            await self._close_pc()
            raise
        self.session, self.view_key = answer["session"], answer.get("viewKey")
        self.call_started = time.monotonic()
        return self.session

    async def view(self, session: str, on_frame: FrameCallback | None = None, audio: bool = False,
                   frame_format: str = "rgb24", key: str | None = None,
                   on_audio: AudioCallback | None = None) -> str:
        """Receive another session's video (what /view?session=ID&key=KEY shows) on this client; `key` is the
        caller's `viewKey` (not needed with control rights)."""
        self.pc = pc = RTCPeerConnection()
        pc.addTransceiver("video", direction="recvonly")
        if audio:
            pc.addTransceiver("audio", direction="recvonly")

        self._receive(pc, on_frame, on_audio, frame_format)

        await pc.setLocalDescription(await pc.createOffer())
        try:
            message = {"type": "view", "session": session, "sdp": pc.localDescription.sdp, "sdpType": "offer"}
            if key is not None:
                message["key"] = key
            answer = await self.request(message, "answer")
            await pc.setRemoteDescription(RTCSessionDescription(sdp=answer["sdp"], type=answer["sdpType"]))
        except BaseException:
            await self._close_pc()
            raise
        return session

    def _receive(self, pc: RTCPeerConnection, on_frame: FrameCallback | None, on_audio: AudioCallback | None,
                 fmt: str) -> None:
        @pc.on("track")
        def on_track(track: MediaStreamTrack) -> None:
            buffer = install_fast_buffer(pc, track)  # no wait for the next frame; a lost packet holds nothing back
            if track.kind == "video":
                self.video_buffer = buffer
                work = receive_video(track, self.video, on_frame, fmt, self._first_frame)
            else:
                work = receive_audio(track, self.audio, on_audio)
            self._tasks.append(asyncio.ensure_future(work))

    async def wait_first_frame(self, timeout_s: float = 20.0) -> None:
        await asyncio.wait_for(self._first_frame.wait(), timeout_s)

    # --- control -----------------------------------------------------------------------------------------
    async def instruct(self, text: str | None, intensity: float | None = None, session: str | None = None,
                       via_channel: bool = False) -> dict[str, Any]:
        """-> {"type": "instructed", "text", "frame", ...}; over /ws, or the call's `control` data channel."""
        message: dict[str, Any] = {"type": "instruct", "text": text}
        if intensity is not None:
            message["intensity"] = intensity
        if session is not None:
            message["session"] = session
        if via_channel:
            return await self._channel_request(message, "instructed")
        return await self.request(message, "instructed")

    async def _channel_request(self, message: dict[str, Any], expect: str) -> dict[str, Any]:
        if self.channel is None or self.channel.readyState != "open":
            raise AvatarClosed("the control data channel is not open")
        self.channel.send(_encode(message, self.binary))
        return await _expect(self._channel_inbox, expect, self.timeout_s)

    async def ping(self, via_channel: bool = False) -> float:
        """Round trip in seconds (over the data channel when asked and open, else /ws)."""
        t0 = time.perf_counter()
        message = {"type": "ping", "t": t0}
        if via_channel:
            await self._channel_request(message, "pong")
        else:
            await self.request(message, "pong")
        rtt = time.perf_counter() - t0
        self.rtts.append(rtt)
        return rtt

    # --- speech that is not the microphone's ------------------------------------------------------------------
    async def say(self, text: str, session: str | None = None, voice: str | None = None,
                  rate: int | None = None) -> dict[str, Any]:
        """The avatar speaks `text` (espeak-ng) in the call (or `session`); -> {"utterance", "duration_s", …}."""
        message = {"type": "say", "text": text, "session": session, "voice": voice, "rate": rate}
        return await self.request({k: v for k, v in message.items() if v is not None}, "say")

    async def push_pcm(self, samples: np.ndarray, rate: int, session: str | None = None) -> dict[str, Any]:
        """Speech a program made (float32 in [-1, 1] or int16, mono) for the avatar to speak, over /ws."""
        pcm = samples if samples.dtype == np.int16 else (np.clip(samples, -1, 1) * 32767).astype(np.int16)
        message = {"type": "pcm", "rate": int(rate), "samples": pcm.astype("<i2").tobytes()}
        if session is not None:
            message["session"] = session
        return await self.request(message, "pcm")

    async def clear(self, session: str | None = None) -> dict[str, Any]:
        """Barge-in: drop the queued speech; the mouth closes and the voice stops."""
        return await self.request({"type": "clear", **({"session": session} if session else {})}, "clear")

    async def playback(self, state: str | None = None, timeout_s: float | None = None) -> dict[str, Any]:
        """The next playback event (of `state`, if given)."""
        async with asyncio.timeout(timeout_s or self.timeout_s):
            while True:
                event = await self.events.get()
                if state is None or event.get("state") == state:
                    return event

    async def auth(self, token: str) -> dict[str, Any]:
        return await self.request({"type": "auth", "token": token}, "auth")

    async def sessions(self) -> list[dict[str, Any]]:
        return (await self.request({"type": "sessions"}, "sessions"))["sessions"]

    async def stats(self, session: str | None = None) -> dict[str, Any]:
        message: dict[str, Any] = {"type": "stats"}
        if session is not None:
            message["session"] = session
        return await self.request(message, "stats")

    def measurements(self) -> dict[str, Any]:
        rtt = np.asarray(self.rtts) * 1000 if self.rtts else None
        return {"session": self.session, "video_frames": len(self.video.times), "video_fps": round(self.video.fps(), 2),
                "video_size": self.video.size, "audio_frames": len(self.audio.times),
                "rtt_ms_median": None if rtt is None else round(float(np.median(rtt)), 2)}

    # --- teardown ----------------------------------------------------------------------------------------
    async def hangup(self) -> None:
        """End the call (server side too) but keep the WebSocket for control messages."""
        if self.session is not None and self.ws is not None:
            try:
                await self.request({"type": "bye"}, "bye")
            except AvatarError:
                pass
        await self._close_pc()

    async def _close_pc(self) -> None:
        for task in self._tasks:
            task.cancel()
        self._tasks.clear()
        if self.pc is not None:
            await self.pc.close()
            self.pc = None
        self.session = None

    async def close(self) -> None:
        await self._close_pc()
        if self.ws is not None:
            await self.ws.close()
            self.ws = None
        if self._reader is not None:
            await asyncio.gather(self._reader, return_exceptions=True)


async def receive_video(track: MediaStreamTrack, received: Received, on_frame: FrameCallback | None, fmt: str,
                        first_frame: asyncio.Event) -> None:
    """Reads a video track to its end: arrival times, pts and size into `received`, pixels to `on_frame`."""
    try:
        while True:
            frame = await track.recv()
            now = time.monotonic()
            received.times.append(now)
            received.pts.append(int(frame.pts or 0))
            received.size = (frame.width, frame.height)
            first_frame.set()
            if on_frame is not None:
                on_frame(frame.to_ndarray(format=fmt), now)
    except MediaStreamError:
        pass


async def receive_audio(track: MediaStreamTrack, received: Received, on_audio: AudioCallback | None) -> None:
    """Reads an audio track to its end: arrival times and RTP pts into `received`, mono float32 48 kHz to
    `on_audio`; a lost packet is heard as the voice going on, as browsers do (`received.concealed_s`)."""
    import av

    resampler = av.AudioResampler(format="flt", layout="mono", rate=WEBRTC_AUDIO_RATE)
    conceal = LossConcealer()
    try:
        while True:
            packet = await track.recv()
            now = time.monotonic()
            for frame in conceal(packet):
                received.times.append(now)
                received.pts.append(int(frame.pts or 0))  # 48 kHz RTP time: a lost packet leaves a gap
                if on_audio is not None:
                    frame.pts = None
                    for out in resampler.resample(frame):
                        on_audio(out.to_ndarray().reshape(-1), now)
            received.concealed_s = conceal.concealed_s
    except MediaStreamError:
        pass


async def _expect(inbox: asyncio.Queue, expect: str, timeout_s: float) -> dict[str, Any]:
    async with asyncio.timeout(timeout_s):
        while True:
            reply = await inbox.get()
            if reply is None:
                raise AvatarClosed("the server closed the connection")
            if reply.get("type") == expect:
                return reply
            if reply.get("type") == "error":
                raise AvatarError(str(reply.get("message")))


def _encode(message: dict[str, Any], binary: bool) -> str | bytes:
    return msgpack.packb(message, use_bin_type=True) if binary else json.dumps(message)


def _decode(raw: str | bytes) -> dict[str, Any]:
    value = msgpack.unpackb(raw, raw=False) if isinstance(raw, (bytes, bytearray)) else json.loads(raw)
    return value if isinstance(value, dict) else {"type": "invalid", "value": value}
