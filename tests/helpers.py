"""Helpers shared by the test modules (fixtures are in conftest.py)."""
from __future__ import annotations

import socket
import subprocess
import time
from collections.abc import Callable
from pathlib import Path


def free_port() -> int:
    """A TCP port that was free on loopback a moment ago."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_until(predicate: Callable[[], object], timeout_s: float = 5.0, poll_s: float = 0.05) -> bool:
    """Polls `predicate` until it holds or `timeout_s` passes; its last value decides."""
    end = time.monotonic() + timeout_s
    while time.monotonic() < end:
        if predicate():
            return True
        time.sleep(poll_s)
    return bool(predicate())


def mouth_region() -> tuple[slice, slice]:
    """Rows and columns of the default portrait's mouth, with a margin (where speech moves pixels)."""
    from realtime.avatar import enrol

    portrait = enrol(None)
    xy, margin = portrait.landmarks[48:68], 0.15 * portrait.iod
    (x0, y0), (x1, y1) = xy.min(0) - margin, xy.max(0) + margin
    return slice(int(max(0, y0)), int(y1)), slice(int(max(0, x0)), int(x1))


def speech_wav(folder: Path, text: str, rate: int = 48_000, words_per_minute: int | None = None) -> Path:
    """`text` spoken by the espeak-ng program, written as a mono WAV at `rate` (a microphone's)."""
    raw, wav = folder / "speech_espeak.wav", folder / f"speech{rate // 1000}k.wav"
    speed = ["-s", str(words_per_minute)] if words_per_minute else []
    subprocess.run(["espeak-ng", *speed, "-w", str(raw), text], check=True)
    subprocess.run(["sox", str(raw), "-r", str(rate), "-c", "1", str(wav)], check=True)
    return wav


# A sentence long enough to be cleared part-way through (barge-in tests).
LONG_SENTENCE = ("Once upon a time there was a lighthouse keeper who counted the waves every morning, and every "
                 "evening he wrote their number in a big blue book that nobody ever read.")
