"""Glass-to-glass latency of any WHIP/WHEP endpoint (`avatar bench --whip URL --whep URL`): a WHIP publisher plays
isolated syllables after silences, a WHEP viewer receives the avatar; latency from each acoustic onset to the first
received frame whose mouth region moved, measured on the viewer's pixels exactly as for a WebSocket call
(benchmarks/latency.py). The face is found on the first received frame (dlib), so any server's avatar can be
measured; the server's own stage timings are read only when it is this project's."""
from __future__ import annotations

import asyncio
import time
from types import SimpleNamespace

import numpy as np

from benchmarks.latency import CallArtifacts, LatencyConfig, analyse_call
from benchmarks.probe import FrameRecorder, TimedMicrophone, VoiceRecorder, face_regions
from benchmarks.stimulus import onset_stimulus
from clients.avatar_client.whip import WhepViewer, WhipPublisher


class FaceFinder:
    """`on_frame` that finds the face on the first frame it gets, then records like FrameRecorder."""

    def __init__(self, portrait=None):
        self.recorder = FrameRecorder(face_regions(portrait)) if portrait is not None else None
        self.error: str | None = None

    def __call__(self, gray: np.ndarray, arrival: float) -> None:
        if self.recorder is None:
            face = _largest_face(gray)
            if face is None:
                self.error = "no face found in the first received frame"
                return
            self.recorder = FrameRecorder(face_regions(face))
        self.recorder(gray, arrival)


def _largest_face(gray: np.ndarray):
    from realtime.avatar.landmarks import DlibLandmarkDetector

    faces = DlibLandmarkDetector()(np.repeat(gray[..., None], 3, axis=2))
    if not faces:
        return None
    lm = max(faces, key=lambda f: f.score).landmarks
    return SimpleNamespace(landmarks=lm, iod=float(np.linalg.norm(lm[36:42].mean(0) - lm[42:48].mean(0))))


async def whip_glass_to_glass(whip_url: str, whep_url: str, config: LatencyConfig, token: str | None = None,
                              portrait=None, stats=None) -> tuple[dict, CallArtifacts]:
    """`stats(session) -> dict` (optional) reads the server's own timings of the call before it ends."""
    stimulus = onset_stimulus(config.onsets, config.gap_s, config.lead_s, seed=config.seed)
    frames, voice = FaceFinder(portrait), VoiceRecorder()
    mic = TimedMicrophone(stimulus.audio)
    t_connect = time.monotonic()
    async with WhipPublisher(whip_url, mic, token=token) as publisher:
        t_offer = time.monotonic()
        async with WhepViewer(whep_url.replace("/latest", f"/{publisher.session}") if publisher.session else whep_url,
                              token=token, frame_format="gray", on_frame=frames, on_audio=voice) as viewer:
            t_answer = time.monotonic()
            await asyncio.wait_for(viewer.first_frame.wait(), 30)
            while len(mic.sent_at) * mic.samples < len(stimulus.audio):
                await asyncio.sleep(0.2)
            await asyncio.sleep(0.3)
            server_stats = (stats(publisher.session) if stats is not None else None) or {}
            pts = np.asarray(viewer.video.pts)
    if frames.recorder is None:
        raise RuntimeError(frames.error or "no video frame arrived over WHEP")
    result, artifacts = analyse_call(stimulus, mic, frames.recorder, voice, pts[: len(frames.recorder.times)],
                                     server_stats, (t_connect, t_offer, t_answer))
    result["endpoints"] = {"whip": whip_url, "whep": whep_url,
                           "video_fps": round(viewer.video.fps(), 2), "video_size": viewer.video.size}
    return result, artifacts
