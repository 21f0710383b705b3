"""What the benchmark client sends and sees: a microphone that logs when each 20 ms frame left, and recorders
that keep, per received video frame, only the pixels the measurements need (mouth and eye regions) plus the
change from the previous frame (repeated frames), and the returned voice with its arrival times."""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from clients.avatar_client.media import PTIME, RATE, PacedAudioTrack


@dataclass(frozen=True)
class Region:
    """A rectangle of the 512x512 frame around some of the portrait's 68 landmarks."""

    name: str
    rows: slice
    cols: slice

    @classmethod
    def around(cls, name: str, landmarks: np.ndarray, points: list[int], margin: float) -> Region:
        xy = np.asarray(landmarks)[points]
        (x0, y0), (x1, y1) = xy.min(0) - margin, xy.max(0) + margin
        return cls(name, slice(int(max(0, y0)), int(np.ceil(y1))), slice(int(max(0, x0)), int(np.ceil(x1))))

    def crop(self, image: np.ndarray) -> np.ndarray:
        return image[self.rows, self.cols]


def face_regions(portrait) -> dict[str, Region]:
    """Mouth (inner and outer lips) and eyes with brows, in the enrolled portrait's crop pixels."""
    margin = 0.15 * portrait.iod
    return {"mouth": Region.around("mouth", portrait.landmarks, list(range(48, 68)), margin),
            "eyes": Region.around("eyes", portrait.landmarks, list(range(17, 27)) + list(range(36, 48)), margin)}


class TimedMicrophone(PacedAudioTrack):
    """A fixed signal played as the microphone; `sent_at[k]` is when 20 ms frame k was handed to the sender.

    The paced track hands frame k over at the moment its *first* sample is due; a physical microphone can only
    deliver it once its last sample has been captured, 20 ms later. `sound_time` accounts for that, so the
    latencies measured from it include the packetisation delay a real microphone adds.
    """

    def __init__(self, audio: np.ndarray, loop: bool = False):
        super().__init__()
        self.audio = np.asarray(audio, np.float32)
        self.loop = loop
        self.sent_at: list[float] = []
        self._pos = 0

    def next_samples(self) -> np.ndarray:
        import time

        n = self.samples
        if self._pos >= len(self.audio):
            if not self.loop:
                self.sent_at.append(time.monotonic())
                return np.zeros(n, np.float32)
            self._pos = 0
        chunk = self.audio[self._pos:self._pos + n]
        self._pos += n
        self.sent_at.append(time.monotonic())
        return np.pad(chunk, (0, n - len(chunk)))

    def sound_time(self, seconds_into_signal: float) -> float | None:
        """Wall-clock (monotonic) time at which a physical microphone would have heard this instant."""
        sample = int(round(seconds_into_signal * RATE))
        k = sample // self.samples
        if k >= len(self.sent_at):
            return None
        return self.sent_at[k] - PTIME + (sample - k * self.samples) / RATE


@dataclass
class FrameRecorder:
    """`on_frame(gray, arrival)` for AvatarClient.call(frame_format="gray")."""

    regions: dict[str, Region]
    times: list[float] = field(default_factory=list)
    crops: dict[str, list[np.ndarray]] = field(default_factory=dict)
    change: list[float] = field(default_factory=list)  # mean |frame - previous frame| on a 1/4 grid
    _previous: np.ndarray | None = None

    def __call__(self, gray: np.ndarray, arrival: float) -> None:
        self.times.append(arrival)
        for name, region in self.regions.items():
            self.crops.setdefault(name, []).append(region.crop(gray).copy())
        grid = gray[::4, ::4].astype(np.int16)
        self.change.append(float("inf") if self._previous is None else float(np.abs(grid - self._previous).mean()))
        self._previous = grid

    def stack(self, name: str) -> np.ndarray:
        return np.stack(self.crops[name]).astype(np.float32) if self.crops.get(name) else np.zeros((0, 1, 1))


@dataclass
class VoiceRecorder:
    """`on_audio(pcm, arrival)`: the voice the server returned, with the arrival time of every chunk."""

    chunks: list[np.ndarray] = field(default_factory=list)
    times: list[float] = field(default_factory=list)

    def __call__(self, pcm: np.ndarray, arrival: float) -> None:
        self.chunks.append(np.asarray(pcm, np.float32))
        self.times.append(arrival)

    def envelope(self) -> tuple[np.ndarray, np.ndarray]:
        """(arrival time, RMS) per received chunk."""
        if not self.chunks:
            return np.zeros(0), np.zeros(0)
        rms = np.array([float(np.sqrt(np.mean(c.astype(np.float64) ** 2))) if len(c) else 0.0 for c in self.chunks])
        return np.asarray(self.times), rms
