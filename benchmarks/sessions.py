"""`avatar bench --sessions 1,2,4,6 [--workers 0,auto] [--admission on,off] [--sessions-per-worker K]`: the
capacity curve.

For each server mode (`--workers 0`: every session in the server's one process; N: N worker processes that own
whole sessions) and admission (`on`: the server refuses callers beyond its measured load, `off`: only its slots)
one `avatar serve` process is started, then for each count that many callers call at once (fresh sessions per
level, the callers in this process, on the same machine, as a user's benchmark would be) with the throughput
benchmark's level (`throughput.run_level`). Caller 0 plays isolated syllables (glass-to-glass, as the latency
suite measures it), the others speech. Per level: callers admitted and refused (`server busy`), new pictures/s
per admitted caller, repeated frames, the longest gap between received frames, glass-to-glass p50/p95, CPU of the
server with its workers (and per admitted call), of the callers and of the machine. Writes sessions.json,
sessions.md and sessions.png.
"""
from __future__ import annotations

import asyncio
import json
import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.latency import analyse_call
from benchmarks.probe import FrameRecorder, TimedMicrophone, VoiceRecorder, face_regions
from benchmarks.proc import cpu_seconds, load_average, machine, tree_rss_bytes
from benchmarks.server_process import ServerProcess
from benchmarks.stimulus import onset_stimulus, running_speech
from benchmarks.throughput import ThroughputConfig, run_level
from clients.avatar_client import AvatarError


def parse_counts(text: str) -> tuple[int, ...]:
    counts = tuple(int(v) for v in text.split(",") if v.strip())
    if not counts or min(counts) < 1:
        raise ValueError(f"--sessions takes counts >= 1 like 1,2,4,6, got {text!r}")
    return counts


def parse_admission(text: str) -> tuple[bool, ...]:
    values = tuple(v.strip() for v in text.split(",") if v.strip())
    if not values or any(v not in ("on", "off") for v in values):
        raise ValueError(f"--admission takes on, off or on,off, got {text!r}")
    return tuple(v == "on" for v in values)


@dataclass
class Probe:
    """Caller 0 of a level: isolated syllables after silence, its returned pixels recorded; glass-to-glass as the
    latency suite measures it (latency.analyse_call)."""

    stimulus: Any
    mic: TimedMicrophone
    frames: FrameRecorder
    voice: VoiceRecorder
    client: Any = None  # set by run_level once the level ends
    stats: dict | None = None
    started: float = 0.0

    @classmethod
    def make(cls, seconds: float, portrait) -> Probe:
        stimulus = onset_stimulus(max(4, int((seconds - 2.0) / 1.25)), lead_s=2.0)
        return cls(stimulus, TimedMicrophone(stimulus.audio), FrameRecorder(face_regions(portrait)), VoiceRecorder())

    def call_options(self) -> dict:
        self.started = time.monotonic()
        return {"frame_format": "gray", "on_frame": self.frames, "on_audio": self.voice}

    def done(self) -> bool:
        return len(self.mic.sent_at) * self.mic.samples >= len(self.stimulus.audio)

    def result(self) -> dict | None:
        if self.client is None or not self.frames.times:
            return None
        pts = np.asarray(self.client.video.pts[: len(self.frames.times)])
        result, _ = analyse_call(self.stimulus, self.mic, self.frames, self.voice, pts, self.stats or {},
                                 (self.started,) * 3)
        g2g = result["glass_to_glass"]
        return {"onsets_sent": g2g["onsets_sent"], "onsets_detected": g2g["onsets_detected"],
                "latency_ms": g2g["latency_ms"]}


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


def run_mode(mode: str, admit: bool, counts: tuple[int, ...], per_worker: int | None, tp: ThroughputConfig,
             checkpoint=None, image=None, avatar_config=None, replay: Path | None = None) -> dict:
    """`replay`: the floor (benchmarks/floor.py), the server's calls show these pre-rendered frames."""
    from realtime.avatar import enrol

    top = max(counts)
    flags = _mode_flags(mode, per_worker, top)
    replay_flags = ["--replay-frames", str(replay)] if replay is not None else []
    speech = running_speech(tp.warmup_s + tp.measure_s + 10.0)
    portrait = enrol(image)
    with ServerProcess(top, checkpoint, image, avatar_config, extra=flags + replay_flags,
                       admit_by_load=admit) as server:
        idle = tree_rss_bytes(server.pid)
        levels = []
        for n in counts:
            front_cpu, t0 = cpu_seconds(server.pid), time.monotonic()
            probe, refusals = Probe.make(tp.warmup_s + tp.measure_s + 2.0, portrait), []
            try:
                level = asyncio.run(run_level(server.ws_url, n, speech, server.pid, tp, idle, probe, refusals))
            except AvatarError as exc:  # the server ended a call during the level (e.g. a worker stalled)
                levels.append({"callers": n, "sessions": 0, "refused": len(refusals), "error": str(exc),
                               "refusals": sorted(set(refusals))})
                print(f"{mode} admission {admit}: {n} callers: {exc}", flush=True)
                continue
            level.update(refusals=sorted(set(refusals)), glass_to_glass=probe.result())
            if level["sessions"] and level["cpu"]["server_cpu_pct"] is not None:
                level["cpu_per_session_cores"] = round(level["cpu"]["server_cpu_pct"] / 100 / level["sessions"], 2)
            if flags and front_cpu is not None:  # the front's own process: signalling and routing, no media
                used = (cpu_seconds(server.pid) or front_cpu) - front_cpu
                level["front_cpu_pct"] = round(100 * used / (time.monotonic() - t0), 1)
            levels.append(level)
            print(f"{mode} admission {admit}: {n} callers: {level['sessions']} admitted, new pictures/s "
                  f"{level['new_fps_per_session']['min']}..{level['new_fps_per_session']['max']}", flush=True)
        name = (f"workers {mode}" if flags else "in-process") + (f", floor {replay.stem[6:]}" if replay else "")
        return {"mode": f"{name}, admission {'on' if admit else 'off'}", "admission": admit,
                "server_command": " ".join(server.command()[1:]), "startup_s": server.startup_s,
                "trained": server.trained, "levels": levels}


def sessions_bench(counts: tuple[int, ...], modes: tuple[str, ...], per_worker: int | None, measure_s: float,
                   out: Path, command: str, admission: tuple[bool, ...] = (False,), floors: tuple[str, ...] = ("off",),
                   warmup_s: float | None = None, **server) -> dict:
    """`floors`: "off" (the full pipeline) and/or the floor modes of benchmarks/floor.py, each a server of its own."""
    from benchmarks.floor import split_table, write_loop

    tp = ThroughputConfig(max_sessions=max(counts), measure_s=measure_s, stop_at_failure=False)
    if warmup_s is not None:
        tp.warmup_s = warmup_s
    replays = [None if f == "off" else write_loop(out / "floor_loops", f, server.get("image")) for f in floors]
    report = {"suite": "avatar bench --sessions", "command": command, "machine": machine(),
              "method": f"n callers calling at once (fresh sessions per level; caller 0 plays isolated syllables for "
                        f"glass-to-glass, the others speech), {tp.warmup_s:g} s warm-up, {tp.measure_s:g} s measured; "
                        "new pictures/s = frames the server showed for the first time; figures of admitted callers",
              "runs": [run_mode(mode, admit, counts, per_worker, tp, replay=replay, **server)
                       for replay in replays for mode in modes for admit in admission]}
    report["machine"]["load_average_end"] = load_average()
    out.mkdir(parents=True, exist_ok=True)
    if any(replays):
        from benchmarks.stages import StagesConfig, stage_costs

        report["stages"] = stage_costs(StagesConfig(checkpoint=server.get("checkpoint"), image=server.get("image")))
        report["floor_split"] = split_table(report["runs"], report["stages"])
        for path in filter(None, replays):
            path.unlink()  # 10-40 MB each: not results
    (out / "sessions.json").write_text(json.dumps(report, indent=1))
    (out / "sessions.md").write_text(markdown(report) + ("\n" + report["floor_split"] if any(replays) else ""))
    plot(report, out / "sessions.png")
    return report


def _row(run: dict, lv: dict) -> str:
    if "error" in lv:
        return f"| {run['mode']} | {lv['callers']} | – | {lv['refused']} | failed: {lv['error']} |" + " |" * 8
    per = lv["per_session"]
    new = ", ".join(f"{s['new_fps']:.1f}" for s in per)
    repeats = ", ".join(str(s["repeated_pictures"]) for s in per)
    gap = max((s.get("max_gap_ms") or 0) for s in per)
    g2g = (lv.get("glass_to_glass") or {}).get("latency_ms") or {}
    latency = f"{g2g['p50']:.0f} / {g2g['p95']:.0f}" if g2g.get("p50") is not None else "–"
    cpu = lv["cpu"]
    return (f"| {run['mode']} | {lv['callers']} | {lv['sessions']} | {lv['refused']} | {new} | {repeats} | {gap:g} | "
            f"{latency} | {cpu['server_cpu_pct']} | {lv.get('cpu_per_session_cores', '–')} | "
            f"{lv.get('front_cpu_pct', '–')} | {cpu['client_cpu_pct']} | {cpu['machine_busy_cores']} |")


def markdown(report: dict) -> str:
    m = report["machine"]
    lines = [f"Machine: {m.get('cpu_model')}, {m.get('cores')} cores; load average {m.get('load_average')} at start, "
             f"{m.get('load_average_end')} at end. Command: `{report['command']}`. {report['method']}.", "",
             "| server | callers | admitted | refused (busy) | new pictures/s per admitted caller | repeated frames "
             "per caller (in the window) | longest gap (ms) | glass-to-glass p50 / p95 (ms) | server CPU % (with "
             "workers) | server cores per call | front's own CPU % | callers' CPU % | machine busy (cores) |",
             "|---" * 13 + "|"]
    for run in report["runs"]:
        lines += [_row(run, lv) for lv in run["levels"]]
    refusals = sorted({r for run in report["runs"] for lv in run["levels"] for r in lv.get("refusals", [])})
    lines += [""] + [f"- {run['mode']}: `{run['server_command']}` (started in {run['startup_s']} s)"
                     for run in report["runs"]] + [f"- refused with: {r}" for r in refusals[:6]]
    return "\n".join(lines) + "\n"


def plot(report: dict, path: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    for run in report["runs"]:
        levels = [lv for lv in run["levels"] if lv["sessions"]]
        n = [lv["callers"] for lv in levels]
        axes[0].plot(n, [lv["new_fps_per_session"]["min"] for lv in levels], "o-", label=f"{run['mode']}, slowest")
        axes[0].plot(n, [lv["new_fps_per_session"]["mean"] for lv in levels], "s--", label=f"{run['mode']}, mean")
        axes[1].plot(n, [sum(s["repeated_pictures"] for s in lv["per_session"]) / lv["sessions"] for lv in levels],
                     "o-", label=run["mode"])
    axes[0].axhline(25, color="k", ls="--", lw=0.8)
    axes[0].set(xlabel="callers (refused ones included)", ylabel="new pictures per second",
                title="New pictures/s per admitted caller", ylim=(0, 27))
    axes[1].set(xlabel="callers (refused ones included)", ylabel="repeated frames per admitted caller",
                title="Repeats in the window")
    for ax in axes:
        ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
