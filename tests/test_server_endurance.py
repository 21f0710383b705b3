"""The server as a user runs it (its own process), over many calls: nothing it holds for a call outlives it."""
from __future__ import annotations

import asyncio
import os
from pathlib import Path

import pytest

import helpers
from benchmarks.proc import rss_bytes
from benchmarks.server_process import ServerProcess
from clients.avatar_client import AvatarClient, FileMicrophone


def thread_count(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/task"))


@pytest.fixture(scope="module")
def speech_wav(tmp_path_factory) -> Path:
    return helpers.speech_wav(tmp_path_factory.mktemp("speech"), "One, two, three. Testing the avatar once more.")


@pytest.mark.slow
def test_forty_calls_leave_no_threads_or_memory_behind(speech_wav):
    """Measured before the fix: +4 threads and ~+12 MB per call (aiortc's peer connections, with their codec
    threads, sat in reference cycles until a full collection that rarely came)."""
    async def one_call(url: str) -> None:
        async with AvatarClient(url) as client:
            await client.call(FileMicrophone(speech_wav, loop=True))
            await client.wait_first_frame()
            await asyncio.sleep(0.3)
            await client.hangup()

    with ServerProcess(max_sessions=1) as server:
        for _ in range(4):  # warm-up: first-call allocations, executor threads, caches
            asyncio.run(one_call(server.ws_url))
        threads, rss = thread_count(server.pid), rss_bytes(server.pid)
        for _ in range(40):
            asyncio.run(one_call(server.ws_url))
        grown_threads = thread_count(server.pid) - threads
        grown_mb = (rss_bytes(server.pid) - rss) / 2 ** 20
    assert grown_threads <= 4, f"{grown_threads} threads more after 40 calls"
    assert grown_mb <= 60, f"{grown_mb:.0f} MB more after 40 calls"
