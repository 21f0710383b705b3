"""A leg: one caller's or controller's WebSocket to one worker, opened by the front on its behalf.

The front forwards the client's messages as they came (JSON or msgpack, so the worker answers in the same
encoding) and waits for each answer in turn (a worker answers a connection's messages in order); notices the
worker sends on its own (`closed`, `playback`) go to `on_note`. Bounded: one request in flight per leg (the front
serves a client's messages in order), each answered within the request timeout or the leg is dropped (a late
answer would be taken for the next one's).
"""
from __future__ import annotations

import asyncio
import contextlib
import json
from collections import deque
from collections.abc import Awaitable, Callable
from typing import Any

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake

from realtime.server.protocol import ProtocolError, decode

NOTICES = ("closed", "playback")  # what a worker sends without being asked
Note = Callable[["Leg", dict[str, Any], str | bytes], Awaitable[None]]


class Leg:
    def __init__(self, worker: str, pid: int | None, on_note: Note, on_lost: Callable[[Leg], Awaitable[None]]):
        self.worker, self.pid = worker, pid
        self.on_note, self.on_lost = on_note, on_lost
        self.ws: ClientConnection | None = None
        self._pending: deque[asyncio.Future] = deque()
        self._reader: asyncio.Task | None = None
        self.closing = False
        self.lost_reason = "stopped"  # why the leg broke, for the caller whose call was on it

    async def open(self, url: str, secret: str, timeout_s: float, max_size: int) -> Leg:
        """Connects and authenticates as a controller of the worker (the front has checked the client's rights)."""
        try:
            async with asyncio.timeout(timeout_s):
                self.ws = await connect(url, max_size=max_size, open_timeout=timeout_s, ping_interval=20,
                                        ping_timeout=20, max_queue=64)
                await self.ws.send(json.dumps({"type": "auth", "token": secret}))
                reply, _ = decode(await self.ws.recv())
        except (OSError, TimeoutError, ConnectionClosed, InvalidHandshake) as exc:
            await self.close()
            raise ProtocolError(f"worker {self.worker} is not reachable: {type(exc).__name__}: {exc}") from None
        if reply.get("type") != "auth":
            await self.close()
            raise ProtocolError(f"worker {self.worker} refused the front: {reply.get('message')}")
        self._reader = asyncio.ensure_future(self._read())
        return self

    async def request(self, raw: str | bytes, timeout_s: float) -> tuple[dict[str, Any], str | bytes]:
        """Sends `raw` as it came; -> the worker's answer, decoded and raw."""
        if self.ws is None or self.closing:
            raise ProtocolError(f"worker {self.worker} is gone")
        future: asyncio.Future = asyncio.get_running_loop().create_future()
        self._pending.append(future)
        try:
            await self.ws.send(raw)
            return await asyncio.wait_for(future, timeout_s)
        except TimeoutError:
            self.lost_reason = f"did not answer within {timeout_s:g} s"
            await self.close()  # its answer would be taken for the next request's: the leg (and its call) ends
            await self.on_lost(self)
            raise ProtocolError(f"worker {self.worker} {self.lost_reason}") from None
        except ConnectionClosed:
            raise ProtocolError(f"worker {self.worker} is gone") from None

    async def _read(self) -> None:
        try:
            async for raw in self.ws:
                message, _ = decode(raw)
                if message["type"] in NOTICES or not self._pending:
                    await self.on_note(self, message, raw)
                else:
                    future = self._pending.popleft()
                    if not future.done():
                        future.set_result((message, raw))
        except (ConnectionClosed, ProtocolError):
            pass
        finally:
            for future in self._pending:
                if not future.done():
                    future.set_exception(ProtocolError(f"worker {self.worker} is gone"))
            self._pending.clear()
            if not self.closing:
                self.closing = True
                await self.on_lost(self)

    async def close(self) -> None:
        """Closing the leg ends whatever call the client had on that worker (as its WebSocket closing would)."""
        self.closing = True
        if self.ws is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self.ws.close(), 5.0)
        if self._reader is not None and self._reader is not asyncio.current_task():
            self._reader.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._reader
