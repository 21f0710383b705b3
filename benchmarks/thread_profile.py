"""Where one live session's server CPU goes, by thread and by Python function (py-spy cannot attach here).

    python -m benchmarks.thread_profile [--measure-s 8] [--out benchmarks/results/thread_profile.json]

Starts `avatar serve` with `benchmarks/threadprof` on its PYTHONPATH (its sitecustomize samples the server's
threads, see there), makes one speaking call from this process, and reports for the measured window: the
server's CPU per thread (Python threads by name, native ones by their OS name) and the CPU charged to each
Python function, inclusive, per thread.
"""
from __future__ import annotations

import argparse
import asyncio
import json
import os
import tempfile
import time
from collections import Counter
from pathlib import Path

import numpy as np

from benchmarks.probe import TimedMicrophone
from benchmarks.proc import CpuWindow, load_average
from benchmarks.server_process import ServerProcess
from benchmarks.stimulus import running_speech
from clients.avatar_client import AvatarClient

AGENT = Path(__file__).parent / "threadprof"


async def _call(ws_url: str, pid: int, folder: Path, warmup_s: float, measure_s: float) -> dict:
    speech = running_speech(warmup_s + measure_s + 10.0)
    async with AvatarClient(ws_url) as client:
        await client.call(TimedMicrophone(speech, loop=True), control_channel=False)
        await client.wait_first_frame()
        await asyncio.sleep(warmup_s)
        before = await client.stats()
        (folder / "start").touch()
        window = CpuWindow(pid).start()
        await asyncio.sleep(measure_s)
        (folder / "stop").touch()
        cpu = window.stop()
        after = await client.stats()
        await client.hangup()
    counts = {k: after["counts"][k] - before["counts"][k] for k in ("frames_shown", "frames_rendered")}
    server_ms = 10 * cpu["server_cpu_pct"] * cpu["wall_s"]
    return {"cpu": cpu, "new_fps": round(counts["frames_shown"] / cpu["wall_s"], 2), **counts,
            "server_cpu_ms_per_rendered_frame": round(server_ms / max(counts["frames_rendered"], 1), 1),
            "stages": after.get("stages")}


def _inclusive(stacks: dict[str, float], depth_filter: str | None = None) -> dict[str, dict[str, float]]:
    """Thread -> function -> CPU seconds spent in it or below it (each function once per stack)."""
    out: dict[str, Counter] = {}
    for stack, seconds in stacks.items():
        thread, *frames = stack.split(";")
        funcs = {f.split(" (")[0] + " (" + f.split(" (")[1].split(":")[0] + ")" for f in frames}
        counter = out.setdefault(thread, Counter())
        for f in funcs:
            counter[f] += seconds
        counter["<all>"] += seconds
    return {t: dict(c.most_common(40)) for t, c in out.items()}


def profile(measure_s: float, warmup_s: float, extra: list[str]) -> dict:
    folder = Path(tempfile.mkdtemp(prefix="threadprof-"))
    os.environ["AVATAR_THREADPROF"] = str(folder)
    os.environ["PYTHONPATH"] = f"{AGENT}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"
    load = load_average()
    with ServerProcess(1, extra=extra) as server:
        call = asyncio.run(_call(server.ws_url, server.pid, folder, warmup_s, measure_s))
        for _ in range(50):
            if (folder / "profile.json").exists():
                break
            time.sleep(0.1)
    report = json.loads((folder / "profile.json").read_text())
    wall = report["wall_s"]
    threads = [{**t, "cpu_ms_per_s": round(1000 * t["cpu_s"] / wall, 1)} for t in report["threads"] if t["cpu_s"] > 0]
    inclusive = _inclusive(report["stacks"])
    per_s = {t: {f: round(1000 * s / wall, 1) for f, s in funcs.items()} for t, funcs in inclusive.items()}
    return {"load_average_at_start": load, "call": call, "server_cpu_ms_per_s_by_thread": threads,
            "python_cpu_ms_per_s_inclusive": per_s,
            "top_stacks_ms_per_s": {k: round(1000 * v / wall, 1) for k, v in list(report["stacks"].items())[:60]}}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--measure-s", type=float, default=8.0)
    p.add_argument("--warmup-s", type=float, default=3.0)
    p.add_argument("--out", type=Path, default=Path("benchmarks/results/thread_profile.json"))
    p.add_argument("serve_flags", nargs="*", help="more `avatar serve` flags (after --)")
    args = p.parse_args()
    result = profile(args.measure_s, args.warmup_s, args.serve_flags)
    args.out.write_text(json.dumps(result, indent=1))
    print(json.dumps({"load": result["load_average_at_start"], "call": {k: v for k, v in result["call"].items()
                                                                          if k != "stages"}}, indent=1))
    for t in result["server_cpu_ms_per_s_by_thread"]:
        print(f"{t['cpu_ms_per_s']:8.1f} ms/s  {t['name']}")


if __name__ == "__main__":
    np.seterr(all="ignore")
    main()
