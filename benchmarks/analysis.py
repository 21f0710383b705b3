"""Measurements from what the client received, pixels and arrival times only (pure numpy, unit-tested).

    first_change   — when a region (the mouth) starts to move after an event (a syllable onset)
    transition     — when a region visibly starts, and finishes, changing towards a new state (an instruction)
    voice_onsets   — when the returned voice becomes loud after an onset
    av_lag         — returned voice envelope vs mouth motion: correlation and best lag
    pacing         — inter-frame intervals, missing RTP ticks, repeated frames
"""
from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from realtime.vocab import FPS, VIDEO_CLOCK


def summary(values, digits: int = 1) -> dict[str, float | int | None]:
    """n, mean, p50, p95, max (and min) of a list that may be empty or hold None."""
    v = np.asarray([x for x in values if x is not None and np.isfinite(x)], np.float64)
    if not len(v):
        return {"n": 0, "mean": None, "p50": None, "p95": None, "max": None, "min": None}
    return {"n": int(len(v)), "mean": round(float(v.mean()), digits), "p50": round(float(np.median(v)), digits),
            "p95": round(float(np.percentile(v, 95)), digits), "max": round(float(v.max()), digits),
            "min": round(float(v.min()), digits)}


@dataclass
class Response:
    event: float  # the event's time (monotonic s)
    latency_ms: float | None  # arrival of the first frame that changed, minus `event`; None = no change seen
    frame_time: float | None
    peak: float  # largest change in the window (grey levels, mean |frame - reference| over the region)
    noise: float  # mean change of the frames just before the event (the same measure)
    noise_sd: float

    def as_dict(self) -> dict:
        return {k: (round(v, 3) if isinstance(v, float) else v) for k, v in asdict(self).items()}


def region_change(crops: np.ndarray, reference: np.ndarray) -> np.ndarray:
    return np.abs(crops - reference[None]).mean(axis=(1, 2))


def first_change(times: np.ndarray, crops: np.ndarray, event: float, reference_s: tuple[float, float] = (-0.36, 0.0),
                 noise_s: tuple[float, float] = (-0.36, 0.0), window_s: float = 1.0, min_change: float = 1.5,
                 fraction: float = 0.25, hold: int = 1) -> Response:
    """First frame after `event` whose region differs from the frames before it by more than their noise.

    Reference: the mean of the frames arriving in the 0.36 s before the event (none of them can show it yet);
    noise: how far those frames stray from that reference. A response must rise `min_change` grey levels and six noise
    SDs above the noise level; its time is the first frame past max(3 SD, `fraction` of that rise) that the
    next `hold` frames stay past too (a lone noisy frame is not a response).
    """
    times = np.asarray(times)
    ref = (times >= event + reference_s[0]) & (times < event + reference_s[1])
    quiet = (times >= event + noise_s[0]) & (times < event + noise_s[1])
    after = (times >= event) & (times < event + window_s)
    if ref.sum() < 3 or quiet.sum() < 3 or after.sum() < 3:
        return Response(event, None, None, 0.0, 0.0, 0.0)
    reference = crops[ref].mean(0)
    noise_values = region_change(crops[quiet], reference)
    mu, sd = float(noise_values.mean()), float(noise_values.std())
    change = region_change(crops[after], reference)
    peak = float(change.max())
    if peak - mu < max(min_change, 6 * sd):
        return Response(event, None, None, peak, mu, sd)
    threshold = mu + max(3 * sd, fraction * (peak - mu))
    first = _held(change, threshold, hold)
    if first is None:
        return Response(event, None, None, peak, mu, sd)
    frame_time = float(times[after][first])
    return Response(event, 1000 * (frame_time - event), frame_time, peak, mu, sd)


@dataclass
class Transition:
    event: float
    visible_ms: float | None  # first frame clearly on its way to the new state (and staying there)
    complete_ms: float | None  # first frame at 90 % of the way (and staying near it)
    size: float  # grey levels between the state before and the settled state after
    progress: list[float]  # per frame from the event on: 0 = the state before, 1 = the settled state
    progress_t: list[float]

    def as_dict(self, with_trace: bool = False) -> dict:
        out = {"event": round(self.event, 3), "visible_ms": _r(self.visible_ms), "complete_ms": _r(self.complete_ms),
               "size": round(self.size, 2)}
        if with_trace:
            out.update(progress=[round(p, 3) for p in self.progress], progress_t=[round(t, 3) for t in self.progress_t])
        return out


def _r(value: float | None) -> float | None:
    return None if value is None else round(value, 1)


def _held(values: np.ndarray, level: float, hold: int) -> int | None:
    """Index of the first value >= level whose next `hold` values stay >= level (brief blinks do not count)."""
    above = values >= level
    for i in range(len(values)):
        if above[i] and above[i: i + hold + 1].all() and i + hold < len(values):
            return i
    return None


def transition(times: np.ndarray, crops: np.ndarray, event: float, settle_s: tuple[float, float],
               reference_s: float = 0.4, min_change: float = 1.0, hold: int = 6) -> Transition:
    """Progress of a region from its state before `event` towards its mean over `settle_s` (relative times),
    projected on the direction between the two states; visible at 20 % (and 3 noise SDs), complete at 90 %,
    each held for `hold` more frames (a blink lasts 4-6 frames and must not count as closing the eyes)."""
    times = np.asarray(times)
    ref = (times >= event - reference_s) & (times < event)
    settled = (times >= event + settle_s[0]) & (times < event + settle_s[1])
    after = (times >= event) & (times < event + settle_s[1])
    if ref.sum() < 3 or settled.sum() < 3:
        return Transition(event, None, None, 0.0, [], [])
    before, target = crops[ref].mean(0), crops[settled].mean(0)
    direction = target - before
    size = float(np.abs(direction).mean())
    norm = float((direction ** 2).sum()) or 1e-9
    project = lambda c: ((c - before[None]) * direction[None]).sum(axis=(1, 2)) / norm  # noqa: E731
    progress = project(crops[after])
    trace = Transition(event, None, None, size, progress.tolist(), (times[after] - event).tolist())
    if size < min_change:
        return trace
    noise = float(project(crops[ref]).std())
    t_after = times[after]
    visible = _held(progress, max(0.2, 3 * noise), hold)
    complete = _held(progress, 0.9, 0)
    if complete is not None and _held(progress[complete:], 0.8, hold) != 0:
        complete = None
    trace.visible_ms = None if visible is None else 1000 * float(t_after[visible] - event)
    trace.complete_ms = None if complete is None else 1000 * float(t_after[complete] - event)
    return trace


def voice_onsets(times: np.ndarray, rms: np.ndarray, events: list[float], window_s: float = 1.0,
                 fraction: float = 0.1, floor: float = 1e-3) -> list[float | None]:
    """Arrival of the first returned-voice chunk that rises above `fraction` of the loudest one in the window
    (a window that opens loud, on the tail of the previous syllable, counts from when that tail has ended)."""
    times, rms = np.asarray(times), np.asarray(rms)
    found: list[float | None] = []
    for event in events:
        mask = (times >= event) & (times < event + window_s)
        if not mask.any() or rms[mask].max() < floor:
            found.append(None)
            continue
        level = rms[mask]
        above = level >= fraction * level.max()
        rising = np.flatnonzero(above & ~np.concatenate([[True], above[:-1]]))
        found.append(float(times[mask][rising[0]]) if len(rising) else None)
    return found


def av_lag(voice_t: np.ndarray, voice_rms: np.ndarray, frame_t: np.ndarray, mouth: np.ndarray, start: float,
           end: float, step_s: float = 0.01, max_lag_s: float = 0.3) -> dict:
    """Correlation of the returned voice's log envelope with mouth motion, for lags of the mouth behind the
    voice from -max_lag to +max_lag; the best lag is the A/V offset (positive = video later than audio)."""
    if len(voice_t) < 10 or len(frame_t) < 10 or end - start < 2 * max_lag_s:
        return {"r": None, "lag_ms": None, "lags_ms": [], "curve": []}
    grid = np.arange(start, end, step_s)
    loud = np.log(np.interp(grid, voice_t, voice_rms) + 1e-3)
    motion = np.interp(grid, frame_t, mouth)
    n = int(round(max_lag_s / step_s))
    lags, curve = [], []
    for lag in range(-n, n + 1):
        a, b = (loud[: len(loud) - lag], motion[lag:]) if lag >= 0 else (loud[-lag:], motion[: len(motion) + lag])
        r = float(np.corrcoef(a, b)[0, 1]) if a.std() > 0 and b.std() > 0 else 0.0
        lags.append(round(lag * step_s * 1000, 1))
        curve.append(round(r, 4))
    best = int(np.argmax(curve))
    return {"r": curve[best], "lag_ms": lags[best], "lags_ms": lags, "curve": curve}


def pacing(times: np.ndarray, pts: np.ndarray, change: np.ndarray, skip_s: float = 2.0,
           repeat_below: float = 0.02) -> dict:
    """Frame pacing as received: inter-arrival intervals, RTP ticks that never arrived (from the 90 kHz
    timestamps), and frames pixel-identical to their predecessor (the server repeats one when it is late)."""
    times, pts, change = np.asarray(times), np.asarray(pts, np.int64), np.asarray(change)
    if len(times) < 3:
        return {"frames": int(len(times))}
    keep = times >= times[0] + skip_s
    if keep.sum() < 3:
        keep = np.ones(len(times), bool)
    t, p, c = times[keep], pts[keep], change[keep]
    intervals = np.diff(t) * 1000
    ticks = np.rint(np.diff(p) / (VIDEO_CLOCK / FPS)).astype(np.int64)
    duration = float(t[-1] - t[0])
    return {
        "frames": int(len(t)), "duration_s": round(duration, 2), "fps": round((len(t) - 1) / max(duration, 1e-9), 2),
        "interval_ms": {**summary(intervals, 2), "sd": round(float(intervals.std()), 2),
                        "p99": round(float(np.percentile(intervals, 99)), 2)},
        "intervals_over_60ms": int((intervals > 60).sum()), "intervals_over_100ms": int((intervals > 100).sum()),
        "missing_ticks": int(np.clip(ticks - 1, 0, None).sum()), "pts_not_increasing": int((ticks <= 0).sum()),
        "repeated_frames": int((c[1:] < repeat_below).sum()),
    }
