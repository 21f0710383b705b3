"""WHIP ingest and WHEP egress over loopback: a publisher and a viewer written from RFC 9725 alone
(clients/avatar_client/whip.py: aiortc peers + HTTP POST/DELETE), real models, real peers."""
from __future__ import annotations

import asyncio
import time
import urllib.error
import urllib.request

import numpy as np
import pytest
from test_server import best_lag, on_grid, region, run, window_rms

from clients.avatar_client import FileMicrophone, PushMicrophone
from clients.avatar_client.whip import WhepViewer, WhipError, WhipPublisher
from helpers import wait_until
from realtime.server import ServerConfig, ServerThread

TOKEN = "whip-token"


@pytest.fixture(scope="module")
def server(resources):
    config = ServerConfig(port=0, token=TOKEN, max_sessions=1, idle_timeout_s=20)
    with ServerThread(config, resources) as thread:
        yield thread


def http(method: str, url: str, body: bytes | None = None, headers: dict | None = None) -> tuple[int, dict, bytes]:
    request = urllib.request.Request(url, data=body, method=method, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, dict(response.headers), response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, dict(exc.headers), exc.read()


def test_whip_and_whep_refuse_what_they_cannot_take(server):
    offer = b"v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\nm=audio 9 UDP/TLS/RTP/SAVPF 111\r\n"
    sdp = {"Content-Type": "application/sdp"}
    status, headers, _ = http("POST", server.url + "/whip", offer, sdp)
    assert status == 401 and headers["WWW-Authenticate"] == "Bearer"
    auth = {"Authorization": f"Bearer {TOKEN}"}
    status, _, body = http("POST", server.url + "/whip", offer, {**auth, "Content-Type": "text/plain"})
    assert status == 415 and b"application/sdp" in body
    status, _, body = http("POST", server.url + "/whip", b"hello", {**auth, **sdp})
    assert status == 400 and b"v=0" in body
    status, _, body = http("POST", server.url + "/whip", offer.replace(b"audio", b"video"), {**auth, **sdp})
    assert status == 400 and b"no audio m-line" in body
    status, _, body = http("POST", server.url + "/whip", b"v=0\r\n" + b"a" * 70_000, {**auth, **sdp})
    assert status == 413
    status, _, body = http("POST", server.url + "/whip?intensity=lots", offer, {**auth, **sdp})
    assert status == 400 and b"intensity" in body
    status, _, body = http("POST", server.url + "/whep/latest", offer.replace(b"audio", b"video"), {**auth, **sdp})
    assert status == 404 and b"no live session" in body
    assert http("DELETE", server.url + "/whip/nope", None, auth)[0] == 404
    assert http("DELETE", server.url + "/whip/nope")[0] == 401
    assert http("PATCH", server.url + "/whip/nope", b"a=candidate", auth)[0] == 405
    assert http("GET", server.url + "/healthz")[0] == 200  # GET still goes to the page server


def test_whip_speaker_and_whep_viewer_see_and_hear_the_avatar(server, resources, speech_wav):
    frames: list[tuple[float, np.ndarray]] = []
    voice: list[tuple[float, np.ndarray]] = []
    whip, whep = server.url + "/whip?instruction=smile%20warmly&intensity=0.5", server.url + "/whep/latest"

    async def call() -> dict:
        with pytest.raises(WhipError, match="401"):
            await WhipPublisher(whip, FileMicrophone(speech_wav)).start()
        publisher = await WhipPublisher(whip, FileMicrophone(speech_wav, lead_silence_s=0.5), token=TOKEN).start()
        listed = [s.describe() for s in server.server.sessions.values()]
        with pytest.raises(WhipError, match="401"):  # viewing has the rights of `view`
            await WhepViewer(whep).start()
        assert publisher.view_key  # the session's view key is enough to watch it
        viewer = await WhepViewer(whep, token=publisher.view_key, frame_format="gray",
                                  on_frame=lambda f, t: frames.append((t, f)),
                                  on_audio=lambda pcm, t: voice.append((t, pcm))).start()
        await asyncio.wait_for(viewer.first_frame.wait(), 20)
        start = time.monotonic()
        await asyncio.sleep(7.0)
        viewer_location = viewer.location
        assert await viewer.delete() == 200
        await asyncio.sleep(0.5)
        viewers_left = len(server.server.sessions[publisher.session].viewers)
        deleted = await publisher.delete()
        await viewer.close()
        await publisher.close()
        return {"start": start, "listed": listed, "viewer": viewer_location, "viewers_left": viewers_left,
                "deleted": deleted, "session": publisher.session}

    result = run(call())
    assert result["listed"][0]["instruction"] == "smile warmly" and result["listed"][0]["intensity"] == 0.5
    assert result["viewer"].startswith(f"{server.url}/whep/{result['session']}/")
    assert result["viewers_left"] == 0 and result["deleted"] == 200
    assert wait_until(lambda: not server.server.sessions)  # DELETE ended the session
    gone = http("DELETE", f"{server.url}/whip/{result['session']}", None, {"Authorization": f"Bearer {TOKEN}"})
    assert gone[0] == 404

    times = np.array([t for t, _ in frames])
    window = times[(times >= result["start"]) & (times < result["start"] + 6.0)]
    assert frames[0][1].shape == (512, 512)
    assert len(window) >= 24 * 6, f"{len(window)} frames in 6 s"
    voice_pcm = np.concatenate([p for _, p in voice])
    assert np.sqrt(np.mean(voice_pcm ** 2)) > 0.01  # the viewer hears the speaker

    if not resources.trained:
        pytest.skip("no trained generator checkpoint: lip sync is not measurable")
    # The mouth moves with the speaker: mouth-region change vs. the envelope of the voice the viewer hears.
    portrait = resources.portrait
    mouth = region(portrait.landmarks, range(48, 68), 0.15 * portrait.iod)
    pixels = np.stack([f for _, f in frames]).astype(np.float32)
    rest = pixels[:5].mean(0)
    mouth_change = np.abs(pixels[:, mouth[0], mouth[1]] - rest[mouth[0], mouth[1]]).mean((1, 2))
    voice_t = np.concatenate([np.full(len(p), t) for t, p in voice])
    grid = np.arange(result["start"], result["start"] + 6.5, 0.04)
    loudness = np.log(window_rms(voice_t, voice_pcm, grid, 0.04) + 1e-3)
    r, lag = best_lag(loudness, on_grid(times, mouth_change, grid), max_lag=5)
    assert r > 0.45, f"mouth vs the speaker's voice: r={r:.2f} at {lag * 40} ms"
    # The viewer's voice and face stay together: a receiver buffer that holds audio for 4 packets put the voice
    # 90 ms behind the mouth (lag -3 here); the mouth leads its sound by about one frame by design.
    assert -2 <= lag <= 1, f"the WHEP viewer's voice and mouth are {lag * 40} ms apart"


def test_whip_publisher_video_is_refused_and_a_receiving_one_gets_the_avatar(server, speech_wav):
    from aiortc import VideoStreamTrack

    async def body() -> tuple[str, int]:
        obs_like = WhipPublisher(server.url + "/whip", FileMicrophone(speech_wav), token=TOKEN)
        obs_like.pc.addTransceiver(VideoStreamTrack(), direction="sendonly")  # OBS sends its own picture
        async with obs_like:
            answer = obs_like.pc.remoteDescription.sdp
        assert wait_until(lambda: not server.server.sessions)
        frames = []
        async with WhipPublisher(server.url + "/whip", FileMicrophone(speech_wav), token=TOKEN, receive_video=True,
                                 on_frame=lambda f, t: frames.append(f)) as both_ways:
            await asyncio.wait_for(both_ways.first_frame.wait(), 20)
        return answer, len(frames)

    answer, received = run(body())
    video = answer[answer.index("m=video"):]
    assert "a=inactive" in video  # not decoded for nothing
    assert received >= 1


def test_a_program_publishes_the_audio_it_makes_over_whip(server, speech_wav):
    """`PushMicrophone`: PCM pushed from code (a TTS, a mixer) is the WHIP publisher's voice; a viewer hears it only
    once it is pushed, and `clear` takes back what is still queued."""
    from realtime.media.audio import load_audio

    voice: list[tuple[float, np.ndarray]] = []

    async def body() -> dict:
        mic = PushMicrophone()
        async with WhipPublisher(server.url + "/whip", mic, token=TOKEN) as publisher:
            viewer = await WhepViewer(f"{server.url}/whep/{publisher.session}", token=publisher.view_key,
                                      on_audio=lambda pcm, t: voice.append((t, pcm))).start()
            await asyncio.wait_for(viewer.first_frame.wait(), 20)
            await asyncio.sleep(1.5)
            pushed_at = time.monotonic()
            speech = load_audio(speech_wav, target=48_000)
            mic.push(speech[: 3 * 48_000], 48_000)  # three seconds at the program's own rate
            mic.push(speech[: 30 * 48_000], 48_000)
            await asyncio.sleep(2.0)
            queued_before_clear = mic.queued_s
            mic.clear()
            cleared_at = time.monotonic()
            await asyncio.sleep(2.0)
            await viewer.close()
        return {"pushed_at": pushed_at, "cleared_at": cleared_at, "queued": queued_before_clear,
                "left": mic.queued_s}

    r = run(body())
    times = np.array([t for t, _ in voice])
    rms = np.array([np.sqrt(np.mean(p ** 2)) for _, p in voice])
    assert rms[times < r["pushed_at"]].max() < 0.003, "the viewer heard something before anything was pushed"
    assert rms[(times > r["pushed_at"]) & (times < r["cleared_at"])].max() > 0.02, "the pushed speech never came"
    assert r["queued"] > 1.0 and r["left"] == 0.0
    assert rms[times > r["cleared_at"] + 1.0].max() < 0.003, "cleared audio was still sent"
