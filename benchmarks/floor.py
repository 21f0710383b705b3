"""`avatar bench --sessions 4 --floor off,rgb,yuv`: what calls cost with no model and no render work.

`rgb`: the server's sessions show a 2 s loop of frames rendered beforehand by the real renderer (talking motion),
converted to yuv420p per frame and VP8-encoded as usual (`avatar serve --replay-frames`, server/replay.py); `yuv`:
the same loop already in yuv420p, so only VP8 and the transport remain; `off`: the full pipeline. The callers,
audio in and out, RTP/SRTP and the session's thread and playout are the real ones in every mode. Beside the live
runs, the per-frame CPU of each stage (generator with features, renderer, RGB->YUV, VP8) measured in one thread
(`benchmarks.stages`), so the floor plus each stage added back says what N sessions need.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

FLOOR_FRAMES = 50  # a 2 s loop: the mouth, eyes and head move in every frame, as in a call
FLOORS = ("off", "rgb", "yuv")


def parse_floor(text: str) -> tuple[str, ...]:
    values = tuple(v.strip() for v in text.split(",") if v.strip())
    if not values or any(v not in FLOORS for v in values):
        raise ValueError(f"--floor takes off, rgb, yuv or a list of them like off,rgb,yuv, got {text!r}")
    return values


def write_loop(folder: Path, kind: str, image: Path | None = None, frames: int = FLOOR_FRAMES) -> Path:
    """Renders the loop with the server's renderer (its portrait and settings) and saves it as `kind` pixels."""
    from benchmarks.render_speed import talking_motion
    from realtime.avatar import Renderer, enrol
    from realtime.config import AvatarConfig
    from realtime.media.stream import rgb_to_yuv420

    renderer = Renderer(enrol(image), AvatarConfig().renderer).setup()
    rgb = np.stack([np.asarray(renderer(values[None]))[0] for values in talking_motion(frames)])
    pixels = rgb if kind == "rgb" else np.stack([rgb_to_yuv420(f) for f in rgb])
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"floor_{kind}.npy"
    np.save(path, pixels)
    return path


def split_table(runs: list[dict], stages: dict | None) -> str:
    """Markdown: per floor mode and caller count, cores of the callers, the server and the machine; then each
    stage's per-frame CPU and what it adds for the largest count at 25 fps."""
    lines = ["| mode | callers | new pictures/s per caller | server cores | server ms per frame sent | callers' cores "
             "| machine busy (cores) | other programs (cores) |", "|---" * 8 + "|"]
    for run in runs:
        for lv in run["levels"]:
            if "error" in lv or not lv["sessions"]:
                continue
            cpu, n = lv["cpu"], lv["sessions"]
            fps = sum(s["fps"] for s in lv["per_session"])
            per_frame = 10 * cpu["server_cpu_pct"] / max(fps, 1e-9)
            lines.append(f"| {run['mode']} | {n} | {lv['new_fps_per_session']['min']:.1f}–"
                         f"{lv['new_fps_per_session']['max']:.1f} | {cpu['server_cpu_pct'] / 100:.2f} | "
                         f"{per_frame:.1f} | {cpu['client_cpu_pct'] / 100:.2f} | {cpu['machine_busy_cores']} | "
                         f"{cpu['other_processes_cores']} |")
    if stages:
        per_call = stages["stages"]["per_call"]
        window = stages["stages"]["audio_wait"]["chunk_frames"]
        per_frame = {"generator (features + DDIM, per chunk / frames)": per_call["sample"]["cpu_ms"]["p50"] / window,
                     "renderer": per_call["render"]["cpu_ms"]["p50"], "RGB->YUV": per_call["yuv"]["cpu_ms"]["p50"],
                     "VP8 encode": per_call["vp8"]["cpu_ms"]["p50"]}
        lines += ["", "| stage (one thread, median) | CPU ms per frame | cores for 4 sessions at 25 fps |",
                  "|---|---|---|"]
        lines += [f"| {name} | {ms:.2f} | {4 * 25 * ms / 1000:.2f} |" for name, ms in per_frame.items()]
    return "\n".join(lines) + "\n"
