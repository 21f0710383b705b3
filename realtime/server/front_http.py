"""WHIP/WHEP at the front: the same endpoints and checks as whip.py (token, view key, SDP limits, CORS), each
request then relayed to the worker that owns (or, for a new publisher, will own) the session."""
from __future__ import annotations

from typing import TYPE_CHECKING

from aiohttp import web

from realtime.server.protocol import ProtocolError
from realtime.server.router import NoWorker, Route
from realtime.server.whip import SDP, WhipEndpoints, _fail

if TYPE_CHECKING:
    from realtime.server.front import FrontServer
    from realtime.server.router import WorkerState

RELAYED_HEADERS = ("Location", "View-Key", "Retry-After", "Content-Type")


class ProxiedWhip(WhipEndpoints):
    server: FrontServer

    def __init__(self, server: FrontServer):
        super().__init__(server)
        self.viewers: dict[tuple[str, str], str] = {}  # (session, viewer) -> the worker that serves it

    async def _relay(self, request: web.Request, state: WorkerState, method: str, path: str,
                     sdp: str | None = None) -> tuple[web.StreamResponse, dict[str, str]]:
        try:
            status, body, headers = await self.server.router.worker_http(
                state, method, path, sdp.encode() if sdp is not None else None, SDP if sdp is not None else None)
        except ProtocolError as exc:
            raise _fail(web.HTTPBadGateway, str(exc)) from None
        kept = {k: v for k, v in headers.items() if k in RELAYED_HEADERS and k != "Content-Type"}
        response = web.Response(status=status, body=body, headers=kept,
                                content_type=headers.get("Content-Type", "text/plain").split(";")[0])
        return response, headers  # CORS, if any, is added to every response by http_app

    def routes(self, app: web.Application) -> None:
        super().routes(app)
        app.router.add_get("/api/portraits", self.portraits)  # every worker has the same --portraits folder
        app.router.add_get("/portraits/{name}", self.portraits)
        app.router.add_post("/api/portraits", self.no_uploads)

    async def portraits(self, request: web.Request) -> web.StreamResponse:
        up = [s for s in self.server.router.workers.values() if s.up]
        if not up:
            raise _fail(web.HTTPServiceUnavailable, "no worker is up")
        response, _ = await self._relay(request, up[0], "GET", request.rel_url.path)
        return response

    async def no_uploads(self, request: web.Request) -> web.StreamResponse:
        raise _fail(web.HTTPNotImplemented, "portrait uploads are not supported with --workers: put the images in "
                                            "the --portraits folder")

    def _owner(self, session: str) -> WorkerState:
        try:
            return self.server.router.owner(session)
        except ProtocolError as exc:  # its worker died meanwhile
            raise _fail(web.HTTPNotFound, str(exc)) from None

    async def publish(self, request: web.Request) -> web.StreamResponse:
        self._authorize(request)
        offer = await self._offer(request, "audio")
        try:
            state = self.server.router.reserve()
        except NoWorker as exc:
            raise _fail(web.HTTPServiceUnavailable, str(exc), **{"Retry-After": "5"}) from None
        try:
            query = f"?{request.query_string}" if request.query_string else ""
            response, headers = await self._relay(request, state, "POST", "/whip" + query, offer.sdp)
            if response.status == 201:
                session = headers.get("Location", "").rsplit("/", 1)[-1]
                self.server.router.add(Route(session, state.id, headers.get("View-Key"), whip=True))
        finally:
            self.server.router.release(state)
        return response

    async def end_publish(self, request: web.Request) -> web.StreamResponse:
        self._authorize(request)
        wanted = request.match_info["session"]
        route = self.server.router.routes.get(wanted)
        if route is None or not route.whip or route.closed:
            raise _fail(web.HTTPNotFound, f"no WHIP session {wanted!r}")
        self._may_watch(request, route)
        response, _ = await self._relay(request, self._owner(wanted), "DELETE", f"/whip/{wanted}")
        self.server.router.remove(wanted)
        return response

    async def view(self, request: web.Request) -> web.StreamResponse:
        offer = await self._offer(request, "video")
        route = self._session(request.match_info["session"])  # `latest`: the newest route
        self._may_watch(request, route)
        response, headers = await self._relay(request, self._owner(route.id), "POST",
                                              f"/whep/{route.id}", offer.sdp)
        if response.status == 201:
            viewer = headers.get("Location", "").rsplit("/", 1)[-1]
            live = self.server.router.routes
            self.viewers = {key: w for key, w in self.viewers.items() if key[0] in live}
            self.viewers[(route.id, viewer)] = route.worker
        return response

    async def end_view(self, request: web.Request) -> web.StreamResponse:
        key = (request.match_info["session"], request.match_info["viewer"])
        route = self.server.router.routes.get(key[0])
        if key not in self.viewers or route is None:
            raise _fail(web.HTTPNotFound, f"no viewer {key[1]!r} of session {key[0]!r}")
        self._may_watch(request, route)
        response, _ = await self._relay(request, self._owner(key[0]), "DELETE",
                                        f"/whep/{key[0]}/{key[1]}")
        self.viewers.pop(key, None)
        return response
