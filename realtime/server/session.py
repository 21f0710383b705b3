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
from aiortc.contrib.media import MediaRelay

from realtime.media.jitter import AudioPacketBuffer, replace_jitter_buffer
from realtime.server.config import ServerConfig
from realtime.server.ingest import AudioIngest
from realtime.server.pipeline import MotionPipeline
from realtime.server.playout import Playout
from realtime.server.protocol import Instruction, ProtocolError
from realtime.server.stats import StageTimes
from realtime.server.tracks import AvatarVideoTrack, TimedTrack, VoiceTrack

log = logging.getLogger(__name__)


def peer_connection(config: ServerConfig) -> RTCPeerConnection:
    servers = [RTCIceServer(urls=url) for url in config.ice_servers]
    return RTCPeerConnection(RTCConfiguration(iceServers=servers))


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
    return RTCSessionDescription(sdp=sdp, type="offer")


@dataclass
class SessionParts:
    """The per-session objects that take real work to build (built off the event loop)."""

    renderer: Any
    sampler: Any
    still: Any  # yuv420p pixels of the portrait at rest, shown until the first rendered frame

    @classmethod
    def build(cls, resources, config: ServerConfig, instruction: Instruction) -> SessionParts:
        import numpy as np

        from realtime.media.stream import rgb_to_yuv420
        from realtime.motion.sampler import SamplerConfig, StreamingSampler
        from realtime.vocab import neutral

        renderer = resources.renderer()
        still = rgb_to_yuv420(np.asarray(renderer(neutral(1)))[0])
        sampler = StreamingSampler(resources.model, resources.encoder, SamplerConfig(), seed=config.seed,
                                   denoiser=resources.denoiser())
        sampler.set_instruction(instruction.text, instruction.intensity)  # takes effect from the first chunk
        return cls(renderer, sampler, still)


class Session:
    def __init__(self, config: ServerConfig, parts: SessionParts, instruction: Instruction,
                 on_closed: Callable[[Session], Awaitable[None]]):
        self.id = secrets.token_urlsafe(8)
        self.config = config
        self.instruction = instruction
        self.created = time.monotonic()
        self.last_message = self.created
        self.closed = False
        self._on_closed = on_closed
        self.stats = StageTimes()
        self.playout = Playout(parts.still, self.stats, jitter_frames=config.jitter_frames,
                               max_buffered=config.max_buffered_frames,
                               align_margin_s=config.playout_margin_ms / 1000.0, trim_window_s=config.trim_window_s)
        self.pipeline = MotionPipeline(parts.sampler, parts.renderer, self.playout, self.stats, name=self.id,
                                       max_backlog_s=config.max_backlog_s)
        self.ingest = AudioIngest(self.pipeline, self.stats, self.playout.audio_rate, config.silence_fill_s)
        self.video = AvatarVideoTrack(self.playout, self.stats)
        self.voice = VoiceTrack(self.playout)
        self.relay = MediaRelay()
        self.pc = peer_connection(config)
        self.viewers: set[RTCPeerConnection] = set()
        self.control_handler: Callable[[Any, str | bytes], Awaitable[None]] | None = None

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

            @channel.on("message")
            def on_message(raw) -> None:
                self.touch()
                if self.control_handler is not None:
                    asyncio.ensure_future(self.control_handler(channel, raw))

        @pc.on("connectionstatechange")
        async def on_state() -> None:
            if pc.connectionState in ("failed", "closed"):
                await self.close(f"peer connection {pc.connectionState}")

        try:
            await pc.setRemoteDescription(offer)
        except Exception as exc:  # aiortc raises ValueError/KeyError/… on SDP it cannot use
            raise ProtocolError(f"bad SDP offer: {exc}") from None
        pc.addTrack(TimedTrack(self.relay.subscribe(self.video, buffered=False), self.stats))
        pc.addTrack(self.relay.subscribe(self.voice, buffered=True))
        await pc.setLocalDescription(await pc.createAnswer())
        self.pipeline.start()
        self.ingest.start()
        return pc.localDescription

    async def add_viewer(self, offer: RTCSessionDescription,
                         max_viewers: int) -> tuple[RTCPeerConnection, RTCSessionDescription]:
        if len(self.viewers) >= max_viewers:
            raise ProtocolError(f"session {self.id} already has {len(self.viewers)} viewers (the limit)")
        pc = peer_connection(self.config)
        self.viewers.add(pc)

        @pc.on("connectionstatechange")
        async def on_state() -> None:
            if pc.connectionState in ("failed", "closed"):
                self.viewers.discard(pc)
                await pc.close()

        try:
            await pc.setRemoteDescription(offer)
            pc.addTrack(self.relay.subscribe(self.video, buffered=False))
            if "m=audio" in offer.sdp:
                pc.addTrack(self.relay.subscribe(self.voice, buffered=True))
            await pc.setLocalDescription(await pc.createAnswer())
        except Exception as exc:
            self.viewers.discard(pc)
            await pc.close()
            raise ProtocolError(f"bad SDP offer: {exc}") from None
        return pc, pc.localDescription

    # --- control ---------------------------------------------------------------------------------------
    def touch(self) -> None:
        self.last_message = time.monotonic()

    async def instruct(self, instruction: Instruction, encode: Callable[[str], Awaitable[Any]]) -> int:
        """Validates and encodes the text off the loop, then hands it to the worker; -> the frame it starts at."""
        if instruction.text is not None:
            await encode(instruction.text)  # raises the encoder's error; warms its cache for the worker
        frame = await asyncio.wrap_future(self.pipeline.instruct(instruction.text, instruction.intensity))
        self.instruction = instruction
        return frame

    @property
    def last_activity(self) -> float:
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
        if self.closed:
            return
        self.closed = True
        log.info("session %s closing: %s", self.id, reason)
        await self.ingest.stop()
        self.video.stop()
        self.voice.stop()
        for viewer in list(self.viewers):
            await viewer.close()
        self.viewers.clear()
        await self.pc.close()
        await asyncio.get_running_loop().run_in_executor(None, self.pipeline.stop)
        await self._on_closed(self)

