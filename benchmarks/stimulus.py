"""Microphone input for the benchmarks: isolated syllables with sharp onsets after silence, and running speech.

Syllables come from espeak-ng (the Debian command line), trimmed so that the first sample above a small
threshold is the acoustic onset; the stimulus places them after 1-1.5 s of silence, so every onset starts
from a mouth at rest and can be found again in the returned pixels.
"""
from __future__ import annotations

import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from realtime.media import load_audio
from realtime.vocab import WEBRTC_AUDIO_RATE as RATE  # what a microphone sends over WebRTC

SYLLABLES = ("pa", "ba", "ma", "ah")
SPEECH = ("Hello there. My name is Eileen, and I would like to talk to you about the moon, the stars and "
          "some beautiful music. Maybe we can meet tomorrow at the park, or have a cup of coffee together.")


class StimulusError(RuntimeError):
    """espeak-ng is missing or produced no audio."""


def espeak(text: str, voice: str = "en-us", words_per_minute: int = 150) -> np.ndarray:
    """Text -> mono float32 at 48 kHz through the espeak-ng command line."""
    with tempfile.TemporaryDirectory() as folder:
        wav = Path(folder) / "speech.wav"
        try:
            subprocess.run(["espeak-ng", "-v", voice, "-s", str(words_per_minute), "-w", str(wav), text],
                           check=True, capture_output=True)
        except (OSError, subprocess.CalledProcessError) as exc:
            raise StimulusError(f"espeak-ng could not synthesise {text!r}: {exc}") from exc
        return load_audio(wav, target=RATE)


def trim(audio: np.ndarray, threshold: float = 0.02) -> np.ndarray:
    """Cut leading and trailing silence: the result starts at the first sample above threshold x peak."""
    loud = np.flatnonzero(np.abs(audio) > threshold * np.abs(audio).max())
    if not len(loud):
        raise StimulusError("the synthesised syllable is silent")
    return audio[loud[0]: loud[-1] + 1]


@dataclass
class OnsetStimulus:
    audio: np.ndarray  # mono float32 at RATE
    onsets_s: np.ndarray  # acoustic onset of every syllable, seconds from the start of `audio`
    labels: list[str]

    @property
    def duration_s(self) -> float:
        return len(self.audio) / RATE

    def save(self, path: str | Path) -> Path:
        import soundfile

        soundfile.write(str(path), self.audio, RATE, subtype="PCM_16")
        return Path(path)


def onset_stimulus(n_onsets: int, gap_s: tuple[float, float] = (1.0, 1.5), lead_s: float = 2.0,
                   tail_s: float = 1.5, seed: int = 0) -> OnsetStimulus:
    """`n_onsets` syllables (pa, ba, ma, ah in turn), each after a random gap of silence in `gap_s`."""
    if n_onsets < 1:
        raise ValueError(f"n_onsets must be >= 1, got {n_onsets}")
    rng = np.random.default_rng(seed)
    sounds = {}
    for syllable in SYLLABLES:
        sound = trim(espeak(syllable))
        sounds[syllable] = (0.5 / np.abs(sound).max()) * sound
    pieces, onsets, labels = [np.zeros(int(lead_s * RATE), np.float32)], [], []
    position = len(pieces[0])
    for i in range(n_onsets):
        if i:
            gap = np.zeros(int(rng.uniform(*gap_s) * RATE), np.float32)
            pieces.append(gap)
            position += len(gap)
        label = SYLLABLES[i % len(SYLLABLES)]
        onsets.append(position / RATE)
        labels.append(label)
        pieces.append(sounds[label].astype(np.float32))
        position += len(sounds[label])
    pieces.append(np.zeros(int(tail_s * RATE), np.float32))
    return OnsetStimulus(np.concatenate(pieces), np.asarray(onsets), labels)


def running_speech(seconds: float) -> np.ndarray:
    """Continuous speech (a looped paragraph with short pauses) of at least `seconds`."""
    speech = np.concatenate([espeak(SPEECH), np.zeros(int(0.3 * RATE), np.float32)])
    repeats = int(np.ceil(seconds * RATE / len(speech)))
    return np.tile(speech, max(1, repeats))
