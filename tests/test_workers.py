"""The process model (`avatar serve --workers N`), for real: the front as its own process, its worker processes,
aiortc callers over loopback. One server for the module (2 workers x 1 session: starting takes ~30 s here).

Calls land on different worker processes, a third caller is refused as busy, control reaches the right worker,
a SIGKILLed worker ends only its own call and is replaced, and nothing grows over calls.
"""
from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from collections import deque
from pathlib import Path

import numpy as np
import pytest

from clients.avatar_client import AvatarClient, AvatarError, FileMicrophone
from helpers import free_port, mouth_region, wait_until
from realtime.server.transport import WorkerTransport

ROOT = Path(__file__).resolve().parents[1]


class Front:
    """`python -m realtime serve --workers 2 --sessions-per-worker 1` with its output drained."""

    def __init__(self, *flags: str):
        self.port = free_port()
        self.lines: deque[str] = deque(maxlen=400)
        self.process = subprocess.Popen(
            [sys.executable, "-m", "realtime", "serve", "--port", str(self.port), "--allow-untrained",
             "--log-level", "INFO", *flags], cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
            env={**os.environ, "AVATAR_TOKEN": "", "PYTHONPATH": str(ROOT)})  # no token: loopback controls
        self.banner = threading.Event()
        threading.Thread(target=self._drain, daemon=True).start()

    def _drain(self) -> None:
        for line in self.process.stdout:
            self.lines.append(line.rstrip())
            if line.startswith("avatar server:"):
                self.banner.set()

    @property
    def ws_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/ws"

    def get(self, path: str) -> tuple[int, str]:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.port}{path}", timeout=10) as response:
                return response.status, response.read().decode()
        except urllib.error.HTTPError as exc:
            return exc.code, exc.read().decode()

    def api(self) -> dict:
        return json.loads(self.get("/api/sessions")[1])

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


@contextlib.contextmanager
def serving(*flags: str, says: str, start_timeout_s: float = 240.0):
    """A started front whose banner `says` what it serves; it must stop cleanly (exit code 0) afterwards."""
    server = Front(*flags)
    try:
        assert server.banner.wait(start_timeout_s), "\n".join(server.lines)
        assert says in [s for s in server.lines if s.startswith("avatar server:")][0]
        yield server
    finally:
        server.stop()
    assert server.process.returncode == 0, "\n".join(list(server.lines)[-30:])


@pytest.fixture(scope="module")
def front():
    # Two calls on this 2-core machine exceed what admission by load measures as its capacity (test_admission.py):
    # these tests are about routing, so only the slots limit them.
    with serving("--workers", "2", "--sessions-per-worker", "1", "--idle-timeout", "30", "--no-admit-by-load",
                 says="2 worker(s) x 1 session(s)") as server:
        yield server


def children(pid: int) -> set[int]:
    tasks = Path(f"/proc/{pid}/task")
    return {int(c) for t in tasks.iterdir() for c in (t / "children").read_text().split()}


def fds(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


def run(coro, timeout_s: float = 150.0):
    return asyncio.run(asyncio.wait_for(coro, timeout_s))


@pytest.fixture(scope="module")
def mouth() -> tuple[slice, slice]:
    return mouth_region()


def mouth_motion(frames: list[np.ndarray], mouth: tuple[slice, slice]) -> float:
    """How much the mouth region moves: the spread (p90 - p10) over the call of its mean change from the first
    frames (the portrait at rest)."""
    pixels = np.stack(frames).astype(np.float32)[:, mouth[0], mouth[1]]
    change = np.abs(pixels - pixels[:5].mean(0)).mean((1, 2))
    return float(np.percentile(change, 90) - np.percentile(change, 10))


def test_two_callers_on_two_workers_a_third_is_busy_and_control_is_routed(front, speech_wav, mouth):
    frames: dict[str, list] = {"a": [], "b": []}

    async def body() -> dict:
        async with AvatarClient(front.ws_url) as a, AvatarClient(front.ws_url) as b, \
                AvatarClient(front.ws_url) as third, AvatarClient(front.ws_url) as control:
            sa = await a.call(FileMicrophone(speech_wav, lead_silence_s=0.3), frame_format="gray",
                              on_frame=lambda f, t: frames["a"].append(f))
            sb = await b.call(FileMicrophone(speech_wav, lead_silence_s=0.8), frame_format="gray",
                              on_frame=lambda f, t: frames["b"].append(f))
            with pytest.raises(AvatarError, match="server busy: all 2 session"):
                await third.call(None)
            await asyncio.gather(a.wait_first_frame(), b.wait_first_frame())
            listed = {s["session"]: s for s in await control.sessions()}
            ack = await control.instruct("raise your eyebrows", 0.8, session=sa)
            health = front.get("/healthz")
            api = front.api()
            await asyncio.sleep(5.0)
            fps = (a.video.fps(), b.video.fps())
            after = {s["session"]: s for s in await control.sessions()}
            await a.hangup()
            return {"sa": sa, "sb": sb, "listed": listed, "ack": ack, "health": health, "api": api, "fps": fps,
                    "after": after, "left": await control.sessions()}

    r = run(body())
    listed, sa, sb = r["listed"], r["sa"], r["sb"]
    assert set(listed) == {sa, sb}
    assert listed[sa]["pid"] != listed[sb]["pid"] and {listed[sa]["worker"], listed[sb]["worker"]} == {"w0", "w1"}
    assert children(front.process.pid) == {listed[sa]["pid"], listed[sb]["pid"]}  # workers: the front's children
    assert r["ack"]["type"] == "instructed" and r["ack"]["session"] == sa and r["ack"]["frame"] >= 0
    assert r["after"][sa]["instruction"] == "raise your eyebrows" and r["after"][sb]["instruction"] is None
    assert r["health"][0] == 200 and "sessions 2/2 (0 free)" in r["health"][1]
    assert r["api"]["load"]["free"] == 0 and {s["pid"] for s in r["api"]["sessions"]} == {listed[sa]["pid"],
                                                                                           listed[sb]["pid"]}
    assert "stages" in r["api"]["sessions"][0]
    assert min(r["fps"]) >= 15, r["fps"]  # frames flow (throughput is the benchmark's job; measured 22-25)
    for who in ("a", "b"):  # both mouths move with their own speech
        assert frames[who][0].shape == (512, 512)
        assert mouth_motion(frames[who], mouth) > 3.0, (who, mouth_motion(frames[who], mouth))
    assert [s["session"] for s in r["left"]] == [sb]  # the hung-up call left the listing at once


def test_calls_in_a_row_leak_nothing_and_viewers_are_routed(front):
    async def one_call(viewer: bool) -> None:
        async with AvatarClient(front.ws_url) as caller, AvatarClient(front.ws_url) as watcher:
            session = await caller.call(None)
            await caller.wait_first_frame()
            if viewer:  # routed to the worker that owns the call
                await watcher.view(session, key=caller.view_key)
                await watcher.wait_first_frame()
            await caller.hangup()

    async def calls(n: int) -> None:
        for i in range(n):
            await one_call(viewer=i == 0)

    assert wait_until(lambda: front.api()["load"]["free"] == 2, 15)
    run(calls(1))
    assert wait_until(lambda: front.api()["load"]["free"] == 2, 10)
    workers = children(front.process.pid)
    before = fds(front.process.pid), {pid: fds(pid) for pid in workers}
    run(calls(4))
    assert wait_until(lambda: front.api()["load"]["free"] == 2, 10)
    time.sleep(1.0)
    after = fds(front.process.pid), {pid: fds(pid) for pid in workers}
    assert children(front.process.pid) == workers
    assert after[0] <= before[0] + 2, (before, after)
    assert all(after[1][pid] <= before[1][pid] + 4 for pid in workers), (before, after)


def test_whip_and_whep_are_relayed_to_the_owning_worker(front, speech_wav):
    from clients.avatar_client.whip import WhepViewer, WhipPublisher

    base = f"http://127.0.0.1:{front.port}"

    async def body() -> dict:
        publisher = await WhipPublisher(base + "/whip", FileMicrophone(speech_wav)).start()
        try:
            viewer = await WhepViewer(base + "/whep/latest", token=publisher.view_key, audio=False).start()
            await asyncio.wait_for(viewer.first_frame.wait(), 20)
            listed = front.api()["sessions"]
            deleted = await viewer.delete(), await publisher.delete()
            await viewer.close()
        finally:
            await publisher.close()
        return {"session": publisher.session, "listed": listed, "deleted": deleted}

    r = run(body())
    assert [(s["session"], s["worker"] in ("w0", "w1")) for s in r["listed"]] == [(r["session"], True)]
    assert r["deleted"] == (200, 200)
    status, text = front.get("/api/portraits")  # the gallery, from a worker
    assert status == 200 and "default" in text
    assert wait_until(lambda: front.api()["sessions"] == [], 5)


def kill_one_of_two_calls(front) -> dict:
    """Two calls on the two workers; the first call's worker is SIGKILLed; what both callers then see."""
    async def body() -> dict:
        async with AvatarClient(front.ws_url) as a, AvatarClient(front.ws_url) as b:
            sa, sb = await a.call(None), await b.call(None)
            await asyncio.gather(a.wait_first_frame(), b.wait_first_frame())
            pids = {s["session"]: s["pid"] for s in front.api()["sessions"]}
            os.kill(pids[sa], signal.SIGKILL)
            ended = await asyncio.wait_for(a._inbox.get(), 10)  # the front's notice, then the close
            mark = len(b.video.times)
            await asyncio.sleep(3.0)
            b_frames = len(b.video.times) - mark
            listed = [s["session"] for s in await b.sessions()]
            health = front.get("/healthz")[1]
            return {"health": health, "sa": sa, "sb": sb, "pids": pids, "ended": ended, "b_frames": b_frames,
                    "listed": listed, "a_closed": a.ws.close_code if a.ws else None}

    return run(body())


def test_a_killed_worker_ends_only_its_call_and_is_replaced(front):
    r = kill_one_of_two_calls(front)
    assert r["ended"]["type"] == "error" and "stopped: the call has ended" in r["ended"]["message"], r["ended"]
    assert r["sa"] in r["ended"]["message"]
    assert r["a_closed"] == 1011
    assert r["b_frames"] >= 60, r["b_frames"]  # the other call never noticed (25 fps for 3 s)
    assert r["sa"] not in r["listed"]
    killed = r["pids"][r["sa"]]
    assert "(restarting)" in r["health"] and r["health"].startswith("ok"), r["health"]  # the other still serves
    assert wait_until(lambda: front.api()["load"]["free"] == 2 and killed not in children(front.process.pid), 90)
    replacement = children(front.process.pid) - {r["pids"][r["sb"]]}
    assert len(replacement) == 1 and killed not in replacement

    async def again() -> set[int]:
        async with AvatarClient(front.ws_url) as c, AvatarClient(front.ws_url) as d:
            await c.call(None)
            await d.call(None)
            await asyncio.gather(c.wait_first_frame(), d.wait_first_frame())
            await asyncio.sleep(1.0)
            assert min(c.video.fps(), d.video.fps()) > 15
            return {s["pid"] for s in front.api()["sessions"]}

    assert run(again()) == children(front.process.pid)  # the replacement serves new calls


def test_worker_flags_and_config():
    from realtime.config import ConfigError, load_config
    from realtime.server import build_parser, config_from_args
    from realtime.server.config import default_workers

    assert config_from_args(build_parser().parse_args([])).server.workers == 0  # in-process unless asked
    config = config_from_args(build_parser().parse_args(["--workers", "auto", "--sessions-per-worker", "2"]))
    assert config.server.workers == default_workers() and config.server.sessions_per_worker == 2
    for key, value, match in [("workers", -1, "workers must be"), ("sessions_per_worker", 0, "sessions_per_worker"),
                              ("worker_request_timeout_s", 0.0, "must be > 0")]:
        with pytest.raises(ConfigError, match=match):
            load_config(None, {"server": {key: value}})


class StandIn(WorkerTransport):
    """A worker transport with no process behind it (as a Ray actor is one more kind): for the router alone."""

    made: list[StandIn] = []

    def __init__(self, worker_id: str):
        self.worker_id, self.pid, self.gone = worker_id, 1000 + len(StandIn.made), asyncio.Event()
        StandIn.made.append(self)

    async def start(self) -> None:
        self.url = "http://127.0.0.1:9"

    async def wait(self) -> str:
        await self.gone.wait()
        return "killed by signal 9"

    async def stop(self) -> None:
        self.gone.set()


def test_the_router_places_refuses_and_replaces_through_any_transport():
    """No processes: a stand-in transport (as a Ray actor will be) is all the router needs."""
    from realtime.server.config import ServerConfig
    from realtime.server.router import NoWorker, Route, Router

    async def body() -> None:
        StandIn.made.clear()  # the transports this test makes, in order
        router = Router(ServerConfig(workers=2, sessions_per_worker=2, worker_poll_s=600, admit_by_load=False),
                        "secret", StandIn)  # slots only (admission by load: test_admission.py)
        await router.start()
        placed = []
        for i in range(4):
            state = router.reserve()
            placed.append(state.id)
            router.add(Route(f"s{i}", state.id, None))
            router.release(state)
        assert placed[:2] in (["w0", "w1"], ["w1", "w0"]) and sorted(placed) == ["w0", "w0", "w1", "w1"]
        with pytest.raises(NoWorker, match="server busy: all 4 session"):
            router.reserve()
        assert router.load()["free"] == 0
        StandIn.made[0].gone.set()  # w0 dies: its two sessions go, a replacement comes up
        await asyncio.sleep(0.1)
        assert sorted(router.routes) == sorted(f"s{i}" for i, w in enumerate(placed) if w == "w1")
        for _ in range(50):
            if router.workers["w0"].up:
                break
            await asyncio.sleep(0.1)
        assert router.workers["w0"].up and router.workers["w0"].transport is StandIn.made[2]
        assert router.reserve().id == "w0"  # the replacement takes the next call
        await router.stop()

    run(body(), 30)
