"""Decode a video file with PyAV into RGB frames at 25 fps and its audio track as 16 kHz mono float32."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from realtime.media.audio import resample
from realtime.vocab import FPS, MODEL_RATE

VIDEO_SUFFIXES = {".mp4", ".mkv", ".webm", ".mov", ".avi", ".m4v", ".mpg", ".mpeg", ".ogv"}


class VideoError(ValueError):
    """A video cannot be annotated (missing, unreadable, no video stream, too short)."""


@dataclass
class DecodedVideo:
    path: Path
    frames: np.ndarray  # (T, H, W, 3) uint8 RGB at `fps`
    audio: np.ndarray | None  # (S,) float32 at 16 kHz, None without an audio track
    source_fps: float
    fps: int = FPS

    @property
    def duration(self) -> float:
        return len(self.frames) / self.fps


def decode_video(path: str | Path, fps: int = FPS, max_side: int = 1024) -> DecodedVideo:
    """Frames resampled to `fps` by presentation time (nearest earlier frame), larger sides scaled to
    `max_side` (landmarks need no more), and the first audio track resampled to 16 kHz mono."""
    import av

    path = Path(path)
    if not path.is_file():
        raise VideoError(f"video not found: {path}")
    try:
        with av.open(str(path)) as container:
            if not container.streams.video:
                raise VideoError(f"{path}: no video stream")
            stream = container.streams.video[0]
            source_fps = float(stream.average_rate or stream.guessed_rate or fps)
            timed: list[tuple[float, np.ndarray]] = []
            for frame in container.decode(stream):
                t = float(frame.time) if frame.time is not None else len(timed) / source_fps
                scale = min(1.0, max_side / max(frame.width, frame.height))
                if scale < 1.0:
                    frame = frame.reformat(width=int(frame.width * scale) // 2 * 2,
                                           height=int(frame.height * scale) // 2 * 2)
                timed.append((t, frame.to_ndarray(format="rgb24")))
        audio = _decode_audio(path)
    except VideoError:
        raise
    except Exception as exc:  # PyAV raises many types for broken files
        raise VideoError(f"{path}: not a readable video ({exc})") from exc
    if not timed:
        raise VideoError(f"{path}: the video has no frames")
    times = np.array([t for t, _ in timed]) - timed[0][0]
    n_out = max(1, int(round((times[-1] + 1.0 / source_fps) * fps)))
    pick = np.clip(np.searchsorted(times, np.arange(n_out) / fps + 1e-6, side="right") - 1, 0, len(timed) - 1)
    frames = np.stack([timed[i][1] for i in pick])
    return DecodedVideo(path=path, frames=frames, audio=audio, source_fps=source_fps, fps=fps)


def _decode_audio(path: Path) -> np.ndarray | None:
    import av

    with av.open(str(path)) as container:
        if not container.streams.audio:
            return None
        stream = container.streams.audio[0]
        rate = stream.codec_context.sample_rate
        resampler = av.AudioResampler(format="flt", layout="mono", rate=rate)
        chunks = [out.to_ndarray().reshape(-1) for frame in container.decode(stream)
                  for out in resampler.resample(frame)]
        chunks += [out.to_ndarray().reshape(-1) for out in resampler.resample(None)]
    if not chunks:
        return None
    return resample(np.concatenate(chunks).astype(np.float32), rate, MODEL_RATE)


def find_videos(source: str | Path) -> list[Path]:
    """A video file, or every video file under a folder (sorted)."""
    source = Path(source)
    if source.is_dir():
        videos = sorted(p for p in source.rglob("*") if p.suffix.lower() in VIDEO_SUFFIXES and p.is_file())
        if not videos:
            raise VideoError(f"no video files ({', '.join(sorted(VIDEO_SUFFIXES))}) under {source}")
        return videos
    if not source.is_file():
        raise VideoError(f"video not found: {source}")
    return [source]
