"""espeak-ng speech with exact phoneme timings, through libespeak-ng's synthesis events (ctypes)."""
from __future__ import annotations

import ctypes
import ctypes.util
import threading
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

# espeak_ng API constants (speak_lib.h)
_AUDIO_OUTPUT_SYNCHRONOUS = 2
_INITIALIZE_PHONEME_EVENTS = 0x0001
_INITIALIZE_DONT_EXIT = 0x8000
_CHARS_UTF8 = 1
_ENDPAUSE = 0x1000
_EVENT_WORD, _EVENT_END, _EVENT_MSG_TERMINATED, _EVENT_PHONEME = 1, 5, 6, 7
_PARAM_RATE, _PARAM_PITCH = 1, 3
PAUSE = "_"  # the symbol used for silences between and around words


class SpeechError(RuntimeError):
    """Speech could not be synthesised (no library, empty text, unknown voice)."""


class _EventId(ctypes.Union):
    _fields_ = [("number", ctypes.c_int), ("name", ctypes.c_char_p), ("string", ctypes.c_char * 8)]


class _Event(ctypes.Structure):
    _fields_ = [("type", ctypes.c_int), ("unique_identifier", ctypes.c_uint), ("text_position", ctypes.c_int),
                ("length", ctypes.c_int), ("audio_position", ctypes.c_int), ("sample", ctypes.c_int),
                ("user_data", ctypes.c_void_p), ("id", _EventId)]


_SynthCallback = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.POINTER(ctypes.c_short), ctypes.c_int,
                                  ctypes.POINTER(_Event))


@dataclass(frozen=True)
class Phoneme:
    symbol: str  # espeak mnemonic ("m", "eI", "_" for a pause)
    start: float  # seconds from the start of the audio
    end: float
    stress: int = 0  # 1 for the vowel of a stressed syllable (longer/louder than its word's other vowels)
    word_start: bool = False


@dataclass
class Speech:
    text: str
    audio: np.ndarray  # float32 mono in [-1, 1]
    sample_rate: int
    phonemes: list[Phoneme] = field(default_factory=list)

    @property
    def duration(self) -> float:
        return len(self.audio) / self.sample_rate


def _find_library() -> str:
    name = ctypes.util.find_library("espeak-ng")
    for candidate in (name, "libespeak-ng.so.1", "/usr/lib/x86_64-linux-gnu/libespeak-ng.so.1",
                      "/usr/lib/aarch64-linux-gnu/libespeak-ng.so.1"):
        if candidate:
            try:
                ctypes.CDLL(candidate)
                return candidate
            except OSError:
                continue
    raise SpeechError("libespeak-ng is not installed: apt install espeak-ng libespeak-ng1")


class Espeak:
    """One synthesiser per process (libespeak-ng is a singleton and not thread-safe: calls are serialised)."""

    _lock = threading.Lock()
    _lib: ctypes.CDLL | None = None
    _rate = 0

    def setup(self) -> "Espeak":
        with Espeak._lock:
            if Espeak._lib is None:
                lib = ctypes.CDLL(_find_library())
                lib.espeak_Initialize.restype = ctypes.c_int
                lib.espeak_Initialize.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_char_p, ctypes.c_int]
                rate = lib.espeak_Initialize(_AUDIO_OUTPUT_SYNCHRONOUS, 0, None,
                                             _INITIALIZE_PHONEME_EVENTS | _INITIALIZE_DONT_EXIT)
                if rate <= 0:
                    raise SpeechError("espeak-ng failed to initialise (is espeak-ng-data installed?)")
                lib.espeak_Synth.argtypes = [ctypes.c_char_p, ctypes.c_size_t, ctypes.c_uint, ctypes.c_int,
                                             ctypes.c_uint, ctypes.c_uint, ctypes.c_void_p, ctypes.c_void_p]
                lib.espeak_SetVoiceByName.argtypes = [ctypes.c_char_p]
                lib.espeak_SetParameter.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_int]
                Espeak._lib, Espeak._rate = lib, rate
        return self

    @staticmethod
    def variants() -> list[str]:
        """Voice variants (`en-us+NAME`) shipped in espeak-ng-data/voices/!v."""
        for root in (Path("/usr/lib/x86_64-linux-gnu/espeak-ng-data"), Path("/usr/share/espeak-ng-data"),
                     Path("/usr/lib/aarch64-linux-gnu/espeak-ng-data")):
            folder = root / "voices" / "!v"
            if folder.is_dir():
                return sorted(p.name for p in folder.iterdir() if p.is_file())
        return []

    def __call__(self, text: str, voice: str = "en-us", variant: str | None = None, rate: int = 160,
                 pitch: int = 50) -> Speech:
        if not text or not text.strip():
            raise SpeechError("nothing to say: the text is empty")
        if self._lib is None:
            self.setup()
        lib = self._lib
        name = f"{voice}+{variant}" if variant else voice
        chunks: list[np.ndarray] = []
        events: list[tuple[int, int, str]] = []  # (type, audio_position ms, phoneme mnemonic)

        def on_synth(wav, count, event_ptr) -> int:
            if count > 0:
                chunks.append(np.ctypeslib.as_array(wav, shape=(count,)).copy())
            i = 0
            while event_ptr[i].type != 0:  # LIST_TERMINATED
                e = event_ptr[i]
                if e.type in (_EVENT_PHONEME, _EVENT_WORD):
                    symbol = e.id.string.decode("utf-8", "replace") if e.type == _EVENT_PHONEME else ""
                    events.append((e.type, e.audio_position, symbol))
                i += 1
            return 0

        callback = _SynthCallback(on_synth)
        data = text.encode("utf-8")
        with Espeak._lock:
            if lib.espeak_SetVoiceByName(name.encode()) != 0:
                raise SpeechError(f"unknown espeak-ng voice {name!r}")
            lib.espeak_SetParameter(_PARAM_RATE, int(rate), 0)
            lib.espeak_SetParameter(_PARAM_PITCH, int(pitch), 0)
            lib.espeak_SetSynthCallback(callback)
            status = lib.espeak_Synth(data, len(data) + 1, 0, 1, 0, _CHARS_UTF8 | _ENDPAUSE, None, None)
        if status != 0 or not chunks:
            raise SpeechError(f"espeak-ng could not synthesise {text!r} (status {status})")
        audio = (np.concatenate(chunks).astype(np.float32) / 32768.0)
        return Speech(text=text, audio=audio, sample_rate=self._rate,
                      phonemes=_phonemes(events, len(audio) / self._rate))


def _phonemes(events: list[tuple[int, int, str]], duration: float) -> list[Phoneme]:
    """Phoneme events → intervals; each phoneme ends where the next begins; gaps become pauses."""
    starts: list[tuple[float, str, bool]] = []
    word_start = False
    for kind, position_ms, symbol in events:
        if kind == _EVENT_WORD:
            word_start = True
            continue
        symbol = symbol.strip()
        if not symbol:
            continue
        starts.append((position_ms / 1000.0, PAUSE if symbol.startswith("_") else symbol, word_start))
        word_start = False
    phonemes: list[Phoneme] = []
    for i, (start, symbol, first) in enumerate(starts):
        end = starts[i + 1][0] if i + 1 < len(starts) else duration
        if end <= start:
            continue
        if phonemes and phonemes[-1].symbol == PAUSE and symbol == PAUSE:  # merge runs of pauses
            phonemes[-1] = Phoneme(PAUSE, phonemes[-1].start, end)
            continue
        phonemes.append(Phoneme(symbol, start, end, 0, first))
    if phonemes and phonemes[0].start > 0:
        phonemes.insert(0, Phoneme(PAUSE, 0.0, phonemes[0].start))
    return _mark_stress(phonemes)


def _mark_stress(phonemes: list[Phoneme]) -> list[Phoneme]:
    """Mark the longest vowel of each word as stressed (espeak lengthens stressed vowels)."""
    from realtime.animate.visemes import is_vowel

    out = list(phonemes)
    word: list[int] = []
    for i, p in enumerate(phonemes + [Phoneme(PAUSE, 0, 0, 0, True)]):
        if p.word_start or p.symbol == PAUSE:
            vowels = [j for j in word if is_vowel(phonemes[j].symbol)]
            if vowels:
                j = max(vowels, key=lambda k: phonemes[k].end - phonemes[k].start)
                q = phonemes[j]
                out[j] = Phoneme(q.symbol, q.start, q.end, 1, q.word_start)
            word = []
        if p.symbol != PAUSE:
            word.append(i)
    return out
