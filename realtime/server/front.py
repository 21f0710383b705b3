"""The front (`avatar serve --workers N`): the one public port (page, /ws, /api, /healthz, WHIP/WHEP, the Host,
Origin and token checks), with every session owned by a worker process (worker.py) that the front routes to.

    caller ──/ws──▶ front ──leg (internal WebSocket, the front's secret)──▶ worker: AvatarServer, its sessions
    caller ◀════════════════ WebRTC media, directly ═════════════════════▶ worker

A caller's offer goes to the worker with the most free slots and the caller's later messages follow it; anything
naming a session goes to the worker that owns it (router.py). The front checks every right itself (its legs are
controllers of their worker) and knows each session's view key from the answer that passed through it.
"""
from __future__ import annotations

import contextlib
import json
import logging
import secrets
import time
from http import HTTPStatus
from typing import Any
from urllib.parse import urlsplit

from websockets.asyncio.server import ServerConnection, serve
from websockets.exceptions import ConnectionClosed
from websockets.http11 import Request, Response

from realtime.config import AvatarConfig
from realtime.server.access import RateLimit, check_exposure, is_loopback, token_matches
from realtime.server.app import AvatarServer, Client, Forbidden, _response, _single, health, http_app
from realtime.server.http_front import split_connections
from realtime.server.legs import Leg
from realtime.server.load import load_line
from realtime.server.protocol import ProtocolError, addressed, encode, error, field, parse_instruction
from realtime.server.router import Route, Router
from realtime.server.session import parse_offer
from realtime.server.speech_messages import SPEECH_MESSAGES
from realtime.server.transport import LocalWorker

log = logging.getLogger(__name__)
SESSION_MESSAGES = ("instruct", "stats", "bye", *SPEECH_MESSAGES)


class FrontClient(Client):
    def __init__(self, ws: ServerConnection, controller: bool, rate: RateLimit):
        super().__init__(ws, controller, rate)
        self.legs: dict[str, Leg] = {}  # worker id -> this client's connection to it (at most one per worker)
        self.call: Route | None = None


class FrontServer(AvatarServer):
    def __init__(self, config: AvatarConfig, log_level: str = "WARNING"):
        super().__init__(config.server, resources=None)
        self.secret = secrets.token_urlsafe(32)  # the workers' token: only this process can reach them
        if config.server.ray is not None:  # actors on a Ray cluster in place of child processes
            from realtime.server.ray_workers import worker_factory

            make_worker = worker_factory(config, self.secret, log_level)
        else:
            def make_worker(worker: str) -> LocalWorker:
                return LocalWorker(worker, config, self.secret, log_level)
        self.router = Router(config.server, self.secret, make_worker)
        self.sessions = self.router.routes  # what WHIP/WHEP's checks look sessions up in
        self.clients: set[FrontClient] = set()

    @property
    def trained(self) -> bool:
        return all(s.transport.trained for s in self.router.workers.values())

    async def start(self) -> None:
        check_exposure(self.config.host, self.config.token, self.config.require_token_for_calls)
        await self.router.start()
        from realtime.server.front_http import ProxiedWhip

        try:
            self._http = await http_app(self, ProxiedWhip(self))
            self._server = await serve(self._handle, self.config.host, self.config.port, ssl=self._tls(),
                                       process_request=self._front_request, max_size=self.config.max_message_bytes,
                                       ping_interval=20, ping_timeout=20,
                                       create_connection=split_connections(self._http.server))
        except BaseException:  # the port is taken, …: the workers must not outlive a front that never served
            await self.stop()
            raise
        log.info("front on %s:%d, %d worker(s) x %d session(s)", self.config.host, self.port, self.config.workers,
                 self.config.sessions_per_worker)

    async def stop(self) -> None:
        for client in list(self.clients):
            await self._drop_legs(client)
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
        if self._http is not None:
            await self._http.cleanup()
        await self.router.stop()
        self._encoder_pool.shutdown(wait=False, cancel_futures=True)

    # --- HTTP: load and listings from the workers --------------------------------------------------------
    async def _front_request(self, connection: ServerConnection, request: Request) -> Response | None:
        path = urlsplit(request.path).path
        if path not in ("/api/sessions", "/healthz") or not self.access.host_allowed(_single(request.headers, "Host")):
            return self._process_request(connection, request)  # the page server's answer (and its refusals)
        load = self.router.load()
        if path == "/healthz":
            serving = [w for w in load["workers"] if w["up"] and not w["problem"]]
            lines = [f"sessions {load['sessions']}/{load['capacity']} ({load['free']} free)"] + [
                f"{w['worker']} pid {w['pid']}: {w['sessions']}/{w['slots']}"
                + ("" if w["up"] else " (restarting)") + (f" ({w['problem']})" if w["problem"] else "")
                for w in load["workers"]] + [load_line(load)]
            return health(request.path, bool(serving), "ok" if serving else "unhealthy: no worker is serving", lines,
                          load)
        if not self._http_controller(connection, request):
            return self._process_request(connection, request)  # 401
        body = {"sessions": await self.router.listing(with_stats=True), "load": load}
        return _response(HTTPStatus.OK, "application/json", json.dumps(body).encode())

    # --- WebSocket ---------------------------------------------------------------------------------------
    async def _handle(self, ws: ServerConnection) -> None:
        client = FrontClient(ws, controller=self.config.token is None and is_loopback(ws.remote_address),
                             rate=RateLimit(self.config.message_rate, self.config.message_burst))
        self.clients.add(client)
        try:
            async for raw in ws:
                client.binary = not isinstance(raw, str)
                if not client.rate.allow():
                    await ws.send(encode(error(f"rate limit: more than {self.config.message_rate:g} messages per "
                                               "second; this one was dropped"), client.binary))
                    continue
                await self._answer(ws, raw, lambda message, raw=raw: self._route(client, message, raw))
        except ConnectionClosed:
            pass
        finally:
            self.clients.discard(client)
            await self._drop_legs(client)

    async def _drop_legs(self, client: FrontClient) -> None:
        """The client is gone: closing its legs ends its call and its viewers on their workers."""
        for leg in list(client.legs.values()):
            await leg.close()
        client.legs.clear()
        if client.call is not None:
            self.router.remove(client.call.id)
            client.call = None

    async def _route(self, client: FrontClient, message: dict[str, Any], raw: str | bytes) -> dict[str, Any] | None:
        kind = message["type"]
        if client.call is not None and client.call.closed:
            client.call = None
        if kind == "ping":
            return {"type": "pong", "t": message.get("t"), "server_time": time.time()}
        if kind == "auth":
            return self._auth(client, message)
        if kind == "sessions":
            self._require_controller(client)
            return {"type": "sessions", "sessions": await self.router.listing()}
        if kind == "offer":
            return await self._front_offer(client, message, raw)
        if kind == "view":
            return await self._front_view(client, message, raw)
        if kind in SESSION_MESSAGES:
            if kind == "bye" and client.call is None:
                raise ProtocolError("no call to hang up on this connection")
            route = client.call if kind == "bye" else self._route_of(client, message)  # bye: always one's own call
            reply = await self._forward(client, route.worker, raw)
            if kind == "bye" and reply.get("type") == "bye":
                self.router.remove(route.id)
                client.call = None
            return reply
        raise ProtocolError(f"unknown message type {kind!r} (expected offer, instruct, say, pcm, clear, auth, "
                            "sessions, stats, view, ping or bye)")

    def _route_of(self, client: FrontClient, message: dict[str, Any]) -> Route:
        """The session a message is for: the client's own call, or (for controllers) the one it names."""
        return addressed(message, client.call, self.router.routes.get, lambda: self._require_controller(client))

    async def _leg(self, client: FrontClient, worker: str) -> Leg:
        leg = client.legs.get(worker)
        if leg is None or leg.closing:
            state = self.router.owner_state(worker)
            leg = Leg(worker, state.transport.pid, lambda leg, note, raw: self._note(client, note, raw),
                      lambda leg: self._leg_lost(client, leg))
            await leg.open(state.transport.ws_url, self.secret, self.config.worker_request_timeout_s,
                           self.config.max_message_bytes)
            client.legs[worker] = leg
        return leg

    async def _forward(self, client: FrontClient, worker: str, raw: str | bytes) -> dict[str, Any]:
        leg = await self._leg(client, worker)
        reply, _ = await leg.request(raw, self.config.worker_request_timeout_s)
        return reply

    async def _front_offer(self, client: FrontClient, message: dict[str, Any], raw: str | bytes) -> dict[str, Any]:
        if client.call is not None:
            raise ProtocolError(f"this connection already has a call ({client.call.id}): send bye first")
        if self.config.require_token_for_calls and not client.authenticated:
            raise Forbidden('this server needs the token for calls too: send {"type":"auth","token":…} first')
        parse_offer(message)  # the cheap checks here; the worker checks again
        parse_instruction(message.get("instruction"), message.get("intensity"))
        state = self.router.reserve()  # `server busy` when every slot is taken
        try:
            reply = await self._forward(client, state.id, raw)
            if reply.get("type") == "answer" and isinstance(reply.get("session"), str):
                client.call = Route(reply["session"], state.id, reply.get("viewKey"))
                self.router.add(client.call)
                log.info("session %s on worker %s (pid %s)", client.call.id, state.id, state.transport.pid)
        finally:
            self.router.release(state)
        return reply

    async def _front_view(self, client: FrontClient, message: dict[str, Any], raw: str | bytes) -> dict[str, Any]:
        wanted = field(message, "session", str)
        key = field(message, "key", str, required=False)
        route = self.router.routes.get(wanted)
        if route is None or route.closed:
            raise ProtocolError(f"no session {wanted!r}")
        owner = client.call is route
        if not (client.controller or owner or (key is not None and route.view_key is not None
                                               and token_matches(key, route.view_key))):
            raise Forbidden('viewing a session needs its "key" (the caller\'s "viewKey") or control rights')
        return await self._forward(client, route.worker, raw)

    # --- what workers say on their own -------------------------------------------------------------------
    async def _note(self, client: FrontClient, note: dict[str, Any], raw: str | bytes) -> None:
        if note.get("type") == "closed" and client.call is not None and note.get("session") == client.call.id:
            self.router.remove(client.call.id)
            client.call = None
        with contextlib.suppress(ConnectionClosed):
            await client.ws.send(raw)

    async def _leg_lost(self, client: FrontClient, leg: Leg) -> None:
        """The connection to a worker broke (it died, or hung): a call there has ended; the caller is told, then
        its WebSocket is closed."""
        if client.legs.get(leg.worker) is leg:
            del client.legs[leg.worker]
        call = client.call
        if call is None or call.worker != leg.worker:
            return
        self.router.remove(call.id)
        client.call = None
        with contextlib.suppress(ConnectionClosed):
            await client.ws.send(encode(error(f"the worker serving session {call.id} ({leg.worker}, pid {leg.pid}) "
                                              f"{leg.lost_reason}: the call has ended"), client.binary))
            await client.ws.close(1011, "its worker stopped")


__all__ = ["FrontServer"]
