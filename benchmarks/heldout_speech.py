"""Speech nobody tuned for: real human recordings (every offline source of
`realtime.training.corpus.human_speech`) cut to start speaking at once, in clean, telephone-band, noisy,
reverberant and telephone-with-line-noise versions; and espeak-ng sentences written for this evaluation (not
from the training corpus's sentence generator, asserted in `check_sentences`).

Each clip carries its clean audio's voiced mask (degradations do not move the words, and a noisy clip's
energy says nothing about where the speaker paused) and the /p b m/ times: exact for espeak-ng, for real
speech located by DTW of the recording against espeak-ng's rendering of its transcript
(`benchmarks.eval_generator.bilabial_times`), on the clean audio.
"""
from __future__ import annotations

import subprocess
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from realtime.vocab import MODEL_RATE, SAMPLES_PER_FRAME

# Written for this evaluation: many /p b m/, pauses at commas, no lead-in. Not from realtime/training/corpus.
SENTENCES = (
    "Maybe both of my brothers baked plum pies, but mum prefers apple bread.",
    "Bring me the map, please. My boat promptly broke, somewhere past Bombay.",
    "Pam, the bombastic umpire, mumbled amid a puzzled mob.",
    "Imagine a humble bumblebee, bobbing by my window, humming.",
)
CONDITIONS = ("clean", "telephone", "noise15", "reverb", "telephone_noise")
GAP_S = (0.15, 0.3, 0.45)  # pauses between concatenated words or phrases (a 150 ms pause must close too)
TAIL_S = 0.6  # silence after the last word: the mouth must close there


@dataclass
class Clip:
    name: str
    source: str  # "espeak-ng", "cmu-arctic", "alsa-utils", "klettres-en", ...
    audio: np.ndarray  # clean, 16 kHz, starts speaking within 20 ms
    voiced: np.ndarray  # (frames,) bool, from the clean audio
    bilabials: list[tuple[float, float]] = field(default_factory=list)  # seconds
    text: str = ""
    first: int = 0  # samples of the first word or phrase (no pause inside)

    @property
    def frames(self) -> int:
        return len(self.audio) // SAMPLES_PER_FRAME


def frame_db(audio: np.ndarray) -> np.ndarray:
    """Energy of each 40 ms video frame in dB."""
    n = len(audio) // SAMPLES_PER_FRAME
    frames = audio[: n * SAMPLES_PER_FRAME].reshape(n, SAMPLES_PER_FRAME)
    return 10 * np.log10((frames.astype(np.float64) ** 2).mean(1) + 1e-10)


def voiced_mask(audio: np.ndarray) -> np.ndarray:
    db = frame_db(audio)
    return db > db.max() - 30


def trim(audio: np.ndarray) -> np.ndarray:
    """Cut the lead-in and trailing silence: the clip starts speaking at once."""
    hop = MODEL_RATE // 100
    n = len(audio) // hop
    db = 10 * np.log10((audio[: n * hop].reshape(n, hop).astype(np.float64) ** 2).mean(1) + 1e-10)
    loud = np.flatnonzero(db > db.max() - 30)
    return audio[loud[0] * hop: (loud[-1] + 1) * hop] if len(loud) else audio


def _finish(name: str, source: str, pieces: list[np.ndarray], texts: list[str], aligner) -> Clip:
    """Concatenate trimmed pieces with pauses, add the tail, align each piece's /p b m/."""
    parts, bilabials, t = [], [], 0.0
    for k, (piece, text) in enumerate(zip(pieces, texts)):
        if k:
            gap = np.zeros(int(GAP_S[k % len(GAP_S)] * MODEL_RATE), np.float32)
            parts.append(gap)
            t += len(gap) / MODEL_RATE
        bilabials += [(t + a, t + b) for a, b in aligner(piece, text)]
        parts.append(piece)
        t += len(piece) / MODEL_RATE
    parts.append(np.zeros(int(TAIL_S * MODEL_RATE), np.float32))
    from realtime.render import padded

    audio = padded(np.concatenate(parts).astype(np.float32))
    return Clip(name, source, audio, voiced_mask(audio), bilabials, " | ".join(texts), len(pieces[0]))


COLD_S = 0.8  # the stretch of speech compared: the first 0.8 s, said again after a pause


def cold_start_clip(clip: Clip) -> tuple[Clip, int]:
    """The clip's first 0.8 s of speech, a 0.45 s pause, the same audio again and a tail: the mouth at the
    start of a stream against the mouth on the same sounds once the stream runs. Returns the clip and the
    frame where the repeat starts."""
    from realtime.render import padded

    head = clip.audio[: min(clip.first, int(COLD_S * MODEL_RATE))]
    gap = np.zeros(int(0.45 * MODEL_RATE) // SAMPLES_PER_FRAME * SAMPLES_PER_FRAME - len(head) % SAMPLES_PER_FRAME
                   + SAMPLES_PER_FRAME, np.float32)
    audio = padded(np.concatenate([head, gap, head, np.zeros(int(TAIL_S * MODEL_RATE), np.float32)]))
    repeat = (len(head) + len(gap)) // SAMPLES_PER_FRAME
    return Clip(clip.name + "-cold", clip.source, audio, voiced_mask(audio), [], clip.text, len(head)), repeat


def human_clips(aligner, quick: bool) -> list[Clip]:
    """One clip per source: CMU ARCTIC's read sentence, the ALSA phrases and each KLettres voice's words (and, in
    the full set, its letters B, M and P), concatenated with pauses."""
    from realtime.media import load_audio
    from realtime.training.corpus.human_speech import recordings

    by_source: dict[str, list] = {}
    for rec in recordings():
        by_source.setdefault(rec.source, []).append(rec)
    words_per_clip = 4 if quick else 8
    clips = []
    for source, recs in sorted(by_source.items()):
        if source.startswith("klettres"):  # words, then letters: words give syllables to compare
            # words with /p b m/ first (closures to judge), then other words, then letters
            recs = sorted(recs, key=lambda r: (len(r.text) < 3, not set(r.text.lower()) & set("pbm"), r.path.name))
            words = [r for r in recs if len(r.text) > 1][:words_per_clip] or recs[:words_per_clip]
            if not quick:  # and the letters B, M, P: the few offline recordings hold few real /p b m/ to judge
                words += [r for r in recs if len(r.text) == 1 and r.text.lower() in "bmp"]
            recs = words
        else:
            recs = recs[:words_per_clip]
        pieces = [trim(load_audio(r.path)) for r in recs]
        clips.append(_finish(source, source, pieces, [r.text for r in recs], aligner))
    return clips


def espeak_clips(espeak, quick: bool) -> list[Clip]:
    """`render --text` speech: espeak-ng's audio and exact phoneme times (no alignment needed)."""
    from realtime.animate import viseme_of
    from realtime.media import resample
    from realtime.vocab import Viseme

    clips = []
    for k, text in enumerate(SENTENCES[: 2 if quick else len(SENTENCES)]):
        speech = espeak(text, voice="en-us")
        audio = resample(speech.audio, speech.sample_rate, MODEL_RATE)
        bilabials = [(p.start, p.end) for p in speech.phonemes if viseme_of(p.symbol) is Viseme.BILABIAL]
        clips.append(_finish(f"espeak-{k}", "espeak-ng", [audio], [text], lambda *_, b=bilabials: b))
    return clips


def check_sentences() -> None:
    """None of SENTENCES is a sentence the training corpus can hold (its templates at the corpus builder's
    count and seed, and the licence prose)."""
    from realtime.training.corpus.sentences import all_sentences

    corpus = {" ".join(s.text.lower().split()) for s in all_sentences()}
    for text in SENTENCES:
        assert " ".join(text.lower().split()) not in corpus, f"{text!r} is a training-corpus sentence"


def _sox(audio: np.ndarray, effect: list[str]) -> np.ndarray:
    import soundfile as sf

    with tempfile.TemporaryDirectory() as tmp:
        src, dst = Path(tmp) / "in.wav", Path(tmp) / "out.wav"
        sf.write(src, audio, MODEL_RATE, subtype="FLOAT")
        subprocess.run(["sox", str(src), "-r", str(MODEL_RATE), str(dst), *effect], check=True, capture_output=True)
        out, _ = sf.read(dst, dtype="float32")
    return np.pad(out, (0, max(0, len(audio) - len(out))))[: len(audio)]


def _noise(audio: np.ndarray, voiced: np.ndarray, snr_db: float, seed: int) -> np.ndarray:
    """Pink-ish noise (white through a one-pole low-pass) at `snr_db` under the voiced frames' power."""
    from scipy.signal import lfilter

    pink = lfilter([0.3], [1, -0.7], np.random.default_rng(seed).standard_normal(len(audio)))
    frames = np.repeat(voiced, SAMPLES_PER_FRAME)[: len(audio)]
    speech_power = float((audio[: len(frames)][frames] ** 2).mean()) if frames.any() else 1e-4
    pink *= np.sqrt(speech_power / (pink ** 2).mean() / 10 ** (snr_db / 10))
    return (audio + pink).astype(np.float32)


def degrade(clip: Clip, condition: str, seed: int = 0) -> np.ndarray:
    """The clip's audio as heard through `condition`."""
    a = clip.audio
    if condition == "clean":
        return a
    if condition == "telephone":  # 8 kHz line, 300-3400 Hz
        from realtime.media import resample

        band = _sox(a, ["sinc", "300-3400"])
        return resample(resample(band, MODEL_RATE, 8000), 8000, MODEL_RATE)[: len(a)]
    if condition == "noise15":
        return _noise(a, clip.voiced, 15.0, seed)
    if condition == "reverb":
        return _sox(a, ["reverb", "50", "50", "80"])
    if condition == "telephone_noise":
        return _noise(degrade(clip, "telephone"), clip.voiced, 20.0, seed + 1)
    raise ValueError(condition)
