"""`say` and `clear` in a live session, measured on what a WHEP viewer receives (`avatar bench --only speech`).

A silent call (no microphone) is opened over /ws and watched over WHEP. Each trial says a sentence, and clears
it part-way through: from the pixels (dlib mouth opening, inter-ocular units) and the viewer's audio we read
how soon the mouth opens and the voice is heard after `say`, how wide the mouth opens while speaking, and how
soon after `clear` is sent the mouth is closed (opening at or under the 'closed' level, held 3 frames) and
the voice is silent.
"""
from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass

import numpy as np

from benchmarks.analysis import summary
from benchmarks.mouth import MouthMeter, closed_level, loudness_at
from clients.avatar_client import AvatarClient
from clients.avatar_client.whip import WhepViewer

SENTENCES = ("Hello there, my name is Eileen, and I would like to tell you about the moon and the stars.",
             "Every morning the baker opens his window and the whole street smells of warm bread.",
             "My favourite music is played by a small band that meets on Monday evenings by the bay.")
HEARD = 0.02  # RMS of the viewer's audio over 40 ms that counts as speech
SILENT = 0.003


@dataclass
class SpeechConfig:
    trials: int = 6
    clear_after_s: tuple[float, float] = (1.2, 2.0)  # clear this far into each utterance (seeded)
    rest_s: float = 1.5  # silence before each trial
    seed: int = 0


def _first_held(times: np.ndarray, ok: np.ndarray, after: float, hold: int = 3) -> float | None:
    idx = np.flatnonzero(times >= after)
    for start in idx:
        if start + hold <= len(ok) and ok[start:start + hold].all():
            return float(times[start])
    return None


async def speech_control(ws_url: str, portrait, config: SpeechConfig) -> dict:
    frames: list[tuple[float, np.ndarray]] = []
    voice: list[tuple[float, np.ndarray]] = []
    rng = np.random.default_rng(config.seed)
    marks = []
    async with AvatarClient(ws_url) as client:
        session = await client.call(None)
        http = ws_url.replace("ws://", "http://").removesuffix("/ws")
        async with WhepViewer(f"{http}/whep/{session}", frame_format="gray",
                              on_frame=lambda f, t: frames.append((t, f)),
                              on_audio=lambda pcm, t: voice.append((t, pcm))) as viewer:
            await asyncio.wait_for(viewer.first_frame.wait(), 30)
            for k in range(config.trials):
                await asyncio.sleep(config.rest_s)
                said_at = time.monotonic()
                await client.say(SENTENCES[k % len(SENTENCES)])
                await asyncio.sleep(float(rng.uniform(*config.clear_after_s)))
                clear_at = time.monotonic()
                await client.clear()
                marks.append((said_at, clear_at))
            await asyncio.sleep(config.rest_s)
            fps = viewer.video.fps()
        await client.hangup()

    times = np.array([t for t, _ in frames])
    voice_t = np.concatenate([np.full(len(p), t) for t, p in voice])
    loud = loudness_at(times, voice_t, np.concatenate([p for _, p in voice]))
    keep = np.zeros(len(times), bool)
    for said_at, clear_at in marks:
        keep |= (times > said_at - 1.0) & (times < clear_at + 1.0)
    opening = np.full(len(times), np.nan)
    meter = MouthMeter(portrait)
    opening[keep] = meter.series([frames[i][1] for i in np.flatnonzero(keep)])
    closed = closed_level(opening[keep])
    trials = []
    for said_at, clear_at in marks:
        rest = opening[(times > said_at - 1.0) & (times < said_at)]
        talk = (times > said_at) & (times < clear_at)
        level = float(np.median(rest)) + 0.1
        opened = _first_held(times, np.nan_to_num(opening) > level, said_at, hold=1)
        heard = _first_held(times, loud > HEARD, said_at, hold=1)
        shut = _first_held(times, np.nan_to_num(opening, nan=1.0) <= closed, clear_at)
        quiet = _first_held(times, loud < SILENT, clear_at)
        trials.append({"mouth_opens_ms": None if opened is None else round(1000 * (opened - said_at), 1),
                       "voice_heard_ms": None if heard is None else round(1000 * (heard - said_at), 1),
                       "opening_p90_speaking": round(float(np.nanpercentile(opening[talk], 90)), 3),
                       "opening_rest": round(float(np.median(rest)), 3),
                       "open_before_clear": bool(np.nanmax(opening[(times > clear_at - 0.2) & (times < clear_at)],
                                                           initial=0) > closed),
                       "mouth_closed_ms": None if shut is None else round(1000 * (shut - clear_at), 1),
                       "voice_silent_ms": None if quiet is None else round(1000 * (quiet - clear_at), 1)})
    return {"speech_control": {
        "method": "silent call watched over WHEP; per trial `say` then `clear` part-way; times from the request "
                  "to the first received frame (dlib mouth opening > rest + 0.1 IOD; closed = at most "
                  f"{closed:.3f} IOD, max(0.05, 0.3 x p75), held 3 frames) and to the viewer's audio "
                  f"(RMS over 40 ms > {HEARD} heard, < {SILENT} silent)",
        "video_fps": round(fps, 2), "closed_level": round(closed, 3),
        "say_mouth_opens_ms": summary([t["mouth_opens_ms"] for t in trials]),
        "say_voice_heard_ms": summary([t["voice_heard_ms"] for t in trials]),
        "clear_mouth_closed_ms": summary([t["mouth_closed_ms"] for t in trials if t["open_before_clear"]]),
        "clear_voice_silent_ms": summary([t["voice_silent_ms"] for t in trials]),
        "trials": trials}}
