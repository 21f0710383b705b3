"""The real-time WebRTC avatar server (`avatar serve`).

    caller mic ──WebRTC──▶ AudioIngest ──▶ MotionPipeline (worker thread: StreamingSampler ▶ Renderer)
                                                   │ RenderedFrames
    caller / viewers ◀──WebRTC── AvatarVideoTrack + VoiceTrack ◀── Playout (one decision per 40 ms tick)

`serve(config)` runs until SIGINT/SIGTERM; `main(argv)` is the command line.
"""
from __future__ import annotations

import argparse
import asyncio
import gc
import logging
import os
import signal
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from realtime.server.config import ServerConfig, default_max_sessions, default_workers

if TYPE_CHECKING:
    from realtime.config import AvatarConfig

__all__ = ["ServerConfig", "ServerThread", "serve", "run_server", "main", "build_parser"]
log = logging.getLogger(__name__)


async def run_server(config: AvatarConfig | ServerConfig, stop: asyncio.Event | None = None, ready=None,
                     resources=None) -> None:
    """Loads the shared models (unless `resources` are given), serves until `stop` is set (or SIGINT/SIGTERM),
    then closes every session. `ready(server)` is called once the port is bound."""
    from realtime.assembly import apply_threads
    from realtime.config import AvatarConfig
    from realtime.server.app import AvatarServer
    from realtime.server.resources import AvatarResources

    loop = asyncio.get_running_loop()
    stop = stop or asyncio.Event()
    config = AvatarConfig.of(config).check()
    if config.server.ray is not None:
        config = await loop.run_in_executor(None, _join_ray, config)
    if config.server.workers:  # sessions in worker processes; this one is the front (no model here)
        from realtime.server.front import FrontServer

        server = FrontServer(config, logging.getLevelName(logging.getLogger().getEffectiveLevel()))
        what = (f"{config.server.workers} {'Ray ' if config.server.ray is not None else ''}worker(s) x "
                f"{config.server.sessions_per_worker} session(s)"
                + (", admitted by measured load" if config.server.admit_by_load else ""))
    else:
        apply_threads(config.worker)
        if resources is None:
            resources = await loop.run_in_executor(None, AvatarResources.load, config)
        server = AvatarServer(config.server, resources)
        what = f"{config.server.session_cap} session(s)" + (
            " at most, admitted by measured load" if config.server.admit_by_load else "")
    await server.start()
    gc.collect()
    gc.freeze()  # the models and the portrait live as long as the server: later collections skip them
    for sig in (signal.SIGINT, signal.SIGTERM):
        try:
            loop.add_signal_handler(sig, stop.set)
        except (NotImplementedError, RuntimeError, ValueError):  # not the main thread, or Windows
            pass
    if ready is not None:
        ready(server)
    trained = server.trained if config.server.workers else resources.trained
    print(f"avatar server: {'https' if config.server.tls else 'http'}://{config.server.host}:{server.port}/  "
          f"(WebSocket /ws, {what}, generator {'trained' if trained else 'UNTRAINED'})", flush=True)
    try:
        await stop.wait()
    finally:
        await server.stop()
        if config.server.ray is not None:
            from realtime.server.ray_workers import shutdown

            shutdown()
        print("avatar server: stopped", flush=True)


def _join_ray(config: AvatarConfig) -> AvatarConfig:
    """Connects to (or starts) the Ray cluster; with no worker count given, one worker per `ray_worker_cpus`."""
    import dataclasses

    from realtime.server.ray_workers import connect

    address = None if config.server.ray == "local" else config.server.ray
    cpus = connect(address).get("CPU", 0.0)
    log.info("Ray cluster: %g CPU(s)", cpus)
    if config.server.workers:
        return config
    workers = max(1, int(cpus // config.server.ray_worker_cpus))
    return dataclasses.replace(config, server=dataclasses.replace(config.server, workers=workers))


def __getattr__(name: str):
    if name == "ServerThread":
        from realtime.server.background import ServerThread

        return ServerThread
    raise AttributeError(f"module 'realtime.server' has no attribute {name!r}")


def serve(config: AvatarConfig | ServerConfig) -> None:
    """Blocking: runs the server on uvloop where installed."""
    try:
        import uvloop
    except ImportError:
        asyncio.run(run_server(config))
    else:
        uvloop.run(run_server(config))


def build_parser() -> argparse.ArgumentParser:
    """Flags set keys of the composed config (`dest` = "section.key") and override `--config FILE`; a flag
    left out keeps the file's value, or the default."""
    p = argparse.ArgumentParser(prog="avatar serve", description="Run the real-time WebRTC avatar server.",
                                argument_default=argparse.SUPPRESS)
    p.add_argument("--config", type=Path, default=None,
                   help="TOML file with [server] [sampler] [encoder] [renderer] [worker] tables (flags override it)")
    p.add_argument("--host", dest="server.host", help="address to listen on (default 127.0.0.1)")
    p.add_argument("--port", dest="server.port", type=int, help="port for the page, /ws and /api (default 8080)")
    p.add_argument("--image", dest="server.image", type=Path, help="portrait image (default: the astronaut)")
    p.add_argument("--token", dest="server.token",
                   help="controllers must send this token (default $AVATAR_TOKEN; none = loopback only)")
    p.add_argument("--require-token", dest="server.require_token_for_calls", action="store_const", const=True,
                   help="calls and viewing need the token too (auth first), not only control")
    p.add_argument("--allow-origin", dest="server.allowed_origins", action="append", metavar="ORIGIN",
                   help="a web origin besides the server's own whose pages may use /ws, e.g. "
                        "https://studio.example (repeatable)")
    p.add_argument("--allow-host", dest="server.allowed_hosts", action="append", metavar="NAME",
                   help="a Host name this server answers to besides IP addresses, localhost and this machine's "
                        "name (repeatable; other names are refused: DNS rebinding)")
    p.add_argument("--cert", dest="server.cert", type=Path, help="PEM certificate (chain): serve HTTPS and WSS")
    p.add_argument("--key", dest="server.key", type=Path, help="the certificate's PEM private key")
    p.add_argument("--max-sessions", dest="server.max_sessions", type=int,
                   help="a hard cap on concurrent calls (default: what the measured load admits, at most "
                        f"{default_max_sessions()} here; one per core without admission by load)")
    p.add_argument("--admit-by-load", dest="server.admit_by_load", action=argparse.BooleanOptionalAction,
                   help="refuse a new caller as busy when the measured load leaves no room for one more call "
                        "(default on; --no-admit-by-load: only the session cap)")
    p.add_argument("--admit-max-load", dest="server.admit_max_load", type=float, metavar="FRACTION",
                   help="admission: the fraction of the cores calls may keep busy (default 0.9)")
    p.add_argument("--workers", dest="server.workers", type=_workers, metavar="N|auto",
                   help="worker processes that own whole sessions (model and portrait loaded once in each); this "
                        f"process routes to them. 0: sessions in this process (the default); auto: one per core, "
                        f"{default_workers()} here")
    p.add_argument("--ray", dest="server.ray", nargs="?", const="local", metavar="ADDRESS",
                   help="workers as Ray actors across a cluster (pip install -e '.[cluster]'): no ADDRESS starts a "
                        "local Ray instance (or joins $RAY_ADDRESS); 'auto' or HOST:PORT joins a running cluster")
    p.add_argument("--ray-worker-cpus", dest="server.ray_worker_cpus", type=float,
                   help="CPUs Ray reserves per worker (default 1)")
    p.add_argument("--sessions-per-worker", dest="server.sessions_per_worker", type=int, metavar="K",
                   help="sessions each worker holds (default 1); with --workers, capacity = workers x this")
    p.add_argument("--idle-timeout", dest="server.idle_timeout_s", type=float,
                   help="close a call that sends no audio and no instruction for this many seconds (default 30)")
    p.add_argument("--checkpoint", dest="server.checkpoint", type=Path, help="generator checkpoint folder")
    p.add_argument("--portraits", dest="server.portraits", type=Path,
                   help="folder of portraits callers choose by name (offer `portrait`, WHIP ?portrait=)")
    p.add_argument("--allow-untrained", dest="server.allow_untrained", action="store_const", const=True,
                   help="development: run a randomly initialised generator when no checkpoint loads")
    p.add_argument("--seed", dest="server.seed", type=int, help="sampling seed (default 0)")
    p.add_argument("--steps", dest="sampler.steps", type=int, help="DDIM steps per chunk (default 3, at most 8)")
    p.add_argument("--guidance", dest="sampler.guidance", type=float,
                   help="classifier-free guidance at intensity 1 (default 1.5)")
    p.add_argument("--device", dest="renderer.device", choices=("auto", "cpu", "cuda"),
                   help="where frames are rendered (default auto: CUDA when present)")
    p.add_argument("--threads", dest="worker.threads", type=int, help="torch/OpenCV CPU threads (default 1)")
    p.add_argument("--replay-frames", dest="server.replay_frames", type=Path, metavar="FILE.npy",
                   help="benchmarks only: calls show this loop of pre-rendered frames ((N, H, W, 3) RGB or (N, H*3/2, "
                        "W) yuv420p uint8) with no generator or renderer, to measure the floor of what calls cost")
    p.add_argument("--log-level", default="INFO")
    return p


def _workers(text: str) -> int:
    if text == "auto":
        return default_workers()
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"--workers takes a number or auto, got {text!r}") from None


def config_from_args(args: argparse.Namespace) -> AvatarConfig:
    """The file's sections (if any), then $AVATAR_TOKEN, then the flags; validated together."""
    from realtime.config import load_config

    overrides: dict[str, dict] = {}
    if os.environ.get("AVATAR_TOKEN"):
        overrides["server"] = {"token": os.environ["AVATAR_TOKEN"]}
    for dest, value in vars(args).items():
        if "." in dest:
            section, key = dest.split(".", 1)
            overrides.setdefault(section, {})[key] = value
    return load_config(args.config, overrides)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    for noisy in ("aioice", "aiortc", "websockets"):
        logging.getLogger(noisy).setLevel(max(logging.WARNING, logging.getLogger().level))
    try:
        serve(config_from_args(args))
    except (ValueError, RuntimeError, OSError) as exc:
        print(f"avatar serve: error: {exc}", file=sys.stderr)
        return 2
    return 0
