"""Latency from the user's side, measured on the returned pixels and voice only.

glass_to_glass(): one call whose microphone plays isolated syllables (pa, ba, ma, ah) after 1-1.5 s of
silence; for each acoustic onset, the time until the first returned frame whose mouth region moved (vs the
frames just before the onset), the returned voice's onset, their A/V offset, the frame pacing of the whole
call, the time to first frame, and the server's own per-stage timings of that call.

instruction_latency(): one silent call that alternates strong eye instructions; for each, the time from
sending `instruct` to the first frame visibly on its way to the new expression, and to the end of the
transition (90 %).
"""
from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field

import numpy as np

from benchmarks.analysis import av_lag, first_change, pacing, region_change, summary, transition, voice_onsets
from benchmarks.probe import FrameRecorder, TimedMicrophone, VoiceRecorder, face_regions
from benchmarks.stimulus import onset_stimulus
from clients.avatar_client import AvatarClient

TRACE_S = (-0.6, 1.5)  # mouth-change traces kept around each onset (for plots)


@dataclass
class LatencyConfig:
    onsets: int = 32
    gap_s: tuple[float, float] = (1.0, 1.5)
    lead_s: float = 2.0  # silence before the first syllable: connection set-up and a mouth at rest
    instructions: tuple[str, ...] = ("close your eyes", "open your eyes wide")
    instruction_count: int = 8
    instruction_period_s: float = 4.0
    seed: int = 0


@dataclass
class CallArtifacts:
    """Arrays kept in memory for plots and contact sheets (not written to the JSON)."""

    times: np.ndarray = field(default_factory=lambda: np.zeros(0))
    crops: dict[str, np.ndarray] = field(default_factory=dict)
    events: list[float] = field(default_factory=list)
    detections: list[float | None] = field(default_factory=list)


async def glass_to_glass(ws_url: str, portrait, config: LatencyConfig) -> tuple[dict, CallArtifacts]:
    stimulus = onset_stimulus(config.onsets, config.gap_s, config.lead_s, seed=config.seed)
    frames = FrameRecorder(face_regions(portrait))
    voice = VoiceRecorder()
    mic = TimedMicrophone(stimulus.audio)
    t_connect = time.monotonic()
    async with AvatarClient(ws_url) as client:
        t_offer = time.monotonic()
        await client.call(mic, frame_format="gray", on_frame=frames, on_audio=voice)
        t_answer = time.monotonic()
        await client.wait_first_frame()
        while len(mic.sent_at) * mic.samples < len(stimulus.audio):
            await asyncio.sleep(0.2)
        await asyncio.sleep(0.3)
        stats = await client.stats()
        await client.hangup()
    pts = np.asarray(client.video.pts[: len(frames.times)])
    return analyse_call(stimulus, mic, frames, voice, pts, stats, (t_connect, t_offer, t_answer))


def analyse_call(stimulus, mic: TimedMicrophone, frames: FrameRecorder, voice: VoiceRecorder, pts: np.ndarray,
                 stats: dict, started: tuple[float, float, float]) -> tuple[dict, CallArtifacts]:
    """Glass-to-glass figures of one recorded call; `started` = (connect, offer, answer) monotonic times."""
    t_connect, t_offer, t_answer = started
    times, mouth = np.asarray(frames.times), frames.stack("mouth")
    events = [mic.sound_time(t) for t in stimulus.onsets_s]
    # A response may come as late as the next onset (or 1.5 s): a slow pipeline is measured, not missed.
    windows = [min(1.5, b - a) for a, b in zip(events, events[1:] + [events[-1] + 1.5])]
    responses = [first_change(times, mouth, e, window_s=w) for e, w in zip(events, windows)]
    voice_t, voice_rms = voice.envelope()
    voice_at = [voice_onsets(voice_t, voice_rms, [e], window_s=w)[0] for e, w in zip(events, windows)]
    per_onset = []
    for label, event, response, heard in zip(stimulus.labels, events, responses, voice_at):
        per_onset.append({"syllable": label, "onset_s": round(event - events[0], 3),
                          "latency_ms": _r(response.latency_ms),
                          "voice_latency_ms": None if heard is None else round(1000 * (heard - event), 1),
                          "av_offset_ms": None if heard is None or response.frame_time is None
                          else round(1000 * (response.frame_time - heard), 1),
                          "peak": round(response.peak, 2), "noise": round(response.noise, 2),
                          "trace": _trace(times, mouth, event)})
    latencies = [r.latency_ms for r in responses]

    rest = (times >= events[0] - 1.2) & (times < events[0] - 0.2)
    mouth_motion = region_change(mouth, mouth[rest].mean(0)) if rest.sum() >= 3 else np.zeros(len(times))
    correlation = av_lag(voice_t, voice_rms, times, mouth_motion, events[0] - 0.5, events[-1] + 1.0)
    offsets = [o["av_offset_ms"] for o in per_onset]
    result = {
        "glass_to_glass": {
            "method": "acoustic onset as a physical microphone would hear it (20 ms packetisation included) -> "
                      "arrival of the first returned frame whose mouth region moved beyond the noise of the "
                      "frames of the 0.36 s before the onset (>= 1.5 grey levels and 6 SD; time at 25 % of the "
                      "rise, held 2 frames); resolution one frame (40 ms)",
            "onsets_sent": len(events), "onsets_detected": sum(x is not None for x in latencies),
            "latency_ms": summary(latencies), "per_onset": per_onset,
            "time_to_first_frame_ms": {"from_offer": round(1000 * (times[0] - t_offer), 1) if len(times) else None,
                                       "from_connect": round(1000 * (times[0] - t_connect), 1) if len(times) else None,
                                       "signalling_ms": round(1000 * (t_answer - t_offer), 1)},
            "returned_voice_latency_ms": summary([o["voice_latency_ms"] for o in per_onset]),
        },
        "av_offset": {
            "method": "per onset: first moving mouth frame minus first loud returned-voice chunk (positive = video "
                      "later); and the lag of best correlation between the voice's log envelope and mouth motion",
            "onset_offset_ms": summary(offsets), "xcorr_r": correlation["r"], "xcorr_lag_ms": correlation["lag_ms"],
            "xcorr_curve": {"lags_ms": correlation["lags_ms"], "r": correlation["curve"]},
        },
        "pacing": pacing(times, pts, np.asarray(frames.change)),
        "server_call": {k: stats.get(k) for k in ("stages", "counts", "sampler_latency_s")},
    }
    result["pacing"]["server_counts"] = {k: (stats.get("counts") or {}).get(k)
                                         for k in ("frames_shown", "frames_repeated", "frames_dropped",
                                                   "frames_late_skipped", "audio_skipped_ms", "audio_dropped_ms")}
    artifacts = CallArtifacts(times, {"mouth": mouth}, events, [r.frame_time for r in responses])
    return result, artifacts


def _trace(times: np.ndarray, crops: np.ndarray, event: float) -> dict:
    ref = (times >= event - 0.36) & (times < event)
    window = (times >= event + TRACE_S[0]) & (times < event + TRACE_S[1])
    if ref.sum() < 1 or not window.any():
        return {"t": [], "change": []}
    change = region_change(crops[window], crops[ref].mean(0))
    return {"t": [round(float(t - event), 3) for t in times[window]], "change": [round(float(c), 2) for c in change]}


def _r(value: float | None) -> float | None:
    return None if value is None else round(value, 1)


async def instruction_latency(ws_url: str, portrait, config: LatencyConfig) -> tuple[dict, CallArtifacts]:
    frames = FrameRecorder(face_regions(portrait))
    sent: list[dict] = []
    async with AvatarClient(ws_url) as client:
        await client.call(None, frame_format="gray", on_frame=frames)  # silent caller: the face idles
        await client.wait_first_frame()
        start = time.monotonic() + 2.0
        for k in range(config.instruction_count):
            text = config.instructions[k % len(config.instructions)]
            await asyncio.sleep(max(0.0, start + k * config.instruction_period_s - time.monotonic()))
            t_send = time.monotonic()
            ack = await client.instruct(text, 1.0, via_channel=True)
            sent.append({"text": text, "t_send": t_send, "ack_ms": round(1000 * (time.monotonic() - t_send), 1),
                         "frame": ack.get("frame")})
        await asyncio.sleep(max(0.0, start + config.instruction_count * config.instruction_period_s - time.monotonic()))
        stats = await client.stats()
        await client.hangup()

    times, eyes = np.asarray(frames.times), frames.stack("eyes")
    period = config.instruction_period_s
    records, traces = [], []
    for item in sent:
        change = transition(times, eyes, item["t_send"], settle_s=(period - 0.7, period - 0.05))
        traces.append(change)
        records.append({"text": item["text"], "ack_ms": item["ack_ms"], "frame": item["frame"],
                        **{k: v for k, v in change.as_dict(with_trace=True).items() if k != "event"}})
    result = {"instruction": {
        "method": "eye/brow region of the returned frames projected on the change from the 0.4 s before "
                  "`instruct` to the settled state before the next one; visible = first frame >= 20 % of the "
                  "way (held 7 frames, so a blink does not count), complete = first frame >= 90 % (then >= 80 %)",
        "instructions": list(config.instructions), "period_s": period, "sent": len(sent),
        "visible_ms": summary([t.visible_ms for t in traces]), "complete_ms": summary([t.complete_ms for t in traces]),
        "ack_ms": summary([s["ack_ms"] for s in sent]), "change_levels": summary([t.size for t in traces], 2),
        "per_instruction": records, "server_counts": stats.get("counts"),
    }}
    artifacts = CallArtifacts(times, {"eyes": eyes}, [s["t_send"] for s in sent],
                              [None if t.visible_ms is None else t.event + t.visible_ms / 1000 for t in traces])
    return result, artifacts


__all__ = ["LatencyConfig", "glass_to_glass", "instruction_latency"]
