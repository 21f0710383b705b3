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

from realtime.server.config import ServerConfig, default_max_sessions

__all__ = ["ServerConfig", "ServerThread", "serve", "run_server", "main", "build_parser"]
log = logging.getLogger(__name__)


async def run_server(config: ServerConfig, stop: asyncio.Event | None = None, ready=None, resources=None) -> None:
    """Loads the shared models (unless `resources` are given), serves until `stop` is set (or SIGINT/SIGTERM),
    then closes every session. `ready(server)` is called once the port is bound."""
    from realtime.server.app import AvatarServer
    from realtime.server.resources import AvatarResources

    loop = asyncio.get_running_loop()
    stop = stop or asyncio.Event()
    if config.torch_threads:
        from realtime.avatar import set_cpu_threads

        # Sessions run in parallel worker threads; one intra-op thread each avoids oversubscribing the cores.
        set_cpu_threads(config.torch_threads)
    if resources is None:
        resources = await loop.run_in_executor(None, AvatarResources.load, config)
    server = AvatarServer(config, resources)
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
    print(f"avatar server: {'https' if config.tls else 'http'}://{config.host}:{server.port}/  (WebSocket /ws, "
          f"{config.max_sessions} session(s), generator {'trained' if resources.trained else 'UNTRAINED'})",
          flush=True)
    try:
        await stop.wait()
    finally:
        await server.stop()
        print("avatar server: stopped", flush=True)


def __getattr__(name: str):
    if name == "ServerThread":
        from realtime.server.background import ServerThread

        return ServerThread
    raise AttributeError(f"module 'realtime.server' has no attribute {name!r}")


def serve(config: ServerConfig) -> None:
    """Blocking: runs the server on uvloop where installed."""
    try:
        import uvloop
    except ImportError:
        asyncio.run(run_server(config))
    else:
        uvloop.run(run_server(config))


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="avatar serve", description="Run the real-time WebRTC avatar server.")
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    p.add_argument("--port", type=int, default=8080, help="port for the page, /ws and /api (default 8080)")
    p.add_argument("--image", type=Path, default=None, help="portrait image (default: the astronaut)")
    p.add_argument("--token", default=os.environ.get("AVATAR_TOKEN"),
                   help="controllers must send this token (default $AVATAR_TOKEN; none = loopback only)")
    p.add_argument("--require-token", action="store_true",
                   help="calls and viewing need the token too (auth first), not only control")
    p.add_argument("--allow-origin", action="append", default=[], metavar="ORIGIN",
                   help="a web origin besides the server's own whose pages may use /ws, e.g. "
                        "https://studio.example (repeatable)")
    p.add_argument("--allow-host", action="append", default=[], metavar="NAME",
                   help="a Host name this server answers to besides IP addresses, localhost and this machine's "
                        "name (repeatable; other names are refused: DNS rebinding)")
    p.add_argument("--cert", type=Path, default=None, help="PEM certificate (chain): serve HTTPS and WSS")
    p.add_argument("--key", type=Path, default=None, help="the certificate's PEM private key")
    p.add_argument("--max-sessions", type=int, default=default_max_sessions(),
                   help="concurrent calls before new callers are refused (default: one per CPU core)")
    p.add_argument("--idle-timeout", type=float, default=30.0,
                   help="close a call that sends no audio and no message for this many seconds")
    p.add_argument("--checkpoint", type=Path, default=None, help="generator checkpoint folder")
    p.add_argument("--allow-untrained", action="store_true",
                   help="development: run a randomly initialised generator when no checkpoint loads")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--log-level", default="INFO")
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    for noisy in ("aioice", "aiortc", "websockets"):
        logging.getLogger(noisy).setLevel(max(logging.WARNING, logging.getLogger().level))
    try:
        config = ServerConfig(host=args.host, port=args.port, image=args.image, token=args.token or None,
                              max_sessions=args.max_sessions, idle_timeout_s=args.idle_timeout,
                              checkpoint=args.checkpoint, allow_untrained=args.allow_untrained, seed=args.seed,
                              require_token_for_calls=args.require_token, allowed_origins=tuple(args.allow_origin),
                              allowed_hosts=tuple(args.allow_host), cert=args.cert, key=args.key)
        serve(config)
    except (ValueError, RuntimeError, OSError) as exc:
        print(f"avatar serve: error: {exc}", file=sys.stderr)
        return 2
    return 0
