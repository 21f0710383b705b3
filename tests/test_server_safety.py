"""Who may use the server and what it survives: Origin/Host refusals (cross-site WebSockets, DNS rebinding), view
rights, HTTPS/WSS, the token for calls, rate limits, bounded queues, half-open peers, workers that raise or
stall, racing offers. Real servers, real WebRTC peers over loopback; faults are injected into the model call."""
from __future__ import annotations

import asyncio
import datetime
import http.client
import ipaddress
import json
import logging
import ssl
import threading
import time
import urllib.error
import urllib.request

import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import InvalidStatus

from clients.avatar_client import AvatarClient, AvatarError
from helpers import wait_until
from realtime.server import ServerConfig, ServerThread
from realtime.server.resources import AvatarResources

TOKEN = "tøken-ß"  # non-ASCII on purpose: comparing it must not raise


def run(coro, timeout_s: float = 120):
    return asyncio.run(asyncio.wait_for(coro, timeout_s))


@pytest.fixture(scope="module")
def resources():
    return AvatarResources.load(ServerConfig(allow_untrained=True))


@pytest.fixture(scope="module")
def server(resources):
    config = ServerConfig(port=0, token=TOKEN, max_sessions=2, admit_by_load=False,  # two calls, whatever the load
                          allowed_origins=("https://studio.example",),
                          allowed_hosts=("avatar.lan",))
    with ServerThread(config, resources) as thread:
        yield thread


def http_get(server: ServerThread, path: str, host: str | None = None, token: str | None = None) -> tuple[int, str]:
    connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
    headers = {"Host": host or f"127.0.0.1:{server.port}"}
    if token is not None:
        headers["Authorization"] = f"Bearer {token}"
    connection.request("GET", path, headers=headers)
    response = connection.getresponse()
    body = response.read().decode()
    connection.close()
    return response.status, body


async def ws_status(url: str, **kwargs) -> int:
    """101 if the WebSocket opened, else the HTTP status the server refused it with."""
    try:
        async with connect(url, **kwargs) as ws:
            await ws.send(json.dumps({"type": "ping"}))
            assert json.loads(await ws.recv())["type"] == "pong"
            return 101
    except InvalidStatus as exc:
        return exc.response.status_code


# --- Origin and Host -----------------------------------------------------------------------------------------
def test_pages_of_other_origins_cannot_open_the_websocket(server):
    own = f"http://127.0.0.1:{server.port}"

    async def body() -> list[int]:
        return [await ws_status(server.ws_url, origin="http://evil.example"),
                await ws_status(server.ws_url, origin="null"),  # a sandboxed frame or a file:// page
                await ws_status(server.ws_url, origin=f"http://127.0.0.1:{server.port + 1}"),  # another local app
                await ws_status(server.ws_url, origin=own),  # the server's own page
                await ws_status(server.ws_url, origin="https://studio.example"),  # configured
                await ws_status(server.ws_url)]  # a program: no Origin at all

    assert run(body()) == [403, 403, 403, 101, 101, 101]


def test_requests_for_another_host_are_refused(server):
    """DNS rebinding: evil.example resolving to 127.0.0.1 makes the browser send Host: evil.example."""
    status, text = http_get(server, "/api/sessions", host="evil.example", token=TOKEN)
    assert status == 403 and "evil.example" in text
    assert http_get(server, "/", host=f"evil.example:{server.port}")[0] == 403
    for host in (f"localhost:{server.port}", "avatar.lan", f"127.0.0.1:{server.port}", f"[::1]:{server.port}"):
        assert http_get(server, "/api/sessions", host=host, token=TOKEN)[0] == 200, host

    upgrade = {"Upgrade": "websocket", "Connection": "Upgrade", "Sec-WebSocket-Version": "13",
               "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ=="}
    connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
    connection.request("GET", "/ws", headers={"Host": "evil.example", **upgrade})
    assert connection.getresponse().status == 403
    connection.close()

    async def two_hosts() -> int:  # a repeated Host header reads as no host, never as an error
        return await ws_status(server.ws_url, additional_headers={"Host": "evil.example"})

    assert run(two_hosts()) == 403


# --- rights ------------------------------------------------------------------------------------------------
def test_viewing_needs_the_view_key_or_control(server):
    async def body() -> None:
        async with AvatarClient(server.ws_url) as caller, AvatarClient(server.ws_url) as stranger, \
                AvatarClient(server.ws_url) as guest, AvatarClient(server.ws_url) as controller:
            session = await caller.call(None)
            assert caller.view_key and caller.view_key != session
            with pytest.raises(AvatarError, match="key"):
                await stranger.view(session)
            await stranger._close_pc()
            with pytest.raises(AvatarError, match="key"):
                await stranger.view(session, key="guess")
            await stranger._close_pc()
            await guest.view(session, key=caller.view_key)  # the link the caller shared
            await guest.wait_first_frame()
            await controller.auth(TOKEN)
            await controller.view(session)
            await controller.wait_first_frame()
            assert len(server.server.sessions[session].viewers) == 2
            await caller.hangup()

    run(body())
    assert wait_until(lambda: not server.server.sessions)


def test_a_server_can_require_the_token_for_calls(resources):
    config = ServerConfig(port=0, token=TOKEN, require_token_for_calls=True, max_sessions=1)
    with ServerThread(config, resources) as thread:
        async def body() -> None:
            async with AvatarClient(thread.ws_url) as client:
                with pytest.raises(AvatarError, match="token for calls"):
                    await client.call(None)
                await client._close_pc()
                with pytest.raises(AvatarError, match="wrong token"):
                    await client.auth(TOKEN.upper())
                await client.auth(TOKEN)
                await client.call(None)
                await client.hangup()

        run(body())


def test_binding_a_network_address_without_a_token_warns(resources, caplog):
    with caplog.at_level(logging.WARNING, logger="realtime.server.access"):
        with ServerThread(ServerConfig(host="0.0.0.0", port=0, max_sessions=1), resources):
            pass
        with ServerThread(ServerConfig(host="127.0.0.1", port=0, max_sessions=1), resources):
            pass
    warnings = [r.getMessage() for r in caplog.records if "without a token" in r.getMessage()]
    assert len(warnings) == 1 and "0.0.0.0" in warnings[0]


def self_signed(folder) -> tuple:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([x509.DNSName("localhost"),
                                                        x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
                           critical=False)
            .sign(key, hashes.SHA256()))
    cert_path, key_path = folder / "cert.pem", folder / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return cert_path, key_path


def test_https_and_wss_with_a_certificate(resources, tmp_path):
    cert, key = self_signed(tmp_path)
    trust = ssl.create_default_context(cafile=str(cert))
    with ServerThread(ServerConfig(port=0, max_sessions=1, cert=cert, key=key), resources) as thread:
        assert thread.url.startswith("https://") and thread.ws_url.startswith("wss://")
        with urllib.request.urlopen(thread.url + "/", timeout=10, context=trust) as response:
            assert response.status == 200 and b"<video" in response.read()
        with pytest.raises(urllib.error.URLError):  # the certificate is checked: no trust, no page
            urllib.request.urlopen(thread.url + "/healthz", timeout=10)

        async def body() -> None:
            async with AvatarClient(thread.ws_url, ssl=trust) as client:
                await client.call(None)
                await client.wait_first_frame()
                await client.hangup()

        run(body())


# --- bounds ------------------------------------------------------------------------------------------------
def test_message_floods_get_a_rate_limit_error(server):
    async def body() -> None:
        async with connect(server.ws_url) as ws:
            for _ in range(120):
                await ws.send(json.dumps({"type": "ping"}))
            replies = [json.loads(await asyncio.wait_for(ws.recv(), 10)) for _ in range(120)]
            limited = [r for r in replies if r["type"] == "error"]
            assert len(limited) >= 60 and all("rate limit" in r["message"] for r in limited)
            await asyncio.sleep(1.0)
            await ws.send(json.dumps({"type": "ping"}))  # the bucket refills: the connection is still usable
            assert json.loads(await asyncio.wait_for(ws.recv(), 10))["type"] == "pong"

    run(body())


def test_a_flood_on_the_control_channel_is_refused_not_queued(server):
    """Before: each data-channel message became a task of its own, without bound."""
    async def body() -> None:
        async with AvatarClient(server.ws_url, binary=False) as caller:
            await caller.call(None)
            await caller.wait_first_frame()
            for _ in range(100):
                caller.channel.send(json.dumps({"type": "instruct", "text": "smile", "intensity": 0.5}))
            replies = [await asyncio.wait_for(caller._channel_inbox.get(), 30) for _ in range(100)]
            refused = [r for r in replies if r["type"] == "error"]
            assert len(refused) >= 50, replies
            assert all(any(why in r["message"] for why in ("rate limit", "too many", "still being applied"))
                       for r in refused), refused
            assert 0 < sum(r["type"] == "instructed" for r in replies) <= 50
            await asyncio.sleep(1.0)
            assert await caller.ping(via_channel=True) < 5  # the channel and the call are still fine
            await caller.hangup()

    run(body())


def test_a_half_open_peer_is_dropped_with_bounded_memory(resources):
    """A peer that gets its answer but never connects (no ICE), pinging all along: dropped by the connect
    deadline (15 s by default), and the frames nobody reads do not pile up meanwhile."""
    config = ServerConfig(port=0, max_sessions=1)
    with ServerThread(config, resources) as thread:
        seen: dict = {"buffered": []}

        async def body() -> None:
            from aiortc import RTCPeerConnection

            async with AvatarClient(thread.ws_url) as client:
                pc = RTCPeerConnection()
                pc.addTransceiver("audio", direction="recvonly")
                pc.addTransceiver("video", direction="recvonly")
                await pc.setLocalDescription(await pc.createOffer())
                answer = await client.request({"type": "offer", "sdp": pc.localDescription.sdp,
                                               "sdpType": "offer"}, "answer")  # never given to pc: no ICE
                client.session = answer["session"]
                session = thread.server.sessions[client.session]
                start = time.monotonic()
                while client.session in thread.server.sessions and time.monotonic() - start < 30:
                    await client.ping()
                    seen["buffered"].append(session.playout.buffered)
                    await asyncio.sleep(1.0)
                seen["dropped_after"] = time.monotonic() - start
                await wait_for(lambda: client.ended is not None, 5)  # the notice is sent as the session goes
                seen["ended"] = client.ended
                await pc.close()

        run(body(), timeout_s=60)
    assert seen["dropped_after"] < config.connect_timeout_s + 3
    assert "did not connect" in seen["ended"]["reason"]
    assert max(seen["buffered"]) <= 2 * config.max_buffered_frames  # ~10 MB/s of frames before


def test_twice_max_sessions_offers_at_once(server):
    """4 offers at the same moment on a 2-session server: exactly 2 calls, 2 clean refusals, nothing leaks."""
    async def body() -> list:
        clients = [AvatarClient(server.ws_url) for _ in range(4)]
        for client in clients:
            await client.connect()
        results = await asyncio.gather(*(c.call(None) for c in clients), return_exceptions=True)
        for client in clients:
            await client.close()
        return results

    results = run(body())
    refused = [r for r in results if isinstance(r, AvatarError)]
    assert len(refused) == 2 and all("server busy" in str(r) for r in refused), results
    assert wait_until(lambda: not server.server.sessions) and server.server._starting == 0


# --- faults ------------------------------------------------------------------------------------------------
class FaultyModel:
    """The real generator behind a switch: `mode` "ok", "raise" (the call fails) or "stall" (it blocks until
    released)."""

    def __init__(self, model):
        self.model, self.mode, self.release = model, "ok", threading.Event()

    def __call__(self, *args, **kwargs):
        if self.mode == "raise":
            raise RuntimeError("injected model failure")
        if self.mode == "stall":
            self.release.wait(60)
        if self.mode == "raise":  # also when switched while stalled
            raise RuntimeError("injected model failure")
        return self.model(*args, **kwargs)


@pytest.fixture()
def faulty(resources):
    from realtime.motion.batcher import SharedDenoiser

    model = FaultyModel(resources.model)
    denoiser = SharedDenoiser(model, trace=False).start()
    clone = AvatarResources(config=resources.config, model=resources.model, encoder=resources.encoder,
                            portrait=resources.portrait, trained=resources.trained, _renderer=resources.renderer(),
                            _denoiser=denoiser)
    config = ServerConfig(port=0, max_sessions=1, stall_timeout_s=2.0, instruct_timeout_s=4.0)
    with ServerThread(config, clone) as thread:
        yield thread, model
    model.release.set()
    denoiser.stop()


def test_a_worker_that_raises_ends_its_call_with_a_reason(faulty):
    thread, model = faulty

    async def body() -> None:
        async with AvatarClient(thread.ws_url) as client:
            await client.call(None)
            await client.wait_first_frame()
            model.mode = "stall"  # hold the worker inside a model call, queue an instruction behind it,
            pipeline = thread.server.sessions[client.session].pipeline
            await wait_for(lambda: pipeline.stalled(0.2), 5)
            racing = asyncio.ensure_future(client.instruct("smile"))
            await asyncio.sleep(0.3)
            model.mode = "raise"  # then fail that call
            model.release.set()
            with pytest.raises(AvatarError, match="worker failed"):  # the instruction fails, it does not hang
                await racing
            await wait_for(lambda: client.ended is not None, 10)
            assert "worker failed" in client.ended["reason"] and "injected" in client.ended["reason"]
            model.mode = "ok"
            await client.call(None)  # the slot came back
            await client.hangup()

    run(body())
    assert http_status(thread, "/healthz") == 200


def test_a_stalled_worker_is_detected_and_health_says_so(faulty):
    thread, model = faulty

    async def body() -> None:
        async with AvatarClient(thread.ws_url) as client:
            await client.call(None)
            await client.wait_first_frame()
            model.mode = "stall"
            t0 = time.monotonic()
            pipeline = thread.server.sessions[client.session].pipeline
            await wait_for(lambda: pipeline.stalled(0.3), 5)  # the worker waits in the model call now
            with pytest.raises(AvatarError, match="not applied within|ended"):
                await client.instruct("smile")  # answered within instruct_timeout_s, never left pending
            await wait_for(lambda: client.ended is not None, 10)
            assert "stalled" in client.ended["reason"] and time.monotonic() - t0 < 10
            assert http_status(thread, "/healthz") == 503  # the shared denoiser still hangs
            model.mode = "ok"
            model.release.set()
            await wait_for(lambda: http_status(thread, "/healthz") == 200, 10)

    run(body())
    assert not thread.server.sessions


def test_close_and_the_watchdog_survive_exceptions(server):
    async def body() -> None:
        async with AvatarClient(server.ws_url) as a, AvatarClient(server.ws_url) as b:
            first, second = await a.call(None), await b.call(None)
            await a.wait_first_frame()
            await b.wait_first_frame()
            broken = server.server.sessions[first]

            async def fails() -> None:
                raise RuntimeError("injected close failure")

            broken.ingest.stop = fails  # one step of close() raises: the rest still runs, the slot is freed
            broken.pipeline.stalled = lambda *a: 1 / 0  # and the watchdog trips over it while checking
            server.server.sessions[second].created -= 3600  # the other one: never connected, long ago
            server.server.sessions[second].connected_at = None
            await wait_for(lambda: second not in server.server.sessions, 5)  # the watchdog went on
            await a.hangup()
            assert first not in server.server.sessions and not broken.pipeline.alive

    run(body())


# --- helpers -----------------------------------------------------------------------------------------------
def http_status(thread: ServerThread, path: str) -> int:
    try:
        with urllib.request.urlopen(thread.url + path, timeout=10) as response:
            return response.status
    except urllib.error.HTTPError as exc:
        return exc.code


async def wait_for(predicate, timeout_s: float) -> None:
    end = time.monotonic() + timeout_s
    while not predicate():
        if time.monotonic() > end:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.05)
