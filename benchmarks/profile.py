"""Sampling profile of the server process with py-spy (optional: `pip install py-spy`): where its CPU goes.

py-spy writes collapsed stacks ("thread;outer (file:line);…;leaf (file:line) count"); they are summarised as
the share of samples per leaf function (self time) and per function anywhere on the stack (inclusive).
"""
from __future__ import annotations

import re
import shutil
import subprocess
import sys
from collections import Counter
from pathlib import Path


class ProfileError(RuntimeError):
    """py-spy is not installed or could not attach to the server."""


def py_spy() -> str:
    found = shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy"))
    if not Path(found).is_file():
        raise ProfileError("profiling needs py-spy: pip install py-spy")
    return found


def start(pid: int, out: Path, seconds: float, rate: int = 100) -> subprocess.Popen:
    """Records `seconds` of the process's running (not idle) threads without pausing it."""
    cmd = [py_spy(), "record", "--pid", str(pid), "--format", "raw", "--output", str(out), "--duration",
           str(max(1, int(seconds))), "--rate", str(rate), "--nonblocking", "--threads"]
    return subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)


def finish(process: subprocess.Popen, out: Path, timeout_s: float = 60.0) -> dict:
    try:
        _, err = process.communicate(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        process.kill()
        _, err = process.communicate()
    if not out.is_file():
        raise ProfileError(f"py-spy wrote no profile (exit {process.returncode}): {err.strip()[-500:]}")
    return summarise(out.read_text())


def _name(frame: str) -> str:
    """'render (realtime/avatar/renderer.py:120)' -> 'render (realtime/avatar/renderer.py)'."""
    name, _, where = frame.partition(" (")
    file = where.rsplit(":", 1)[0].rstrip(")")
    for marker in ("site-packages/", "/work/main/", "lib/python3"):
        if marker in file:
            file = file.split(marker, 1)[1]
    return f"{name} ({file})" if file else name


def _thread_group(thread: str) -> str:
    """'thread (7417): avatar-Xy12' -> 'avatar-SESSION'; 'ThreadPoolExecutor-0_3' -> 'ThreadPoolExecutor-0'."""
    name = thread.partition("): ")[2] or thread or "?"
    if name.startswith("avatar-"):
        return "avatar-SESSION (worker: sampler + renderer)"
    if name.startswith(("uvloop_", "ThreadPoolExecutor-", "asyncio_")):  # the loop's default executor
        return "executor (aiortc encoders, session set-up)"
    return re.sub(r"_\d+$", "", name)


def summarise(collapsed: str, top: int = 15) -> dict:
    self_time: Counter[str] = Counter()
    inclusive: Counter[str] = Counter()
    threads: Counter[str] = Counter()
    total = 0
    for line in collapsed.splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        n = int(count)
        frames = stack.split(";")
        thread, frames = (frames[0], frames[1:]) if frames[0].startswith(("thread", "process")) else ("", frames)
        names = [_name(f) for f in frames]
        total += n
        threads[_thread_group(thread)] += n
        if names:
            self_time[names[-1]] += n
        for name in set(names):
            inclusive[name] += n
    pct = lambda c: [{"function": k, "pct": round(100 * v / max(total, 1), 1)} for k, v in c.most_common(top)]  # noqa: E731
    return {"samples": total, "self": pct(self_time), "inclusive": pct(inclusive), "threads": pct(threads)}
