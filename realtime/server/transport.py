"""How the front reaches a worker: the `WorkerTransport` interface, and `LocalWorker`, a child process on this
machine. The router only uses the interface, so a Ray actor that runs the same worker on another node can take
LocalWorker's place (issue #13): it must start the worker, say where its internal endpoint is and when it is gone.
"""
from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import pickle
import sys
from abc import ABC, abstractmethod
from pathlib import Path

from realtime.config import AvatarConfig
from realtime.server.worker import READY, WorkerSpec

log = logging.getLogger(__name__)
PACKAGE_ROOT = str(Path(__file__).resolve().parents[2])  # the folder that holds `realtime`


class WorkerStartError(RuntimeError):
    """A worker exited or did not listen within its start timeout."""


class WorkerTransport(ABC):
    """One worker, wherever it runs. `url`: its internal HTTP base (ws: + /ws for signalling), valid once
    started; `pid`: its process id on its node; `node`: where it runs."""

    worker_id: str
    url: str = ""
    pid: int | None = None
    node: str = "local"
    trained: bool | None = None  # whether its generator is a trained one (None: not known yet)

    @abstractmethod
    async def start(self) -> None:
        """Starts the worker and returns once it listens (raises WorkerStartError otherwise)."""

    @abstractmethod
    async def wait(self) -> str:
        """Returns when the worker is gone, with a reason ("exit code -9")."""

    @abstractmethod
    async def stop(self) -> None:
        """Ends the worker (its sessions are closed); idempotent."""

    @property
    def ws_url(self) -> str:
        return "ws" + self.url.removeprefix("http") + "/ws"


class LocalWorker(WorkerTransport):
    """`python -m realtime.server.worker` as a child process; its stdin is its lifeline (EOF = stop)."""

    def __init__(self, worker_id: str, config: AvatarConfig, secret: str, log_level: str = "WARNING"):
        self.worker_id = worker_id
        self.spec = WorkerSpec(config, secret, worker_id, log_level)
        self.process: asyncio.subprocess.Process | None = None
        self._drain: asyncio.Task | None = None

    async def start(self) -> None:
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in (PACKAGE_ROOT, os.environ.get("PYTHONPATH"))
                                                           if p)}
        self.process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "realtime.server.worker", stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE, env=env, start_new_session=True)  # a terminal's ^C goes to the front
        self.pid = self.process.pid
        self.process.stdin.write(pickle.dumps(self.spec))
        await self.process.stdin.drain()
        timeout = self.spec.config.server.worker_start_timeout_s
        try:
            async with asyncio.timeout(timeout):
                while True:
                    line = (await self.process.stdout.readline()).decode(errors="replace")
                    if not line:
                        raise WorkerStartError(f"worker {self.worker_id} exited while starting "
                                               f"(code {await self.process.wait()})")
                    if line.startswith(READY):
                        port, _, trained = line[len(READY):].partition(" trained=")
                        self.url, self.trained = f"http://127.0.0.1:{int(port)}", trained.strip() == "1"
                        break
        except BaseException as exc:
            await self.stop()
            if isinstance(exc, TimeoutError):
                raise WorkerStartError(f"worker {self.worker_id} did not listen within {timeout:g} s") from None
            raise
        self._drain = asyncio.ensure_future(self._drain_output())
        log.info("worker %s: pid %d on %s", self.worker_id, self.pid, self.url)

    async def _drain_output(self) -> None:
        """Its stdout must keep flowing (a full pipe would block it); what it prints goes to our log."""
        while line := await self.process.stdout.readline():
            log.debug("worker %s: %s", self.worker_id, line.decode(errors="replace").rstrip())

    async def wait(self) -> str:
        assert self.process is not None, "start() first"
        code = await self.process.wait()
        return f"exit code {code}" if code >= 0 else f"killed by signal {-code}"

    async def stop(self, grace_s: float = 10.0) -> None:
        process = self.process
        if process is None:
            return
        if process.returncode is None:
            with contextlib.suppress(Exception):
                process.stdin.close()  # EOF: the worker closes its sessions and exits
            try:
                await asyncio.wait_for(process.wait(), grace_s)
            except TimeoutError:
                with contextlib.suppress(ProcessLookupError):
                    process.kill()
                await process.wait()
        if self._drain is not None:
            self._drain.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._drain
        with contextlib.suppress(Exception):
            process._transport.close()  # the pipes' fds now, not at garbage collection
