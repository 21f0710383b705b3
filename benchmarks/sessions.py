"""`avatar bench --sessions 1,2,4,6 [--workers 0,auto] [--sessions-per-worker K]`: the capacity curve.

For each server mode (`--workers 0`: every session in the server's one process; N: N worker processes that own
whole sessions) one `avatar serve` process is started, then for each count that many callers speak at once
(fresh sessions per level, the callers in this process, on the same machine, as a user's benchmark would be)
with the throughput benchmark's level (`throughput.run_level`): new pictures/s per caller, repeated frames, the
longest gap between received frames, CPU of the server with its workers, of the callers and of the machine.
A count beyond the server's slots is recorded as refused (`busy`). Writes sessions.json, sessions.md and
sessions.png.
"""
from __future__ import annotations

import asyncio
import json
import math
import time
from pathlib import Path

from benchmarks.proc import cpu_seconds, load_average, machine, tree_rss_bytes
from benchmarks.server_process import ServerProcess
from benchmarks.stimulus import running_speech
from benchmarks.throughput import ThroughputConfig, run_level
from clients.avatar_client import AvatarError


def parse_counts(text: str) -> tuple[int, ...]:
    counts = tuple(int(v) for v in text.split(",") if v.strip())
    if not counts or min(counts) < 1:
        raise ValueError(f"--sessions takes counts >= 1 like 1,2,4,6, got {text!r}")
    return counts


def parse_modes(text: str) -> tuple[str, ...]:
    modes = tuple(v.strip() for v in text.split(",") if v.strip())
    if not modes or any(m != "auto" and not m.removeprefix("ray:").isdigit() for m in modes):
        raise ValueError(f"--workers takes numbers, auto or ray:N (N Ray actors), like 0,auto,ray:2, got {text!r}")
    return modes


def _mode_flags(mode: str, per_worker: int | None, top: int) -> list[str]:
    if mode == "0":
        return []
    workers = mode.removeprefix("ray:")
    if per_worker is None:  # enough slots for the largest count
        from realtime.server.config import default_workers

        per_worker = math.ceil(top / (default_workers() if workers == "auto" else max(int(workers), 1)))
    ray = ["--ray"] if mode.startswith("ray:") else []  # a local Ray instance, its actors as the workers
    return [*ray, "--workers", workers, "--sessions-per-worker", str(per_worker)]


def run_mode(mode: str, counts: tuple[int, ...], per_worker: int | None, tp: ThroughputConfig, checkpoint=None,
             image=None, avatar_config=None) -> dict:
    top = max(counts)
    flags = _mode_flags(mode, per_worker, top)
    speech = running_speech(tp.warmup_s + tp.measure_s + 10.0)
    with ServerProcess(top, checkpoint, image, avatar_config, extra=flags) as server:
        idle = tree_rss_bytes(server.pid)
        levels = []
        for n in counts:
            front_cpu, t0 = cpu_seconds(server.pid), time.monotonic()
            try:
                levels.append(asyncio.run(run_level(server.ws_url, n, speech, server.pid, tp, idle)))
            except AvatarError as exc:  # more callers than slots: refused, as a caller would be
                levels.append({"sessions": n, "refused": str(exc)})
                continue
            if flags and front_cpu is not None:  # the front's own process: signalling and routing, no media
                used = (cpu_seconds(server.pid) or front_cpu) - front_cpu
                levels[-1]["front_cpu_pct"] = round(100 * used / (time.monotonic() - t0), 1)
        return {"mode": f"workers {mode}" if flags else "in-process", "server_command": " ".join(server.command()[1:]),
                "startup_s": server.startup_s, "trained": server.trained, "levels": levels}


def sessions_bench(counts: tuple[int, ...], modes: tuple[str, ...], per_worker: int | None, measure_s: float,
                   out: Path, command: str, **server) -> dict:
    tp = ThroughputConfig(max_sessions=max(counts), measure_s=measure_s, stop_at_failure=False)
    report = {"suite": "avatar bench --sessions", "command": command, "machine": machine(),
              "method": f"n callers speaking at once (fresh sessions per level), {tp.warmup_s:g} s warm-up, "
                        f"{tp.measure_s:g} s measured; new pictures/s = frames the server showed for the first time",
              "runs": [run_mode(mode, counts, per_worker, tp, **server) for mode in modes]}
    report["machine"]["load_average_end"] = load_average()
    out.mkdir(parents=True, exist_ok=True)
    (out / "sessions.json").write_text(json.dumps(report, indent=1))
    (out / "sessions.md").write_text(markdown(report))
    plot(report, out / "sessions.png")
    return report


def _row(run: dict, lv: dict) -> str:
    if "refused" in lv:
        return f"| {run['mode']} | {lv['sessions']} | refused: {lv['refused']} | | | | | | |"
    per = lv["per_session"]
    new = ", ".join(f"{s['new_fps']:.1f}" for s in per)
    repeats = ", ".join(str(s["frames_repeated"]) for s in per)
    gap = max((s.get("max_gap_ms") or 0) for s in per)
    cpu = lv["cpu"]
    return (f"| {run['mode']} | {lv['sessions']} | {new} | {repeats} | {gap:g} | {cpu['server_cpu_pct']} | "
            f"{lv.get('front_cpu_pct', '–')} | {cpu['client_cpu_pct']} | {cpu['machine_busy_cores']} |")


def markdown(report: dict) -> str:
    m = report["machine"]
    lines = [f"Machine: {m.get('cpu_model')}, {m.get('cores')} cores; load average {m.get('load_average')} at start, "
             f"{m.get('load_average_end')} at end. Command: `{report['command']}`. {report['method']}.", "",
             "| server | callers | new pictures/s per caller | repeated frames per caller (in the window) "
             "| longest gap (ms) | server CPU % (with workers) | front's own CPU % | callers' CPU % "
             "| machine busy (cores) |",
             "|---" * 9 + "|"]
    for run in report["runs"]:
        lines += [_row(run, lv) for lv in run["levels"]]
    lines += [""] + [f"- {run['mode']}: `{run['server_command']}` (started in {run['startup_s']} s)"
                     for run in report["runs"]]
    return "\n".join(lines) + "\n"


def plot(report: dict, path: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    for run in report["runs"]:
        levels = [lv for lv in run["levels"] if "refused" not in lv]
        n = [lv["sessions"] for lv in levels]
        axes[0].plot(n, [lv["new_fps_per_session"]["min"] for lv in levels], "o-", label=f"{run['mode']}, slowest")
        axes[0].plot(n, [lv["new_fps_per_session"]["mean"] for lv in levels], "s--", label=f"{run['mode']}, mean")
        axes[1].plot(n, [sum(s["frames_repeated"] for s in lv["per_session"]) / lv["sessions"] for lv in levels],
                     "o-", label=run["mode"])
    axes[0].axhline(25, color="k", ls="--", lw=0.8)
    axes[0].set(xlabel="concurrent callers", ylabel="new pictures per second", title="New pictures/s per caller",
                ylim=(0, 27))
    axes[1].set(xlabel="concurrent callers", ylabel="repeated frames per caller", title="Repeats in the window")
    for ax in axes:
        ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
