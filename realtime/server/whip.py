"""WHIP ingest (RFC 9725) and WHEP egress over plain HTTP, beside /ws on the same port.

    POST /whip[?instruction=…&intensity=…&portrait=…]  offer that sends audio -> 201, answer, Location /whip/ID
    DELETE /whip/ID                                   ends that session
    POST /whep/ID | /whep/latest                      receive-only offer -> 201, answer, Location /whep/ID/VIEWER
    DELETE /whep/ID/VIEWER                            ends that viewer

With a server token WHIP needs `Authorization: Bearer TOKEN` (401 without); WHEP has the rights of `view`: the
session's view key as its Bearer (the WHIP answer's `View-Key` header, a caller's `viewKey`) or control rights.
ICE is not trickled: aiortc gathers its candidates before it answers, so the answer is complete and PATCH is
refused (405).
"""
from __future__ import annotations

import logging
import math
import secrets
from typing import TYPE_CHECKING, Any

from aiohttp import web
from aiortc import RTCSessionDescription

from realtime.server.access import is_loopback, token_matches
from realtime.server.protocol import ProtocolError, parse_instruction

if TYPE_CHECKING:
    from realtime.server.app import AvatarServer
    from realtime.server.session import Session

log = logging.getLogger(__name__)
MAX_SDP_BYTES = 64 * 1024
SDP = "application/sdp"
ALLOWED_METHODS = "POST, DELETE, OPTIONS"


def _fail(status: type[web.HTTPException], message: str, **headers: str) -> web.HTTPException:
    return status(text=message + "\n", headers=headers or None)


def require_bearer(request: web.Request, token: str | None, loopback_without_token: bool = False) -> None:
    """401 unless the request carries `Authorization: Bearer TOKEN`; with no token, anyone (or, with
    `loopback_without_token`, only loopback peers, the way controllers are admitted)."""
    if token is None:
        if loopback_without_token and not is_loopback(request.remote):
            raise _fail(web.HTTPForbidden, "this needs control rights or the session's view key "
                        "(this server has no token: control is for loopback clients)")
        return
    scheme, _, given = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not token_matches(given.strip(), token):
        raise _fail(web.HTTPUnauthorized, "send Authorization: Bearer TOKEN", **{"WWW-Authenticate": "Bearer"})


async def read_limited(request: web.Request, limit: int) -> bytes:
    """The body, or its first limit + 1 bytes when it is longer (the caller refuses it)."""
    chunks, size = [], 0
    while size <= limit:
        chunk = await request.content.read(limit + 1 - size)
        if not chunk:
            break
        chunks.append(chunk)
        size += len(chunk)
    return b"".join(chunks)


class WhipEndpoints:
    def __init__(self, server: AvatarServer):
        self.server = server
        self.published: set[str] = set()  # sessions a WHIP publisher made (only those end on DELETE /whip/ID)
        self.viewers: dict[tuple[str, str], Any] = {}  # (session, viewer) -> the viewer's RTCPeerConnection

    def routes(self, app: web.Application) -> None:
        app.router.add_post("/whip", self.publish)
        app.router.add_delete("/whip/{session}", self.end_publish)
        app.router.add_post("/whep/{session}", self.view)
        app.router.add_delete("/whep/{session}/{viewer}", self.end_view)
        for path in ("/whip/{session}", "/whep/{session}/{viewer}"):
            app.router.add_patch(path, self.no_trickle)
        app.router.add_route("OPTIONS", "/{path:wh[ie]p.*}", self.preflight)

    # --- checks ------------------------------------------------------------------------------------------
    def _authorize(self, request: web.Request) -> None:
        require_bearer(request, self.server.config.token)

    def _may_watch(self, request: web.Request, session: Session) -> None:
        """Rights as for `view`: the session's view key (Bearer, from the WHIP answer's View-Key header or the
        caller's viewKey), or control rights (the server's token; loopback when it has none)."""
        scheme, _, given = request.headers.get("Authorization", "").partition(" ")
        if scheme.lower() == "bearer" and token_matches(given.strip(), session.view_key):
            return
        require_bearer(request, self.server.config.token, loopback_without_token=True)

    async def _offer(self, request: web.Request, needs: str) -> RTCSessionDescription:
        if request.content_type != SDP:
            raise _fail(web.HTTPUnsupportedMediaType, f"the offer must be sent as Content-Type: {SDP}")
        body = await read_limited(request, MAX_SDP_BYTES)
        if len(body) > MAX_SDP_BYTES or (request.content_length or 0) > MAX_SDP_BYTES:
            raise web.HTTPRequestEntityTooLarge(MAX_SDP_BYTES, max(len(body), request.content_length or 0),
                                                text=f"an SDP offer is at most {MAX_SDP_BYTES} bytes\n")
        sdp = body.decode("utf-8", errors="replace")
        if not sdp.lstrip().startswith("v=0"):
            raise _fail(web.HTTPBadRequest, "not an SDP offer (it must start with v=0)")
        if f"m={needs}" not in sdp:
            what = "send audio (the voice that drives the avatar)" if needs == "audio" else "receive video"
            raise _fail(web.HTTPBadRequest, f"the offer has no {needs} m-line: it must {what}")
        return RTCSessionDescription(sdp=sdp, type="offer")

    def _session(self, wanted: str) -> Session:
        sessions = [s for s in self.server.sessions.values() if not s.closed]
        if wanted == "latest":
            if not sessions:
                raise _fail(web.HTTPNotFound, "no live session to view")
            return max(sessions, key=lambda s: s.created)
        session = self.server.sessions.get(wanted)
        if session is None or session.closed:
            raise _fail(web.HTTPNotFound, f"no session {wanted!r}")
        return session

    # --- handlers ----------------------------------------------------------------------------------------
    async def publish(self, request: web.Request) -> web.StreamResponse:
        self._authorize(request)
        offer = await self._offer(request, "audio")
        query = request.query
        try:
            instruction = parse_instruction(query.get("instruction"), _number(query.get("intensity")))
            session = await self.server.open_session(offer, instruction, portrait=query.get("portrait"))
        except ProtocolError as exc:  # ServerBusy, a bad instruction, an unknown portrait
            busy = "busy" in str(exc)
            raise _fail(web.HTTPServiceUnavailable if busy else web.HTTPBadRequest, str(exc),
                        **({"Retry-After": "5"} if busy else {})) from None
        self.published = {s for s in self.published if s in self.server.sessions} | {session.id}
        log.info("WHIP publisher on session %s", session.id)
        created = self._created(session.pc.localDescription.sdp, f"/whip/{session.id}")
        created.headers["View-Key"] = session.view_key  # a WHEP viewer of this session sends it as its Bearer
        return created

    async def end_publish(self, request: web.Request) -> web.StreamResponse:
        self._authorize(request)
        wanted = request.match_info["session"]
        session = self.server.sessions.get(wanted)
        if wanted not in self.published or session is None or session.closed:
            raise _fail(web.HTTPNotFound, f"no WHIP session {wanted!r}")
        self._may_watch(request, session)  # its publisher holds the view key
        await session.close("the WHIP publisher ended it")
        return web.Response(text="ended\n")

    async def view(self, request: web.Request) -> web.StreamResponse:
        offer = await self._offer(request, "video")
        session = self._session(request.match_info["session"])
        self._may_watch(request, session)
        try:
            pc, answer = await session.add_viewer(offer, self.server.max_viewers)
        except ProtocolError as exc:
            raise _fail(web.HTTPBadRequest, str(exc)) from None
        viewer = secrets.token_urlsafe(6)
        self.viewers = {key: peer for key, peer in self.viewers.items() if peer.connectionState != "closed"}
        self.viewers[(session.id, viewer)] = pc
        return self._created(answer.sdp, f"/whep/{session.id}/{viewer}")

    async def end_view(self, request: web.Request) -> web.StreamResponse:
        key = (request.match_info["session"], request.match_info["viewer"])
        session = self.server.sessions.get(key[0])
        if key not in self.viewers or session is None:
            raise _fail(web.HTTPNotFound, f"no viewer {key[1]!r} of session {key[0]!r}")
        self._may_watch(request, session)
        await session.remove_viewer(self.viewers.pop(key))
        return web.Response(text="ended\n")

    async def no_trickle(self, request: web.Request) -> web.StreamResponse:
        raise web.HTTPMethodNotAllowed("PATCH", ["DELETE"],
                                       text="trickle ICE and ICE restarts are not supported: the answer is complete\n")

    async def preflight(self, request: web.Request) -> web.StreamResponse:
        response = web.Response(status=204, headers={"Access-Control-Allow-Methods": ALLOWED_METHODS,
                                                     "Access-Control-Allow-Headers": "Authorization, Content-Type",
                                                     "Accept-Post": SDP})
        return response

    def _created(self, sdp: str, location: str) -> web.StreamResponse:
        return web.Response(status=201, body=sdp.encode(), content_type=SDP, headers={"Location": location})


def _number(text: str | None) -> float | None:
    if text is None:
        return None
    try:
        value = float(text)
    except ValueError:
        raise ProtocolError(f"intensity must be a number between 0 and 1, got {text!r}") from None
    return value if math.isfinite(value) else math.nan
