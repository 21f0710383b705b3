"""Phonemes → visemes → mouth motion with coarticulation (dominance blending, lips leading the sound).

Each phoneme pulls the mouth axes towards its viseme's target with a dominance that is flat over the
phoneme and decays exponentially outside it (Cohen & Massaro 1993); the mouth at a time is the
dominance-weighted mean of all targets. Lip-heavy visemes (/p b m f v w/, rounding) dominate the lip axes, open
vowels dominate the jaw, so a short vowel between two /m/ barely opens. Frame i shows the articulation of the
sound at time i/fps + lead: the lips move ahead of the audio. /p b m/ are then forced to full closure.
Silence before, after, and in pauses longer than `long_pause` rests the lips closed (lips_close = 1: the
portrait was photographed with parted lips).
"""
from __future__ import annotations

import numpy as np

from realtime.vocab import DIM, FPS, INDEX, LIP_AXES, SPEECH_AXES, Viseme

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
LIP_DOMINANCE = {Viseme.BILABIAL: 2.0, Viseme.LABIODENTAL: 3.0, Viseme.W: 3.0, Viseme.ROUNDED: 2.5,
                 Viseme.POSTALVEOLAR: 2.5, Viseme.SIL: 2.0}
JAW_DOMINANCE = {Viseme.OPEN: 3.0, Viseme.MID: 2.0, Viseme.ROUNDED: 2.0, Viseme.SIL: 2.0}
# How far (s) a viseme's influence reaches outside its interval: consonants are brief gestures, vowels and
# silence spread further (the vowel-to-vowel jaw movement runs through the consonants between them).
DECAY_S = {Viseme.SIL: 0.05, Viseme.OPEN: 0.04, Viseme.MID: 0.04, Viseme.SPREAD: 0.04, Viseme.ROUNDED: 0.045}
CONSONANT_DECAY_S = 0.02

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
    ("a#", Viseme.MID), ("aI", Viseme.OPEN), ("aU", Viseme.OPEN), ("OI", Viseme.ROUNDED), ("oU", Viseme.ROUNDED),
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
    """The viseme class (`Viseme` id) sounding at the middle of each frame's audio, with no lead: targets for an
    audio classifier, and the reference for evaluation."""
    labels = np.full(n_frames, int(Viseme.SIL), dtype=np.int8)
    times = _frame_times(n_frames, fps) + 0.5 / fps
    for p in phonemes:
        sel = (times >= p.start) & (times < p.end)
        labels[sel] = int(viseme_of(p.symbol))
    return labels


def _units(phonemes, long_pause: float) -> list[tuple[float, float, Viseme, int]]:
    """(start, end, viseme, stress) with implicit silence before and after the speech; short pauses dropped so
    that their neighbours bridge them."""
    units = [(p.start, p.end, viseme_of(p.symbol), int(getattr(p, "stress", 0))) for p in phonemes
             if p.end > p.start]
    units = [u for u in units if u[2] is not Viseme.SIL or u[1] - u[0] >= long_pause]
    if not units:
        return []
    before, after = (units[0][0] - 1e3, units[0][0], Viseme.SIL, 0), (units[-1][1], units[-1][1] + 1e3, Viseme.SIL, 0)
    return [before] + units + [after]


def bilabial_closure(phonemes, n_frames: int, fps: int = FPS, lead: float = 0.08) -> np.ndarray:
    """How firmly the lips must be shut at each frame (0..1) for /p b m/: 1 on the frames that show the closure
    (its acoustic interval moved `lead` earlier; the nearest frame when it falls between frames). Later layers
    keep these frames closed whatever else they add."""
    closure = np.zeros(n_frames, dtype=np.float32)
    times = _frame_times(n_frames, fps)
    for p in phonemes:
        if viseme_of(p.symbol) is not Viseme.BILABIAL:
            continue
        lo, hi = p.start - lead, p.end - lead
        inside = np.flatnonzero((times >= lo) & (times <= hi))
        if not len(inside):
            inside = np.array([int(np.clip(round(0.5 * (lo + hi) * fps), 0, n_frames - 1))]) if n_frames else inside
        closure[inside] = 1.0
    return closure


def apply_closure(motion: np.ndarray, closure: np.ndarray) -> np.ndarray:
    """Shut the lips where `closure` says so: lips meet and press, the jaw and a tucked lip give way."""
    c = closure[:, None] if closure.ndim == 1 else closure
    out = motion.copy()
    out[:, INDEX["lips_close"]] = np.maximum(out[:, INDEX["lips_close"]], c[:, 0])
    out[:, INDEX["lip_press"]] = np.maximum(out[:, INDEX["lip_press"]], TARGETS[Viseme.BILABIAL]["lip_press"] * c[:, 0])
    for axis in ("jaw_open", "lower_lip_tuck", "lip_funnel"):
        out[:, INDEX[axis]] *= 1.0 - c[:, 0]
    return out


def viseme_track(phonemes, n_frames: int, fps: int = FPS, lead: float = 0.08, long_pause: float = 0.15,
                 subsamples: int = 5) -> np.ndarray:
    """Mouth motion (n_frames, DIM) float32 for a timed phoneme sequence; only the mouth axes move.

    Each frame averages `subsamples` instants over its 1/fps, so that phonemes shorter than a frame still
    leave a trace (and, as they should, do not reach their full target).
    """
    motion = np.zeros((n_frames, DIM), dtype=np.float32)
    units = _units(phonemes, long_pause)
    if not units or not n_frames:
        motion[:, INDEX["lips_close"]] = 1.0
        return motion
    offsets = (np.arange(subsamples) + 0.5) / subsamples - 0.5
    t = (_frame_times(n_frames, fps)[:, None] + offsets[None, :] / fps).ravel() + lead
    num = np.zeros((len(t), len(SPEECH_AXES)))
    den = np.zeros((len(t), len(SPEECH_AXES)))
    lip_axis = np.array([axis in LIP_AXES for axis in SPEECH_AXES])
    for start, end, v, stress in units:
        decay = DECAY_S.get(v, CONSONANT_DECAY_S)
        falloff = np.exp(-np.maximum(np.maximum(start - t, t - end), 0.0) / decay)
        target = np.array([TARGETS[v].get(axis, 0.0) for axis in SPEECH_AXES])
        if v in _VOWELS:  # stressed vowels open wider; unstressed ones are reduced
            target[0] *= 0.75 + 0.125 * min(stress, 2)
        strength = np.where(lip_axis, LIP_DOMINANCE.get(v, 1.0), JAW_DOMINANCE.get(v, 1.0))
        d = falloff[:, None] * strength[None, :]
        num += d * target[None, :]
        den += d
    blended = (num / np.maximum(den, 1e-12)).reshape(n_frames, subsamples, len(SPEECH_AXES)).mean(axis=1)
    for k, axis in enumerate(SPEECH_AXES):
        motion[:, INDEX[axis]] = blended[:, k]
    return apply_closure(motion, bilabial_closure(phonemes, n_frames, fps, lead))


_VOWELS = {Viseme.OPEN, Viseme.MID, Viseme.SPREAD, Viseme.ROUNDED}
