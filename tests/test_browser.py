"""Headless chromium loads the page, calls with a fake microphone (a speech wav) and receives the avatar's
video; a second tab opens /view for the same session and receives it too. The page state is read from the
tabs' titles through chromium's remote-debugging /json endpoint."""
from __future__ import annotations

import contextlib
import functools
import http.server
import json
import re
import shutil
import subprocess
import threading
import time
import urllib.parse
import urllib.request
from pathlib import Path

import pytest

import helpers
from helpers import free_port, wait_until
from realtime.server import ServerConfig, ServerThread

pytestmark = pytest.mark.skipif(shutil.which("chromium") is None, reason="chromium is not installed")


def tabs(debug_port: int) -> list[dict]:
    with urllib.request.urlopen(f"http://127.0.0.1:{debug_port}/json/list", timeout=5) as response:
        return [t for t in json.loads(response.read()) if t.get("type") == "page"]


def title_state(title: str) -> dict[str, str]:
    return dict(re.findall(r"(\w+)=(\S+)", title))


def evaluate(debug_port: int, url_part: str, expression: str):
    """Run JavaScript in a tab through the DevTools protocol, as a user's typing and clicking would; -> its
    value (strings, numbers)."""
    from websockets.sync.client import connect

    tab = next(t for t in tabs(debug_port) if url_part in t.get("url", ""))
    with connect(tab["webSocketDebuggerUrl"], max_size=None) as devtools:
        devtools.send(json.dumps({"id": 1, "method": "Runtime.evaluate", "params": {"expression": expression}}))
        reply = json.loads(devtools.recv(timeout=10))
        assert "exceptionDetails" not in reply.get("result", {}), reply
        return reply.get("result", {}).get("result", {}).get("value")


def wait_for_tab(debug_port: int, url_part: str, done, timeout_s: float) -> dict[str, str]:
    end, state = time.monotonic() + timeout_s, {}
    while time.monotonic() < end:
        try:
            for tab in tabs(debug_port):
                if url_part in tab.get("url", ""):
                    state = title_state(tab.get("title", ""))
                    if done(state):
                        return state
        except OSError:
            pass
        time.sleep(0.5)
    raise AssertionError(f"tab {url_part!r} never got there; last state {state}")


def chromium(tmp_path, debug_port: int, speech_wav, page: str) -> subprocess.Popen:
    """Headless Chromium on `page`, its microphone playing `speech_wav`, driven over `debug_port`."""
    return subprocess.Popen(
        ["chromium", "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         f"--user-data-dir={tmp_path / 'profile'}", "--use-fake-ui-for-media-stream",
         "--use-fake-device-for-media-stream", f"--use-file-for-fake-audio-capture={speech_wav}",
         "--autoplay-policy=no-user-gesture-required", f"--remote-debugging-port={debug_port}", page],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def close(browser: subprocess.Popen) -> None:
    browser.terminate()
    try:
        browser.wait(10)
    except subprocess.TimeoutExpired:
        browser.kill()
        browser.wait()


@pytest.fixture(scope="module")
def speech_wav(tmp_path_factory):
    text = "Good morning. The weather is lovely today, isn't it?"
    return helpers.speech_wav(tmp_path_factory.mktemp("browser"), text)


def test_page_calls_and_viewer_receives(tmp_path, speech_wav):
    config = ServerConfig(port=0, max_sessions=1, allow_untrained=True)
    with ServerThread(config) as server:
        debug_port = free_port()
        page = f"{server.url}/?autostart=1&instruction={urllib.parse.quote('smile warmly')}"
        browser = chromium(tmp_path, debug_port, speech_wav, page)
        try:
            state = wait_for_tab(debug_port, "autostart", lambda s: int(s.get("frames", 0)) >= 75, 60)
            session = state["session"]
            assert session in server.server.sessions
            assert server.server.sessions[session].instruction.text == "smile warmly"
            assert server.server.sessions[session].stats.counts["audio_frames_in"] > 50  # the fake mic arrived

            # A user types an instruction and presses Enter, then clicks a preset button.
            evaluate(debug_port, "autostart", "document.getElementById('instruction').value = 'look very sad';"
                     "document.getElementById('instruct-form').requestSubmit();")
            assert wait_until(lambda: server.server.sessions[session].instruction.text == "look very sad", 10)
            evaluate(debug_port, "autostart", "document.querySelector('#motions button').click();")
            assert wait_until(lambda: server.server.sessions[session].instruction.text != "look very sad", 10)

            # The viewer link the page shows (what a user pastes into OBS) carries the call's view key.
            link = evaluate(debug_port, "autostart", "document.getElementById('viewer').href")
            assert f"session={session}&key=" in link and server.server.sessions[session].view_key in link
            view = f"{link}&bg=00ff00"
            request = urllib.request.Request(f"http://127.0.0.1:{debug_port}/json/new?{view}", method="PUT")
            urllib.request.urlopen(request, timeout=10).close()
            viewed = wait_for_tab(debug_port, "/view?", lambda s: int(s.get("frames", 0)) >= 25, 40)
            assert viewed["session"] == session
            assert len(server.server.sessions[session].viewers) == 1
        finally:
            close(browser)
        # The browser is gone: its WebSocket closed, so the session is freed.
        end = time.monotonic() + 10
        while server.server.sessions and time.monotonic() < end:
            time.sleep(0.1)
        assert not server.server.sessions


NPM_CLIENTS = Path(__file__).parent / "browser"  # `npm ci` there (.ci/install) brings the whip-whep package


@contextlib.contextmanager
def static_site(folder: Path):
    """`folder` served on another port of 127.0.0.1: a page of another origin than the avatar server's."""
    handler = functools.partial(QuietHandler, directory=str(folder))
    with http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler) as site:
        thread = threading.Thread(target=site.serve_forever, daemon=True)
        thread.start()
        try:
            yield f"http://127.0.0.1:{site.server_address[1]}"
        finally:
            site.shutdown()


class QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args) -> None:
        pass


@pytest.mark.skipif(not (NPM_CLIENTS / "node_modules" / "whip-whep").is_dir(),
                    reason="run `npm ci --prefix tests/browser` (.ci/install does) for the npm WHIP/WHEP client")
def test_third_party_whip_and_whep_clients_in_a_page_of_another_origin(tmp_path, speech_wav):
    """The whip-whep package from npm (WHIPClient publishes the fake microphone, WHEPClient plays the avatar) in
    headless Chromium, from a page of another origin that the server allows (CORS preflight, Location exposed);
    the client's ICE trickling (PATCH) is answered 405 and the call connects on the answer's candidates."""
    token = "browser-secret"
    with static_site(NPM_CLIENTS) as site, \
            ServerThread(ServerConfig(port=0, max_sessions=1, allow_untrained=True, token=token,
                                      allowed_origins=(site,))) as server:
        debug_port = free_port()
        query = urllib.parse.urlencode({"server": server.url, "token": token})
        browser = chromium(tmp_path, debug_port, speech_wav, f"{site}/whip_whep.html?{query}")
        try:
            playing = wait_for_tab(debug_port, "whip_whep", lambda s: int(s.get("frames", 0)) >= 75
                                   or s.get("state", "").startswith("error"), 60)
            assert playing["state"] == "playing", playing
            assert (playing["width"], playing["height"]) == ("512", "512")
            session = server.server.sessions[playing["session"]]
            assert session.instruction.text == "smile warmly"
            assert session.stats.counts["audio_frames_in"] > 50  # the page's microphone reached the avatar
            assert len(session.viewers) == 1
            heard = wait_for_tab(debug_port, "whip_whep", lambda s: float(s.get("energy", 0)) > 0.01, 20)
            assert float(heard["energy"]) > 0.01  # the viewer hears the speaker's voice

            evaluate(debug_port, "whip_whep", "stopAll()")  # the clients' DELETEs end the viewer, then the session
            stopped = wait_for_tab(debug_port, "whip_whep", lambda s: s.get("state") != "playing", 10)
            assert stopped["state"] == "stopped", stopped
            assert wait_until(lambda: not server.server.sessions, 10)
        finally:
            close(browser)
