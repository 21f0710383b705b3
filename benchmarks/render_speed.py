"""Renderer cost per frame: batch 1 and 8, one and two CPU threads (and CUDA when present).

    python -m benchmarks.render_speed [--frames 100] [--image IMG] [--threads 1,2]

Renders a talking-like motion sequence (jaw and lips moving every frame, blinks, gaze, head sway, a
smile coming and going) plus a worst case (every region active, large head pose), and reports median
and p90 milliseconds per frame. Target: <= 10 ms/frame on one CPU thread at batch 1.
Writes benchmarks/results/render_speed.json.
"""
from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path

import numpy as np
import torch

from realtime.vocab import DIM, FPS, INDEX

RESULTS = Path(__file__).parent / "results"


def talking_motion(frames: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    t = np.arange(frames) / FPS
    m = np.zeros((frames, DIM), np.float32)
    jaw = 0.35 + 0.35 * np.sin(2 * np.pi * 3.1 * t) + 0.05 * rng.standard_normal(frames)
    m[:, INDEX["jaw_open"]] = np.clip(jaw, 0, 1)
    m[:, INDEX["lips_close"]] = np.clip(np.sin(2 * np.pi * 1.3 * t), 0, 1) ** 4
    m[:, INDEX["smile"]] = 0.3 + 0.3 * np.sin(2 * np.pi * 0.2 * t)
    blink = (np.arange(frames) % 60) < 4
    m[:, INDEX["blink_left"]] = m[:, INDEX["blink_right"]] = blink * 1.0
    m[:, INDEX["gaze_x"]] = 0.3 * np.sin(2 * np.pi * 0.3 * t)
    m[:, INDEX["head_yaw"]] = 4 * np.sin(2 * np.pi * 0.25 * t)
    m[:, INDEX["head_pitch"]] = 2 * np.sin(2 * np.pi * 0.4 * t)
    m[:, INDEX["head_roll"]] = 1.5 * np.sin(2 * np.pi * 0.17 * t)
    return m


def worst_motion(frames: int) -> np.ndarray:
    m = talking_motion(frames)
    m[:, INDEX["head_yaw"]] = 15
    m[:, INDEX["head_pitch"]] = -12
    m[:, INDEX["head_roll"]] = 10
    m[:, INDEX["blink_left"]] = 0.7
    m[:, INDEX["blink_right"]] = 0.7
    m[:, INDEX["jaw_open"]] = 1.0
    return m


def time_case(renderer, motion: np.ndarray, batch: int, device: torch.device) -> dict:
    renderer(motion[:batch])  # warm-up
    per_frame, cpu_per_frame = [], []
    for start in range(0, len(motion) - batch + 1, batch):
        if device.type == "cuda":
            torch.cuda.synchronize()
        t0, c0 = time.perf_counter(), time.process_time()
        renderer(motion[start:start + batch])
        if device.type == "cuda":
            torch.cuda.synchronize()
        per_frame.append((time.perf_counter() - t0) * 1000 / batch)
        cpu_per_frame.append((time.process_time() - c0) * 1000 / batch)
    # process CPU time is reported too: on a shared machine wall time includes waiting for a core
    return {"median_ms": round(float(np.median(per_frame)), 2), "p90_ms": round(float(np.percentile(per_frame, 90)), 2),
            "cpu_median_ms": round(float(np.median(cpu_per_frame)), 2), "calls": len(per_frame)}


def main() -> None:
    from realtime.avatar import RenderConfig, Renderer, enrol, set_cpu_threads

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=100)
    parser.add_argument("--image", default=None)
    parser.add_argument("--threads", default="1,2", help="comma-separated CPU thread counts to time")
    args = parser.parse_args()
    portrait = enrol(args.image)
    motions = {"talking": talking_motion(args.frames), "worst": worst_motion(args.frames)}
    rows = []
    devices = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
    for device in devices:
        renderer = Renderer(portrait, RenderConfig(device=device)).setup()
        cpu_threads = [int(t) for t in args.threads.split(",")]
        for threads in (cpu_threads if device == "cpu" else [torch.get_num_threads()]):
            set_cpu_threads(threads)
            for name, motion in motions.items():
                for batch in (1, 8):
                    row = {"device": device, "threads": threads, "motion": name, "batch": batch,
                           **time_case(renderer, motion, batch, renderer.device)}
                    rows.append(row)
                    print(f"{device:4s} threads={threads} {name:8s} batch={batch}: {row['median_ms']:6.2f} ms/frame "
                          f"median, {row['p90_ms']:6.2f} p90, {row['cpu_median_ms']:6.2f} ms CPU time", flush=True)
    RESULTS.mkdir(exist_ok=True)
    out = {"machine": platform.processor() or platform.machine(), "torch": torch.__version__,
           "cuda": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
           "frames": args.frames, "target_ms_one_thread_batch1": 10.0, "results": rows}
    (RESULTS / "render_speed.json").write_text(json.dumps(out, indent=2) + "\n")
    print(f"wrote {RESULTS / 'render_speed.json'}")


if __name__ == "__main__":
    main()
