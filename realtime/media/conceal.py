"""Packet-loss concealment for decoded audio: the frames' timestamps show where packets were lost (aiortc's
Opus decoder only decodes what arrives, so a lost 20 ms packet is a gap), and the gap is filled by repeating
the last pitch period of the audio before it, fading out (the waveform substitution of ITU-T G.711 Appendix I).
A short gap then sounds like the speech going on instead of a click of silence."""
from __future__ import annotations

import av
import numpy as np

MAX_GAP_S = 0.1  # longer gaps are real pauses (the caller muted or stopped): no concealment
FADE_PER_PACKET = 0.3  # gain lost per concealed 20 ms packet (1.0, 0.7, 0.4, 0.1, then nothing is left)


def _samples(frame: av.AudioFrame) -> np.ndarray:
    """(samples, channels) in the frame's own dtype."""
    data = frame.to_ndarray()
    channels = len(frame.layout.channels)
    return data.T if frame.format.is_planar else data.reshape(-1, channels)


def _frame_like(template: av.AudioFrame, samples: np.ndarray, pts: int) -> av.AudioFrame:
    data = samples.T if template.format.is_planar else samples.reshape(1, -1)
    frame = av.AudioFrame.from_ndarray(np.ascontiguousarray(data), format=template.format.name,
                                       layout=template.layout.name)
    frame.sample_rate, frame.pts, frame.time_base = template.sample_rate, pts, template.time_base
    return frame


def pitch_period(history: np.ndarray, rate: int) -> int:
    """The strongest period between 2.5 and 15 ms (a voice's pitch) in mono float `history`."""
    low, high = int(rate * 0.0025), min(int(rate * 0.015), len(history) // 2)
    if high <= low:
        return max(1, len(history))
    tail = history[-high:]
    scores = [float(np.dot(tail[lag:], tail[:-lag])) / (np.linalg.norm(tail[lag:]) * np.linalg.norm(tail[:-lag])
                                                          + 1e-9) for lag in range(low, high)]
    return low + int(np.argmax(scores))


def substitute(history: np.ndarray, count: int, period: int) -> np.ndarray:
    """`count` rows continuing `history` with its last `period` rows, repeated (continuous at the seam)."""
    reps = -(-count // period)
    return np.concatenate([history[-period:]] * reps)[:count]


class LossConcealer:
    """`for f in concealer(frame): ...`: the frame, preceded by stand-ins for packets lost just before it."""

    def __init__(self, max_gap_s: float = MAX_GAP_S):
        self.max_gap_s = max_gap_s
        self._last: av.AudioFrame | None = None
        self._end: int | None = None  # pts just after the last frame
        self._history: np.ndarray | None = None  # the last 40 ms, (samples, channels)
        self.concealed_s = 0.0  # audio made up so far

    def __call__(self, frame: av.AudioFrame) -> list[av.AudioFrame]:
        out: list[av.AudioFrame] = []
        last = self._last
        if last is not None and frame.pts is not None and self._end is not None and \
                frame.sample_rate == last.sample_rate and frame.format.name == last.format.name:
            gap, n = frame.pts - self._end, last.samples
            if n // 2 <= gap <= self.max_gap_s * frame.sample_rate:
                out = self._conceal(last, self._end, int(round(gap / n)))
        out.append(frame)
        samples = _samples(frame)
        history = samples if self._history is None else np.concatenate([self._history, samples])
        self._history = history[-2 * len(samples):]
        # the pts now: consumers may clear it (resamplers want monotonic pts of their own)
        self._last, self._end = frame, None if frame.pts is None else frame.pts + frame.samples
        return out

    def _conceal(self, last: av.AudioFrame, start: int, packets: int) -> list[av.AudioFrame]:
        n, history = last.samples, self._history.astype(np.float32)
        period = pitch_period(history.mean(1), last.sample_rate)
        filled = substitute(history, n * packets, period)
        gain = np.clip(1.0 - FADE_PER_PACKET * np.arange(n * packets) / n, 0.0, 1.0)
        filled = filled * gain[:, None]
        dtype = self._history.dtype
        if np.issubdtype(dtype, np.integer):
            info = np.iinfo(dtype)
            filled = np.clip(np.round(filled), info.min, info.max)
        filled = filled.astype(dtype)
        self.concealed_s += n * packets / last.sample_rate
        return [_frame_like(last, filled[i * n:(i + 1) * n], start + i * n) for i in range(packets)]
