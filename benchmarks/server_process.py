"""The server under test as its own process (`python -m realtime serve`), as a user runs it: its CPU and memory
are measured apart from the client's, and the client's Python never competes with it for one GIL."""
from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading
import time
from collections import deque
from pathlib import Path

from realtime.motion.checkpoint import CONFIG, DEFAULT_DIR, WEIGHTS

REPO = Path(__file__).resolve().parents[1]


class ServerStartError(RuntimeError):
    """The server process exited or did not print its banner in time."""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def has_checkpoint(path: Path | None) -> bool:
    folder = Path(path) if path is not None else DEFAULT_DIR
    return (folder / WEIGHTS).is_file() and (folder / CONFIG).is_file()


class ServerProcess:
    """`with ServerProcess(max_sessions=4) as server: server.ws_url` — starts, waits for the banner, stops."""

    def __init__(self, max_sessions: int, checkpoint: Path | None = None, image: Path | None = None,
                 config: Path | None = None, start_timeout_s: float = 180.0, host: str = "127.0.0.1",
                 wrap: list[str] | None = None, extra: list[str] | None = None, admit_by_load: bool = False):
        """`config`: a TOML config file; `wrap`: a command prefix (e.g. `ip netns exec NS`); `extra`: more
        `avatar serve` flags; `admit_by_load`: off by default, so that a benchmark can go past the capacity the
        server measures (`avatar bench --sessions --admission on` measures the admission itself)."""
        self.max_sessions, self.checkpoint, self.image, self.config = max_sessions, checkpoint, image, config
        self.host, self.wrap, self.extra = host, list(wrap or []), list(extra or [])
        self.admit_by_load = admit_by_load
        self.start_timeout_s = start_timeout_s
        self.port = free_port()
        self.trained: bool | None = None
        self.startup_s: float | None = None
        self.process: subprocess.Popen | None = None
        self._lines: deque[str] = deque(maxlen=200)
        self._banner = threading.Event()

    @property
    def ws_url(self) -> str:
        return f"ws://{self.host}:{self.port}/ws"

    @property
    def pid(self) -> int | None:
        return self.process.pid if self.process else None

    def command(self) -> list[str]:
        cmd = [*self.wrap, sys.executable, "-m", "realtime", "serve", "--host", self.host, "--port", str(self.port),
               "--max-sessions", str(self.max_sessions), "--idle-timeout", "120", "--log-level", "WARNING",
               "--admit-by-load" if self.admit_by_load else "--no-admit-by-load"]
        if self.checkpoint is not None:
            cmd += ["--checkpoint", str(self.checkpoint)]
        if not has_checkpoint(self.checkpoint):
            cmd.append("--allow-untrained")  # the figures are still valid for speed, not for lip sync
        if self.image is not None:
            cmd += ["--image", str(self.image)]
        if self.config is not None:
            cmd += ["--config", str(self.config)]
        return cmd + self.extra

    def start(self) -> ServerProcess:
        t0 = time.monotonic()
        env = {**os.environ, "AVATAR_TOKEN": ""}  # no token: this loopback client may list sessions
        self.process = subprocess.Popen(self.command(), cwd=REPO, env=env, stdout=subprocess.PIPE,
                                        stderr=subprocess.STDOUT, text=True, bufsize=1)
        threading.Thread(target=self._drain, name="server-output", daemon=True).start()
        while not self._banner.wait(0.2):
            if self.process.poll() is not None:
                raise ServerStartError(f"the server exited with {self.process.returncode}:\n" + self.output())
            if time.monotonic() - t0 > self.start_timeout_s:
                self.stop()
                raise ServerStartError(f"no banner within {self.start_timeout_s:g} s:\n" + self.output())
        self.startup_s = round(time.monotonic() - t0, 2)
        return self

    def _drain(self) -> None:
        """Keeps reading the server's output (a full pipe would block it) and spots the banner."""
        assert self.process is not None and self.process.stdout is not None
        for line in self.process.stdout:
            self._lines.append(line.rstrip())
            if line.startswith("avatar server:"):
                self.trained = "UNTRAINED" not in line
                self._banner.set()

    def output(self) -> str:
        return "\n".join(self._lines)

    def stop(self, timeout_s: float = 20.0) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        self.process.terminate()
        try:
            self.process.wait(timeout_s)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()

    def __enter__(self) -> ServerProcess:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
