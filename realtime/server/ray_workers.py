"""Workers as Ray actors (`avatar serve --ray [ADDRESS] --workers N`): the same worker as `LocalWorker`'s child
process (model, encoder and portrait loaded once; whole sessions, peers' media straight to it), run inside a Ray
actor process that Ray places on any node of the cluster. The front's router does not know the difference.

    front (this process, a Ray driver) ──ray.remote──▶ AvatarWorkerActor on node X: AvatarServer on X's address
    caller ◀══════════════ WebRTC media, directly (ICE candidates of node X) ══════════▶ actor process

The actor serves on its node's cluster address (the front may be on another machine) with the front's secret as
its token and `require_token_for_calls`, as a local worker does on loopback. A dead actor is not restarted in
place: its sessions end, and the router asks Ray for a new actor, which Ray places where a CPU is free.
Imported only with `--ray`: the single-machine server needs no Ray.
"""
from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from dataclasses import dataclass
from typing import Any

import ray

from realtime.config import AvatarConfig
from realtime.server.transport import WorkerStartError, WorkerTransport
from realtime.server.worker import WorkerSpec

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class WorkerAddress:
    port: int
    host: str  # the node's cluster address: what the front and the peers' media reach
    pid: int
    node: str  # Ray's node id
    trained: bool


@ray.remote
class AvatarWorkerActor:
    """One worker: `AvatarServer` on this actor's event loop (an async actor), until `stop()` or its death."""

    def __init__(self, spec: WorkerSpec):
        self.spec = spec
        self.stopped = asyncio.Event()
        self.task: asyncio.Task | None = None

    async def start(self) -> WorkerAddress:
        from realtime.server import run_server

        self.spec.configure_logging()
        host = ray.util.get_node_ip_address()
        listening: asyncio.Future = asyncio.get_running_loop().create_future()
        self.task = asyncio.ensure_future(run_server(self.spec.worker_config(host), self.stopped,
                                                     lambda server: listening.set_result(server)))
        done, _ = await asyncio.wait([listening, self.task], return_when=asyncio.FIRST_COMPLETED)
        if listening not in done:  # it failed while loading: say why, in the front's log
            self.task.result()
        server = listening.result()
        return WorkerAddress(server.port, host, os.getpid(), ray.get_runtime_context().get_node_id(),
                             bool(server.resources.trained))

    async def serve(self) -> None:
        """Returns when the server has stopped (the front awaits it to learn of the worker's end)."""
        if self.task is not None:
            await asyncio.shield(self.task)

    async def stop(self) -> None:
        self.stopped.set()
        await self.serve()


class RayWorker(WorkerTransport):
    """A worker as a Ray actor; `options` are Ray's actor options (CPUs per worker, placement)."""

    def __init__(self, worker_id: str, spec: WorkerSpec, options: dict[str, Any]):
        self.worker_id, self.spec, self.options = worker_id, spec, options
        self.actor: Any = None
        self._served: Any = None  # the actor's serve() call: it fails when the actor dies

    async def start(self) -> None:
        self.actor = AvatarWorkerActor.options(**self.options).remote(self.spec)
        timeout = self.spec.config.server.worker_start_timeout_s
        try:
            address: WorkerAddress = await asyncio.wait_for(self.actor.start.remote(), timeout)
        except BaseException as exc:
            await self.stop()
            if isinstance(exc, TimeoutError):
                raise WorkerStartError(f"worker {self.worker_id} did not listen within {timeout:g} s (are there "
                                       f"{self.options.get('num_cpus', 1)} free CPU(s) in the cluster?)") from None
            if isinstance(exc, ray.exceptions.RayError):
                raise WorkerStartError(f"worker {self.worker_id} failed to start: {exc}") from None
            raise
        self.url, self.pid, self.node, self.trained = (f"http://{address.host}:{address.port}", address.pid,
                                                       address.node, address.trained)
        self._served = self.actor.serve.remote()
        log.info("worker %s: Ray actor pid %d on node %s, %s", self.worker_id, self.pid, self.node[:12], self.url)

    async def wait(self) -> str:
        assert self._served is not None, "start() first"
        try:
            await self._served
        except ray.exceptions.RayActorError as exc:
            return f"its Ray actor died ({type(exc).__name__})"
        except ray.exceptions.RayError as exc:
            return f"its Ray actor failed: {exc}"
        return "it stopped"

    async def stop(self, grace_s: float = 10.0) -> None:
        actor, self.actor = self.actor, None
        if actor is None:
            return
        with contextlib.suppress(ray.exceptions.RayError, TimeoutError):
            await asyncio.wait_for(actor.stop.remote(), grace_s)  # its sessions close cleanly
        with contextlib.suppress(Exception):
            ray.kill(actor, no_restart=True)


def connect(address: str | None) -> dict[str, float]:
    """Joins the cluster at `address` ("auto", "host:port", "ray://…"; $RAY_ADDRESS when None and set), or starts a
    local Ray instance; -> the cluster's resources."""
    if not ray.is_initialized():
        address = address or os.environ.get("RAY_ADDRESS") or None
        ray.init(address=address, include_dashboard=False, configure_logging=False, log_to_driver=True)
    return ray.cluster_resources()


def worker_factory(config: AvatarConfig, secret: str, log_level: str):
    """-> make_worker(worker_id) for the router, spreading actors over the nodes."""
    options = {"num_cpus": config.server.ray_worker_cpus, "scheduling_strategy": "SPREAD", "max_restarts": 0,
               "max_concurrency": 64}
    return lambda worker_id: RayWorker(worker_id, WorkerSpec(config, secret, worker_id, log_level), options)


def shutdown() -> None:
    if ray.is_initialized():
        ray.shutdown()
