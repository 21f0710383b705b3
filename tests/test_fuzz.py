"""Property-based fuzzing of every message type on a live server (hypothesis): JSON text frames and msgpack
binary frames over /ws, and the call's `control` data channel. Every input gets an answer of a documented type,
an `error` with a specific message, never an internal error, and the server keeps serving."""
from __future__ import annotations

import asyncio
import json
import logging
import math
import threading

import msgpack
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect

from clients.avatar_client import AvatarClient
from realtime.server import ServerConfig, ServerThread
from realtime.server.resources import AvatarResources

TOKEN = "fuzz-tøken"
ANSWERS = {"answer", "instructed", "pong", "auth", "sessions", "stats", "bye", "error"}
FIELDS = {"offer": ["sdp", "sdpType", "instruction", "intensity"], "instruct": ["text", "intensity", "session"],
          "ping": ["t"], "auth": ["token"], "sessions": [], "stats": ["session"],
          "view": ["session", "key", "sdp", "sdpType"], "bye": []}


class Call:
    """A live call (its own event loop in a thread) for the fuzzed messages to aim at."""

    def __init__(self, url: str):
        self.loop = asyncio.new_event_loop()
        threading.Thread(target=self.loop.run_forever, daemon=True).start()
        self.client = AvatarClient(url)
        self.run(self._start())

    def run(self, coro, timeout_s: float = 60):
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout_s)

    async def _start(self) -> None:
        await self.client.connect()
        await self.client.call(None)
        await self.client.wait_first_frame()
        # A valid offer for the fuzzed messages, from a peer that never connects: replaying the live call's own
        # offer would let the server's new peer talk ICE to the live call with its credentials.
        from aiortc import RTCPeerConnection

        spare = RTCPeerConnection()
        spare.addTransceiver("audio", direction="recvonly")
        spare.addTransceiver("video", direction="recvonly")
        await spare.setLocalDescription(await spare.createOffer())
        self.sdp = spare.localDescription.sdp
        await spare.close()

    async def channel_exchange(self, raw: str | bytes) -> dict:
        self.client.channel.send(raw)
        return await asyncio.wait_for(self.client._channel_inbox.get(), 20)

    def close(self) -> None:
        self.run(self.client.close())
        self.loop.call_soon_threadsafe(self.loop.stop)


@pytest.fixture(scope="module")
def live():
    resources = AvatarResources.load(ServerConfig(allow_untrained=True))
    config = ServerConfig(port=0, token=TOKEN, max_sessions=2, admit_by_load=False, message_rate=1e6,
                          message_burst=10 ** 6, idle_timeout_s=600)
    with ServerThread(config, resources) as thread:
        call = Call(thread.ws_url)
        with connect(thread.ws_url, max_size=None) as ws:
            yield thread, call, ws
        call.close()


def values(call: Call | None = None) -> st.SearchStrategy:
    scalars = (st.none() | st.booleans() | st.integers() | st.integers(min_value=2 ** 64, max_value=10 ** 400)
               | st.floats() | st.text(max_size=40) | st.sampled_from(["", " ", "\x00", "é" * 300, "smile", TOKEN]))
    return st.recursive(scalars, lambda inner: st.lists(inner, max_size=3)
                        | st.dictionaries(st.text(max_size=6), inner, max_size=3), max_leaves=6)


def field_values(name: str, call: Call) -> st.SearchStrategy:
    session = st.sampled_from([call.client.session, "nope", ""])
    plausible = {"session": session,
                 "key": st.sampled_from([call.client.view_key, "guess", ""]),
                 "sdp": st.sampled_from([call.sdp, "v=0\r\n", "v=0\r\nm=video 9 RTP/AVP 96\r\n",
                                         call.sdp.replace("m=video", "m=vidéo"), call.sdp[: len(call.sdp) // 2]])
                 | st.text(max_size=60).map(lambda t: "v=0\r\n" + t + "\r\nm=video " + t),
                 "sdpType": st.sampled_from(["offer", "answer", "pranswer"]),
                 "text": st.text(max_size=250), "instruction": st.text(max_size=250),
                 "intensity": st.floats() | st.integers(), "token": st.sampled_from([TOKEN, TOKEN.upper()]),
                 "t": st.floats()}
    return plausible.get(name, st.nothing()) | values()


@st.composite
def messages(draw, call: Call) -> dict:
    kind = draw(st.sampled_from(sorted(FIELDS)) | st.text(max_size=10))
    message = {"type": kind}
    for name in FIELDS.get(kind, []):
        if draw(st.booleans()):
            message[name] = draw(field_values(name, call))
    message.update(draw(st.dictionaries(st.sampled_from(["type", "session", "extra", "sdp"]), values(), max_size=2)))
    return message


def encoded(message: dict, binary: bool) -> str | bytes | None:
    try:
        return msgpack.packb(message, use_bin_type=True) if binary else json.dumps(message)
    except (OverflowError, TypeError, ValueError):  # msgpack has no 65-bit integers
        return None


def reply_to(ws, raw: str | bytes) -> dict:
    ws.send(raw)
    while True:
        reply = ws.recv(timeout=30)
        message = msgpack.unpackb(reply, raw=False) if isinstance(reply, bytes) else json.loads(reply)
        if message.get("type") != "closed":  # a notice about a call ending, not the answer
            return message


def check(reply: dict, sent) -> None:
    assert reply.get("type") in ANSWERS, (sent, reply)
    if reply["type"] == "error":
        text = reply.get("message", "")
        assert text and "internal error" not in text, (sent, reply)


FUZZ = settings(max_examples=250, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True)


def test_regressions_found_by_fuzzing(live):
    """Inputs that answered "internal error" with a traceback before."""
    _, call, ws = live
    session = call.client.session
    for message, expected in [({"type": "auth", "token": "ünïcode"}, "wrong token"),
                              ({"type": "offer", "sdp": "v=0\r\nm=video 9\r\na=\r\n"}, "bad SDP"),
                              ({"type": "auth", "token": TOKEN}, None),
                              ({"type": "instruct", "session": session, "text": "smile", "intensity": 10 ** 400},
                               "between 0 and 1")]:
        reply = reply_to(ws, json.dumps(message))
        if expected is not None:
            assert reply["type"] == "error" and expected in reply["message"], (message, reply)
    assert math.isfinite(reply_to(ws, json.dumps({"type": "ping", "t": 1.5}))["server_time"])


@pytest.mark.slow
def test_every_websocket_message_gets_a_documented_answer(live, caplog):
    thread, call, ws = live

    @FUZZ
    @given(data=st.data())
    def one(data) -> None:
        binary = data.draw(st.booleans())
        raw = encoded(data.draw(messages(call)), binary)
        if raw is None:
            return
        check(reply_to(ws, raw), raw)

    with caplog.at_level(logging.ERROR, logger="realtime.server.app"):
        one()
    assert not [r for r in caplog.records if r.getMessage() == "request failed"]
    assert reply_to(ws, json.dumps({"type": "ping"}))["type"] == "pong"


@pytest.mark.slow
def test_arbitrary_frames_get_errors(live):
    thread, call, ws = live

    @FUZZ
    @given(raw=st.binary(max_size=200) | st.text(max_size=200))
    def one(raw) -> None:
        check(reply_to(ws, raw), raw)

    one()


@pytest.mark.slow
def test_every_control_channel_message_gets_a_documented_answer(live):
    thread, call, ws = live

    @settings(FUZZ, max_examples=120)
    @given(data=st.data())
    def one(data) -> None:
        binary = data.draw(st.booleans())
        message = data.draw(messages(call))
        raw = encoded(message, binary)
        if raw is None:
            return
        check(call.run(call.channel_exchange(raw)), raw)

    one()
    assert call.client.session in thread.server.sessions  # the fuzzed call is still up


def test_an_oversized_message_gets_the_documented_close(live):
    thread, _, _ = live
    with connect(thread.ws_url, max_size=None) as ws:
        ws.send("x" * (thread.config.max_message_bytes + 1))
        with pytest.raises(ConnectionClosed) as closed:
            ws.recv(timeout=10)
        assert closed.value.rcvd.code == 1009  # "message too big"
    with connect(thread.ws_url) as ws:  # the server goes on
        assert json.loads((ws.send(json.dumps({"type": "ping"})), ws.recv(timeout=10))[1])["type"] == "pong"
