"""Scale-out on a real Ray cluster (`avatar serve --ray ADDRESS --workers 2 --sessions-per-worker 1`): two Ray nodes
on this machine (`ray.cluster_utils.Cluster`, one CPU each), the front as its own process, aiortc callers.

Calls land on two worker actors on the two nodes, a third is refused as busy, control reaches the right worker, a
worker killed with SIGKILL ends only its own call, leaves the listing and is replaced by a new actor that serves.
One cluster and one front for the module (starting both takes ~40 s here).
"""
from __future__ import annotations

import asyncio
import os
import subprocess
import sys

import pytest
from test_workers import kill_one_of_two_calls, run, serving

from clients.avatar_client import AvatarClient, AvatarError, FileMicrophone
from helpers import wait_until

ray = pytest.importorskip("ray", reason="Ray is the cluster extra: pip install -e '.[cluster]'")


@pytest.fixture(scope="module")
def cluster():
    from ray.cluster_utils import Cluster

    nodes = Cluster(initialize_head=True, head_node_args={"num_cpus": 1, "include_dashboard": False})
    nodes.add_node(num_cpus=1)
    nodes.wait_for_nodes()
    try:
        yield nodes
    finally:
        nodes.shutdown()


@pytest.fixture(scope="module")
def front(cluster):
    with serving("--ray", cluster.address, "--workers", "2", "--sessions-per-worker", "1", "--idle-timeout", "30",
                 "--no-admit-by-load", says="2 Ray worker(s) x 1 session(s)", start_timeout_s=300) as server:
        yield server


def test_two_callers_on_two_nodes_a_third_is_busy_and_control_reaches_the_right_worker(front, speech_wav):
    async def body() -> dict:
        async with AvatarClient(front.ws_url) as a, AvatarClient(front.ws_url) as b, \
                AvatarClient(front.ws_url) as third, AvatarClient(front.ws_url) as control:
            sa = await a.call(FileMicrophone(speech_wav, lead_silence_s=0.3))
            sb = await b.call(None)
            with pytest.raises(AvatarError, match="server busy: all 2 session"):
                await third.call(None)
            await asyncio.gather(a.wait_first_frame(), b.wait_first_frame())
            ack = await control.instruct("look very sad", 0.7, session=sb)
            await asyncio.sleep(2.0)
            return {"sa": sa, "sb": sb, "ack": ack, "fps": (a.video.fps(), b.video.fps()),
                    "listed": {s["session"]: s for s in front.api()["sessions"]}}

    r = run(body())
    a, b = r["listed"][r["sa"]], r["listed"][r["sb"]]
    assert {a["worker"], b["worker"]} == {"w0", "w1"} and a["pid"] != b["pid"]
    assert a["node"] != b["node"]  # Ray spread the two actors over the two nodes
    assert os.getpid() not in (a["pid"], b["pid"]) and front.process.pid not in (a["pid"], b["pid"])
    assert r["ack"]["type"] == "instructed" and r["ack"]["session"] == r["sb"]
    assert b["instruction"] == "look very sad" and a["instruction"] is None
    assert min(r["fps"]) > 15, r["fps"]  # both calls play (two actors and two callers share 2 cores here)


def test_a_killed_worker_ends_only_its_call_and_a_new_actor_serves(front):
    assert wait_until(lambda: front.api()["load"]["free"] == 2, 20)
    r = kill_one_of_two_calls(front)
    assert r["ended"]["type"] == "error" and r["sa"] in r["ended"]["message"], r["ended"]
    assert r["a_closed"] == 1011 and r["b_frames"] >= 50, r  # the other worker's call never noticed
    assert r["sa"] not in r["listed"] and r["sb"] in r["listed"]
    killed = r["pids"][r["sa"]]
    assert wait_until(lambda: front.api()["load"]["free"] == 2, 60)  # a new actor took the dead one's place
    workers = {w["pid"] for w in front.api()["load"]["workers"]}
    assert killed not in workers and len(workers) == 2

    async def again() -> set[int]:
        async with AvatarClient(front.ws_url) as c, AvatarClient(front.ws_url) as d:
            await c.call(None)
            await d.call(None)
            await asyncio.gather(c.wait_first_frame(), d.wait_first_frame())
            return {s["pid"] for s in front.api()["sessions"]}

    assert run(again()) == workers  # both workers, the replacement included, take calls again


def test_the_single_machine_server_needs_no_ray():
    code = ("import sys; from realtime.server import build_parser, config_from_args; import realtime.cli, "
            "realtime.server.front; config_from_args(build_parser().parse_args(['--workers', '2'])); "
            "assert 'ray' not in sys.modules, 'ray was imported'")
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120)
    from realtime.server import build_parser, config_from_args

    config = config_from_args(build_parser().parse_args(["--ray", "--sessions-per-worker", "2"]))
    assert config.server.ray == "local" and config.server.workers == 0  # workers: one per CPU of the cluster
    assert config_from_args(build_parser().parse_args(["--ray", "auto"])).server.ray == "auto"
