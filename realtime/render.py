"""Offline rendering: the live pipeline minus WebRTC (speech/audio → motion → frames → mp4), built from the same
assembly (`realtime.assembly`) as the server."""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from realtime.config import AvatarConfig
from realtime.media import load_audio, resample
from realtime.vocab import FPS, MODEL_RATE, SAMPLES_PER_FRAME, MotionSequence

RENDER_BATCH = 8


@dataclass
class RenderJob:
    out: Path
    text: str | None = None
    audio: Path | None = None
    image: Path | None = None
    instruction: str | None = None
    intensity: float | None = None
    seed: int = 0
    teacher: bool = False  # procedural animator (needs --text: it reads exact phoneme timings)
    voice: str = "en-us"
    progress: bool = True
    threads: int | None = None  # torch CPU threads; None = the config's [worker] threads
    config: AvatarConfig = field(default_factory=AvatarConfig)  # sampler, renderer and worker settings


@dataclass
class RenderResult:
    out: Path
    frames: int
    motion_source: str
    instruction: str | None
    programs: list[tuple[str, float]] = field(default_factory=list)
    similarity: float | None = None
    nearest: str | None = None
    wording: str | None = None  # what the generator was given for the instruction (its encoder's rewording)
    motion: MotionSequence | None = None

    def summary(self) -> str:
        lines = [f"wrote {self.out}: {self.frames} frames ({self.frames / FPS:.2f} s) at {FPS} fps, "
                 f"motion from the {self.motion_source}"]
        if self.instruction:
            if self.programs:
                chosen = ", ".join(f"{name} ({intensity:.2f})" for name, intensity in self.programs)
                lines.append(f'instruction "{self.instruction}" → {chosen}'
                             f' (nearest "{self.nearest}", similarity {self.similarity:.2f})')
            elif self.wording == "":  # the generator learned none of it: the sampler performs it on top
                lines.append(f'instruction "{self.instruction}" performed on top of the generator\'s talking motion')
            elif self.wording is None or self.wording == self.instruction:
                lines.append(f'instruction "{self.instruction}" given to the generator as written')
            else:
                lines.append(f'instruction "{self.instruction}" given to the generator as "{self.wording}"')
        return "\n".join(lines)


def _teacher_motion(job: RenderJob, parts, speech, n_frames: int, result: RenderResult) -> MotionSequence:
    from realtime.animate import Animator, AnimatorConfig

    programs: list[tuple[str, float]] = []
    if job.instruction:
        from realtime.instruct import ProgramMatcher

        matcher = getattr(parts.encoder, "matcher", None) or ProgramMatcher(parts.encoder).setup()
        match = matcher(job.instruction)
        programs = [(name, job.intensity if job.intensity is not None else level)
                    for name, level in match.programs]
        result.programs, result.similarity, result.nearest = programs, match.similarity, match.nearest_text
    return Animator(AnimatorConfig())(speech, n_frames, programs=programs, seed=job.seed)


def generator_motion(parts, audio16k: np.ndarray, instruction: str | None, intensity: float | None = None,
                     seed: int = 0, progress: bool = False) -> MotionSequence:
    """The learned generator's motion for 16 kHz audio, as `render` makes it (benchmarks call this too, so
    what they measure is what `avatar render` shows)."""
    from realtime.animate import perform_program
    from realtime.motion.sampler import generate

    intensity = 1.0 if intensity is None else intensity
    return generate(parts.model, parts.encoder, audio16k, instruction, intensity, seed=seed,
                    config=parts.config.sampler, progress=progress, performer=perform_program)


def padded(audio16k: np.ndarray) -> np.ndarray:
    """Audio padded to a whole number of video frames (ceil(samples / 640) frames)."""
    n_frames = max(1, int(np.ceil(len(audio16k) / SAMPLES_PER_FRAME)))
    return np.pad(audio16k, (0, n_frames * SAMPLES_PER_FRAME - len(audio16k)))


def render(job: RenderJob) -> RenderResult:
    import torch
    from tqdm import tqdm

    from realtime.assembly import AvatarParts
    from realtime.media import VideoWriter

    if job.text is None and job.audio is None:
        raise ValueError("give --text or --audio")
    if job.teacher and job.text is None:
        raise ValueError("the procedural animator (--teacher) needs --text: it reads exact phoneme timings")
    if not str(job.out).lower().endswith(".mp4"):
        raise ValueError(f"output must be an .mp4 file, got {job.out}")
    torch.manual_seed(job.seed)
    # the teacher needs no generator: a missing checkpoint only matters to the generator's path
    config = job.config.replace("server", image=job.image, allow_untrained=job.teacher or None)
    config = config.replace("worker", threads=job.threads)
    parts = AvatarParts.load(config)  # fails fast on a bad image before any synthesis

    speech = None
    if job.text is not None:
        from realtime.speech import Espeak

        espeak = Espeak()
        espeak.setup()
        speech = espeak(job.text, voice=job.voice)
        audio16k = resample(speech.audio, speech.sample_rate, MODEL_RATE)
    else:
        audio16k = load_audio(job.audio)
    audio16k = padded(audio16k)
    n_frames = len(audio16k) // SAMPLES_PER_FRAME

    result = RenderResult(out=job.out, frames=n_frames, motion_source="", instruction=job.instruction)
    if job.teacher:
        result.motion_source = "procedural animator"
        motion = _teacher_motion(job, parts, speech, n_frames, result)
    else:
        result.motion_source = "learned generator"
        motion = generator_motion(parts, audio16k, job.instruction, job.intensity, job.seed, job.progress)
        wording = getattr(parts.encoder, "wording", None)
        result.wording = wording(job.instruction) if job.instruction and wording else None
    values = motion.values[:n_frames]
    result.motion = MotionSequence(values)

    renderer = parts.renderer()
    writer = VideoWriter(job.out)
    with tqdm(total=n_frames, unit="frame", desc="render", disable=not job.progress) as bar:
        for start in range(0, n_frames, RENDER_BATCH):
            frames = renderer(values[start:start + RENDER_BATCH])
            writer.write(np.asarray(frames))
            bar.update(len(frames))
    writer.close(audio16k, MODEL_RATE)
    return result
