"""Outgoing chat replies under the platform's message-rate rule: a token bucket sized so that no window of
`window_s` seconds ever carries more than `limit` messages. Replies that must wait are coalesced into one
line ("a | b | c"); beyond `max_pending` the oldest are dropped. Never more messages than the rule allows."""
from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import Awaitable, Callable

from .config import ReplyConfig
from .irc import safe_chat_text
from .ratelimit import Clock, TokenBucket

log = logging.getLogger(__name__)
SEPARATOR = " | "


class ChatReplies:
    def __init__(self, config: ReplyConfig, clock: Clock = time.monotonic):
        self.config, self._clock = config, clock
        self.bucket = TokenBucket.for_window(config.limit, config.window_s, config.burst, clock)
        self._pending: deque[tuple[float, str]] = deque()
        self._ready = asyncio.Event()
        self.sent = 0
        self.dropped = 0
        self.coalesced = 0

    @property
    def pending(self) -> list[str]:
        return [text for _, text in self._pending]

    def say(self, text: str) -> None:
        if not self.config.enabled:
            return
        text = safe_chat_text(text, self.config.max_bytes)
        if not text or text in self.pending:  # the same words are already on their way
            return
        self._pending.append((self._clock(), text))
        while len(self._pending) > self.config.max_pending:
            self._pending.popleft()
            self.dropped += 1
        self._ready.set()

    def take_line(self) -> str | None:
        """Pops the pending replies that fit in one message, oldest first; drops those too old to matter."""
        now = self._clock()
        while self._pending and now - self._pending[0][0] > self.config.max_age_s:
            self._pending.popleft()
            self.dropped += 1
        if not self._pending:
            return None
        parts = [self._pending.popleft()[1]]
        size = len(parts[0].encode())
        while self._pending:
            extra = len(SEPARATOR.encode()) + len(self._pending[0][1].encode())
            if size + extra > self.config.max_bytes:
                break
            parts.append(self._pending.popleft()[1])
            size += extra
        self.coalesced += len(parts) - 1
        return SEPARATOR.join(parts)

    async def run(self, send: Callable[[str], Awaitable[None]], connected: asyncio.Event) -> None:
        """Sends pending replies forever; `send` raising OSError/RuntimeError/ValueError loses that line only."""
        while True:
            await self._ready.wait()
            await connected.wait()
            wait = self.bucket.wait_time()
            if wait > 0:
                await asyncio.sleep(wait)  # meanwhile more replies arrive and share the next line
                continue
            line = self.take_line()
            if line is None:
                self._ready.clear()
                continue
            self.bucket.try_take()
            try:
                await send(line)
                self.sent += 1
            except (OSError, RuntimeError, ValueError) as exc:
                self.dropped += 1
                log.info("chat reply lost: %s", exc)
