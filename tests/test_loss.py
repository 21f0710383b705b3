"""A call through a real lossy network: a network namespace whose UDP output drops 5 % of packets at random
(both directions: the caller's audio and the server's video and voice), server and client each in their own
process inside it. What the caller receives must stay smooth and the voice must come back."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

import helpers
from benchmarks import netns
from benchmarks.server_process import ServerProcess

REASON = netns.unavailable()
pytestmark = pytest.mark.skipif(REASON is not None, reason=f"no lossy network namespace here: {REASON}")
REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def speech_wav(tmp_path_factory) -> Path:
    return helpers.speech_wav(tmp_path_factory.mktemp("speech"), "The quick brown fox jumps over the lazy "
                              "dog. She sells sea shells by the sea shore, and the shells she sells are surely "
                              "sea shells.", words_per_minute=150)


@pytest.mark.slow
def test_a_call_stays_smooth_at_five_percent_packet_loss(speech_wav, tmp_path):
    """Measured before (same test, same machine): 25 fps, but the longest freeze 682 ms and 23 % of the
    returned voice missing; see benchmarks/RESULTS.md for the figures after."""
    out = tmp_path / "call.json"
    with netns.LossyNamespace(loss_pct=5) as net:
        with ServerProcess(max_sessions=1, host=net.server_ip, wrap=["ip", "netns", "exec", net.name]) as server:
            client = subprocess.run(net.exec([sys.executable, "-m", "benchmarks.lossy", "--url", server.ws_url,
                                              "--wav", str(speech_wav), "--seconds", "20", "--out", str(out)]),
                                    cwd=REPO, capture_output=True, text=True, timeout=120)
            assert client.returncode == 0, client.stdout + client.stderr + server.output()
    figures = json.loads(out.read_text())
    print(figures)
    behind = figures["server_counts"]["audio_skipped_ms"]
    if behind > 500:  # frames repeat for want of CPU, not of packets: a different failure, reported as such
        pytest.skip(f"the server fell {behind} ms behind real time (a CPU shared with other jobs): loss recovery "
                    f"is not measurable here; figures {figures}")
    assert figures["fps"] >= 24, figures
    assert figures["longest_freeze_ms"] <= 250, figures
    assert figures["voice_returned"] >= 0.85, figures
