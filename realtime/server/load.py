"""Admission by measured load: whether one more call fits on this machine before any call repeats frames.

    LoadMeter (one per serving process): every sample_s, the process's CPU time, the machine's busy time
    (/proc/stat: every process, callers and other programs included) and each call's repeated frames; over the
    last window: busy cores, the process's cores, the cost of one session (process cores per settled session)
    and the calls falling behind.
    decide(Measured, AdmissionRules) -> Decision: the pure arithmetic (tested with injected measurements).

The in-process server decides for itself (app.py); with worker processes, each worker measures and reports in
its /api/sessions, and the front decides per worker from the latest reports of the workers on its node
(router.py). Sessions that the measured window does not hold yet (being set up, just connected, placed since
the last report) are counted at the session cost on top of the measurement, so calls that arrive together are
not all admitted against a load that predates them.
"""
from __future__ import annotations

import asyncio
import math
import os
import time
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from realtime.server.config import ServerConfig

SAMPLE_S = 0.5
_CLOCK_TICKS = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100
_EPS = 1e-9  # float slack: a budget met exactly still fits


@dataclass(frozen=True)
class AdmissionRules:
    max_load: float = 0.9  # fraction of the cores the machine may be kept busy
    process_max_load: float = 1.0  # cores one serving process may be given (one GIL)
    cost_prior: float = 0.95  # cores per session before one was measured
    max_repeats: int = 2  # repeated frames per call in the window before it counts as falling behind

    @classmethod
    def of(cls, config: ServerConfig) -> AdmissionRules:
        return cls(config.admit_max_load, config.admit_process_max_load, config.session_cost_prior,
                   config.admit_max_repeats)


@dataclass(frozen=True)
class Measured:
    cores: float
    machine_load: float  # busy cores of the whole machine over the window
    process_load: float  # busy cores of the process that would own the new call
    session_cost: float | None  # measured cores per session; None = none measured yet
    sessions: int  # our calls on this machine, running or being set up
    unmeasured: int = 0  # of those, calls whose cost the window does not hold yet
    process_unmeasured: int = 0  # the same, in the process that would own the new call
    behind: tuple[int, ...] = ()  # repeated frames in the window of each call falling behind (no ids: /healthz is
    # public, and a session id is half of what controls a call)


@dataclass(frozen=True)
class Decision:
    admit: bool
    reason: str  # why not; "" when admitted
    cost: float  # cores one more call is expected to take
    load: float  # the machine's busy cores, with the unmeasured calls counted in
    room: int  # calls that still fit by the estimate


def decide(m: Measured, rules: AdmissionRules) -> Decision:
    cost = m.session_cost if m.session_cost is not None else rules.cost_prior
    load = m.machine_load + m.unmeasured * cost
    process = m.process_load + m.process_unmeasured * cost
    budget = m.cores * rules.max_load
    room = max(0, min(math.floor((budget - load) / cost + _EPS),
                      math.floor((rules.process_max_load - process) / cost + _EPS)))
    if m.sessions == 0:  # refusing the first call helps no one: the machine has nothing of ours to protect
        return Decision(True, "", cost, load, max(room, 1))
    reason = ""
    if m.behind:
        reason = (f"{len(m.behind)} call(s) here falling behind (up to {max(m.behind)} repeated frames in the last "
                  "window)")
    elif load + cost > budget + _EPS:
        reason = (f"the machine is at {load:.2f} of {m.cores:g} cores and one more call costs ~{cost:.2f} "
                  f"(admitting up to {100 * rules.max_load:g} %)")
    elif process + cost > rules.process_max_load + _EPS:
        reason = (f"its process is at {process:.2f} cores and one more call costs ~{cost:.2f} (one process is "
                  f"given at most {rules.process_max_load:g})")
    return Decision(not reason, reason, cost, load, 0 if reason else room)


# --- measuring ----------------------------------------------------------------------------------------------
def machine_busy_s() -> float | None:
    """Busy CPU seconds of the whole machine since boot (all cores, every process), from /proc/stat."""
    try:
        first = Path("/proc/stat").read_text().split("\n", 1)[0].split()
    except OSError:
        return None
    ticks = [int(v) for v in first[1:]]
    idle = ticks[3] + (ticks[4] if len(ticks) > 4 else 0)  # idle + iowait
    return (sum(ticks) - idle) / _CLOCK_TICKS


@dataclass
class _Sample:
    at: float
    process_s: float
    machine_s: float | None
    repeats: dict[str, int]


@dataclass
class LoadMeter:
    """Samples this process and machine; `report(...)` is what /api/sessions carries under `load`."""

    config: ServerConfig
    clock: Callable[[], float] = time.monotonic
    cost: float | None = None  # the last measured cores per session (kept after the calls end)
    _samples: deque[_Sample] = field(default_factory=deque)
    _members: frozenset[str] = frozenset()
    _members_since: float = 0.0
    _task: asyncio.Task | None = None

    def start(self, sessions: Callable[[], Iterable[Any]]) -> LoadMeter:
        async def run() -> None:
            while True:
                self.sample(list(sessions()))
                await asyncio.sleep(SAMPLE_S)

        self._task = asyncio.ensure_future(run())
        return self

    def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()

    def settled(self, session: Any, now: float | None = None) -> bool:
        """Connected for a whole window: its cost is in the measurement."""
        connected = getattr(session, "connected_at", None)
        return connected is not None and (now or self.clock()) - connected >= self.config.load_window_s

    def sample(self, sessions: list[Any]) -> None:
        now = self.clock()
        live = [s for s in sessions if not s.closed]
        members = frozenset(s.id for s in live)
        if members != self._members:
            self._members, self._members_since = members, now
        repeats = {s.id: int(s.stats.counts.get("frames_repeated", 0) + s.stats.counts.get("frames_late_skipped", 0))
                   for s in live}  # a late frame keeps the previous picture: a repeat to the viewer
        self._samples.append(_Sample(now, time.process_time(), machine_busy_s(), repeats))
        while len(self._samples) > 2 and self._samples[1].at <= now - self.config.load_window_s:
            self._samples.popleft()
        # The cost is measured only over a window in which the same calls ran, all of them connected throughout.
        window = self.config.load_window_s
        stable = now - self._members_since >= window and self._span() >= 0.8 * window
        if live and stable and all(self.settled(s, now) for s in live):
            self.cost = self.process_load() / len(live)

    def _span(self) -> float:
        return self._samples[-1].at - self._samples[0].at if len(self._samples) > 1 else 0.0

    def process_load(self) -> float:
        span = self._span()
        return (self._samples[-1].process_s - self._samples[0].process_s) / span if span > 0 else 0.0

    def machine_load(self) -> float:
        span = self._span()
        if span <= 0 or self._samples[0].machine_s is None or self._samples[-1].machine_s is None:
            return self.process_load()  # no /proc/stat: this process is all that is known
        return max(0.0, (self._samples[-1].machine_s - self._samples[0].machine_s) / span)

    def behind(self) -> tuple[int, ...]:
        """Calls that repeated more than admit_max_repeats frames in the window (once settled: a call's start
        is not a sign of load)."""
        if len(self._samples) < 2:
            return ()
        first, last = self._samples[0].repeats, self._samples[-1].repeats
        return tuple(n - first[sid] for sid, n in last.items()
                     if sid in first and n - first[sid] > self.config.admit_max_repeats)

    def measured(self, sessions: list[Any], starting: int = 0) -> Measured:
        """This process's measurement, as `decide` takes it (the machine is this process's alone to plan)."""
        live = [s for s in sessions if not s.closed]
        unmeasured = starting + sum(1 for s in live if not self.settled(s))
        return Measured(self.config.cores, self.machine_load(), self.process_load(), self.cost,
                        len(live) + starting, unmeasured, unmeasured, self.behind())

    def report(self, sessions: list[Any], starting: int = 0) -> dict[str, Any]:
        """Load figures (cores busy, per-session cost, capacity estimate) and this process's own verdict."""
        m = self.measured(sessions, starting)
        return describe(m, decide(m, AdmissionRules.of(self.config)), self.config.load_window_s)


def describe(m: Measured, d: Decision, window_s: float) -> dict[str, Any]:
    return {"cores": m.cores, "busy_cores": round(m.machine_load, 3), "process_cores": round(m.process_load, 3),
            "session_cost_cores": round(d.cost, 3), "cost_measured": m.session_cost is not None,
            "unmeasured_sessions": m.unmeasured, "behind": list(m.behind), "room": d.room,
            "capacity_estimate": m.sessions + d.room, "admitting": d.admit, "refusing_because": d.reason or None,
            "window_s": window_s}


def load_line(load: dict[str, Any]) -> str:
    """One line of /healthz's text."""
    verdict = "admitting" if load["admitting"] else f"not admitting: {load['refusing_because']}"
    source = "measured" if load["cost_measured"] else "prior"
    return (f"load {load['busy_cores']:.2f} of {load['cores']:g} cores, ~{load['session_cost_cores']:.2f} core per "
            f"call ({source}), room for {load['room']} more: {verdict}")
