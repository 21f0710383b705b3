"""The speech messages of /ws and the control data channel:

    {"type":"say","session":ID?,"text":…,"voice":"en-us"?,"rate":160?}  -> {"type":"say","ok":true,"utterance":…}
    {"type":"pcm","session":ID?,"rate":16000,"samples":<s16le mono bytes>}  -> {"type":"pcm","ok":true,…}
    {"type":"clear","session":ID?}                                       -> {"type":"clear","ok":true,"dropped":[…]}

and, to whoever sent one of them, {"type":"playback","session":ID,"state":"started"|"finished",…} events.
"""
from __future__ import annotations

import asyncio
import base64
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any

import numpy as np

from realtime.server.protocol import ProtocolError, field
from realtime.vocab import MODEL_RATE

if TYPE_CHECKING:
    from realtime.server.session import Session
    from realtime.server.speech_source import Listener

SPEECH_MESSAGES = ("say", "pcm", "clear")
MAX_SAY_CHARS = 1000
PCM_RATES = (8000, 11025, 12000, 16000, 22050, 24000, 32000, 44100, 48000)
_synth = ThreadPoolExecutor(max_workers=1, thread_name_prefix="say")  # espeak-ng is one engine per process


def _speak(text: str, voice: str, rate: int):
    from realtime.speech.espeak import Espeak

    return Espeak().setup()(text, voice=voice, rate=rate)


async def speech_message(session: Session, message: dict[str, Any], key: Any, send: Listener) -> dict[str, Any]:
    kind = message["type"]
    speech = session.speech
    speech.listen(key, send)
    if kind == "clear":
        dropped = speech.clear()
        session.pipeline.cut(session.ingest.fed_samples)  # speech already fed: mouth closes, voice goes silent
        return {"type": "clear", "ok": True, "session": session.id, "dropped": dropped}
    if kind == "say":
        text = field(message, "text", str).strip()
        if not text:
            raise ProtocolError('"say" needs a non-empty "text"')
        if len(text) > MAX_SAY_CHARS:
            raise ProtocolError(f"say text is {len(text)} characters long; the limit is {MAX_SAY_CHARS}")
        voice = field(message, "voice", str, required=False) or "en-us"
        rate = field(message, "rate", int, required=False) or 160
        from realtime.speech.espeak import SpeechError

        try:
            spoken = await asyncio.get_running_loop().run_in_executor(_synth, _speak, text, voice, rate)
        except SpeechError as exc:
            raise ProtocolError(f"cannot say that: {exc}") from None
        if session.closed:
            raise ProtocolError(f"session {session.id} ended meanwhile")
        utterance = speech.say(spoken.audio, spoken.sample_rate)
    else:
        rate = field(message, "rate", int)
        if rate not in PCM_RATES:
            raise ProtocolError(f'"rate" must be one of {PCM_RATES}, got {rate}')
        samples = field(message, "samples", (bytes, str))
        if isinstance(samples, str):  # JSON clients send base64
            try:
                samples = base64.b64decode(samples, validate=True)
            except ValueError:
                raise ProtocolError('"samples" must be s16le bytes (msgpack bin) or base64 text') from None
        if len(samples) % 2 or not samples:
            raise ProtocolError('"samples" must be a whole number of 16-bit little-endian mono samples')
        pcm = np.frombuffer(samples, "<i2").astype(np.float32) / 32768.0
        utterance = speech.push(pcm, rate)
    session.touch()
    return {"type": kind, "ok": True, "session": session.id, "utterance": utterance.id,
            "duration_s": round(len(utterance.audio16k) / MODEL_RATE, 3), "queued_s": round(speech.queue.queued_s, 3)}
