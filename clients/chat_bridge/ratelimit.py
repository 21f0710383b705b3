"""Rate limiting: a token bucket, a sliding window, per-user cooldowns and exponential backoff (injectable clocks)."""
from __future__ import annotations

import random
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

Clock = Callable[[], float]


class TokenBucket:
    """`capacity` tokens, refilled at `rate` per second.

    A bucket of capacity C and rate R lets through at most C + R·W events in any window of W seconds, so
    `for_window(limit, window, burst)` picks R = (limit - burst) / window to stay within `limit` per `window`.
    """

    def __init__(self, capacity: float, rate: float, clock: Clock = time.monotonic):
        if capacity < 1 or rate < 0:
            raise ValueError(f"token bucket needs capacity >= 1 and rate >= 0, got {capacity}, {rate}")
        self.capacity, self.rate, self._clock = float(capacity), float(rate), clock
        self._tokens, self._stamp = float(capacity), clock()

    @classmethod
    def for_window(cls, limit: int, window_s: float, burst: int, clock: Clock = time.monotonic) -> TokenBucket:
        if not 1 <= burst <= limit:
            raise ValueError(f"burst must be between 1 and the limit ({limit}), got {burst}")
        if window_s <= 0:
            raise ValueError(f"window must be positive, got {window_s}")
        return cls(burst, (limit - burst) / window_s, clock)

    def _refill(self) -> None:
        now = self._clock()
        self._tokens = min(self.capacity, self._tokens + (now - self._stamp) * self.rate)
        self._stamp = now

    def try_take(self, n: float = 1.0) -> bool:
        self._refill()
        if self._tokens >= n:
            self._tokens -= n
            return True
        return False

    def give_back(self, n: float = 1.0) -> None:
        self._refill()
        self._tokens = min(self.capacity, self._tokens + n)

    def wait_time(self, n: float = 1.0) -> float:
        """Seconds until `n` tokens are available (inf when the bucket never refills)."""
        self._refill()
        missing = n - self._tokens
        if missing <= 0:
            return 0.0
        return float("inf") if self.rate == 0 else missing / self.rate


class Cooldowns:
    """Per-key cooldown: an action by a key is allowed once every `seconds`."""

    def __init__(self, seconds: float, clock: Clock = time.monotonic):
        self.seconds, self._clock = seconds, clock
        self._last: dict[str, float] = {}

    def remaining(self, key: str) -> float:
        last = self._last.get(key)
        return 0.0 if last is None else max(0.0, last + self.seconds - self._clock())

    def mark(self, key: str) -> None:
        now = self._clock()
        self._last[key] = now
        if len(self._last) > 10_000:  # forget users whose cooldown has long passed
            self._last = {k: t for k, t in self._last.items() if t + self.seconds > now}

    def forget(self, key: str) -> None:
        self._last.pop(key, None)


@dataclass
class Backoff:
    """Exponential backoff with full jitter; `reset()` after a connection proved healthy."""

    initial_s: float = 1.0
    max_s: float = 60.0
    factor: float = 2.0
    attempt: int = 0

    def next_delay(self) -> float:
        ceiling = min(self.max_s, self.initial_s * self.factor ** self.attempt)
        self.attempt += 1
        return random.uniform(ceiling / 2, ceiling)

    def reset(self) -> None:
        self.attempt = 0


class SlidingWindow:
    """At most `limit` events in any `window_s` seconds (exact, keeps the last `limit` timestamps)."""

    def __init__(self, limit: int, window_s: float, clock: Clock = time.monotonic):
        if limit < 1 or window_s <= 0:
            raise ValueError(f"sliding window needs limit >= 1 and window > 0, got {limit}, {window_s}")
        self.limit, self.window_s, self._clock = limit, window_s, clock
        self._stamps: deque[float] = deque()

    def _expire(self, now: float) -> None:
        while self._stamps and self._stamps[0] <= now - self.window_s:
            self._stamps.popleft()

    def try_take(self) -> bool:
        now = self._clock()
        self._expire(now)
        if len(self._stamps) >= self.limit:
            return False
        self._stamps.append(now)
        return True

    def give_back(self) -> None:
        if self._stamps:
            self._stamps.pop()

    def wait_time(self) -> float:
        now = self._clock()
        self._expire(now)
        return 0.0 if len(self._stamps) < self.limit else self._stamps[0] + self.window_s - now
