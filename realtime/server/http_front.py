"""One port, two HTTP stacks: websockets parses only GET requests (pages, /api/sessions, the /ws upgrade), so a
connection whose request line has another method (WHIP/WHEP's POST, DELETE, OPTIONS, PATCH; portrait uploads),
or a GET of the portrait gallery, is handed, before websockets has seen a byte, to an aiohttp application on
the same transport."""
from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from websockets.asyncio.server import ServerConnection

OTHER_METHODS = (b"POST ", b"DELETE ", b"OPTIONS ", b"PATCH ", b"PUT ", b"HEAD ")
HTTP_GETS = (b"GET /api/portraits", b"GET /portraits/")  # GETs the aiohttp side serves too
MAX_REQUEST_LINE = 8192
FIRST_BYTES_TIMEOUT_S = 10.0  # a connection that sends no request line within this is dropped


class SplitConnection(ServerConnection):
    """A websockets connection that waits for the request line before it exists for websockets."""

    def __init__(self, *args: Any, http: Callable[[], asyncio.Protocol], **kwargs: Any):
        super().__init__(*args, **kwargs)
        self._http = http
        self._head = b""
        self._waiting: asyncio.BaseTransport | None = None
        self._timer: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._waiting = transport
        self._timer = asyncio.get_running_loop().call_later(FIRST_BYTES_TIMEOUT_S, transport.abort)

    def data_received(self, data: bytes) -> None:
        transport = self._waiting
        if transport is None:  # websockets owns the connection
            super().data_received(data)
            return
        self._head += data
        if b"\n" not in self._head and len(self._head) < MAX_REQUEST_LINE:
            return  # the whole request line first: method and path decide
        self._waiting = None
        self._timer.cancel()
        head, self._head = self._head, b""
        if head.startswith(OTHER_METHODS) or head.startswith(HTTP_GETS):
            protocol = self._http()
            transport.set_protocol(protocol)
            protocol.connection_made(transport)
            protocol.data_received(head)
        else:
            super().connection_made(transport)
            super().data_received(head)

    def eof_received(self) -> bool | None:
        if self._waiting is not None:
            return None  # closed before a request line: nothing to do
        return super().eof_received()

    def connection_lost(self, exc: Exception | None) -> None:
        if self._waiting is not None:
            self._timer.cancel()
            self._waiting = None
            return
        super().connection_lost(exc)


def split_connections(http: Callable[[], asyncio.Protocol]) -> Callable[..., ServerConnection]:
    """For `websockets.serve(create_connection=...)`: other methods go to `http` (a protocol factory)."""
    def create(*args: Any, **kwargs: Any) -> ServerConnection:
        return SplitConnection(*args, http=http, **kwargs)

    return create


__all__ = ["SplitConnection", "split_connections"]
