"""espeak-ng through libespeak-ng: real audio with real phoneme timings."""
import numpy as np
import pytest

from realtime.speech import PAUSE, Espeak, SpeechError


@pytest.fixture(scope="module")
def espeak():
    return Espeak().setup()


def test_phoneme_events_are_real_and_ordered(espeak):
    speech = espeak("Hello there. Maybe tomorrow.")
    assert speech.sample_rate == 22050
    assert 1.0 < speech.duration < 4.0
    assert np.sqrt(np.mean(speech.audio ** 2)) > 0.02
    starts = [p.start for p in speech.phonemes]
    assert starts == sorted(starts)
    assert all(p.end > p.start for p in speech.phonemes)
    symbols = [p.symbol for p in speech.phonemes]
    assert "m" in symbols and "h" in symbols and PAUSE in symbols


def test_timings_line_up_with_the_audio(espeak):
    """Silence where espeak says pause, sound where it says a vowel."""
    speech = espeak("Ah. Ah.")
    rate = speech.sample_rate
    def rms(p):
        seg = speech.audio[int(p.start * rate):int(p.end * rate)]
        return float(np.sqrt(np.mean(seg ** 2))) if len(seg) else 0.0
    vowels = [p for p in speech.phonemes if p.symbol.startswith("A")]
    pauses = [p for p in speech.phonemes if p.symbol == PAUSE and p.end - p.start > 0.1]
    assert vowels and pauses
    assert min(rms(v) for v in vowels) > 10 * max(rms(p) for p in pauses)


def test_rate_changes_duration(espeak):
    slow = espeak("This sentence is spoken at two speeds.", rate=120)
    fast = espeak("This sentence is spoken at two speeds.", rate=240)
    assert slow.duration > 1.5 * fast.duration


def test_bad_input_is_refused(espeak):
    with pytest.raises(SpeechError, match="empty"):
        espeak("   ")
    with pytest.raises(SpeechError, match="voice"):
        espeak("hello", voice="no-such-voice")
    assert len(Espeak.variants()) > 10
