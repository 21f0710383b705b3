"""`avatar annotate` round trip: render known motion to an mp4, annotate it, recover motion and instruction."""
from __future__ import annotations

import json

import numpy as np
import pytest

from realtime.media.video import write_video
from realtime.training.annotate import AnnotateConfig, Annotator, VideoError, annotate_videos, decode_video, main
from realtime.training.corpus.format import Corpus
from realtime.vocab import DIM, INDEX, SAMPLES_PER_FRAME

FRAMES = 100
pytestmark = pytest.mark.slow  # renders and annotates two clips end to end (~20 s of CPU)


def _ramp(n: int, start: int, length: int, rise: int = 5) -> np.ndarray:
    """0 before `start`, smooth rise over `rise` frames, hold for `length`, smooth fall."""
    t = np.arange(n, dtype=np.float32)
    up = np.clip((t - start) / rise, 0, 1)
    down = np.clip((start + rise + length + rise - t) / rise, 0, 1)
    return (0.5 - 0.5 * np.cos(np.pi * np.minimum(up, down))).astype(np.float32)


def _known_motion() -> np.ndarray:
    """Neutral start (enrolment), then talking jaw, two blinks, a smile, a head turn and back, and a frown."""
    m = np.zeros((FRAMES, DIM), np.float32)
    t = np.arange(FRAMES)
    m[:, INDEX["jaw_open"]] = np.where(t >= 8, 0.25 + 0.25 * np.sin(t / 2.0), 0.0) * _ramp(FRAMES, 6, 88, 3)
    for start in (20, 70):
        m[:, INDEX["blink_left"]] += _ramp(FRAMES, start, 1, 2)
        m[:, INDEX["blink_right"]] += _ramp(FRAMES, start, 1, 2)
    m[:, INDEX["smile"]] = 0.8 * _ramp(FRAMES, 15, 25, 6)
    m[:, INDEX["frown"]] = 0.9 * _ramp(FRAMES, 55, 25, 6)
    m[:, INDEX["head_yaw"]] = 12.0 * _ramp(FRAMES, 30, 20, 8)
    m[:, INDEX["head_pitch"]] = -8.0 * _ramp(FRAMES, 60, 15, 8)
    return m


def _brows_motion() -> np.ndarray:
    # 0.8 of a full raise, held while talking
    m = np.zeros((FRAMES, DIM), np.float32)
    raise_ = 0.8 * _ramp(FRAMES, 10, FRAMES, 8)
    m[:, INDEX["brow_inner_up"]] = raise_
    m[:, INDEX["brow_outer_up"]] = raise_
    m[:, INDEX["jaw_open"]] = np.where(np.arange(FRAMES) > 10, 0.2 + 0.15 * np.sin(np.arange(FRAMES) / 2.0), 0.0)
    return m


@pytest.fixture(scope="module")
def rendered(tmp_path_factory):
    from realtime.avatar import RenderConfig, Renderer, enrol

    portrait = enrol()
    renderer = Renderer(portrait, RenderConfig(device="cpu"))
    renderer.setup()
    folder = tmp_path_factory.mktemp("videos")
    rng = np.random.default_rng(0)
    clips = {}
    for name, motion in (("mixed", _known_motion()), ("brows", _brows_motion())):
        frames = np.asarray(renderer(motion))
        audio = (0.1 * rng.standard_normal(FRAMES * SAMPLES_PER_FRAME)).astype(np.float32)
        write_video(folder / f"{name}.mp4", [frames], audio=audio)
        clips[name] = (folder / f"{name}.mp4", motion, audio)
    return folder, clips


@pytest.fixture(scope="module")
def annotator():
    return Annotator(AnnotateConfig()).setup()


def test_decode_gives_25_fps_frames_and_16k_audio(rendered):
    _, clips = rendered
    path, motion, audio = clips["mixed"]
    video = decode_video(path)
    assert video.frames.shape == (FRAMES, 512, 512, 3) and video.fps == 25
    assert abs(len(video.audio) - len(audio)) < 2048  # AAC pads the last packet
    assert np.corrcoef(video.audio[:16000], audio[:16000])[0, 1] > 0.9


def test_round_trip_recovers_motion(rendered, annotator):
    _, clips = rendered
    path, truth, _ = clips["mixed"]
    result = annotator(path)
    assert result.detected == 1.0 and result.motion.shape == (FRAMES, DIM)
    got = result.motion
    errors = {}
    for axis, tolerance in (("jaw_open", 0.12), ("smile", 0.2), ("frown", 0.25), ("head_yaw", 2.5),
                            ("head_pitch", 2.5)):
        k = INDEX[axis]
        errors[axis] = float(np.abs(got[:, k] - truth[:, k]).mean())
        assert errors[axis] < tolerance, (axis, errors)
        assert np.corrcoef(got[:, k], truth[:, k])[0, 1] > 0.8, axis
    blink = (got[:, INDEX["blink_left"]] + got[:, INDEX["blink_right"]]) / 2
    assert blink[[21, 22, 71, 72]].max() > 0.5 and np.median(blink) < 0.15  # both blinks seen, eyes open otherwise


def test_round_trip_describes_raised_eyebrows(rendered, annotator):
    _, clips = rendered
    path, truth, _ = clips["brows"]
    result = annotator(path)
    got = result.motion
    for axis in ("brow_inner_up", "brow_outer_up"):
        assert abs(np.median(got[40:, INDEX[axis]]) - 0.8) < 0.3, axis
    assert np.median(got[40:, INDEX["brow_down"]]) < 0.15
    item = result.items[0]
    names = [name for name, _ in item.programs]
    assert "raise_eyebrows" in names or "surprised" in names, item
    assert "brow" in item.instruction.lower() or "surprise" in item.instruction.lower(), item.instruction


def test_cli_writes_a_corpus_and_summary(rendered, tmp_path):
    folder, clips = rendered
    out = tmp_path / "annotated"
    assert main([str(folder), "-o", str(out), "--quiet"]) == 0
    corpus = Corpus(out)
    assert len(corpus) == 2
    summary = json.loads((out / "summary.json").read_text())
    assert [v["path"].endswith(".mp4") for v in summary["videos"]] == [True, True]
    for item in corpus:
        assert item.frames == FRAMES and len(item.audio) == FRAMES * SAMPLES_PER_FRAME
        assert (item.visemes == -1).all()
    assert any(item.instruction for item in corpus)


def test_bad_inputs_are_refused(tmp_path, annotator):
    with pytest.raises(VideoError, match="not found"):
        annotator(tmp_path / "missing.mp4")
    (tmp_path / "notes.mp4").write_text("not a video")
    with pytest.raises(VideoError, match="not a readable video"):
        annotator(tmp_path / "notes.mp4")
    faceless = np.full((30, 128, 128, 3), 120, np.uint8)
    write_video(tmp_path / "wall.mp4", [faceless])
    with pytest.raises(VideoError, match="face was found in only 0%"):
        annotator(tmp_path / "wall.mp4")
    (tmp_path / "empty").mkdir()
    with pytest.raises(VideoError, match="no video files"):
        annotate_videos(tmp_path / "empty", tmp_path / "x")
