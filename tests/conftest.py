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
