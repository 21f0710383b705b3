"""Process and machine figures from /proc (Linux): CPU seconds, resident memory, machine description.

No psutil needed; every reader returns None where /proc is unavailable, so the suite still runs elsewhere.
"""
from __future__ import annotations

import os
import platform
import time
from dataclasses import dataclass
from pathlib import Path

TICKS = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def cpu_seconds(pid: int | str = "self") -> float | None:
    """User + system CPU time of a process (all its threads), in seconds."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = stat[stat.rindex(")") + 2:].split()  # the command name may contain spaces
    return (int(fields[11]) + int(fields[12])) / TICKS


def process_tree(pid: int | str) -> list[int | str]:
    """`pid` and its descendants (a server with worker processes is measured as a whole)."""
    found, todo = [pid], [pid]
    while todo:
        try:
            tasks = Path(f"/proc/{todo.pop()}/task")
            kids = [int(c) for t in tasks.iterdir() for c in (t / "children").read_text().split()]
        except OSError:
            continue
        found += kids
        todo += kids
    return found


def tree_cpu_seconds(pid: int | str) -> float | None:
    values = [cpu_seconds(p) for p in process_tree(pid)]
    return sum(v for v in values if v is not None) if values[0] is not None else None


def tree_rss_bytes(pid: int | str) -> int | None:
    values = [rss_bytes(p) for p in process_tree(pid)]
    return sum(v for v in values if v is not None) if values[0] is not None else None


def rss_bytes(pid: int | str = "self") -> int | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    except OSError:
        return None
    return None


def system_busy() -> tuple[float, float] | None:
    """(busy, total) CPU seconds of the whole machine since boot (all cores), from /proc/stat."""
    try:
        first = Path("/proc/stat").read_text().splitlines()[0].split()
    except OSError:
        return None
    values = [int(v) / TICKS for v in first[1:]]
    idle = values[3] + (values[4] if len(values) > 4 else 0.0)  # idle + iowait
    return sum(values) - idle, sum(values)


@dataclass
class CpuWindow:
    """CPU use over a window of wall time: the server, this process (the client) and the whole machine."""

    server_pid: int | None
    _t0: float = 0.0
    _server0: float | None = None
    _client0: float | None = None
    _system0: tuple[float, float] | None = None

    def start(self) -> CpuWindow:
        self._t0 = time.monotonic()
        self._server0 = tree_cpu_seconds(self.server_pid) if self.server_pid else None
        self._client0 = cpu_seconds()
        self._system0 = system_busy()
        return self

    def stop(self) -> dict[str, float | None]:
        """Percent of one core (100 = one core fully busy) for server and client; machine busy in cores."""
        wall = max(time.monotonic() - self._t0, 1e-9)
        server = tree_cpu_seconds(self.server_pid) if self.server_pid else None  # with its worker processes
        client = cpu_seconds()
        system = system_busy()
        out: dict[str, float | None] = {"wall_s": round(wall, 2), "server_cpu_pct": None, "client_cpu_pct": None,
                                        "machine_busy_cores": None, "other_processes_cores": None}
        if server is not None and self._server0 is not None:
            out["server_cpu_pct"] = round(100 * (server - self._server0) / wall, 1)
        if client is not None and self._client0 is not None:
            out["client_cpu_pct"] = round(100 * (client - self._client0) / wall, 1)
        if system is not None and self._system0 is not None:
            busy = (system[0] - self._system0[0]) / wall
            out["machine_busy_cores"] = round(busy, 2)
            ours = ((out["server_cpu_pct"] or 0.0) + (out["client_cpu_pct"] or 0.0)) / 100
            out["other_processes_cores"] = round(max(0.0, busy - ours), 2)
        return out


def machine() -> dict[str, object]:
    """CPU model, cores, RAM, load average, library versions: what a reader needs to compare figures."""
    info: dict[str, object] = {"platform": platform.platform(), "python": platform.python_version(),
                               "cores": os.cpu_count()}
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                info["cpu_model"] = line.split(":", 1)[1].strip()
                break
    except OSError:
        info["cpu_model"] = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                info["ram_gb"] = round(int(line.split()[1]) / 1024 ** 2, 1)
    except OSError:
        pass
    info["load_average"] = load_average()
    try:
        import torch

        info["torch"] = torch.__version__
        info["cuda"] = torch.cuda.get_device_name(0) if torch.cuda.is_available() else None
    except ImportError:
        pass
    return info


def load_average() -> list[float] | None:
    try:
        return [round(v, 2) for v in os.getloadavg()]
    except OSError:
        return None
