"""Speech synthesis with exact phoneme timings (espeak-ng)."""
from realtime.speech.espeak import PAUSE, Espeak, Phoneme, Speech, SpeechError

__all__ = ["PAUSE", "Espeak", "Phoneme", "Speech", "SpeechError"]
