"""Write frames plus an audio track to an mp4 (H.264 + AAC) with PyAV."""
from __future__ import annotations

from collections.abc import Iterable
from fractions import Fraction
from pathlib import Path

import av
import numpy as np

from realtime.vocab import FPS, MODEL_RATE

AAC_RATE = 48_000  # Hz: the mp4 audio track


class VideoWriter:
    """Streamed mp4 writer: `write(frames)` as they are rendered, audio muxed once at `close()`."""

    def __init__(self, path: str | Path, size: int = 512, fps: int = FPS, crf: int = 20,
                 with_audio: bool = True):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.container = av.open(str(self.path), mode="w")
        self.video = self.container.add_stream("libx264", rate=fps)
        self.video.width = self.video.height = size
        self.video.pix_fmt = "yuv420p"
        self.video.options = {"crf": str(crf), "preset": "veryfast"}
        self.video.codec_context.time_base = Fraction(1, fps)
        self.frames = 0
        # mp4 needs every stream declared before the first packet is muxed.
        self.audio = self.container.add_stream("aac", rate=AAC_RATE) if with_audio else None
        if self.audio is not None:
            self.audio.layout = "mono"

    def write(self, frames: np.ndarray) -> None:
        """frames: (N, H, W, 3) uint8 RGB."""
        for rgb in np.asarray(frames, dtype=np.uint8):
            frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(rgb), format="rgb24")
            frame.pts = self.frames
            self.frames += 1
            self.container.mux(self.video.encode(frame))

    def close(self, audio: np.ndarray | None = None, rate: int = MODEL_RATE) -> None:
        self.container.mux(self.video.encode(None))
        if self.audio is not None:
            self._mux_audio(np.zeros(0, np.float32) if audio is None else np.asarray(audio, np.float32), rate)
        self.container.close()

    def _mux_audio(self, audio: np.ndarray, rate: int) -> None:
        stream = self.audio
        if not len(audio):
            audio = np.zeros(rate * self.frames // FPS, np.float32)
        resampler = av.AudioResampler(format="fltp", layout="mono", rate=AAC_RATE)
        source = av.AudioFrame.from_ndarray(np.clip(audio, -1, 1)[None, :], format="fltp", layout="mono")
        source.sample_rate = rate
        source.pts = 0
        source.time_base = Fraction(1, rate)
        for frame in resampler.resample(source) + resampler.resample(None):
            self.container.mux(stream.encode(frame))
        self.container.mux(stream.encode(None))


def write_video(path: str | Path, frames: Iterable[np.ndarray], audio: np.ndarray | None = None,
                rate: int = MODEL_RATE, fps: int = FPS) -> Path:
    """Write batches of frames (each (N, H, W, 3) uint8) and the audio as one mp4."""
    writer = None
    for batch in frames:
        if writer is None:
            writer = VideoWriter(path, size=batch.shape[1], fps=fps, with_audio=audio is not None)
        writer.write(batch)
    if writer is None:
        raise ValueError("no frames to write")
    writer.close(audio, rate)
    return Path(path)
