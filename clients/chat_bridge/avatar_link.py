"""The avatar server's control protocol over its WebSocket `/ws`, kept connected with backoff.

Requests are answered in order on one connection and carry no ids, so they run one at a time (a lock); while
the server is down a request waits at most `connect_wait_s` for a reconnect and then raises AvatarOffline.
"""
from __future__ import annotations

import asyncio
import json
import logging
from typing import Any

import msgpack
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidURI

from .config import AvatarConfig
from .ratelimit import Backoff

log = logging.getLogger(__name__)
_CLOSED = {"type": "_closed"}  # put in the inbox when the connection drops, so a waiting request fails fast


class AvatarOffline(RuntimeError):
    """The avatar server cannot be reached right now."""


class AvatarRefused(RuntimeError):
    """The avatar server answered with {"type": "error"}."""


class AvatarLink:
    def __init__(self, config: AvatarConfig, token: str | None = None):
        self.config, self.token = config, token
        self._ws: ClientConnection | None = None
        self._inbox: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self._online = asyncio.Event()
        self._wake = asyncio.Event()  # a request wants a reconnect now, not after the backoff
        self._lock = asyncio.Lock()
        self._attempted = asyncio.Event()  # set whenever a connection attempt has failed
        self.connects = 0

    @property
    def online(self) -> bool:
        return self._online.is_set()

    async def run(self) -> None:
        """Connect, authenticate, read; on any failure wait (exponential backoff) and do it again, forever."""
        backoff = Backoff(self.config.backoff_initial_s, self.config.backoff_max_s)
        while True:
            try:
                ws = await connect(self.config.server, open_timeout=self.config.request_timeout_s,
                                   max_size=1 << 20, ping_interval=20, ping_timeout=20)
                try:
                    await self._handshake(ws)
                except BaseException:
                    await ws.close()
                    raise
            except (OSError, asyncio.TimeoutError, InvalidHandshake, InvalidURI, ConnectionClosed, AvatarRefused,
                    ValueError) as exc:
                log.info("avatar server %s: %s", self.config.server, exc or type(exc).__name__)
            except Exception:  # whatever it was, the bridge must keep trying
                log.exception("connecting to avatar server %s failed", self.config.server)
            else:
                backoff.reset()
                self.connects += 1
                log.info("connected to avatar server %s", self.config.server)
                await self._read(ws)
                log.info("avatar server %s went away", self.config.server)
            self._attempted.set()
            await self._sleep(backoff.next_delay())

    async def _handshake(self, ws: ClientConnection) -> None:
        # Authenticate, then prove the control channel works with a sessions query; whatever the server says
        # to the auth message itself is consumed here and cannot be mistaken for a later answer.
        if self.token is not None:
            await ws.send(json.dumps({"type": "auth", "token": self.token}))
        await ws.send(json.dumps({"type": "sessions"}))
        await asyncio.wait_for(self._await_sessions(ws), self.config.request_timeout_s)

    @staticmethod
    async def _await_sessions(ws: ClientConnection) -> None:
        while True:
            reply = _decode(await ws.recv())
            if reply.get("type") == "error":
                raise AvatarRefused(str(reply.get("message", "error")))
            if reply.get("type") == "sessions":
                return

    async def _read(self, ws: ClientConnection) -> None:
        self._ws = ws
        self._online.set()
        try:
            async for raw in ws:
                try:
                    self._inbox.put_nowait(_decode(raw))
                except ValueError as exc:
                    log.warning("avatar server sent an unreadable frame: %s", exc)
        except ConnectionClosed:
            pass
        finally:
            self._online.clear()
            self._ws = None
            self._inbox.put_nowait(_CLOSED)

    async def _sleep(self, seconds: float) -> None:
        self._wake.clear()
        try:
            await asyncio.wait_for(self._wake.wait(), seconds)
        except asyncio.TimeoutError:
            pass

    async def request(self, message: dict[str, Any], expect: str) -> dict[str, Any]:
        """Sends one control message and returns the answer of type `expect`."""
        async with self._lock:
            if not self._online.is_set():
                await self._reconnect_now()
            ws = self._ws
            while not self._inbox.empty():  # answers nobody waited for (a timed-out request's)
                self._inbox.get_nowait()
            try:
                await ws.send(json.dumps(message))
            except ConnectionClosed:
                raise AvatarOffline("avatar offline") from None
            try:
                return await asyncio.wait_for(self._answer(expect), self.config.request_timeout_s)
            except asyncio.TimeoutError:
                raise AvatarOffline(f"avatar server did not answer {message.get('type')!r} in time") from None

    async def _answer(self, expect: str) -> dict[str, Any]:
        while True:
            reply = await self._inbox.get()
            if reply is _CLOSED:
                raise AvatarOffline("avatar offline")
            if reply.get("type") == expect:
                return reply
            if reply.get("type") == "error":
                raise AvatarRefused(str(reply.get("message", "error")))

    async def _reconnect_now(self) -> None:
        """Skips the backoff for one attempt and waits for its outcome (at most `connect_wait_s`)."""
        self._attempted.clear()
        self._wake.set()
        waits = [asyncio.ensure_future(self._online.wait()), asyncio.ensure_future(self._attempted.wait())]
        try:
            await asyncio.wait(waits, timeout=self.config.connect_wait_s, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for wait in waits:
                wait.cancel()
        if not self._online.is_set():
            raise AvatarOffline("avatar offline")

    async def sessions(self) -> list[dict[str, Any]]:
        reply = await self.request({"type": "sessions"}, "sessions")
        sessions = reply.get("sessions")
        if not isinstance(sessions, list):
            raise AvatarRefused(f"malformed sessions answer: {reply!r:.120}")
        return [s for s in sessions if isinstance(s, dict) and "session" in s]

    async def instruct(self, session: str, text: str, intensity: float | None = None) -> dict[str, Any]:
        message: dict[str, Any] = {"type": "instruct", "session": session, "text": text}
        if intensity is not None:
            message["intensity"] = intensity
        return await self.request(message, "instructed")

    async def say(self, session: str, text: str) -> dict[str, Any]:
        """The avatar of `session` speaks `text` (espeak-ng on the server)."""
        return await self.request({"type": "say", "session": session, "text": text}, "say")

    async def close(self) -> None:
        if self._ws is not None:
            await self._ws.close()


def _decode(raw: str | bytes) -> dict[str, Any]:
    try:
        value = msgpack.unpackb(raw, raw=False) if isinstance(raw, bytes) else json.loads(raw)
    except Exception as exc:  # json/msgpack raise ValueError, TypeError, RecursionError, UnpackException
        raise ValueError(f"not JSON/msgpack: {exc}") from None
    if not isinstance(value, dict):
        raise ValueError(f"expected an object, got {type(value).__name__}")
    return value
