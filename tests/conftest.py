"""Fixtures shared by the test modules; plain helpers are in helpers.py."""
from __future__ import annotations

import pytest


@pytest.fixture(scope="session")
def espeak():
    """One libespeak-ng synthesiser for the whole run (it caches by text)."""
    from realtime.speech import Espeak

    return Espeak().setup()


@pytest.fixture(scope="module")
def speech_wav(tmp_path_factory):
    """About 6 s of espeak-ng speech at 48 kHz (for microphones and WHIP publishers)."""
    import helpers

    text = "Hello there. My name is Eileen, and I would like to talk to you about the moon and the stars."
    return helpers.speech_wav(tmp_path_factory.mktemp("speech"), text, words_per_minute=150)


@pytest.fixture(scope="module")
def resources():
    """The server's shared parts (generator, encoder, portrait), loaded once per module; AVATAR_TEST_CHECKPOINT
    points the tests at another checkpoint folder (e.g. one still in training)."""
    import os

    from realtime.server import ServerConfig
    from realtime.server.resources import AvatarResources

    return AvatarResources.load(ServerConfig(allow_untrained=True, checkpoint=os.environ.get("AVATAR_TEST_CHECKPOINT")))


@pytest.fixture(scope="module")
def loopback_server(resources):
    """No token (loopback clients control), one session."""
    from realtime.server import ServerConfig, ServerThread

    with ServerThread(ServerConfig(port=0, max_sessions=1, idle_timeout_s=20), resources) as thread:
        yield thread


@pytest.fixture(scope="module")
def portrait(tmp_path_factory):
    """The default portrait, enrolled once per module into a fresh cache."""
    from realtime.avatar import PortraitCache, enrol

    return enrol(None, cache=PortraitCache(tmp_path_factory.mktemp("avatar-cache")))


@pytest.fixture(scope="module")
def renderer(portrait):
    from realtime.avatar import RenderConfig, Renderer

    return Renderer(portrait, RenderConfig(device="cpu")).setup()
