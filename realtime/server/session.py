"""A live call: one peer connection, its pipeline (ingest -> worker -> playout -> tracks) and its viewers."""
from __future__ import annotations

import asyncio
import logging
import secrets
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from aiortc import RTCConfiguration, RTCIceServer, RTCPeerConnection, RTCSessionDescription
from aiortc.sdp import SessionDescription

from realtime.media.jitter import AudioPacketBuffer, replace_jitter_buffer
from realtime.media.vp8 import use_realtime_vp8
from realtime.server.access import RateLimit
from realtime.server.config import ServerConfig
from realtime.server.ingest import AudioIngest
from realtime.server.pipeline import MotionPipeline, WorkerGone
from realtime.server.playout import Playout
from realtime.server.protocol import Instruction, ProtocolError, encode, error
from realtime.server.speech_source import SessionSpeech
from realtime.server.stats import StageTimes
from realtime.server.tracks import AvatarVideoTrack, TimedTrack, VoiceTrack
from realtime.vocab import SAMPLES_PER_FRAME

log = logging.getLogger(__name__)


def ice_servers(config: ServerConfig) -> list[RTCIceServer]:
    """STUN entries as they are; TURN entries with the configured user and credential."""
    return [RTCIceServer(urls=url, username=config.ice_username, credential=config.ice_credential)
            if url.startswith(("turn:", "turns:")) else RTCIceServer(urls=url) for url in config.ice_servers]


def peer_connection(config: ServerConfig) -> RTCPeerConnection:
    use_realtime_vp8()  # the VP8 this server sends: libvpx set for rendered frames (realtime/media/vp8.py)
    return RTCPeerConnection(RTCConfiguration(iceServers=ice_servers(config)))


def parse_offer(message: dict[str, Any]) -> RTCSessionDescription:
    sdp, kind = message.get("sdp"), message.get("sdpType", "offer")
    if not isinstance(sdp, str) or not sdp.strip():
        raise ProtocolError('an offer needs an "sdp" string')
    if kind != "offer":
        raise ProtocolError(f'"sdpType" must be "offer", got {kind!r}')
    if not sdp.lstrip().startswith("v=0"):
        raise ProtocolError("not an SDP offer (it must start with v=0)")
    if "m=video" not in sdp:
        raise ProtocolError("the offer has no video m-line: add a receive-only video transceiver")
    try:  # cheap, before any per-session setup: aiortc's own parser
        SessionDescription.parse(sdp)
    except Exception as exc:  # ValueError, IndexError, KeyError… on text that only looks like SDP
        raise ProtocolError(f"bad SDP offer: {type(exc).__name__}: {exc}") from None
    return RTCSessionDescription(sdp=sdp, type="offer")


def _wants_video(sdp: str) -> bool:
    """Whether the offer has a video m-line that receives (a caller, a WHIP client asking for the avatar)."""
    from aiortc.sdp import SessionDescription

    return any(m.kind == "video" and m.direction in (None, "sendrecv", "recvonly")
               for m in SessionDescription.parse(sdp).media)


@dataclass
class SessionParts:
    """The per-session objects that take real work to build (built off the event loop)."""

    renderer: Any
    sampler: Any
    still: Any  # yuv420p pixels of the portrait at rest, shown until the first rendered frame

    @classmethod
    def build(cls, resources, config: ServerConfig, instruction: Instruction, renderer=None) -> SessionParts:
        """`renderer`: the session's own portrait (see portraits.py); None = the server's."""
        import numpy as np

        from realtime.media.stream import rgb_to_yuv420
        from realtime.vocab import neutral

        if config.replay_frames is not None:  # the cost floor: no model, no render (benchmarks only)
            from realtime.server.replay import ReplayRenderer, ReplaySampler, load_frames

            renderer, sampler = ReplayRenderer(load_frames(config.replay_frames)), ReplaySampler()
            first = renderer(neutral(1))[0]
            return cls(renderer, sampler, first if renderer.yields_yuv else rgb_to_yuv420(first))
        renderer = renderer or resources.renderer()
        still = rgb_to_yuv420(np.asarray(renderer(neutral(1)))[0])
        sampler = resources.sampler(seed=config.seed)  # the config's [sampler], on the shared denoiser
        sampler.set_instruction(instruction.text, instruction.intensity)  # takes effect from the first chunk
        return cls(renderer, sampler, still)


class Session:
    def __init__(self, config: ServerConfig, parts: SessionParts, instruction: Instruction,
                 on_closed: Callable[[Session], Awaitable[None]]):
        self.id = secrets.token_urlsafe(8)
        self.view_key = secrets.token_urlsafe(16)  # lets whoever the caller shares it with watch (OBS /view)
        self.config = config
        self.instruction = instruction
        self.created = time.monotonic()
        self.last_message = self.created
        self.closed = False
        self.close_reason: str | None = None
        self._on_closed = on_closed
        self.stats = StageTimes()
        self.playout = Playout(parts.still, self.stats, jitter_frames=config.jitter_frames,
                               max_buffered=config.max_buffered_frames,
                               align_margin_s=config.playout_margin_ms / 1000.0, trim_window_s=config.trim_window_s)
        self.pipeline = MotionPipeline(parts.sampler, parts.renderer, self.playout, self.stats, name=self.id,
                                       max_backlog_s=config.max_backlog_s, late_frame_s=config.late_frame_s)
        self.ingest = AudioIngest(self.pipeline, self.stats, self.playout.audio_rate, config.silence_fill_s)
        self.speech = SessionSpeech(self.id, self._on_air_sample, self.playout.audio_rate)  # say, PCM, clear
        self.ingest.mixer = self.speech.queue.mix
        self.pc = peer_connection(config)
        self.connected_at: float | None = None
        self.disconnected_since: float | None = None
        # Every outgoing track reads the playout's per-tick decisions on its own, paced by its own timestamps:
        # no relay queue can fill up behind a viewer that reads slowly or not at all.
        self.video = AvatarVideoTrack(self.playout, self.stats)
        self.voice = VoiceTrack(self.playout)
        self.viewers: set[RTCPeerConnection] = set()
        self.control_handler: Callable[[Any, str | bytes], Awaitable[None]] | None = None
        self.notify: Callable[[dict[str, Any]], Awaitable[None]] | None = None  # tells the caller why it ended
        self._channel_inbox: asyncio.Queue = asyncio.Queue(config.max_channel_messages)
        self._channel_rate = RateLimit(config.message_rate, config.message_burst)
        self._channel_task: asyncio.Task | None = None
        self._pending_instructions = 0

    # --- setup -----------------------------------------------------------------------------------------
    def _shorten_audio_jitter_buffer(self, track) -> None:
        """aiortc fixes the audio jitter buffer's prefetch at 4 packets; use the configured one instead."""
        from aiortc.jitterbuffer import JitterBuffer

        prefetch = self.config.audio_prefetch_packets
        replace_jitter_buffer(self.pc, track,
                              AudioPacketBuffer() if prefetch == 0 else JitterBuffer(capacity=16, prefetch=prefetch))

    async def answer(self, offer: RTCSessionDescription) -> RTCSessionDescription:
        pc = self.pc

        @pc.on("track")
        def on_track(track) -> None:
            if track.kind == "audio":
                self._shorten_audio_jitter_buffer(track)
                self.ingest.attach(track)

        @pc.on("datachannel")
        def on_datachannel(channel) -> None:
            if channel.label != "control":
                return
            channel.on("message", lambda raw: self._queue_control(channel, raw))

        @pc.on("connectionstatechange")
        async def on_state() -> None:
            await self._connection_state(pc.connectionState)

        try:
            await pc.setRemoteDescription(offer)
        except Exception as exc:  # aiortc raises ValueError/KeyError/… on SDP it cannot use
            raise ProtocolError(f"bad SDP offer: {exc}") from None
        if _wants_video(offer.sdp):
            pc.addTrack(TimedTrack(self.video, self.stats))
        else:  # a WHIP publisher that sends its own video (OBS): refuse it rather than decode it for nothing
            for transceiver in pc.getTransceivers():
                if transceiver.kind == "video":
                    transceiver.direction = "inactive"
        pc.addTrack(self.voice)
        await pc.setLocalDescription(await pc.createAnswer())
        self.pipeline.start()
        self.ingest.start()
        self._channel_task = asyncio.ensure_future(self._serve_channel())
        return pc.localDescription

    async def _connection_state(self, state: str) -> None:
        now = time.monotonic()
        if state == "connected":
            self.connected_at = self.connected_at or now
            self.disconnected_since = None
        elif state == "disconnected":
            self.disconnected_since = self.disconnected_since or now
        elif state in ("failed", "closed"):
            await self.close(f"peer connection {state}")

    def _queue_control(self, channel, raw: str | bytes) -> None:
        """One task serves the channel in order; what it cannot keep up with is refused, never queued."""
        if not self._channel_rate.allow():
            busy = f"rate limit: more than {self.config.message_rate:g} messages per second on the control channel"
        elif self._channel_inbox.full():
            busy = f"too many messages waiting ({self._channel_inbox.maxsize}) on the control channel"
        else:
            self._channel_inbox.put_nowait((channel, raw))
            return
        if channel.readyState == "open":
            channel.send(encode(error(busy), not isinstance(raw, str)))

    async def _serve_channel(self) -> None:
        while True:
            channel, raw = await self._channel_inbox.get()
            if self.control_handler is not None:
                await self.control_handler(channel, raw)

    def new_viewer_tracks(self, audio: bool) -> list:
        tracks = [AvatarVideoTrack(self.playout, StageTimes())]
        return tracks + [VoiceTrack(self.playout)] if audio else tracks

    async def add_viewer(self, offer: RTCSessionDescription,
                         max_viewers: int) -> tuple[RTCPeerConnection, RTCSessionDescription]:
        if len(self.viewers) >= max_viewers:
            raise ProtocolError(f"session {self.id} already has {len(self.viewers)} viewers (the limit)")
        pc = peer_connection(self.config)
        self.viewers.add(pc)

        @pc.on("connectionstatechange")
        async def on_state() -> None:
            if pc.connectionState in ("failed", "closed"):
                await self.remove_viewer(pc)

        try:
            await pc.setRemoteDescription(offer)
            for track in self.new_viewer_tracks("m=audio" in offer.sdp):
                pc.addTrack(track)
            await pc.setLocalDescription(await pc.createAnswer())
        except Exception as exc:
            await self.remove_viewer(pc)
            raise ProtocolError(f"bad SDP offer: {exc}") from None
        return pc, pc.localDescription

    def _on_air_sample(self) -> int:
        """The session's 16 kHz sample where the frame on air began (audio the worker skipped counted in)."""
        return self.playout.shown_index * SAMPLES_PER_FRAME + self.pipeline.skipped_samples

    async def remove_viewer(self, pc: RTCPeerConnection) -> None:
        self.viewers.discard(pc)
        pc.remove_all_listeners()  # the handlers close over pc: a cycle only a full gc would free
        await pc.close()

    # --- control ---------------------------------------------------------------------------------------
    def touch(self) -> None:
        self.last_message = time.monotonic()

    async def instruct(self, instruction: Instruction, encode_text: Callable[[str], Awaitable[Any]]) -> int:
        """Validates and encodes the text off the loop, then hands it (with its encoding) to the worker; -> the
        frame it starts at. Bounded: a few at a time per session, each applied or failed within
        instruct_timeout_s."""
        if self._pending_instructions >= self.config.max_pending_instructions:
            raise ProtocolError(f"{self._pending_instructions} instructions are still being applied: wait for "
                                "their acknowledgements")
        self._pending_instructions += 1
        try:
            async with asyncio.timeout(self.config.instruct_timeout_s):
                embedding = None
                if instruction.text is not None:
                    embedding = await encode_text(instruction.text)  # raises the encoder's error
                frame = await asyncio.wrap_future(self.pipeline.instruct(instruction.text, instruction.intensity,
                                                                         embedding))
        except TimeoutError:
            raise ProtocolError(f"instruction not applied within {self.config.instruct_timeout_s:g} s "
                                "(the session is overloaded or ending)") from None
        except WorkerGone as exc:
            raise ProtocolError(f"instruction not applied: {exc}") from None
        finally:
            self._pending_instructions -= 1
        self.touch()
        self.instruction = instruction
        return frame

    @property
    def last_activity(self) -> float:
        """The caller's audio or instructions; pings and stats requests do not keep a call alive."""
        return max(self.last_message, self.ingest.last_audio)

    def describe(self, with_stats: bool = False) -> dict[str, Any]:
        info: dict[str, Any] = {"session": self.id, "instruction": self.instruction.text,
                                "intensity": self.instruction.intensity}
        if with_stats:
            info.update(age_s=round(time.monotonic() - self.created, 2), frame=self.playout.shown_index,
                        viewers=len(self.viewers), buffered_frames=self.playout.buffered,
                        sampler_latency_s=round(float(self.pipeline.sampler.latency_s), 3),
                        **self.stats.summary())
        return info

    # --- teardown --------------------------------------------------------------------------------------
    async def close(self, reason: str = "closed") -> None:
        """Frees everything the call holds; each step runs even if an earlier one fails, and the slot is
        always given back."""
        if self.closed:
            return
        self.closed, self.close_reason = True, reason
        log.info("session %s closing: %s", self.id, reason)
        loop = asyncio.get_running_loop()
        steps: list[tuple[str, Callable[[], Any]]] = [
            ("ingest", self.ingest.stop), ("speech", self.speech.stop), ("tracks", self._stop_tracks),
            ("viewers", self._close_viewers), ("peer connection", self.pc.close),
            ("worker", lambda: loop.run_in_executor(None, self.pipeline.stop)),
        ]
        try:
            for name, step in steps:
                try:
                    result = step()
                    if asyncio.isfuture(result) or asyncio.iscoroutine(result):
                        await asyncio.wait_for(result, 10.0)
                except Exception:
                    log.exception("session %s: closing its %s failed", self.id, name)
            self.pc.remove_all_listeners()
            self.playout.clear()
        finally:
            await self._on_closed(self)
        if self.notify is not None:
            try:
                await self.notify({"type": "closed", "session": self.id, "reason": reason})
            except Exception:  # the caller's WebSocket may be gone already
                pass
            self.notify = None

    def _stop_tracks(self) -> None:
        if self._channel_task is not None:
            self._channel_task.cancel()
        self.video.stop()
        self.voice.stop()

    async def _close_viewers(self) -> None:
        for viewer in list(self.viewers):
            await self.remove_viewer(viewer)
