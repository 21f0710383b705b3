"""Per-stage timings of a session (ingest, sampling, render, encode, pacing, latency) for /api/sessions and
the benchmarks. Written from several threads; each record is a single deque append (atomic in CPython)."""
from __future__ import annotations

from collections import deque

import numpy as np

STAGES = ("ingest", "features", "sample", "render", "encode", "pace_late", "buffer", "latency")
# ingest: decode+resample of one 20 ms audio frame; features: a push that completed no chunk (log-mel only);
# sample: a push that completed one or more chunks (log-mel + audio encoder + DDIM); render: per frame;
# encode: aiortc's encode+send per video frame; pace_late: how late a frame left against its timestamp;
# buffer: time a rendered frame waited before it was shown; latency: shown time - arrival of its audio.
# Counts: audio_dropped_ms = late audio trimmed by the ingest (silence had been filled in for it);
# audio_skipped_ms = audio the worker skipped because it ran slower than real time; frames_late_skipped = frames
# that kept the previous picture because the worker reached them too late (their voice still plays).


class StageTimes:
    def __init__(self, keep: int = 2000):
        self._values: dict[str, deque[float]] = {name: deque(maxlen=keep) for name in STAGES}
        self.counts: dict[str, int] = {"frames_shown": 0, "frames_repeated": 0, "frames_dropped": 0,
                                       "frames_rendered": 0, "audio_frames_in": 0, "silence_filled_ms": 0,
                                       "audio_dropped_ms": 0, "audio_skipped_ms": 0,
                                       "frames_late_skipped": 0}

    def record(self, stage: str, seconds: float) -> None:
        self._values[stage].append(seconds)

    def count(self, name: str, n: int = 1) -> None:
        self.counts[name] = self.counts.get(name, 0) + n

    def summary(self) -> dict[str, object]:
        """Milliseconds: mean, median, 95th percentile and sample count per stage."""
        stages: dict[str, dict[str, float]] = {}
        for name, values in self._values.items():
            if not values:
                continue
            ms = np.asarray(values, dtype=np.float64) * 1000.0
            stages[name] = {"mean_ms": round(float(ms.mean()), 2), "p50_ms": round(float(np.median(ms)), 2),
                            "p95_ms": round(float(np.percentile(ms, 95)), 2), "n": int(len(ms))}
        return {"stages": stages, "counts": dict(self.counts)}
