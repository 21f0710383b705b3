"""A worker process: `python -m realtime.server.worker`, started by the front (transport.LocalWorker).

It reads one pickled `WorkerSpec` from stdin, loads model, encoder and portrait once (the same resources as the
in-process server), and serves whole sessions with the ordinary server code on an internal endpoint: loopback,
a random port, and the front's secret as its token with `require_token_for_calls`, so nothing but the front can
start, view or control anything there. Peers' media flows to this process directly (its own ICE candidates).
It prints `AVATAR-WORKER port=N trained=0|1` once it listens, and stops (closing its sessions) when stdin reaches
EOF: the front closed it, or died.
"""
from __future__ import annotations

import asyncio
import dataclasses
import logging
import pickle
import sys
import threading
from dataclasses import dataclass

from realtime.config import AvatarConfig

READY = "AVATAR-WORKER port="


@dataclass
class WorkerSpec:
    config: AvatarConfig  # the front's composed config; its [server] is narrowed to the internal endpoint here
    secret: str
    worker_id: str
    log_level: str = "WARNING"

    def worker_config(self, host: str = "127.0.0.1") -> AvatarConfig:
        """Its internal endpoint on `host` (loopback here; a Ray worker's node address, ray_workers.py). The front
        admits calls; the worker's own limit has one slot more for a session still closing when the front,
        which has let it go, sends the next call (closing peers can take a second on a loaded machine). Load
        admission is the front's too: the worker only measures, and reports it in its /api/sessions' `load`."""
        slots = self.config.server.sessions_per_worker + 1
        server = dataclasses.replace(self.config.server, host=host, port=0, token=self.secret,
                                     require_token_for_calls=True, max_sessions=slots, workers=0, ray=None,
                                     admit_by_load=False, cert=None, key=None, allowed_origins=(), allowed_hosts=())
        return dataclasses.replace(self.config, server=server)


    def configure_logging(self) -> None:
        logging.basicConfig(level=self.log_level.upper(),
                            format=f"%(asctime)s %(levelname)s worker {self.worker_id}: %(name)s: %(message)s")
        for noisy in ("aioice", "aiortc", "websockets"):  # the front's polls and every ICE check otherwise
            logging.getLogger(noisy).setLevel(max(logging.WARNING, logging.getLogger().level))


def _stop_on_eof(loop: asyncio.AbstractEventLoop, stop: asyncio.Event) -> None:
    """A thread that waits for stdin's EOF: the front's end of the pipe closed (on purpose or by its death)."""
    def wait() -> None:
        while sys.stdin.buffer.read(4096):
            pass
        loop.call_soon_threadsafe(stop.set)

    threading.Thread(target=wait, name="front-pipe", daemon=True).start()


async def run_worker(spec: WorkerSpec) -> None:
    from realtime.server import run_server

    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    _stop_on_eof(loop, stop)

    def ready(server) -> None:
        print(f"{READY}{server.port} trained={int(server.resources.trained)}", flush=True)

    await run_server(spec.worker_config(), stop, ready)


def main() -> int:
    spec: WorkerSpec = pickle.load(sys.stdin.buffer)  # from our parent, the front (never from the network)
    spec.configure_logging()
    try:
        import uvloop
    except ImportError:
        asyncio.run(run_worker(spec))
    else:
        uvloop.run(run_worker(spec))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
