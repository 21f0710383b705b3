"""The Pipecat service in a real Pipecat pipeline: TTS audio frames -> AvatarVideoService -> SmallWebRTCTransport's
output, to a real aiortc peer on loopback (the user), which sees the avatar speak and hears it; an interruption
closes the mouth and stops the voice."""
from __future__ import annotations

import asyncio
import time

import numpy as np
import pytest
from test_server import run

from benchmarks.mouth import MouthMeter, loudness_at
from helpers import LONG_SENTENCE

pytest.importorskip("pipecat", reason="pip install -e '.[pipecat]'")



def tts_frames(espeak, text: str, rate: int = 24_000, chunk_s: float = 0.04) -> list:
    """What a Pipecat TTS service emits for `text`: started, 16-bit mono audio chunks, stopped."""
    from pipecat.frames.frames import TTSAudioRawFrame, TTSStartedFrame, TTSStoppedFrame

    from realtime.media.audio import resample

    speech = espeak(text)
    pcm = (np.clip(resample(speech.audio, speech.sample_rate, rate), -1, 1) * 32767).astype(np.int16)
    step = int(rate * chunk_s)
    audio = [TTSAudioRawFrame(audio=pcm[i:i + step].tobytes(), sample_rate=rate, num_channels=1)
             for i in range(0, len(pcm), step)]
    return [TTSStartedFrame(), *audio, TTSStoppedFrame()], len(pcm) / rate


def test_pipecat_pipeline_drives_the_avatar_to_a_webrtc_peer(loopback_server, resources, espeak):
    from aiortc import RTCPeerConnection, RTCSessionDescription
    from aiortc.mediastreams import MediaStreamError
    from pipecat.frames.frames import InterruptionFrame
    from pipecat.pipeline.pipeline import Pipeline
    from pipecat.pipeline.worker import PipelineWorker
    from pipecat.transports.base_transport import TransportParams
    from pipecat.transports.smallwebrtc.connection import SmallWebRTCConnection
    from pipecat.transports.smallwebrtc.transport import SmallWebRTCTransport
    from pipecat.workers.runner import WorkerRunner

    from clients.pipecat_avatar import AvatarVideoService

    frames: list[tuple[float, np.ndarray]] = []
    voice: list[tuple[float, np.ndarray]] = []
    marks: dict[str, float] = {}

    async def receive(track) -> None:
        import av

        resampler = av.AudioResampler(format="flt", layout="mono", rate=48_000)
        try:
            while True:
                frame = await track.recv()
                now = time.monotonic()
                if track.kind == "video":
                    frames.append((now, frame.to_ndarray(format="gray")))
                else:
                    frame.pts = None
                    voice.extend((now, out.to_ndarray().reshape(-1)) for out in resampler.resample(frame))
        except MediaStreamError:
            pass

    async def body() -> dict:
        user = RTCPeerConnection()  # the person watching the agent
        user.addTransceiver("audio", direction="recvonly")
        user.addTransceiver("video", direction="recvonly")
        tasks = []
        user.on("track", lambda track: tasks.append(asyncio.ensure_future(receive(track))))
        await user.setLocalDescription(await user.createOffer())
        connection = SmallWebRTCConnection()
        await connection.initialize(sdp=user.localDescription.sdp, type="offer")
        answer = connection.get_answer()
        await user.setRemoteDescription(RTCSessionDescription(sdp=answer["sdp"], type=answer["type"]))

        transport = SmallWebRTCTransport(connection, TransportParams(
            audio_out_enabled=True, video_out_enabled=True, video_out_is_live=True, video_out_width=512,
            video_out_height=512, video_out_framerate=25))
        avatar = AvatarVideoService(loopback_server.ws_url)
        worker = PipelineWorker(Pipeline([avatar, transport.output()]), idle_timeout_secs=None, enable_rtvi=False)
        runner = WorkerRunner(handle_sigint=False)
        running = asyncio.ensure_future(runner.run(worker))
        async with asyncio.timeout(40):
            while len(frames) < 10:
                await asyncio.sleep(0.1)
        await asyncio.sleep(1.5)
        said, duration = tts_frames(espeak, "Hello there, my name is Eileen, and I love the moon.")
        marks["say"] = time.monotonic()
        await worker.queue_frames(said)
        await asyncio.sleep(duration + 1.0)
        marks["said"] = time.monotonic()
        long, _ = tts_frames(espeak, LONG_SENTENCE)
        await worker.queue_frames(long)
        await asyncio.sleep(2.0)
        marks["interrupt"] = time.monotonic()
        await worker.queue_frame(InterruptionFrame())
        await asyncio.sleep(3.0)
        session = avatar.session
        events = list(avatar.playback)
        await worker.cancel()
        await asyncio.wait_for(running, 20)
        for task in tasks:
            task.cancel()
        await user.close()
        return {"duration": duration, "session": session, "events": events}

    result = run(body())
    assert result["session"] and not loopback_server.server.sessions  # the pipeline's end hung up the avatar's call
    states = [(e["state"], e.get("interrupted", False)) for e in result["events"]]
    assert ("started", False) in states and ("finished", True) in states, states

    times = np.array([t for t, _ in frames])
    assert frames[-1][1].shape == (512, 512)
    voice_t = np.concatenate([np.full(len(p), t) for t, p in voice])
    # the transport sends audio in bursts of several packets: loudness over 0.12 s windows
    loud = loudness_at(times, voice_t, np.concatenate([p for _, p in voice]), window_s=0.12)
    quiet = (times > marks["say"] - 1.2) & (times < marks["say"])
    heard = np.flatnonzero((times > marks["say"]) & (loud > 0.02))
    assert len(heard), "the user never hears the avatar"
    onset = times[heard[0]]  # the user's latency: server + pipeline + transport
    speaking = (times > onset) & (times < onset + 0.8 * result["duration"])
    # the long sentence would go on for 7 s more; how soon it stops is benchmarks/speech_control.py's figure
    after = (times > marks["interrupt"] + 2.0) & (times < marks["interrupt"] + 3.0)
    assert onset < marks["said"] and loud[quiet].max() < 0.003
    assert np.mean(loud[speaking] > 0.02) > 0.3, "the user hears too little of the speech"  # pauses included
    assert loud[after].max() < 0.003, "the voice goes on after the interruption"

    if not resources.trained:
        pytest.skip("no trained generator checkpoint: mouth opening is not measurable")
    meter = MouthMeter(resources.portrait)
    opening = {name: meter.series([frames[i][1] for i in np.flatnonzero(mask)])
               for name, mask in (("quiet", quiet), ("speaking", speaking), ("after", after))}
    rest = np.median(opening["quiet"])
    assert np.percentile(opening["speaking"], 90) > rest + 0.1, "the avatar's mouth does not move with the TTS"
    assert np.median(opening["after"]) < rest + 0.05, "the mouth stays open after the interruption"
