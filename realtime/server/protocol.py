"""Signalling/control messages: JSON text frames (browsers) or msgpack binary frames (programs).

Every message is a map with a "type". Answers go back in the encoding the request came in.
"""
from __future__ import annotations

import json
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import msgpack

from realtime.vocab import MAX_INSTRUCTION_CHARS


class ProtocolError(ValueError):
    """A message the server cannot act on; its text is sent back as {"type": "error", "message": ...}."""


@dataclass(frozen=True)
class Instruction:
    text: str | None  # None or "" = no instruction (the model's unconditional behaviour)
    intensity: float


def decode(raw: str | bytes) -> tuple[dict[str, Any], bool]:
    """-> (message, binary). Raises ProtocolError for anything but a map with a string "type"."""
    binary = isinstance(raw, (bytes, bytearray, memoryview))
    try:
        message = msgpack.unpackb(bytes(raw), raw=False) if binary else json.loads(raw)
    except Exception as exc:  # json, msgpack and unicode errors all mean the same to the caller
        kind = "msgpack" if binary else "JSON"
        raise ProtocolError(f"malformed {kind} message: {exc}") from None
    if not isinstance(message, dict):
        raise ProtocolError(f"a message must be an object with a \"type\", got {type(message).__name__}")
    if not isinstance(message.get("type"), str):
        raise ProtocolError('a message must have a string "type"')
    return message, binary


def encode(message: dict[str, Any], binary: bool) -> str | bytes:
    return msgpack.packb(message, use_bin_type=True) if binary else json.dumps(message)


def error(message: str) -> dict[str, Any]:
    return {"type": "error", "message": message}


def field(message: dict[str, Any], name: str, kind: type | tuple[type, ...], required: bool = True) -> Any:
    value = message.get(name)
    if value is None:
        if required:
            raise ProtocolError(f'"{message["type"]}" needs a "{name}" field')
        return None
    if not isinstance(value, kind) or isinstance(value, bool) and kind is not bool:
        names = kind.__name__ if isinstance(kind, type) else " or ".join(k.__name__ for k in kind)
        raise ProtocolError(f'"{name}" must be a {names}, got {type(value).__name__}')
    return value


def addressed(message: dict[str, Any], own: Any, named: Callable[[str], Any],
              require_rights: Callable[[], None]) -> Any:
    """The session a message is for: `own` (the connection's call) unless it names another, which needs rights
    (`require_rights` raises) and must exist and be open (`named(id)`, None if not); `own` is anything with `id`."""
    wanted = field(message, "session", str, required=False)
    if wanted is None or (own is not None and wanted == own.id):
        if own is None:
            raise ProtocolError('no call on this connection: send an offer, or name a "session"')
        return own
    require_rights()
    target = named(wanted)
    if target is None or target.closed:
        raise ProtocolError(f"no session {wanted!r}")
    return target


def parse_intensity(value: Any, default: float = 1.0) -> float:
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, (int, float)) or \
            isinstance(value, int) and not -2 <= value <= 2 or not math.isfinite(value):  # 10**400: no float
        raise ProtocolError(f"intensity must be a number between 0 and 1, got {_short(value)}")
    if not 0.0 <= value <= 1.0:
        raise ProtocolError(f"intensity must be between 0 and 1, got {value}")
    return float(value)


def _short(value: Any, limit: int = 40) -> str:
    text = repr(value) if not isinstance(value, int) or value.bit_length() < 128 else "a huge integer"
    return text if len(text) <= limit else text[: limit - 1] + "…"


def parse_instruction(text: Any, intensity: Any, default_intensity: float = 1.0) -> Instruction:
    """Validates an instruction's text and intensity (the encoder checks the text again)."""
    if text is not None and not isinstance(text, str):
        raise ProtocolError(f"instruction text must be a string, got {type(text).__name__}")
    text = (text or "").strip() or None
    if text is not None and len(text) > MAX_INSTRUCTION_CHARS:
        raise ProtocolError(f"instruction is {len(text)} characters long; the limit is {MAX_INSTRUCTION_CHARS}")
    return Instruction(text, parse_intensity(intensity, default_intensity))
