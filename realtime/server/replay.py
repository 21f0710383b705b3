"""The cost floor: sessions that show a loop of pre-rendered frames instead of running generator and renderer.

Benchmarks only (`avatar serve --replay-frames FILE`, `avatar bench --sessions N --floor rgb,yuv`): everything
else a call costs stays real (WebRTC, audio in and out, the session's worker thread and playout, the VP8 encoder),
so the server's CPU is what four sessions cost before any model or render work. A file of (N, H, W, 3) RGB frames
keeps the RGB->YUV conversion per frame; one of (N, H * 3 // 2, W) yuv420p frames leaves it out too.
"""
from __future__ import annotations

from functools import lru_cache
from pathlib import Path

import numpy as np

from realtime.vocab import DIM, SAMPLES_PER_FRAME, neutral


@lru_cache(maxsize=2)
def load_frames(path: Path) -> np.ndarray:
    """The loop, read once per process (every session shares it, read-only)."""
    frames = np.load(path)
    rgb = frames.ndim == 4 and frames.shape[3] == 3
    yuv = frames.ndim == 3 and frames.shape[1] % 3 == 0 and frames.shape[1] * 2 % 3 == 0
    assert frames.dtype == np.uint8 and len(frames) and (rgb or yuv), \
        f"{path}: want uint8 (N, H, W, 3) RGB or (N, H*3/2, W) yuv420p frames, got {frames.dtype} {frames.shape}"
    frames.setflags(write=False)
    return frames


class ReplayRenderer:
    """Called like the Renderer (a batch of motion values -> a batch of pictures); answers with the loop's next
    frames whatever the values. `yields_yuv`: the pictures are already yuv420p (the pipeline converts no more)."""

    def __init__(self, frames: np.ndarray):
        self.frames = frames
        self.yields_yuv = frames.ndim == 3
        self._next = 0

    def __call__(self, values: np.ndarray) -> np.ndarray:
        index = (self._next + np.arange(len(values))) % len(self.frames)
        self._next = int(index[-1]) + 1
        return self.frames[index]


class ReplaySampler:
    """The StreamingSampler's interface at no cost: one neutral motion frame per 40 ms of audio pushed."""

    latency_s = 0.0

    def __init__(self):
        self.samples_pushed = 0
        self.frames_emitted = 0
        self._neutral = neutral(1)[0].astype(np.float32)
        assert self._neutral.shape == (DIM,)

    def set_instruction(self, text, intensity: float = 1.0, embedding=None) -> None:
        pass

    def close_mouth(self) -> None:
        pass

    def push(self, audio16k: np.ndarray) -> np.ndarray:
        self.samples_pushed += len(audio16k)
        ready = self.samples_pushed // SAMPLES_PER_FRAME - self.frames_emitted
        self.frames_emitted += ready
        return np.repeat(self._neutral[None], ready, axis=0)
