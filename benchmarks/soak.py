"""`avatar bench --soak MINUTES`: one long call against the server as its own process, sampled every
`interval_s`: the server's resident memory and threads, its frame latency (audio arrival -> frame on air) and
repeated frames per window, and the frame rate the caller receives. A leak shows as a slope, a slowdown as a
rising latency. Writes <out>/soak.json and soak.png.

Measured on the caller's side and from /proc; the call speaks (a looped espeak-ng recording) and changes its
instruction every minute, as a live call would.
"""
from __future__ import annotations

import asyncio
import json
import os
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from benchmarks.proc import load_average, machine, rss_bytes
from benchmarks.server_process import ServerProcess
from clients.avatar_client import AvatarClient, FileMicrophone

INSTRUCTIONS = ("smile warmly", "look surprised", "nod slowly", "raise your eyebrows", None)


@dataclass
class SoakConfig:
    minutes: float = 10.0
    interval_s: float = 10.0
    instruct_every_s: float = 60.0
    checkpoint: Path | None = None


def _speech(folder: Path) -> Path:
    raw, wav = folder / "soak22k.wav", folder / "soak48k.wav"
    text = ("Good evening and welcome. Tonight we talk about the weather, the sea and the stars, "
            "and about the people who watch them. Let us begin with a question.")
    subprocess.run(["espeak-ng", "-w", str(raw), text], check=True)
    subprocess.run(["sox", str(raw), "-r", "48000", "-c", "1", str(wav)], check=True)
    return wav


async def _call(server: ServerProcess, wav: Path, config: SoakConfig) -> list[dict]:
    samples: list[dict] = []
    async with AvatarClient(server.ws_url, timeout_s=30) as client:
        await client.call(FileMicrophone(wav, loop=True))
        await client.wait_first_frame(30)
        start = time.monotonic()
        end = start + config.minutes * 60
        previous = (await client.stats())["counts"]
        seen, instructed = 0, 0
        while time.monotonic() < end:
            await asyncio.sleep(config.interval_s)
            now = time.monotonic()
            if now - start >= (instructed + 1) * config.instruct_every_s:
                instructed += 1
                await client.instruct(INSTRUCTIONS[instructed % len(INSTRUCTIONS)])
            stats = await client.stats()
            counts, latency = stats["counts"], stats["stages"].get("latency", {})
            frames = len(client.video.times) - seen
            seen += frames
            samples.append({"t_s": round(now - start, 1), "rss_mb": round(rss_bytes(server.pid) / 2 ** 20, 1),
                            "threads": len(os.listdir(f"/proc/{server.pid}/task")),
                            "latency_p50_ms": latency.get("p50_ms"), "latency_p95_ms": latency.get("p95_ms"),
                            "repeated": counts["frames_repeated"] - previous["frames_repeated"],
                            "dropped": counts["frames_dropped"] - previous["frames_dropped"],
                            "fps_received": round(frames / config.interval_s, 2)})
            previous = counts
        await client.hangup()
    return samples


def _slope_per_10min(t: np.ndarray, y: np.ndarray) -> float:
    return round(float(np.polyfit(t, y, 1)[0] * 600), 2) if len(t) > 2 else 0.0


def soak(config: SoakConfig, out: Path, command: str) -> dict:
    started = time.strftime("%Y-%m-%d %H:%M:%S %z")
    with tempfile.TemporaryDirectory(prefix="avatar-soak-") as folder, \
            ServerProcess(max_sessions=1, checkpoint=config.checkpoint) as server:
        samples = asyncio.run(_call(server, _speech(Path(folder)), config))
    t = np.array([s["t_s"] for s in samples])
    rss, threads = np.array([s["rss_mb"] for s in samples]), np.array([s["threads"] for s in samples])
    p95 = np.array([s["latency_p95_ms"] or np.nan for s in samples], float)
    half = len(samples) // 2
    summary = {"rss_mb": {"first": float(rss[0]), "last": float(rss[-1]), "max": float(rss.max()),
                          "slope_mb_per_10min_after_first_minute": _slope_per_10min(t[t >= 60], rss[t >= 60])},
               "threads": {"min": int(threads.min()), "max": int(threads.max())},
               "latency_p95_ms": {"first_half_median": float(np.nanmedian(p95[:half])),
                                  "second_half_median": float(np.nanmedian(p95[half:]))},
               "repeated_frames_total": int(sum(s["repeated"] for s in samples)),
               "fps_received_min": float(min(s["fps_received"] for s in samples))}
    report = {"suite": "avatar bench --soak", "command": command, "started": started, "machine": machine(),
              "load_average_end": load_average(), "minutes": config.minutes, "interval_s": config.interval_s,
              "summary": summary, "samples": samples}
    out.mkdir(parents=True, exist_ok=True)
    (out / "soak.json").write_text(json.dumps(report, indent=1))
    plot(report, out / "soak.png")
    return report


def plot(report: dict, path: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    s = report["samples"]
    t = [x["t_s"] / 60 for x in s]
    fig, axes = plt.subplots(4, 1, figsize=(9, 10), sharex=True)
    axes[0].plot(t, [x["rss_mb"] for x in s])
    axes[0].set_ylabel("server RSS (MB)")
    axes[1].plot(t, [x["threads"] for x in s])
    axes[1].set_ylabel("server threads")
    axes[2].plot(t, [x["latency_p50_ms"] for x in s], label="p50")
    axes[2].plot(t, [x["latency_p95_ms"] for x in s], label="p95")
    axes[2].set_ylabel("latency (ms)\naudio in -> frame on air")
    axes[2].legend()
    axes[3].bar(t, [x["repeated"] for x in s], width=0.1, label="repeated frames / window")
    axes[3].plot(t, [x["fps_received"] for x in s], color="C1", label="fps received")
    axes[3].set_ylabel("per window")
    axes[3].legend()
    axes[3].set_xlabel("minutes into the call")
    fig.suptitle(f"Soak: one {report['minutes']:g}-minute call ({report['interval_s']:g} s windows)")
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path


def markdown(report: dict) -> str:
    s = report["summary"]
    return (f"Soak, {report['minutes']:g} min (`{report['command']}`): server RSS {s['rss_mb']['first']:g} -> "
            f"{s['rss_mb']['last']:g} MB (max {s['rss_mb']['max']:g}; slope after the first minute "
            f"{s['rss_mb']['slope_mb_per_10min_after_first_minute']:g} MB per 10 min), threads "
            f"{s['threads']['min']}-{s['threads']['max']}, latency p95 median "
            f"{s['latency_p95_ms']['first_half_median']:g} ms (first half) / "
            f"{s['latency_p95_ms']['second_half_median']:g} ms (second half), "
            f"{s['repeated_frames_total']} repeated frames, lowest window {s['fps_received_min']:g} fps received; "
            f"load average at the end {report['load_average_end']}.")
