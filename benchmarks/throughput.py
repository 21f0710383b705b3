"""Throughput: 1, 2, … concurrent calls (each speaking, each a fresh session) until one no longer holds 25 fps.

Per level: received fps per session, RTP ticks missing, the server's repeated/dropped frames and skipped audio
in the measuring window, the server's per-stage timings, CPU of the server, of this client and of the rest of
the machine, and the server's resident memory (per added session). `fps` counts frames received; `new_fps`
counts only new pictures (the server repeats the last frame when the generator is late, so the received rate
alone stays at 25 while the face freezes).
"""
from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass

import numpy as np

from benchmarks.analysis import FPS, VIDEO_CLOCK, summary
from benchmarks.probe import TimedMicrophone
from benchmarks.proc import CpuWindow, tree_rss_bytes
from benchmarks.stimulus import RATE, running_speech
from clients.avatar_client import AvatarClient, AvatarError

LOSS_COUNTS = ("frames_repeated", "frames_dropped", "frames_late_skipped")  # late-skipped: the previous picture again


@dataclass
class ThroughputConfig:
    max_sessions: int = 6
    measure_s: float = 12.0
    warmup_s: float = 2.0
    min_fps: float = 24.5  # every session must receive at least this many frames per second
    max_loss: float = 0.01  # repeated + dropped + missing frames, as a fraction of the frames due
    stop_at_failure: bool = True


def _delta(after: dict, before: dict, key: str) -> int:
    return int((after.get("counts") or {}).get(key, 0)) - int((before.get("counts") or {}).get(key, 0))


def _stage(stats: dict, stage: str, key: str = "p50_ms") -> float | None:
    return ((stats.get("stages") or {}).get(stage) or {}).get(key)


async def _stats(client: AvatarClient) -> dict:
    try:
        return await client.stats()
    except AvatarError as exc:  # the server ended the call meanwhile: say why (its `closed` notice)
        raise AvatarError(f"a call ended during the level: {(client.ended or {}).get('reason') or exc}") from None


async def _wait_no_sessions(ws_url: str, timeout_s: float = 15.0) -> None:
    async with AvatarClient(ws_url) as control:
        end = time.monotonic() + timeout_s
        while await control.sessions() and time.monotonic() < end:
            await asyncio.sleep(0.2)


async def run_level(ws_url: str, n: int, speech: np.ndarray, server_pid: int | None, config: ThroughputConfig,
                    server_rss_idle: int | None, probe=None, refusals: list[str] | None = None) -> dict:
    """n callers at once. `probe`: caller 0 calls with `probe.mic` and `probe.call_options()` instead (its client
    is kept as `probe.client`, its stats as `probe.stats`); `refusals`: callers the server refuses are listed
    there and the level measures the admitted ones (else a refusal raises)."""
    all_clients = [AvatarClient(ws_url) for _ in range(n)]
    clients: list[AvatarClient] = []
    t_setup = time.monotonic()
    try:
        for i, client in enumerate(all_clients):
            await client.connect()
            mic = TimedMicrophone(np.roll(speech, int(i * 0.77 * RATE)), loop=True)  # not all in unison
            options = probe.call_options() if probe is not None and i == 0 else {}
            try:
                await client.call(probe.mic if options else mic, control_channel=False, **options)
            except AvatarError as exc:
                if refusals is None:
                    raise
                refusals.append(str(exc))
                continue
            clients.append(client)
        await asyncio.gather(*(c.wait_first_frame() for c in clients))
        setup_s = time.monotonic() - t_setup
        await asyncio.sleep(config.warmup_s)
        before = [await _stats(c) for c in clients]
        marks = [len(c.video.times) for c in clients]
        rss_peak = 0
        window = CpuWindow(server_pid).start()
        t_start = time.monotonic()
        while time.monotonic() < t_start + config.measure_s:
            rss_peak = max(rss_peak, tree_rss_bytes(server_pid) or 0) if server_pid else 0
            await asyncio.sleep(0.5)
        t_end = time.monotonic()
        cpu = window.stop()
        after = [await _stats(c) for c in clients]
        if probe is not None and clients and clients[0] is all_clients[0]:
            while not probe.done():  # its stimulus played to the end
                await asyncio.sleep(0.2)
            probe.client, probe.stats = clients[0], await clients[0].stats()
    finally:
        for client in all_clients:
            try:
                await client.hangup()
            finally:
                await client.close()
        await _wait_no_sessions(ws_url)  # the next level starts on an empty server, even after a failed one

    sessions = []
    for client, mark, b, a in zip(clients, marks, before, after):
        times = np.asarray(client.video.times[mark:])
        pts = np.asarray(client.video.pts[mark:], np.int64)
        inside = (times >= t_start) & (times < t_end)
        fps = float(inside.sum()) / (t_end - t_start)
        ticks = (np.rint(np.diff(pts[inside]) / (VIDEO_CLOCK / FPS)).astype(np.int64) if inside.sum() > 1
                 else np.zeros(0))
        counts = {k: _delta(a, b, k) for k in ("frames_shown", *LOSS_COUNTS, "audio_skipped_ms", "audio_dropped_ms")}
        counts["missing_ticks"] = int(np.clip(ticks - 1, 0, None).sum())
        counts["max_gap_ms"] = round(1000 * float(np.diff(times[inside]).max()), 1) if inside.sum() > 1 else None
        # pictures shown for the first time: no repeats, and no frame that kept the previous picture (late)
        new_fps = (counts["frames_shown"] - counts["frames_late_skipped"]) / (t_end - t_start)
        counts["repeated_pictures"] = counts["frames_repeated"] + counts["frames_late_skipped"]
        sessions.append({"fps": round(fps, 2), "new_fps": round(new_fps, 2), **counts,
                         "latency_p95_ms": _stage(a, "latency", "p95_ms"), "render_p50_ms": _stage(a, "render"),
                         "sample_p50_ms": _stage(a, "sample"), "encode_p50_ms": _stage(a, "encode"),
                         "pace_late_p95_ms": _stage(a, "pace_late", "p95_ms")})
    n = len(clients)
    due = FPS * (t_end - t_start) * n
    lost = sum(s["repeated_pictures"] + s["frames_dropped"] + s["missing_ticks"] for s in sessions)
    holds = all(s["fps"] >= config.min_fps for s in sessions) and lost <= config.max_loss * due
    no_loss = lost == 0 and all(s["audio_skipped_ms"] == 0 for s in sessions)
    rss_per_session = None
    if rss_peak and server_rss_idle:
        rss_per_session = round((rss_peak - server_rss_idle) / n / 2 ** 20, 1)
    return {"sessions": n, "callers": len(all_clients), "refused": len(all_clients) - n,
            "setup_s": round(setup_s, 2), "measure_s": round(t_end - t_start, 2),
            "fps_per_session": summary([s["fps"] for s in sessions], 2),
            "new_fps_per_session": summary([s["new_fps"] for s in sessions], 2), "lost_frames": int(lost),
            "lost_fraction": round(lost / max(due, 1), 4), "holds_25fps": bool(holds), "no_frame_loss": bool(no_loss),
            "cpu": cpu, "server_rss_mb": round(rss_peak / 2 ** 20, 1) if rss_peak else None,
            "server_rss_per_session_mb": rss_per_session,
            "latency_p95_ms": summary([s["latency_p95_ms"] for s in sessions]),
            "per_session": sessions}


async def throughput(ws_url: str, server_pid: int | None, config: ThroughputConfig) -> dict:
    speech = running_speech(config.warmup_s + config.measure_s + 10.0)
    idle_rss = tree_rss_bytes(server_pid) if server_pid else None
    levels = []
    for n in range(1, config.max_sessions + 1):
        level = await run_level(ws_url, n, speech, server_pid, config, idle_rss)
        levels.append(level)
        if config.stop_at_failure and not level["holds_25fps"]:
            break
    held = [lv["sessions"] for lv in levels if lv["holds_25fps"]]
    clean = [lv["sessions"] for lv in levels if lv["no_frame_loss"]]
    return {"throughput": {
        "method": f"n concurrent speaking calls (fresh sessions per level), {config.warmup_s:g} s warm-up, "
                  f"{config.measure_s:g} s measured; holds 25 fps = every session >= {config.min_fps} fps received "
                  f"and repeated + dropped + missing frames <= {100 * config.max_loss:g} % of those due",
        "server_rss_idle_mb": round(idle_rss / 2 ** 20, 1) if idle_rss else None,
        "levels": levels,
        # Largest n that held (levels are tried in order, so a gap means a flaky level, not a limit).
        "max_sessions_25fps": max(held) if held else 0,
        "max_sessions_no_frame_loss": max(clean) if clean else 0,
        "tried_up_to": config.max_sessions,
    }}
