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
from realtime.server.load import AdmissionRules, Decision, Measured, decide, describe
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
    report: dict[str, Any] | None = None  # the `load` of its last /api/sessions (its process and node, measured)
    report_at: float | None = None  # when that was asked for

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
        """The worker with the most free slots among those the measured load admits a call on, one of its slots
        held for an offer on its way; or `server busy` saying why."""
        candidates = [s for s in self.workers.values() if self.free(s) > 0]
        if not candidates:
            raise NoWorker(f"server busy: all {self.capacity} session(s) in use, try again later")
        if self.config.admit_by_load:
            verdicts = [(s, self.admission(s)) for s in candidates]
            candidates = [s for s, verdict in verdicts if verdict.admit]
            if not candidates:
                raise NoWorker(f"server busy: {verdicts[0][1].reason}, try again later")
        best = max(candidates, key=self.free)
        best.reserved += 1
        return best

    def _unmeasured(self, state: WorkerState) -> int:
        """Its calls that its last report's window does not hold: on their way, placed since, or not settled."""
        placed = sum(1 for sid in state.sessions if sid in self.routes
                     and (state.report_at is None or self.routes[sid].created >= state.report_at))
        return state.reserved + placed + int((state.report or {}).get("unmeasured_sessions", 0))

    def measured(self, state: WorkerState) -> Measured:
        """One more call on `state`'s worker as load.decide takes it: its node's busy cores and calls (every worker
        there), its own process's cores, the measured cost of a call (the highest any worker reports)."""
        peers = [s for s in self.workers.values() if s.up and s.transport.node == state.transport.node]
        reports = [s.report for s in peers if s.report]
        costs = [r["session_cost_cores"] for r in reports if r.get("cost_measured")]
        return Measured(cores=max((r["cores"] for r in reports), default=self.config.cores),
                        machine_load=max((r["busy_cores"] for r in reports), default=0.0),
                        process_load=float((state.report or {}).get("process_cores", 0.0)),
                        session_cost=max(costs, default=None),
                        sessions=sum(len(s.sessions) + s.reserved for s in peers),
                        unmeasured=sum(self._unmeasured(s) for s in peers), process_unmeasured=self._unmeasured(state),
                        behind=tuple(b for r in reports for b in r.get("behind", ())))

    def admission(self, state: WorkerState) -> Decision:
        return decide(self.measured(state), AdmissionRules.of(self.config))

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
        asked = time.monotonic()
        try:
            async with self._http.get(state.transport.url + "/api/sessions", timeout=aiohttp.ClientTimeout(
                    total=POLL_TIMEOUT_S), headers={"Authorization": f"Bearer {self.secret}"}) as response:
                response.raise_for_status()
                body = await response.json()
                entries = body["sessions"]
                state.report, state.report_at = body.get("load"), asked
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
        """Slots per worker, and the measured load: per node (cores, busy cores, room for more calls), summed."""
        workers = [{"worker": s.id, "pid": s.transport.pid, "node": s.transport.node, "up": s.up,
                    "sessions": len(s.sessions), "slots": self.config.sessions_per_worker, "free": self.free(s),
                    "problem": s.problem if s.up else None,
                    "process_cores": (s.report or {}).get("process_cores") if s.up else None}
                   for s in self.workers.values()]
        free = sum(w["free"] for w in workers)
        by_load = self.config.admit_by_load
        nodes = {node: self._node_view(node) for node in sorted({s.transport.node for s in self.workers.values()
                                                                  if s.up})}
        views = list(nodes.values())
        admitting = free > 0 and (not by_load or any(v["admitting"] for v in views))
        refusals = [v["refusing_because"] for v in views if v["refusing_because"]]
        room = min(free, sum(v["room"] for v in views)) if by_load else free
        return {"sessions": len(self.routes), "capacity": self.capacity, "free": free, "admit_by_load": by_load,
                "cores": sum(v["cores"] for v in views), "busy_cores": round(sum(v["busy_cores"] for v in views), 3),
                "session_cost_cores": max((v["session_cost_cores"] for v in views),
                                          default=self.config.session_cost_prior),
                "cost_measured": any(v["cost_measured"] for v in views), "room": room,
                "capacity_estimate": len(self.routes) + room, "admitting": admitting,
                "refusing_because": None if admitting else refusals[0] if free and by_load and refusals
                else f"all {self.capacity} session(s) in use",
                "nodes": nodes, "workers": workers}

    def _node_view(self, node: str) -> dict[str, Any]:
        """The load figures of a node, as its best placement (an admitted worker with the most room) sees them."""
        states = [s for s in self.workers.values() if s.up and s.transport.node == node]
        open_ = [s for s in states if self.free(s) > 0]
        rules = AdmissionRules.of(self.config)
        views = [describe(m, decide(m, rules), self.config.load_window_s)
                 for m in (self.measured(s) for s in open_ or states[:1])]
        best = max(views, key=lambda v: (v["admitting"], v["room"]))
        if not open_:  # no slot here: the load figures stand, the verdict is the slots'
            best.update(admitting=False, refusing_because=None, room=0)
        return best
