"""A face per session: a gallery folder, uploads by controllers (validated by enrolment), and the portrait an
offer or a WHIP query names, checked on the received pixels."""
from __future__ import annotations

import asyncio
import io
import json

import numpy as np
import pytest
import skimage.data
from PIL import Image
from test_server import run
from test_whip import http

from clients.avatar_client import AvatarClient, AvatarError, FileMicrophone
from clients.avatar_client.whip import WhepViewer, WhipError, WhipPublisher
from realtime.server import ServerConfig, ServerThread

TOKEN = "portrait-token"


def png(pixels: np.ndarray) -> bytes:
    out = io.BytesIO()
    Image.fromarray(pixels).save(out, format="PNG")
    return out.getvalue()


@pytest.fixture(scope="module")
def gallery(tmp_path_factory):
    folder = tmp_path_factory.mktemp("portraits")
    face = skimage.data.astronaut()
    (folder / "astronaut.png").write_bytes(png(face))
    (folder / "mirror.png").write_bytes(png(face[:, ::-1].copy()))  # another face to tell apart on the pixels
    (folder / "notes.txt").write_text("not a portrait")
    return folder


@pytest.fixture(scope="module")
def server(gallery, resources):
    config = ServerConfig(port=0, token=TOKEN, max_sessions=1, idle_timeout_s=20, portraits=gallery)
    with ServerThread(config, resources) as thread:
        yield thread


def closest(frame: np.ndarray, candidates: dict[str, np.ndarray]) -> str:
    """The enrolled crop (gray) the received frame resembles most."""
    return min(candidates, key=lambda name: float(np.abs(frame.astype(np.float32) - candidates[name]).mean()))


def test_gallery_lists_serves_and_validates_uploads(server):
    status, headers, body = http("GET", server.url + "/api/portraits")
    # never kept alive: the browser's next request on that connection would miss the page server
    assert headers["Connection"] == "close"
    listed = {p["name"]: p for p in json.loads(body)["portraits"]}
    assert status == 200 and set(listed) == {"default", "astronaut", "mirror"}  # default: the server's --image
    assert listed["default"]["source"] == "server" and http("GET", server.url + "/portraits/default")[0] == 200
    status, headers, image = http("GET", server.url + listed["mirror"]["url"])
    assert status == 200 and headers["Content-Type"] == "image/png" and image.startswith(b"\x89PNG")
    assert http("GET", server.url + "/portraits/nope")[0] == 404
    assert http("GET", server.url + "/healthz")[0] == 200  # other GETs still reach the page server

    auth = {"Authorization": f"Bearer {TOKEN}", "Content-Type": "image/png"}
    face = skimage.data.astronaut()
    assert http("POST", server.url + "/api/portraits", png(face), {"Content-Type": "image/png"})[0] == 401
    status, _, body = http("POST", server.url + "/api/portraits", b"hello", auth)
    assert status == 422 and b"not an image" in body
    status, _, body = http("POST", server.url + "/api/portraits", png(skimage.data.chelsea()), auth)  # a cat
    assert status == 422 and b"no face" in body
    small = np.asarray(Image.fromarray(face).resize((96, 96)))
    status, _, body = http("POST", server.url + "/api/portraits", png(small), auth)
    assert status == 422 and b"smaller than" in body
    status, _, body = http("POST", server.url + "/api/portraits", b"\x89PNG" + bytes(9 * 1024 * 1024), auth)
    assert status == 413
    status, _, body = http("POST", server.url + "/api/portraits", png(face[30:, 20:].copy()), auth)
    assert status == 201, body
    name = json.loads(body)["portrait"]
    status, _, body = http("GET", server.url + "/api/portraits")
    assert name in {p["name"] for p in json.loads(body)["portraits"]}


def test_offer_and_whip_query_choose_the_face(server, speech_wav):
    from realtime.avatar import enrol

    face = skimage.data.astronaut()
    crops = {name: np.asarray(Image.fromarray(enrol(image).image).convert("L"), np.float32)
             for name, image in (("astronaut", face), ("mirror", face[:, ::-1].copy()))}
    seen: dict[str, str] = {}

    async def body() -> None:
        async with AvatarClient(server.ws_url) as client:
            with pytest.raises(AvatarError, match="no portrait 'nope'"):
                await client.call(None, portrait="nope")
            frames = []
            await client.call(None, portrait="mirror", frame_format="gray", on_frame=lambda f, t: frames.append(f))
            await client.wait_first_frame()
            await asyncio.sleep(1.0)
            seen["offer"] = closest(frames[-1], crops)
            await client.hangup()
        await asyncio.sleep(0.5)
        with pytest.raises(WhipError, match="400"):
            await WhipPublisher(server.url + "/whip?portrait=nope", FileMicrophone(speech_wav), token=TOKEN).start()
        frames = []
        async with WhipPublisher(server.url + "/whip?portrait=astronaut", FileMicrophone(speech_wav), token=TOKEN):
            async with WhepViewer(server.url + "/whep/latest", token=TOKEN, frame_format="gray",
                                  on_frame=lambda f, t: frames.append(f)) as viewer:
                await asyncio.wait_for(viewer.first_frame.wait(), 20)
                await asyncio.sleep(1.0)
        seen["whip"] = closest(frames[-1], crops)

    run(body())
    assert seen == {"offer": "mirror", "whip": "astronaut"}
