"""Per-stage cost of one session's work, measured in this process on one torch thread (as the server runs it):
log-mel features and the generator per 160 ms chunk, the renderer, the RGB->YUV conversion and the VP8 encoder
per frame. CPU time (thread_time) is the cost that contention cannot inflate; wall time is beside it.
From these, the CPU one session needs per second of video and the sessions the cores could carry at best.
"""
from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path

import numpy as np

from benchmarks.analysis import FPS, summary
from benchmarks.server_process import has_checkpoint
from benchmarks.stimulus import RATE, running_speech
from realtime.config import AvatarConfig
from realtime.vocab import MODEL_RATE, VIDEO_CLOCK


@dataclass
class StagesConfig:
    chunks: int = 40  # 160 ms chunks (6.4 s of speech)
    checkpoint: Path | None = None
    image: Path | None = None
    avatar: AvatarConfig = field(default_factory=AvatarConfig)  # sampler, renderer settings as the server's


def _timed(fn, *args):
    w0, c0 = time.perf_counter(), time.thread_time()
    out = fn(*args)
    return out, 1000 * (time.perf_counter() - w0), 1000 * (time.thread_time() - c0)


def stage_costs(config: StagesConfig) -> dict:
    import torch

    from realtime.assembly import AvatarParts
    from realtime.avatar import set_cpu_threads
    from realtime.media.audio import resample
    from realtime.media.stream import rgb_to_yuv420, yuv420_frame
    from realtime.media.vp8 import RealtimeVp8Encoder
    from realtime.motion.features import StreamingLogMel

    threads = torch.get_num_threads()
    try:
        trained = has_checkpoint(config.checkpoint)
        setup = config.avatar.replace("server", checkpoint=config.checkpoint, image=config.image,
                                      allow_untrained=not trained)
        parts = AvatarParts.load(setup.replace("worker", threads=1), encoder=False)  # the server's assembly
        model, renderer = parts.model, parts.renderer()
        sampler = parts.sampler(shared=False)
        features = StreamingLogMel(model.cfg.features)
        encoder = RealtimeVp8Encoder()  # the server's
        chunk = int(MODEL_RATE * model.cfg.window / FPS)
        speech = resample(running_speech(chunk * (config.chunks + 4) / MODEL_RATE), RATE, MODEL_RATE)
        costs: dict[str, list[tuple[float, float]]] = {k: [] for k in ("features", "sample", "render", "yuv", "vp8")}
        sampler.push(speech[: 4 * chunk])  # first calls of torch are slow: not part of the steady state
        features.push(speech[: 4 * chunk])
        for k in range(4, config.chunks + 4):
            audio = speech[k * chunk:(k + 1) * chunk]
            _, *fcost = _timed(features.push, audio)
            motion, *scost = _timed(sampler.push, audio)
            costs["features"].append(tuple(fcost))
            costs["sample"].append(tuple(scost))
            for values in motion:
                rgb, *rcost = _timed(lambda v: np.asarray(renderer(v[None]))[0], values)
                yuv, *ycost = _timed(rgb_to_yuv420, rgb)
                frame = yuv420_frame(yuv, pts=len(costs["vp8"]) * (VIDEO_CLOCK // FPS),
                                     time_base=Fraction(1, VIDEO_CLOCK))
                _, *ecost = _timed(encoder.encode, frame)
                costs["render"].append(tuple(rcost))
                costs["yuv"].append(tuple(ycost))
                costs["vp8"].append(tuple(ecost))
    finally:
        set_cpu_threads(threads)

    per_call = {name: {"wall_ms": summary([w for w, _ in values], 2), "cpu_ms": summary([c for _, c in values], 2)}
                for name, values in costs.items()}
    chunks_per_s = FPS / model.cfg.window
    cpu_median = {name: per_call[name]["cpu_ms"]["p50"] or 0.0 for name in costs}
    per_second = {"sample (incl. features)": cpu_median["sample"] * chunks_per_s,
                  "render": cpu_median["render"] * FPS, "yuv": cpu_median["yuv"] * FPS, "vp8": cpu_median["vp8"] * FPS}
    total = sum(per_second.values())
    cores = os.cpu_count() or 1
    frame_ms = 1000 / FPS
    wait = {"chunk_frames": sampler.W, "lookahead_frames": sampler.future,
            # a frame's motion exists once the audio up to the end of its chunk plus the lookahead has arrived
            "first_frame_of_chunk_ms": (sampler.W + sampler.future) * frame_ms,
            "last_frame_of_chunk_ms": (1 + sampler.future) * frame_ms,
            "mean_ms": ((sampler.W + 1) / 2 + sampler.future) * frame_ms}
    return {"stages": {
        "method": "in-process, one torch thread, median CPU time per call; sample = features + generator "
                  f"(model.cfg.window={model.cfg.window} frames per chunk), the generator "
                  f"{'trained' if trained else 'UNTRAINED (same cost)'}",
        "per_call": per_call,
        "cpu_ms_per_session_second": {k: round(v, 1) for k, v in per_second.items()},
        "cpu_ms_per_session_second_total": round(total, 1),
        "limiting_stage": max(per_second, key=per_second.get),
        "audio_wait": wait,
        "sessions_per_core_upper_bound": round(1000.0 / total, 2) if total else None,
        "sessions_upper_bound_all_cores": round(cores * 1000.0 / total, 2) if total else None,
    }}
