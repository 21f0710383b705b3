"""The avatar server: one port, plain HTTP for the pages and /api/sessions, WebSocket /ws for signalling and
control (JSON text frames for browsers, msgpack binary frames for programs)."""
from __future__ import annotations

import asyncio
import gc
import json
import logging
import mimetypes
import ssl
import time
from concurrent.futures import ThreadPoolExecutor
from http import HTTPStatus
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.datastructures import Headers
from websockets.exceptions import ConnectionClosed
from websockets.http11 import Request, Response

from realtime.server.access import AccessPolicy, RateLimit, check_exposure, is_loopback, token_matches
from realtime.server.config import ServerConfig
from realtime.server.http_front import split_connections
from realtime.server.load import LoadMeter, load_line
from realtime.server.portraits import PortraitGallery
from realtime.server.protocol import ProtocolError, addressed, decode, encode, error, field, parse_instruction
from realtime.server.session import Session, SessionParts, parse_offer
from realtime.server.speech_messages import SPEECH_MESSAGES, speech_message
from realtime.server.watchdog import Watchdog

log = logging.getLogger(__name__)
STATIC = Path(__file__).parent / "static"
PAGES = {"/": "index.html", "/index.html": "index.html", "/view": "view.html"}


class ServerBusy(ProtocolError):
    """Every session slot is taken."""


class Forbidden(ProtocolError):
    """A controller message from a connection without control rights."""


class Client:
    """One WebSocket connection: at most one call of its own, any number of viewers, maybe control rights."""

    def __init__(self, ws: ServerConnection, controller: bool, rate: RateLimit):
        self.ws = ws
        self.controller = controller
        self.authenticated = False  # sent the right token (needed for calls with require_token_for_calls)
        self.rate = rate
        self.binary = False  # the encoding of its latest message: what notices are sent in
        self.session: Session | None = None
        self.viewing: list[tuple[Session, Any]] = []
        self.binary = False  # the encoding of its last message


class AvatarServer:
    def __init__(self, config: ServerConfig, resources):
        self.config, self.resources = config, resources
        self.sessions: dict[str, Session] = {}
        self._starting = 0  # sessions being set up (they hold a slot already)
        self._encoder_pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="instruction")
        self._server: Server | None = None
        self._http = None  # aiohttp.web.AppRunner for the non-GET endpoints
        self.access = AccessPolicy(config.allowed_hosts, config.allowed_origins)
        self.watchdog = Watchdog(config, self.sessions, getattr(resources, "_denoiser", None))
        self.meter = LoadMeter(config)
        self.max_viewers = 4
        self.portraits: PortraitGallery | None = None

    # --- lifecycle -------------------------------------------------------------------------------------
    async def start(self) -> None:
        check_exposure(self.config.host, self.config.token, self.config.require_token_for_calls)
        self.portraits = PortraitGallery(self.config.portraits, self.resources.config.renderer,
                                         self.config.portrait_cache_mb, default=self.resources)
        self._http = await http_app(self)  # WHIP/WHEP and uploads: the methods websockets does not parse
        self._server = await serve(self._handle, self.config.host, self.config.port, ssl=self._tls(),
                                   process_request=self._process_request, max_size=self.config.max_message_bytes,
                                   ping_interval=20, ping_timeout=20,
                                   create_connection=split_connections(self._http.server))
        self.watchdog.start()
        self.meter.start(lambda: self.sessions.values())
        log.info("avatar server on %s://%s:%d/", "https" if self.config.tls else "http", self.config.host, self.port)

    def _tls(self) -> ssl.SSLContext | None:
        if not self.config.tls:
            return None
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(self.config.cert, self.config.key)
        return context

    @property
    def port(self) -> int:
        assert self._server is not None, "start() first"
        return next(iter(self._server.sockets)).getsockname()[1]

    async def stop(self) -> None:
        self.watchdog.stop()
        self.meter.stop()
        for session in list(self.sessions.values()):
            await session.close("server shutting down")
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
        if self._http is not None:
            await self._http.cleanup()
            self.portraits.close()
        self._encoder_pool.shutdown(wait=False, cancel_futures=True)

    async def _forget(self, session: Session) -> None:
        self.sessions.pop(session.id, None)
        # aiortc's objects (peer connection, transports, codecs with their threads) form reference cycles
        # that only a full collection frees; without one, a server grows by every call it has served.
        # The long-lived objects were frozen at start-up (run_server), so this scans only what calls made.
        gc.collect()

    # --- HTTP ------------------------------------------------------------------------------------------
    def _process_request(self, connection: ServerConnection, request: Request) -> Response | None:
        path = urlsplit(request.path).path
        host = _single(request.headers, "Host")
        if not self.access.host_allowed(host):  # DNS rebinding: a foreign name that resolves to us
            return _response(HTTPStatus.FORBIDDEN, "text/plain", f"host {host!r} is not this server "
                             "(add it with --allow-host)\n".encode())
        if path == "/ws":
            if "websocket" not in request.headers.get("Upgrade", "").lower():
                return _response(HTTPStatus.UPGRADE_REQUIRED, "text/plain", b"/ws is a WebSocket endpoint\n")
            origin = _single(request.headers, "Origin")
            if not self.access.origin_allowed(origin, host):  # a page of another site, in the user's browser
                return _response(HTTPStatus.FORBIDDEN, "text/plain", f"origin {origin!r} may not use this "
                                 "server (allow it with --allow-origin)\n".encode())
            return None
        if path == "/api/sessions":
            if not self._http_controller(connection, request):
                return _response(HTTPStatus.UNAUTHORIZED, "application/json",
                                 json.dumps({"error": "send Authorization: Bearer TOKEN"}).encode(),
                                 [("WWW-Authenticate", "Bearer")])
            body = json.dumps({"sessions": self.session_list(with_stats=True), "load": self.load()}).encode()
            return _response(HTTPStatus.OK, "application/json", body)
        if path == "/healthz":
            head = "ok" if self.watchdog.healthy else "unhealthy: " + "; ".join(self.watchdog.problems)
            load = self.load()
            return health(request.path, self.watchdog.healthy, head, [load_line(load)], load)
        name = PAGES.get(path) or (path.removeprefix("/static/") if path.startswith("/static/") else None)
        if name:
            file = (STATIC / name).resolve()
            if file.is_file() and file.parent == STATIC.resolve():
                kind = mimetypes.guess_type(file.name)[0] or "application/octet-stream"
                return _response(HTTPStatus.OK, kind, file.read_bytes(), [("Cache-Control", "no-cache")])
        return _response(HTTPStatus.NOT_FOUND, "text/plain", f"not found: {path}\n".encode())

    def _http_controller(self, connection: ServerConnection, request: Request) -> bool:
        if self.config.token is None:
            return is_loopback(connection.remote_address)
        scheme, _, token = request.headers.get("Authorization", "").partition(" ")
        return scheme.lower() == "bearer" and token_matches(token.strip(), self.config.token)

    def load(self) -> dict[str, Any]:
        """`load` of /api/sessions and /healthz: calls and the hard cap, the measured load, whether a new call is
        admitted now and why not (server/load.py)."""
        in_use, cap = len(self.sessions) + self._starting, self.config.session_cap
        load = {"sessions": in_use, "capacity": cap, "free": max(0, cap - in_use),
                "admit_by_load": self.config.admit_by_load,
                **self.meter.report(list(self.sessions.values()), self._starting)}
        load["capacity_estimate"] = min(cap, load["capacity_estimate"])
        if not self.config.admit_by_load:
            load.update(admitting=True, refusing_because=None)
        if in_use >= cap:
            load.update(admitting=False, refusing_because=f"all {cap} session(s) in use")
        return load

    def session_list(self, with_stats: bool = False) -> list[dict[str, Any]]:
        return [s.describe(with_stats) for s in self.sessions.values() if not s.closed]

    # --- WebSocket -------------------------------------------------------------------------------------
    async def _handle(self, ws: ServerConnection) -> None:
        client = Client(ws, controller=self.config.token is None and is_loopback(ws.remote_address),
                        rate=RateLimit(self.config.message_rate, self.config.message_burst))
        try:
            async for raw in ws:
                client.binary = not isinstance(raw, str)
                if not client.rate.allow():
                    await ws.send(encode(error(f"rate limit: more than {self.config.message_rate:g} messages per "
                                               "second; this one was dropped"), not isinstance(raw, str)))
                    continue
                await self._answer(ws, raw, lambda message: self._dispatch(client, message))
        except ConnectionClosed:
            pass
        finally:
            if client.session is not None:
                await client.session.close("its WebSocket closed")
            for session, viewer in client.viewing:
                await session.remove_viewer(viewer)

    async def _answer(self, channel, raw: str | bytes, handler) -> None:
        """Decode, run, reply in the request's encoding; every failure becomes an error message."""
        binary = isinstance(raw, (bytes, bytearray, memoryview))
        try:
            message, binary = decode(raw)
            reply = await handler(message)
        except ProtocolError as exc:
            reply = error(str(exc))
        except ValueError as exc:  # InstructionError, SamplerError, …: the text says what was wrong
            reply = error(str(exc))
        except Exception as exc:  # the connection must stay usable whatever went wrong
            log.exception("request failed")
            reply = error(f"internal error: {type(exc).__name__}: {exc}")
        if reply is None:
            return
        payload = encode(reply, binary)
        if isinstance(channel, ServerConnection):
            await channel.send(payload)
        elif getattr(channel, "readyState", "") == "open":  # an RTCDataChannel
            channel.send(payload)

    async def _dispatch(self, client: Client, message: dict[str, Any]) -> dict[str, Any] | None:
        kind = message["type"]
        if client.session is not None and client.session.closed:  # timed out or failed meanwhile
            client.session = None
        if kind == "offer":
            return await self._offer(client, message)
        if kind == "instruct":
            return await self._instruct(client, message)
        if kind == "ping":
            return {"type": "pong", "t": message.get("t"), "server_time": time.time()}
        if kind == "auth":
            return self._auth(client, message)
        if kind == "sessions":
            self._require_controller(client)
            return {"type": "sessions", "sessions": self.session_list()}
        if kind == "stats":
            session = self._target(client, message)
            return {"type": "stats", **session.describe(with_stats=True)}
        if kind == "view":
            return await self._view(client, message)
        if kind in SPEECH_MESSAGES:
            return await speech_message(self._target(client, message), message, client.ws,
                                        lambda event: client.ws.send(encode(event, client.binary)))
        if kind == "bye":
            if client.session is None:
                raise ProtocolError("no call to hang up on this connection")
            session, client.session = client.session, None
            await session.close("the caller hung up")
            return {"type": "bye", "session": session.id}
        raise ProtocolError(f"unknown message type {kind!r} (expected offer, instruct, say, pcm, clear, auth, "
                            "sessions, stats, view, ping or bye)")

    async def session_control(self, session: Session, channel, raw: str | bytes) -> None:
        """Messages on a call's `control` data channel: instruct, ping and stats for that call."""
        async def handler(message: dict[str, Any]) -> dict[str, Any]:
            kind = message["type"]
            if kind == "instruct":
                return await self._instruct_session(session, message)
            if kind == "ping":
                return {"type": "pong", "t": message.get("t"), "server_time": time.time()}
            if kind == "stats":
                return {"type": "stats", **session.describe(with_stats=True)}
            if kind in SPEECH_MESSAGES:
                binary = not isinstance(raw, str)
                return await speech_message(session, message, channel,
                                            lambda event: channel.send(encode(event, binary)))
            raise ProtocolError(f"unknown message type {kind!r} on the control channel "
                                "(expected instruct, say, pcm, clear, ping or stats)")

        await self._answer(channel, raw, handler)

    # --- messages --------------------------------------------------------------------------------------
    def _auth(self, client: Client, message: dict[str, Any]) -> dict[str, Any]:
        token = field(message, "token", str)
        if self.config.token is None:
            if not is_loopback(client.ws.remote_address):
                raise Forbidden("this server has no token: only loopback clients may control sessions")
        elif not token_matches(token, self.config.token):
            raise Forbidden("wrong token")
        client.controller = client.authenticated = True
        return {"type": "auth", "ok": True}

    def _require_controller(self, client: Client) -> None:
        if not client.controller:
            how = "send {\"type\":\"auth\",\"token\":…} first" if self.config.token else "connect from loopback"
            raise Forbidden(f"controlling other sessions needs rights: {how}")

    def _target(self, client: Client, message: dict[str, Any]) -> Session:
        return addressed(message, client.session, self.sessions.get, lambda: self._require_controller(client))

    async def _encode_instruction(self, text: str) -> Any:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._encoder_pool, self.resources.encoder, text)

    async def _instruct(self, client: Client, message: dict[str, Any]) -> dict[str, Any]:
        return await self._instruct_session(self._target(client, message), message)

    async def _instruct_session(self, session: Session, message: dict[str, Any]) -> dict[str, Any]:
        if "text" not in message:
            raise ProtocolError('"instruct" needs a "text" field (empty or null clears the instruction)')
        instruction = parse_instruction(message.get("text"), message.get("intensity"))
        frame = await session.instruct(instruction, self._encode_instruction)
        return {"type": "instructed", "text": instruction.text or "", "intensity": instruction.intensity,
                "frame": frame, "session": session.id}

    async def _offer(self, client: Client, message: dict[str, Any]) -> dict[str, Any]:
        if client.session is not None:
            raise ProtocolError(f"this connection already has a call ({client.session.id}): send bye first")
        if self.config.require_token_for_calls and not client.authenticated:
            raise Forbidden('this server needs the token for calls too: send {"type":"auth","token":…} first')
        offer = parse_offer(message)
        instruction = parse_instruction(message.get("instruction"), message.get("intensity"))
        portrait = field(message, "portrait", str, required=False)
        session = await self.open_session(offer, instruction, portrait)
        client.session = session
        session.notify = lambda note: client.ws.send(encode(note, client.binary))
        return {"type": "answer", "sdp": session.pc.localDescription.sdp, "sdpType": "answer", "session": session.id,
                "viewKey": session.view_key}

    async def open_session(self, offer, instruction, portrait: str | None = None) -> Session:
        """A new call from an offer (the WebSocket's or a WHIP publisher's): slot, parts off the loop, answer."""
        load = self.load()  # the hard cap, then the measured load
        if not load["admitting"]:
            raise ServerBusy(f"server busy: {load['refusing_because']}, try again later")
        self._starting += 1
        try:
            if instruction.text is not None:
                await self._encode_instruction(instruction.text)  # a bad instruction fails before any setup
            renderer = await self.portraits.renderer(portrait) if portrait else None  # enrolled off the loop
            loop = asyncio.get_running_loop()
            parts = await loop.run_in_executor(None, SessionParts.build, self.resources, self.config, instruction,
                                               renderer)
            session = Session(self.config, parts, instruction, self._forget)
            session.control_handler = lambda channel, raw: self.session_control(session, channel, raw)
            try:
                await session.answer(offer)
            except BaseException:
                await session.close("offer failed")
                raise
        finally:
            self._starting -= 1
        self.sessions[session.id] = session
        log.info("session %s started (%d/%d)", session.id, len(self.sessions), self.config.session_cap)
        return session

    async def _view(self, client: Client, message: dict[str, Any]) -> dict[str, Any]:
        wanted = field(message, "session", str)
        key = field(message, "key", str, required=False)
        session = self.sessions.get(wanted)
        if session is None or session.closed:
            raise ProtocolError(f"no session {wanted!r}")
        owner = client.session is session
        if not (client.controller or owner or (key is not None and token_matches(key, session.view_key))):
            # the same answer as a missing session would leak which ids exist; this one says what to send
            raise Forbidden('viewing a session needs its "key" (the caller\'s "viewKey") or control rights')
        viewer, answer = await session.add_viewer(parse_offer(message), self.max_viewers)
        client.viewing.append((session, viewer))
        return {"type": "answer", "sdp": answer.sdp, "sdpType": answer.type, "session": session.id,
                "viewer": True}


async def http_app(server: AvatarServer, whip=None):
    """The aiohttp side of the port (see http_front): WHIP/WHEP (`whip`: other endpoints than the in-process
    ones) and the portrait gallery (when the server has one)."""
    from aiohttp import web

    from realtime.server import portraits
    from realtime.server.whip import WhipEndpoints

    app = web.Application(client_max_size=portraits.MAX_UPLOAD_BYTES + 1)  # each handler reads at most its limit
    (whip or WhipEndpoints(server)).routes(app)
    if server.portraits is not None:
        portraits.routes(app, server.portraits, server.config.token)

    @web.middleware
    async def same_checks_as_the_page_server(request, handler):
        host = request.headers.get("Host")
        if not server.access.host_allowed(host):  # DNS rebinding
            raise web.HTTPForbidden(text=f"host {host!r} is not this server (add it with --allow-host)\n")
        origin = request.headers.get("Origin")
        if request.method != "OPTIONS" and not server.access.origin_allowed(origin, host):
            raise web.HTTPForbidden(text=f"origin {origin!r} may not use this server (allow it with --allow-origin)\n")
        return await handler(request)

    app.middlewares.append(same_checks_as_the_page_server)

    async def one_request_per_connection(request, response) -> None:
        # A kept-alive connection would bring the browser's next request (a page, /ws) here, not to websockets.
        response.force_close()
        origin = request.headers.get("Origin")
        if origin and origin.rstrip("/").lower() in server.config.allowed_origins:  # CORS, errors included: a
            response.headers.update({"Access-Control-Allow-Origin": origin, "Vary": "Origin",  # page sees a 401
                                     "Access-Control-Expose-Headers": "Location, View-Key"})  # as a 401

    app.on_response_prepare.append(one_request_per_connection)
    runner = web.AppRunner(app, access_log=None, handle_signals=False)
    await runner.setup()
    return runner


def health(target: str, healthy: bool, head: str, lines: list[str], load: dict[str, Any]) -> Response:
    """/healthz: 200 or 503, "ok"/"unhealthy: …" then detail lines (text, the contract monitors read); with
    ?format=json, the same as {"status", "detail", "load"}."""
    status = HTTPStatus.OK if healthy else HTTPStatus.SERVICE_UNAVAILABLE
    if "json" in parse_qs(urlsplit(target).query).get("format", []):
        body = {"status": "ok" if healthy else "unhealthy", "detail": head, "lines": lines, "load": load}
        return _response(status, "application/json", json.dumps(body).encode())
    return _response(status, "text/plain", "\n".join([head, *lines, ""]).encode())


def _single(headers: Headers, name: str, missing: str | None = None) -> str | None:
    """A header that must appear at most once; repeated, it reads as "" (which no check accepts)."""
    values = headers.get_all(name)
    return missing if not values else values[0] if len(values) == 1 else ""


def _response(status: HTTPStatus, content_type: str, body: bytes,
              extra: list[tuple[str, str]] | None = None) -> Response:
    headers = Headers([("Content-Type", content_type), ("Content-Length", str(len(body))),
                       ("Connection", "close"), *(extra or [])])
    return Response(status.value, status.phrase, headers, body)


__all__ = ["AvatarServer", "ServerBusy", "Forbidden", "is_loopback"]  # is_loopback: from access
