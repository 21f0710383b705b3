"""Limits of the protocol that the server, the encoder and the clients all enforce."""
from __future__ import annotations

MAX_INSTRUCTION_CHARS = 200  # longer instructions are refused (server, encoder, chat bridge)
INTENSITY_RANGE = (0.0, 1.0)  # an instruction's intensity
