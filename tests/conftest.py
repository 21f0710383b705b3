"""Fixtures shared by the test modules; plain helpers are in helpers.py."""
from __future__ import annotations

import pytest


@pytest.fixture(scope="session")
def espeak():
    """One libespeak-ng synthesiser for the whole run (it caches by text)."""
    from realtime.speech import Espeak

    return Espeak().setup()
