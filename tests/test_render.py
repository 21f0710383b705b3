"""`avatar render` end to end: real speech, real rendering, a real mp4 read back with PyAV."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import av
import numpy as np
import pytest

from realtime.render import RenderJob, render

TEXT = "Mama made my money."


def _probe(path: Path) -> dict:
    with av.open(str(path)) as container:
        video = container.streams.video[0]
        fps = float(video.average_rate)
        frames = [f.to_ndarray(format="rgb24") for f in container.decode(video)]
    with av.open(str(path)) as container:
        audio = container.streams.audio[0]
        rate = audio.codec_context.sample_rate
        samples = np.concatenate([f.to_ndarray().reshape(-1) for f in container.decode(audio)])
    return {"fps": fps, "frames": np.stack(frames), "audio": samples, "rate": rate}


@pytest.fixture(scope="module")
def teacher_clip(tmp_path_factory) -> tuple[Path, object]:
    out = tmp_path_factory.mktemp("render") / "clip.mp4"
    result = render(RenderJob(out=out, text=TEXT, instruction="look a little annoyed", teacher=True, seed=3,
                              progress=False))
    return out, result


def test_mp4_has_fps_size_duration_and_audio(teacher_clip):
    out, result = teacher_clip
    info = _probe(out)
    assert info["fps"] == 25
    assert info["frames"].shape[1:] == (512, 512, 3)
    assert len(info["frames"]) == result.frames
    audio_seconds = len(info["audio"]) / info["rate"]
    assert abs(audio_seconds - result.frames / 25) < 0.1
    assert np.sqrt(np.mean(info["audio"] ** 2)) > 0.01  # the speech is really there


def test_instruction_is_matched_to_a_program(teacher_clip):
    _, result = teacher_clip
    assert [name for name, _ in result.programs] == ["angry"]
    assert result.programs[0][1] < 0.5  # "a little"
    assert "angry" in result.summary()


def test_teacher_render_is_deterministic_per_seed(teacher_clip, tmp_path):
    _, first = teacher_clip
    again = render(RenderJob(out=tmp_path / "again.mp4", text=TEXT, instruction="look a little annoyed",
                             teacher=True, seed=3, progress=False))
    other = render(RenderJob(out=tmp_path / "other.mp4", text=TEXT, instruction="look a little annoyed",
                             teacher=True, seed=4, progress=False))
    np.testing.assert_array_equal(first.motion.values, again.motion.values)
    assert not np.array_equal(first.motion.values, other.motion.values)


def test_generator_render_says_what_the_instruction_was_read_as(tmp_path):
    """A situation to react to reaches the generator as its emotion's plain wording, and the summary says so."""
    result = render(RenderJob(out=tmp_path / "gen.mp4", text="Well, look at that.", progress=False,
                              instruction="react as if a stranger cut in front of you in the queue"))
    assert result.motion_source == "learned generator"
    assert result.wording and result.wording != result.instruction and "ang" in result.wording
    assert f'as "{result.wording}"' in result.summary()


def _cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "realtime", *args], capture_output=True, text=True, timeout=300)


def test_cli_refuses_bad_inputs_clearly(tmp_path):
    not_image = tmp_path / "notes.png"
    not_image.write_text("this is not a picture")
    bad = _cli("render", "--text", "hi", "--teacher", "--image", str(not_image), "-o", str(tmp_path / "x.mp4"))
    assert bad.returncode == 2 and "image" in bad.stderr.lower()
    nonsense = _cli("render", "--text", "hi", "--teacher", "--instruction", "compile the linux kernel",
                    "-o", str(tmp_path / "y.mp4"))
    assert nonsense.returncode == 2 and "instruction" in nonsense.stderr.lower()
    assert not (tmp_path / "y.mp4").exists()
    intensity = _cli("render", "--text", "hi", "--intensity", "3", "-o", str(tmp_path / "z.mp4"))
    assert intensity.returncode == 2 and "intensity" in intensity.stderr


def test_animated_speech_closes_and_opens_the_rendered_mouth(teacher_clip):
    """The teacher's /m/ closures and open vowels, read back by dlib from the rendered frames."""
    from realtime.animate import Animator, viseme_of
    from realtime.avatar import DlibLandmarkDetector, RenderConfig, Renderer, enrol
    from realtime.speech import Espeak
    from realtime.vocab import Viseme

    speech = Espeak().setup()("Mama, papa, ah.")
    motion = Animator()(speech, None, seed=0)
    lead = 0.08
    closures = sorted({max(0, int(round((0.5 * (p.start + p.end) - lead) * 25))) for p in speech.phonemes
                       if viseme_of(p.symbol) is Viseme.BILABIAL})
    jaw = motion.axis("jaw_open")
    opens = [int(np.argmax(jaw))]
    portrait = enrol(None)
    frames = Renderer(portrait, RenderConfig()).setup()(motion.values[closures + opens]).numpy()
    detector = DlibLandmarkDetector()

    def gap(frame) -> float:
        lm = max(detector(frame), key=lambda f: f.score).landmarks
        return float((lm[[65, 66, 67], 1] - lm[[63, 62, 61], 1]).mean() / portrait.iod)

    rest = gap(portrait.image)  # she was photographed smiling with parted lips (about 0.15 IOD)
    gaps = [gap(f) for f in frames]
    # dlib reads closed smiling lips as slightly apart (~0.05 IOD), so compare with the photograph's own gap
    assert max(gaps[:-1]) < 0.5 * rest, f"lips not closed on /m p/: {gaps[:-1]} (rest {rest:.3f})"
    assert gaps[-1] > rest + 0.1, f"jaw not open on /a/: {gaps[-1]} (rest {rest:.3f})"
