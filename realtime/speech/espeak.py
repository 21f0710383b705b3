"""espeak-ng speech with exact phoneme timings, through libespeak-ng's synthesis events (ctypes).

    speech = Espeak().setup()("Mama made my money.", variant="Annie", rate=180)
    speech.audio          # float32 mono, 22 050 Hz
    speech.phonemes       # [Phoneme("_", 0.0, 0.012), Phoneme("m", 0.012, 0.10, 0, True), ...]

The timings are the synthesiser's own (phoneme events carry the sample position where each phoneme
starts), so they are exact for this audio, not a forced alignment. Phonemes tile the audio with no gaps:
silence (commas, sentence ends, the tail espeak adds) is a PAUSE phoneme. Stress comes from espeak-ng's
transcription of the same text (espeak_TextToPhonemes), aligned to the timed phonemes by symbol.
"""
from __future__ import annotations

import ctypes
import ctypes.util
import difflib
import threading
from collections import OrderedDict
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

# espeak_ng API constants (speak_lib.h)
_AUDIO_OUTPUT_SYNCHRONOUS = 2
_INITIALIZE_PHONEME_EVENTS = 0x0001
_INITIALIZE_DONT_EXIT = 0x8000
_CHARS_UTF8 = 1
_ENDPAUSE = 0x1000
_EVENT_WORD, _EVENT_PHONEME = 1, 7
_PARAM_RATE, _PARAM_PITCH = 1, 3
_PHONEME_SEPARATOR = ord("|") << 8  # espeak_TextToPhonemes: bits 8-23 hold a separator between phonemes
_STRESS_MARKS = {"'": 2, ",": 1}
_RATE_RANGE, _PITCH_RANGE = (80, 450), (0, 99)
ESPEAK_RATE = 22050  # Hz: libespeak-ng synthesises at this rate (setup() reads the library's own)
_CACHE_SAMPLES = 300 * ESPEAK_RATE  # remember at most ~5 minutes of audio (~26 MB)
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
    stress: int = 0  # on vowels: 2 primary, 1 secondary, 0 unstressed (from espeak-ng's own transcription)
    word_start: bool = False  # first phoneme of a word


@dataclass
class Speech:
    text: str
    audio: np.ndarray  # float32 mono in [-1, 1]
    sample_rate: int = ESPEAK_RATE
    phonemes: list[Phoneme] = field(default_factory=list)  # cover the audio end to end; gaps are PAUSE

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
    """One synthesiser per process (libespeak-ng is a singleton and not thread-safe: calls are serialised).

    libespeak-ng carries pitch-flutter state from one call to the next, so the same text synthesised twice in a
    process differs by a millisecond here and there. Recent results are therefore remembered (`cache_size`
    requests, process-wide like the library): asking again gives the same Speech, so that a seed reproduces a
    video exactly. `cache_size=0` always synthesises afresh.
    """

    _lock = threading.Lock()
    _lib: ctypes.CDLL | None = None
    _rate = 0
    _cache: OrderedDict[tuple, Speech] = OrderedDict()

    def __init__(self, cache_size: int = 64):
        self.cache_size = cache_size

    def setup(self) -> Espeak:
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
                lib.espeak_TextToPhonemes.restype = ctypes.c_char_p
                lib.espeak_TextToPhonemes.argtypes = [ctypes.POINTER(ctypes.c_void_p), ctypes.c_int, ctypes.c_int]
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
        """Synthesise `text`; rate in words per minute (80-450), pitch 0-99."""
        if not text or not text.strip():
            raise SpeechError("nothing to say: the text is empty")
        if not _RATE_RANGE[0] <= rate <= _RATE_RANGE[1]:
            raise SpeechError(f"rate {rate} words/min is outside espeak-ng's range {_RATE_RANGE}")
        if not _PITCH_RANGE[0] <= pitch <= _PITCH_RANGE[1]:
            raise SpeechError(f"pitch {pitch} is outside espeak-ng's range {_PITCH_RANGE}")
        key = (text, voice, variant, int(rate), int(pitch))
        with Espeak._lock:
            if self.cache_size > 0 and key in Espeak._cache:
                Espeak._cache.move_to_end(key)
                return _copy(Espeak._cache[key])
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

        callback = _SynthCallback(on_synth)  # kept alive by this frame for the whole synthesis
        data = text.encode("utf-8")
        with Espeak._lock:
            if lib.espeak_SetVoiceByName(name.encode()) != 0:
                raise SpeechError(f"unknown espeak-ng voice {name!r} (voices: espeak-ng --voices; "
                                  f"variants: Espeak.variants())")
            lib.espeak_SetParameter(_PARAM_RATE, int(rate), 0)
            lib.espeak_SetParameter(_PARAM_PITCH, int(pitch), 0)
            lib.espeak_SetSynthCallback(callback)
            status = lib.espeak_Synth(data, len(data) + 1, 0, 1, 0, _CHARS_UTF8 | _ENDPAUSE, None, None)
            transcription = _transcribe(lib, data)
        if status != 0 or not chunks:
            raise SpeechError(f"espeak-ng could not synthesise {text!r} (status {status})")
        audio = np.concatenate(chunks).astype(np.float32) / 32768.0
        phonemes = _phonemes(events, len(audio) / self._rate)
        if all(p.symbol == PAUSE for p in phonemes):
            raise SpeechError(f"{text!r} has nothing espeak-ng can pronounce")
        speech = Speech(text=text, audio=audio, sample_rate=self._rate,
                        phonemes=_with_stress(phonemes, transcription))
        if self.cache_size > 0:
            with Espeak._lock:
                Espeak._cache[key] = speech
                while len(Espeak._cache) > self.cache_size or \
                        sum(len(c.audio) for c in Espeak._cache.values()) > _CACHE_SAMPLES:
                    Espeak._cache.popitem(last=False)
        return _copy(speech)


def _copy(speech: Speech) -> Speech:
    return replace(speech, audio=speech.audio.copy(), phonemes=list(speech.phonemes))


def _transcribe(lib: ctypes.CDLL, data: bytes) -> list[str]:
    """espeak-ng's phoneme transcription of the text, stress marks kept ("h", "@", "l", "'oU", ...)."""
    buffer = ctypes.create_string_buffer(data)
    pointer = ctypes.c_void_p(ctypes.addressof(buffer))
    symbols: list[str] = []
    while pointer.value:  # one clause per call; the library advances the pointer
        clause = lib.espeak_TextToPhonemes(ctypes.byref(pointer), _CHARS_UTF8, _PHONEME_SEPARATOR)
        if clause:
            symbols += [s for word in clause.decode("utf-8", "replace").split() for s in word.split("|") if s]
    return symbols


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
    if phonemes and phonemes[-1].end < duration:
        phonemes.append(Phoneme(PAUSE, phonemes[-1].end, duration))
    return phonemes


def _with_stress(phonemes: list[Phoneme], transcription: list[str]) -> list[Phoneme]:
    """Copy the stress marks of the transcription onto the timed phonemes (aligned by symbol: both come from
    the same translation, but the synthesiser may add, drop or merge a few phonemes)."""
    marked = [(s.lstrip("'\",%=_"), _STRESS_MARKS.get(s[0], 0)) for s in transcription]
    timed = [p.symbol for p in phonemes]
    matcher = difflib.SequenceMatcher(a=timed, b=[m[0] for m in marked], autojunk=False)
    out = list(phonemes)
    for block in matcher.get_matching_blocks():
        for k in range(block.size):
            stress = marked[block.b + k][1]
            if stress:
                p = out[block.a + k]
                out[block.a + k] = Phoneme(p.symbol, p.start, p.end, stress, p.word_start)
    return out
