"""The cost floor (`avatar serve --replay-frames`, `avatar bench --sessions N --floor rgb,yuv`): calls that run no
model and no renderer still go through the real session, playout, VP8 and WebRTC, and show the loop's pictures."""
from __future__ import annotations

import asyncio
import time

import numpy as np
import pytest

from clients.avatar_client import AvatarClient, FileMicrophone
from realtime.media.stream import rgb_to_yuv420
from realtime.server import ServerConfig, ServerThread
from realtime.server.pipeline import MotionPipeline
from realtime.server.playout import Playout
from realtime.server.replay import ReplayRenderer, ReplaySampler, load_frames
from realtime.server.stats import StageTimes
from realtime.vocab import DIM, SAMPLES_PER_FRAME


def _loop(renderer, frames: int = 6) -> np.ndarray:
    """Real rendered pictures, the mouth opening more in each (so that every frame differs)."""
    from realtime.vocab import INDEX

    motion = np.zeros((frames, DIM), np.float32)
    motion[:, INDEX["jaw_open"]] = np.linspace(0.0, 1.0, frames)
    return np.stack([np.asarray(renderer(m[None]))[0] for m in motion])


@pytest.fixture(scope="module")
def loops(renderer, tmp_path_factory) -> dict:
    folder = tmp_path_factory.mktemp("floor")
    rgb = _loop(renderer)
    paths = {"rgb": folder / "rgb.npy", "yuv": folder / "yuv.npy"}
    np.save(paths["rgb"], rgb)
    np.save(paths["yuv"], np.stack([rgb_to_yuv420(f) for f in rgb]))
    return paths


def test_the_replay_sampler_gives_one_neutral_frame_per_40_ms_of_audio_however_it_arrives():
    sampler = ReplaySampler()
    sizes = [100, 539, 1, 1300, 0, 2000]  # 3940 samples: 6 frames, 100 samples left over
    got = [sampler.push(np.zeros(n, np.float32)) for n in sizes]
    assert [len(g) for g in got] == [0, 0, 1, 2, 0, 3]
    assert sampler.frames_emitted == 6 == sum(sizes) // SAMPLES_PER_FRAME
    assert all(g.shape[1:] == (DIM,) and not g.any() for g in got)


def test_the_replay_renderer_loops_and_the_file_must_hold_pictures(loops, tmp_path):
    frames = load_frames(loops["rgb"])
    renderer = ReplayRenderer(frames)
    shown = [renderer(np.zeros((k, DIM), np.float32)) for k in (1, 4, 3)]
    assert np.array_equal(np.concatenate(shown), frames[[0, 1, 2, 3, 4, 5, 0, 1]])
    assert not renderer.yields_yuv and ReplayRenderer(load_frames(loops["yuv"])).yields_yuv
    bad = tmp_path / "bad.npy"
    np.save(bad, np.zeros((2, 64, 64), np.float32))
    with pytest.raises(AssertionError, match="uint8"):
        load_frames(bad)
    with pytest.raises(ValueError, match="replay_frames file not found"):
        ServerConfig(replay_frames=tmp_path / "missing.npy")


@pytest.mark.parametrize("kind", ["rgb", "yuv"])
def test_the_pipeline_puts_the_loops_pictures_on_air_converted_once(loops, kind):
    """RGB pictures are converted to yuv420p by the pipeline as a renderer's are; yuv420p ones go out as they are."""
    frames = load_frames(loops[kind])
    expected = [rgb_to_yuv420(f) for f in frames] if kind == "rgb" else list(frames)
    stats = StageTimes()
    playout = Playout(expected[0], stats)
    pipeline = MotionPipeline(ReplaySampler(), ReplayRenderer(frames), playout, stats, late_frame_s=30.0)
    pipeline.start()
    try:
        audio, voice = np.zeros(8 * SAMPLES_PER_FRAME, np.float32), np.zeros(8 * 1920, np.float32)
        pipeline.push_audio(audio, voice, time.monotonic())
        queued = []
        for _ in range(200):
            queued = playout.queued_before(1 << 30)
            if len(queued) == 8:
                break
            time.sleep(0.01)
    finally:
        pipeline.stop()
    assert [f.index for f in queued] == list(range(8))
    for frame in queued:
        assert np.array_equal(frame.video, expected[frame.index % len(frames)])


def test_a_call_to_a_floor_server_receives_the_loops_pictures(resources, loops, speech_wav):
    """End to end: a real caller gets 25 frames a second, each a decoded picture of the loop (VP8 and back)."""
    pictures = load_frames(loops["rgb"]).astype(np.float64)  # what the yuv420p loop shows
    received: list[np.ndarray] = []

    async def body() -> dict:
        async with AvatarClient(thread.ws_url) as client:
            await client.call(FileMicrophone(speech_wav, lead_silence_s=0.5), on_frame=lambda f, t: received.append(f))
            await client.wait_first_frame()
            await asyncio.sleep(3.0)
            stats = await client.stats()
            await client.hangup()
            return stats

    config = ServerConfig(port=0, max_sessions=1, replay_frames=loops["yuv"])
    with ServerThread(config, resources) as thread:
        stats = asyncio.run(asyncio.wait_for(body(), 60))
    assert stats["counts"]["frames_rendered"] >= 60 and len(received) >= 70
    errors = [[np.mean((f.astype(np.float64) - p) ** 2) for p in pictures] for f in received[-25:]]
    psnr = 10 * np.log10(255.0 ** 2 / max(np.median([min(e) for e in errors]), 1e-9))
    assert psnr > 30, psnr
    assert {int(np.argmin(e)) for e in errors} == set(range(len(pictures)))  # the whole loop, in turn


def test_the_bench_refuses_an_unknown_floor(capsys):
    from benchmarks.floor import parse_floor
    from benchmarks.run import main

    assert parse_floor("off, rgb,yuv") == ("off", "rgb", "yuv")
    assert main(["--sessions", "4", "--floor", "gpu"]) == 2
    assert "--floor takes off, rgb, yuv" in capsys.readouterr().err
