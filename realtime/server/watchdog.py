"""The server's watchdog: ends the sessions that can no longer serve a caller (a dead or stalled worker, a peer
that never connected or dropped off, a silent caller) and says whether the server as a whole is healthy.
Every check is exception-safe: one broken session must not end idle and crash handling for the others."""
from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

from realtime.server.config import ServerConfig

log = logging.getLogger(__name__)


def close_reason(session: Any, config: ServerConfig, now: float) -> str | None:
    """Why `session` must end now, or None."""
    pipeline = session.pipeline
    if pipeline.error is not None:
        return f"worker failed: {pipeline.error}"
    if pipeline.stalled(config.stall_timeout_s, now):
        return f"stalled: no frame produced for over {config.stall_timeout_s:g} s"
    if session.connected_at is None and now - session.created > config.connect_timeout_s:
        return f"the peer did not connect within {config.connect_timeout_s:g} s"
    if session.disconnected_since is not None and now - session.disconnected_since > config.disconnect_grace_s:
        return f"the peer was disconnected for over {config.disconnect_grace_s:g} s"
    if now - session.last_activity > config.idle_timeout_s:
        return f"no audio or instruction for {config.idle_timeout_s:g} s"
    return None


class Watchdog:
    def __init__(self, config: ServerConfig, sessions: dict[str, Any], denoiser: Any = None,
                 interval_s: float = 0.5):
        self.config, self.sessions, self.denoiser = config, sessions, denoiser
        self.interval_s = interval_s
        self.problems: list[str] = []  # why the server is unhealthy; empty = healthy
        self._hung: dict[str, Any] = {}  # closed sessions whose stalled worker has not come back yet
        self._task: asyncio.Task | None = None

    def start(self) -> None:
        self._task = asyncio.ensure_future(self._run())

    def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self.interval_s)
            try:
                await self.check()
            except Exception:  # keep watching whatever happened
                log.exception("watchdog check failed")

    async def check(self) -> None:
        now = time.monotonic()
        for session in list(self.sessions.values()):
            try:
                reason = close_reason(session, self.config, now)
                if reason is None:
                    continue
                if reason.startswith("stalled"):
                    self._hung[session.id] = session.pipeline
                await session.close(reason)
            except Exception:
                log.exception("watchdog: session %s", getattr(session, "id", "?"))
        limit = self.config.stall_timeout_s
        self._hung = {sid: p for sid, p in self._hung.items() if p.alive and p.stalled(limit)}
        problems = [f"the worker of session {sid} is stalled" for sid in self._hung]
        if self.denoiser is not None and self.denoiser.stalled(self.config.stall_timeout_s):
            problems.insert(0, "the shared denoiser is stalled (every call waits for it)")
        self.problems = problems

    @property
    def healthy(self) -> bool:
        return not self.problems
