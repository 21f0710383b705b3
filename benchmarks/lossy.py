"""A call measured on what the caller receives, for lossy networks: video frame rate, the longest freeze, and the
fraction of the voice that comes back.

    python -m benchmarks.lossy --url ws://10.251.7.1:8080/ws --wav speech48k.wav --seconds 20 --out call.json

Run it inside a network namespace that drops packets (benchmarks/netns.py) to see how calls survive loss.
"""
from __future__ import annotations

import argparse
import asyncio
import json
from pathlib import Path

import numpy as np

from clients.avatar_client import AvatarClient, FileMicrophone
from realtime.vocab import AUDIO_PTIME_S
from realtime.vocab import WEBRTC_AUDIO_RATE as RATE

WINDOW = int(RATE * AUDIO_PTIME_S)  # one 20 ms audio packet


def window_rms(audio: np.ndarray) -> np.ndarray:
    n = len(audio) // WINDOW
    return np.sqrt((audio[: n * WINDOW].reshape(n, WINDOW).astype(np.float64) ** 2).mean(1))


def voiced_fraction(rms: np.ndarray, threshold: float) -> float:
    return float((rms > threshold).mean()) if len(rms) else 0.0


def returned_voice(packets: list[tuple[int, np.ndarray]], skip_s: float = 1.0) -> np.ndarray:
    """The returned voice on its own timeline (RTP timestamps, 48 kHz): a lost packet stays a silent gap."""
    if not packets:
        return np.zeros(0, np.float32)
    first = packets[0][0]
    end = max(pts for pts, _ in packets) - first + WINDOW
    line = np.zeros(end, np.float32)
    for pts, pcm in packets:
        start = pts - first
        line[start:start + len(pcm)] = pcm[: max(0, end - start)]
    return line[int(skip_s * RATE):]


def call_figures(video_times: list[float], packets: list[tuple[int, np.ndarray]], sent: np.ndarray,
                 skip_s: float = 1.0) -> dict:
    """fps and freezes after the first `skip_s`; voice returned = voiced share of the returned timeline over
    the voiced share of what was sent (1.0: every voiced packet came back, or was concealed)."""
    times = np.asarray(video_times)
    times = times[times >= times[0] + skip_s] if len(times) else times
    gaps = np.diff(times) * 1000 if len(times) > 1 else np.zeros(0)
    sent_rms = window_rms(sent)
    threshold = 0.1 * float(np.percentile(sent_rms, 95))
    back = voiced_fraction(window_rms(returned_voice(packets, skip_s)), threshold)
    expected = voiced_fraction(sent_rms, threshold)
    return {"fps": round(float((len(times) - 1) / max(times[-1] - times[0], 1e-9)), 2) if len(times) > 1 else 0.0,
            "longest_freeze_ms": round(float(gaps.max()), 1) if len(gaps) else None,
            "freezes_over_250ms": int((gaps > 250).sum()), "freezes_over_200ms": int((gaps > 200).sum()),
            "frames": int(len(times)), "voice_returned": round(min(1.0, back / max(expected, 1e-9)), 3),
            "voiced_sent": round(expected, 3), "voiced_returned": round(back, 3)}


async def lossy_call(url: str, wav: Path, seconds: float) -> dict:
    packets: list[tuple[int, np.ndarray]] = []
    async with AvatarClient(url, timeout_s=30) as client:
        mic = FileMicrophone(wav, loop=True)
        await client.call(mic, on_audio=lambda pcm, t: packets.append((client.audio.pts[-1], pcm)))
        await client.wait_first_frame(30)
        await asyncio.sleep(seconds)
        stats = await client.stats()
        figures = call_figures(list(client.video.times), packets, mic.audio)
        figures["video_frames_given_up"] = getattr(client.video_buffer, "frames_given_up", None)
        figures["voice_concealed_s"] = round(client.audio.concealed_s, 2)
        await client.hangup()
    return {**figures, "seconds": seconds, "server_counts": stats.get("counts")}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.lossy", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--url", required=True)
    p.add_argument("--wav", type=Path, required=True, help="speech sent as the microphone (looped)")
    p.add_argument("--seconds", type=float, default=20.0)
    p.add_argument("--out", type=Path, default=None, help="write the figures here as JSON")
    args = p.parse_args(argv)
    result = asyncio.run(lossy_call(args.url, args.wav, args.seconds))
    text = json.dumps(result, indent=1)
    if args.out is not None:
        args.out.write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
