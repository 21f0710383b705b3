"""The front's routing table: which worker owns which session, how many slots each has free, and the workers'
lives (started once, replaced when one dies). Only `WorkerTransport` is used to reach a worker, so local processes
and Ray actors are interchangeable here.

    route = router.reserve() ... router.add(Route(id, worker, view_key)) / router.release(worker)
    router.owner(session) -> WorkerState      router.listing(with_stats) -> entries with worker, pid
"""
from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import aiohttp

from realtime.server.config import ServerConfig
from realtime.server.protocol import ProtocolError
from realtime.server.transport import WorkerStartError, WorkerTransport

log = logging.getLogger(__name__)
RESTART_BACKOFF_S = (0.5, 2.0, 5.0, 15.0)  # a worker that keeps dying at start-up is retried ever more slowly
POLL_TIMEOUT_S = 5.0  # a hung worker must not hold up the poll of the others for long


class NoWorker(ProtocolError):
    """Every slot is taken (the same `server busy` message as the in-process server), or no worker is up."""


@dataclass
class Route:
    """A session as the front knows it; duck-types the Session fields the WHIP/WHEP checks read."""

    id: str
    worker: str
    view_key: str | None
    whip: bool = False  # started by a WHIP publisher (only those end on DELETE /whip/ID)
    created: float = field(default_factory=time.monotonic)
    closed: bool = False


@dataclass
class WorkerState:
    transport: WorkerTransport
    up: bool = False
    reserved: int = 0  # offers on their way to this worker
    sessions: set[str] = field(default_factory=set)
    restarts: int = 0
    problem: str | None = None  # its /healthz's complaint (a stalled session or denoiser), from the last poll

    @property
    def id(self) -> str:
        return self.transport.worker_id


class Router:
    def __init__(self, config: ServerConfig, secret: str, make_worker: Callable[[str], WorkerTransport]):
        self.config, self.secret, self.make_worker = config, secret, make_worker
        self.workers: dict[str, WorkerState] = {}
        self.routes: dict[str, Route] = {}
        self.on_death: list[Callable[[WorkerState, str], Awaitable[None]]] = []  # front: end its callers' calls
        self._tasks: set[asyncio.Task] = set()
        self._http: aiohttp.ClientSession | None = None
        self._stopping = False

    # --- lifecycle -------------------------------------------------------------------------------------
    async def start(self) -> None:
        timeout = aiohttp.ClientTimeout(total=self.config.worker_request_timeout_s)
        self._http = aiohttp.ClientSession(timeout=timeout, connector=aiohttp.TCPConnector(limit=32))
        states = [WorkerState(self.make_worker(f"w{i}")) for i in range(self.config.workers)]
        self.workers = {s.id: s for s in states}
        started = await asyncio.gather(*(s.transport.start() for s in states), return_exceptions=True)
        failed = [exc for exc in started if isinstance(exc, BaseException)]
        if failed:
            await self.stop()
            raise failed[0]
        for state in states:
            state.up = True
            self._spawn(self._watch(state))
        self._spawn(self._poll())

    async def stop(self) -> None:
        self._stopping = True
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await asyncio.gather(*(s.transport.stop() for s in self.workers.values()), return_exceptions=True)
        if self._http is not None:
            await self._http.close()

    def _spawn(self, coro: Awaitable[None]) -> None:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _watch(self, state: WorkerState) -> None:
        """Waits for the worker's end; then its sessions end and a replacement starts (with back-off)."""
        while not self._stopping:
            reason = await state.transport.wait()
            state.up = False
            gone = [self.routes.pop(s) for s in list(state.sessions) if s in self.routes]
            state.sessions.clear()
            state.reserved = 0
            log.warning("worker %s (pid %s) died: %s; %d session(s) ended", state.id, state.transport.pid, reason,
                        len(gone))
            for route in gone:
                route.closed = True
            for callback in list(self.on_death):
                with contextlib.suppress(Exception):
                    await callback(state, reason)
            await state.transport.stop()  # its pipes
            while not self._stopping:
                await asyncio.sleep(RESTART_BACKOFF_S[min(state.restarts, len(RESTART_BACKOFF_S) - 1)])
                state.restarts += 1
                state.transport = self.make_worker(state.id)
                try:
                    await state.transport.start()
                except WorkerStartError as exc:
                    log.error("replacing worker %s failed: %s", state.id, exc)
                    continue
                state.up = True
                log.info("worker %s replaced: pid %s", state.id, state.transport.pid)
                break

    # --- admission and routes --------------------------------------------------------------------------
    @property
    def capacity(self) -> int:
        return self.config.workers * self.config.sessions_per_worker

    def free(self, state: WorkerState) -> int:
        return self.config.sessions_per_worker - len(state.sessions) - state.reserved if state.up else 0

    def reserve(self) -> WorkerState:
        """The worker with the most free slots, one of them held for an offer on its way; or `server busy`."""
        best = max(self.workers.values(), key=self.free, default=None)
        if best is None or self.free(best) <= 0:
            raise NoWorker(f"server busy: all {self.capacity} session(s) in use, try again later")
        best.reserved += 1
        return best

    def release(self, state: WorkerState) -> None:
        state.reserved = max(0, state.reserved - 1)

    def add(self, route: Route) -> None:
        state = self.workers.get(route.worker)
        if state is None or not state.up:
            return  # its worker died meanwhile
        self.routes[route.id] = route
        state.sessions.add(route.id)

    def remove(self, session: str) -> None:
        route = self.routes.pop(session, None)
        if route is not None:
            route.closed = True
            state = self.workers.get(route.worker)
            if state is not None:
                state.sessions.discard(session)

    def owner(self, session: str) -> WorkerState:
        route = self.routes.get(session)
        state = self.workers.get(route.worker) if route is not None else None
        if state is None or not state.up:
            raise ProtocolError(f"no session {session!r}")
        return state

    def owner_state(self, worker: str) -> WorkerState:
        state = self.workers.get(worker)
        if state is None or not state.up:
            raise ProtocolError(f"worker {worker} is not up")
        return state

    async def worker_http(self, state: WorkerState, method: str, path: str, body: bytes | None = None,
                          content_type: str | None = None, timeout_s: float | None = None
                          ) -> tuple[int, bytes, dict[str, str]]:
        """One HTTP request to a worker's internal endpoint, as the front (its secret as the Bearer)."""
        assert self._http is not None, "start() first"
        headers = {"Authorization": f"Bearer {self.secret}"}
        if content_type:
            headers["Content-Type"] = content_type
        try:
            timeout = {"timeout": aiohttp.ClientTimeout(total=timeout_s)} if timeout_s else {}  # else the session's
            async with self._http.request(method, state.transport.url + path, data=body, headers=headers,
                                          **timeout) as response:
                return response.status, await response.read(), dict(response.headers)
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise ProtocolError(f"worker {state.id} did not answer: {type(exc).__name__}: {exc}") from None

    # --- what the workers hold -------------------------------------------------------------------------
    async def _worker_sessions(self, state: WorkerState) -> list[dict[str, Any]] | None:
        """Its /api/sessions (with stats), or None when it does not answer."""
        if not state.up or self._http is None:
            return None
        try:
            async with self._http.get(state.transport.url + "/api/sessions", timeout=aiohttp.ClientTimeout(
                    total=POLL_TIMEOUT_S), headers={"Authorization": f"Bearer {self.secret}"}) as response:
                response.raise_for_status()
                entries = (await response.json())["sessions"]
        except (aiohttp.ClientError, TimeoutError, KeyError, ValueError) as exc:
            log.warning("worker %s did not list its sessions: %s", state.id, exc)
            return None
        for entry in entries:
            entry.update(worker=state.id, pid=state.transport.pid, node=state.transport.node)
        return entries

    async def listing(self, with_stats: bool = False) -> list[dict[str, Any]]:
        states = list(self.workers.values())
        found = await asyncio.gather(*(self._worker_sessions(s) for s in states))
        entries = [e for batch in found if batch for e in batch if e["session"] in self.routes]
        keep = ("session", "instruction", "intensity", "worker", "pid", "node")
        return entries if with_stats else [{k: e[k] for k in keep if k in e} for e in entries]

    async def _poll(self) -> None:
        """Sessions that ended on a worker by themselves (idle, failed peer, a WHIP publisher gone) free their
        slot here; a route younger than the question is kept (its answer may have raced the listing)."""
        while True:
            await asyncio.sleep(self.config.worker_poll_s)
            for state in list(self.workers.values()):
                asked = time.monotonic()
                await self._check_health(state)
                entries = await self._worker_sessions(state)
                if entries is None:
                    continue
                live = {e["session"] for e in entries}
                for session in list(state.sessions):
                    route = self.routes.get(session)
                    if session not in live and (route is None or route.created < asked):
                        self.remove(session)

    async def _check_health(self, state: WorkerState) -> None:
        try:
            status, body, _ = await self.worker_http(state, "GET", "/healthz", timeout_s=POLL_TIMEOUT_S)
        except ProtocolError as exc:
            state.problem = str(exc)
            return
        state.problem = None if status == 200 else body.decode(errors="replace").strip()

    def load(self) -> dict[str, Any]:
        workers = [{"worker": s.id, "pid": s.transport.pid, "node": s.transport.node, "up": s.up,
                    "sessions": len(s.sessions), "slots": self.config.sessions_per_worker, "free": self.free(s),
                    "problem": s.problem if s.up else None}
                   for s in self.workers.values()]
        return {"sessions": len(self.routes), "capacity": self.capacity,
                "free": sum(w["free"] for w in workers), "workers": workers}
