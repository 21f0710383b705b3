"""WHIP publisher and WHEP viewer for any server that speaks them (RFC 9725; WHEP is its egress twin), written
from the RFC: one HTTP POST of a complete offer (Content-Type application/sdp), a 201 with the answer and a
Location, DELETE on that Location to end. Works against this project's server and any other WHIP/WHEP endpoint.

    async with WhipPublisher("http://127.0.0.1:8080/whip", FileMicrophone("speech.wav")) as publisher:
        async with WhepViewer("http://127.0.0.1:8080/whep/latest", on_frame=show) as viewer:
            await asyncio.sleep(10)
"""
from __future__ import annotations

import asyncio
from typing import Any
from urllib.parse import urljoin

import aiohttp
from aiortc import RTCPeerConnection, RTCSessionDescription
from aiortc.mediastreams import MediaStreamTrack

from clients.avatar_client.client import AudioCallback, FrameCallback, Received, receive_audio, receive_video
from realtime.media.jitter import install_fast_buffer


class WhipError(RuntimeError):
    """The endpoint refused the offer (its status and text are the message)."""

    def __init__(self, status: int, text: str):
        super().__init__(f"HTTP {status}: {text.strip()}")
        self.status = status


class _Endpoint:
    """One peer connection negotiated by POST, ended by DELETE on its Location."""

    def __init__(self, url: str, token: str | None = None, timeout_s: float = 20.0):
        self.url, self.token, self.timeout_s = url, token, timeout_s
        self.pc = RTCPeerConnection()
        self.location: str | None = None  # absolute URL of the resource the server made (None once deleted)
        self.resource: str | None = None
        self.view_key: str | None = None
        self.video, self.audio = Received(), Received()
        self._tasks: list[asyncio.Task] = []
        self.first_frame = asyncio.Event()

    def _headers(self, **extra: str) -> dict[str, str]:
        headers = dict(extra)
        if self.token:
            headers["Authorization"] = f"Bearer {self.token}"
        return headers

    async def _negotiate(self) -> None:
        await self.pc.setLocalDescription(await self.pc.createOffer())  # aiortc: candidates gathered already
        timeout = aiohttp.ClientTimeout(total=self.timeout_s)
        async with aiohttp.ClientSession(timeout=timeout) as http:
            async with http.post(self.url, data=self.pc.localDescription.sdp.encode(),
                                 headers=self._headers(**{"Content-Type": "application/sdp"})) as response:
                text = await response.text()
                if response.status != 201:
                    raise WhipError(response.status, text)
                if response.content_type != "application/sdp":
                    raise WhipError(response.status, f"answer is {response.content_type}, not application/sdp")
                if "Location" not in response.headers:
                    raise WhipError(response.status, "the 201 has no Location header")
                self.location = urljoin(self.url, response.headers["Location"])
                self.resource = self.location  # kept after DELETE
                self.view_key = response.headers.get("View-Key")  # this project's: WHEP viewers' Bearer
        await self.pc.setRemoteDescription(RTCSessionDescription(sdp=text, type="answer"))

    async def start(self) -> Any:
        try:
            await self._negotiate()
        except BaseException:
            await self.pc.close()
            raise
        return self

    async def delete(self) -> int | None:
        """DELETE the resource (ends it on the server); -> the status, None if there was none."""
        if self.location is None:
            return None
        location, self.location = self.location, None
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=self.timeout_s)) as http:
            async with http.delete(location, headers=self._headers()) as response:
                return response.status

    async def close(self) -> None:
        try:
            await self.delete()
        except aiohttp.ClientError:
            pass  # the server is gone: nothing to end there
        for task in self._tasks:
            task.cancel()
        await self.pc.close()

    async def __aenter__(self):
        return await self.start()

    async def __aexit__(self, *exc) -> None:
        await self.close()

    def _receive(self, on_frame: FrameCallback | None, on_audio: AudioCallback | None, fmt: str) -> None:
        @self.pc.on("track")
        def on_track(track: MediaStreamTrack) -> None:
            install_fast_buffer(self.pc, track)
            if track.kind == "video":
                work = receive_video(track, self.video, on_frame, fmt, self.first_frame)
            else:
                work = receive_audio(track, self.audio, on_audio)
            self._tasks.append(asyncio.ensure_future(work))


class WhipPublisher(_Endpoint):
    """Sends `microphone` (any aiortc audio track); `receive_video=True` also asks for the avatar back."""

    def __init__(self, url: str, microphone: MediaStreamTrack, token: str | None = None, receive_video: bool = False,
                 on_frame: FrameCallback | None = None, frame_format: str = "rgb24", timeout_s: float = 20.0):
        super().__init__(url, token, timeout_s)
        self.pc.addTransceiver(microphone, direction="sendonly")
        if receive_video:
            self.pc.addTransceiver("video", direction="recvonly")
            self._receive(on_frame, None, frame_format)

    @property
    def session(self) -> str | None:
        """The server's session id, when its Location is /whip/ID (this project's layout)."""
        return self.resource.rstrip("/").rsplit("/", 1)[-1] if self.resource else None


class WhepViewer(_Endpoint):
    """Receives the avatar's video and voice (receive-only offer)."""

    def __init__(self, url: str, token: str | None = None, on_frame: FrameCallback | None = None,
                 on_audio: AudioCallback | None = None, frame_format: str = "rgb24", audio: bool = True,
                 timeout_s: float = 20.0):
        super().__init__(url, token, timeout_s)
        self.pc.addTransceiver("video", direction="recvonly")
        if audio:
            self.pc.addTransceiver("audio", direction="recvonly")
        self._receive(on_frame, on_audio, frame_format)


__all__ = ["WhipPublisher", "WhepViewer", "WhipError"]
