"""ServerThread: the avatar server on its own event loop in a background thread, for programs that embed it
(tests, benchmarks, notebooks).

    with ServerThread(ServerConfig(port=0)) as server:
        print(server.ws_url)        # ws://127.0.0.1:PORT/ws
"""
from __future__ import annotations

import asyncio
import threading

from realtime.server.config import ServerConfig


class ServerThread:
    def __init__(self, config: ServerConfig, resources=None, start_timeout_s: float = 120.0):
        self.config, self.resources = config, resources
        self.start_timeout_s = start_timeout_s
        self.server = None  # realtime.server.app.AvatarServer once started
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._ready = threading.Event()
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._main, name="avatar-server", daemon=True)

    def _main(self) -> None:
        from realtime.server import run_server

        async def body() -> None:
            self._loop, self._stop = asyncio.get_running_loop(), asyncio.Event()

            def ready(server) -> None:
                self.server = server
                self._ready.set()

            await run_server(self.config, self._stop, ready, self.resources)

        try:
            asyncio.run(body())
        except BaseException as exc:
            self._error = exc
        finally:
            self._ready.set()

    def start(self) -> ServerThread:
        self._thread.start()
        if not self._ready.wait(self.start_timeout_s):
            raise TimeoutError(f"the avatar server did not start within {self.start_timeout_s:g} s")
        if self._error is not None:
            raise RuntimeError(f"the avatar server failed to start: {self._error}") from self._error
        return self

    def call(self, fn, *args):
        """Run `fn(*args)` (a coroutine function or a plain one) on the server's loop; returns its result."""
        async def run():
            result = fn(*args)
            return await result if asyncio.iscoroutine(result) else result

        return asyncio.run_coroutine_threadsafe(run(), self._loop).result(30)

    def stop(self, timeout_s: float = 30.0) -> None:
        if self._loop is not None and self._stop is not None and self._thread.is_alive():
            self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(timeout_s)

    @property
    def port(self) -> int:
        return self.server.port

    @property
    def url(self) -> str:
        host = self.config.host if self.config.host not in ("0.0.0.0", "::") else "127.0.0.1"
        return f"{'https' if self.config.tls else 'http'}://{host}:{self.port}"

    @property
    def ws_url(self) -> str:
        return "ws" + self.url.removeprefix("http") + "/ws"

    def __enter__(self) -> ServerThread:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
