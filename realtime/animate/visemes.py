"""Phonemes → visemes → mouth motion with coarticulation (dominance blending, lips leading the sound)."""
from __future__ import annotations

from enum import IntEnum

import numpy as np

from realtime.motion.space import DIM, FPS, INDEX


class Viseme(IntEnum):
    SIL = 0  # silence / pause: lips rest closed
    BILABIAL = 1  # p b m: full closure
    LABIODENTAL = 2  # f v: lower lip to the upper teeth
    DENTAL = 3  # T D (th)
    ALVEOLAR = 4  # t d n s z l
    POSTALVEOLAR = 5  # S Z tS dZ: slightly rounded, protruded
    VELAR = 6  # k g N h
    R = 7  # r and r-coloured vowels
    W = 8  # w: tight rounding
    OPEN = 9  # a A aI aU: jaw drops
    MID = 10  # e E @ V 3 eI: half open
    SPREAD = 11  # i I j: spread lips
    ROUNDED = 12  # u U oU O 0 OI: rounded vowels


MOUTH_AXES = ("jaw_open", "lips_close", "lip_press", "lip_funnel", "lip_pucker", "lower_lip_tuck",
              "mouth_stretch")

# Targets on the mouth axes; `lips_close` 1 means the portrait's parted lips meet.
TARGETS: dict[Viseme, dict[str, float]] = {
    Viseme.SIL: {"lips_close": 1.0},
    Viseme.BILABIAL: {"lips_close": 1.0, "lip_press": 0.6},
    Viseme.LABIODENTAL: {"lower_lip_tuck": 1.0, "jaw_open": 0.08, "lips_close": 0.4},
    Viseme.DENTAL: {"jaw_open": 0.18, "lips_close": 0.2},
    Viseme.ALVEOLAR: {"jaw_open": 0.14, "lips_close": 0.45, "mouth_stretch": 0.2},
    Viseme.POSTALVEOLAR: {"jaw_open": 0.14, "lip_funnel": 0.6, "lips_close": 0.3},
    Viseme.VELAR: {"jaw_open": 0.22, "lips_close": 0.2},
    Viseme.R: {"jaw_open": 0.2, "lip_funnel": 0.45},
    Viseme.W: {"jaw_open": 0.05, "lip_pucker": 0.8, "lip_funnel": 0.5, "lips_close": 0.3},
    Viseme.OPEN: {"jaw_open": 0.75},
    Viseme.MID: {"jaw_open": 0.45, "mouth_stretch": 0.2},
    Viseme.SPREAD: {"jaw_open": 0.2, "mouth_stretch": 0.7},
    Viseme.ROUNDED: {"jaw_open": 0.35, "lip_funnel": 0.8, "lip_pucker": 0.3},
}

# How strongly a viseme holds its lips/jaw against its neighbours (Cohen–Massaro dominance).
LIP_DOMINANCE = {Viseme.BILABIAL: 3.0, Viseme.LABIODENTAL: 3.0, Viseme.W: 3.0, Viseme.ROUNDED: 2.5,
                 Viseme.POSTALVEOLAR: 2.5, Viseme.SIL: 2.0}
JAW_DOMINANCE = {Viseme.OPEN: 3.0, Viseme.MID: 2.0, Viseme.ROUNDED: 2.0, Viseme.SIL: 2.0, Viseme.BILABIAL: 3.0}
LIP_AXES = {"lips_close", "lip_press", "lip_funnel", "lip_pucker", "lower_lip_tuck", "mouth_stretch"}

_CONSONANTS = {
    "p": Viseme.BILABIAL, "b": Viseme.BILABIAL, "m": Viseme.BILABIAL,
    "f": Viseme.LABIODENTAL, "v": Viseme.LABIODENTAL,
    "T": Viseme.DENTAL, "D": Viseme.DENTAL,
    "t": Viseme.ALVEOLAR, "d": Viseme.ALVEOLAR, "n": Viseme.ALVEOLAR, "s": Viseme.ALVEOLAR,
    "z": Viseme.ALVEOLAR, "l": Viseme.ALVEOLAR, "t#": Viseme.ALVEOLAR, "d#": Viseme.ALVEOLAR,
    "S": Viseme.POSTALVEOLAR, "Z": Viseme.POSTALVEOLAR, "tS": Viseme.POSTALVEOLAR, "dZ": Viseme.POSTALVEOLAR,
    "k": Viseme.VELAR, "g": Viseme.VELAR, "N": Viseme.VELAR, "h": Viseme.VELAR, "x": Viseme.VELAR,
    "?": Viseme.VELAR, "r": Viseme.R, "r-": Viseme.R, "w": Viseme.W, "j": Viseme.SPREAD,
}
_VOWEL_PREFIXES = [  # longest prefixes first
    ("aI", Viseme.OPEN), ("aU", Viseme.OPEN), ("OI", Viseme.ROUNDED), ("oU", Viseme.ROUNDED),
    ("eI", Viseme.MID), ("3", Viseme.R), ("a", Viseme.OPEN), ("A", Viseme.OPEN), ("0", Viseme.ROUNDED),
    ("O", Viseme.ROUNDED), ("o", Viseme.ROUNDED), ("u", Viseme.ROUNDED), ("U", Viseme.ROUNDED),
    ("i", Viseme.SPREAD), ("I", Viseme.SPREAD), ("e", Viseme.MID), ("E", Viseme.MID), ("@", Viseme.MID),
    ("V", Viseme.MID), ("y", Viseme.ROUNDED), ("Y", Viseme.ROUNDED),
]
PAUSE_SYMBOLS = {"_", "_:", "_!", "_^_", ""}


def is_vowel(symbol: str) -> bool:
    return any(symbol.startswith(prefix) for prefix, _ in _VOWEL_PREFIXES) and symbol not in _CONSONANTS


def viseme_of(symbol: str) -> Viseme:
    symbol = symbol.strip().lstrip("'\",%=")
    if symbol.startswith("_") or symbol in PAUSE_SYMBOLS:
        return Viseme.SIL
    if symbol in _CONSONANTS:
        return _CONSONANTS[symbol]
    for prefix, viseme in _VOWEL_PREFIXES:
        if symbol.startswith(prefix):
            return viseme
    if symbol[:1] in _CONSONANTS:
        return _CONSONANTS[symbol[:1]]
    return Viseme.MID


def _frame_times(n_frames: int, fps: int) -> np.ndarray:
    return np.arange(n_frames, dtype=np.float64) / fps


def viseme_labels(phonemes, n_frames: int, fps: int = FPS) -> np.ndarray:
    """The viseme class sounding at each frame's acoustic time (no lead): targets for an audio classifier."""
    labels = np.full(n_frames, int(Viseme.SIL), dtype=np.int8)
    times = _frame_times(n_frames, fps) + 0.5 / fps
    for p in phonemes:
        sel = (times >= p.start) & (times < p.end)
        labels[sel] = int(viseme_of(p.symbol))
    return labels


def viseme_track(phonemes, n_frames: int, fps: int = FPS, lead: float = 0.08,
                 long_pause: float = 0.15) -> tuple[np.ndarray, np.ndarray]:
    """Mouth motion for a phoneme sequence.

    Returns (motion (n_frames, DIM), bilabial (n_frames,) in 0..1): the second says how strongly a /p b m/
    closure holds at each frame, so that later layers (emotions) cannot open lips that must be shut.
    Frame i shows the mouth of the sound at time i/fps + lead: the lips move ahead of the audio.
    """
    motion = np.zeros((n_frames, DIM), dtype=np.float32)
    bilabial = np.zeros(n_frames, dtype=np.float32)
    t = _frame_times(n_frames, fps) + lead
    units = [(p, viseme_of(p.symbol)) for p in phonemes]
    if not units:
        motion[:, INDEX["lips_close"]] = 1.0
        return motion, bilabial
    num = np.zeros((n_frames, len(MOUTH_AXES)))
    den = np.zeros((n_frames, len(MOUTH_AXES)))
    for p, v in units:
        duration = max(p.end - p.start, 1e-3)
        centre = 0.5 * (p.start + p.end)
        # Long pauses spread their closed target widely; short pauses barely register.
        if v is Viseme.SIL and duration < long_pause:
            continue
        width = max(duration * 0.5, 0.035)
        falloff = np.exp(-np.maximum(np.abs(t - centre) - width, 0.0) / 0.03)
        for k, axis in enumerate(MOUTH_AXES):
            strength = (LIP_DOMINANCE if axis in LIP_AXES else JAW_DOMINANCE).get(v, 1.0)
            d = strength * falloff
            num[:, k] += d * TARGETS[v].get(axis, 0.0)
            den[:, k] += d
    blended = np.where(den > 1e-6, num / np.maximum(den, 1e-6), 0.0)
    for k, axis in enumerate(MOUTH_AXES):
        motion[:, INDEX[axis]] = blended[:, k]
    # Far from any phoneme (leading/trailing silence not covered by pauses) the lips rest closed.
    far = den.max(axis=1) < 1e-3
    motion[far, INDEX["lips_close"]] = 1.0
    # /p b m/ always reach full closure, however short: force it at the frames nearest the closure.
    for p, v in units:
        if v is not Viseme.BILABIAL:
            continue
        lo, hi = p.start - lead, p.end - lead
        first = max(0, int(np.floor(lo * fps + 0.5)))  # a closure before frame 0 shows on frame 0
        last = max(first, int(np.floor(hi * fps - 0.5)))
        for i in range(first - 1, last + 2):
            if 0 <= i < n_frames:
                core = first <= i <= last
                bilabial[i] = max(bilabial[i], 1.0 if core else 0.5)
    return motion, bilabial
