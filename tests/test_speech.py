"""espeak-ng through libespeak-ng: real audio with real phoneme timings."""
import threading

import numpy as np
import pytest

from realtime.speech import PAUSE, Espeak, SpeechError


def _envelope(speech, window_s=0.01):
    """RMS over a sliding window, one value per sample."""
    w = int(window_s * speech.sample_rate)
    return np.sqrt(np.convolve(speech.audio ** 2, np.ones(w) / w, mode="same"))


def _rms(speech, start, end):
    seg = speech.audio[int(start * speech.sample_rate):int(end * speech.sample_rate)]
    return float(np.sqrt(np.mean(seg ** 2))) if len(seg) else 0.0


def test_phoneme_events_are_real_and_ordered(espeak):
    speech = espeak("Hello there. Maybe tomorrow.")
    assert speech.sample_rate == 22050 and speech.audio.dtype == np.float32 and speech.audio.ndim == 1
    assert 1.0 < speech.duration < 4.0
    assert np.sqrt(np.mean(speech.audio ** 2)) > 0.02
    phonemes = speech.phonemes
    assert [p.start for p in phonemes] == sorted(p.start for p in phonemes)
    # they tile the audio: each ends where the next begins, from 0 to the end
    assert phonemes[0].start == 0.0 and abs(phonemes[-1].end - speech.duration) < 1e-6
    assert all(abs(a.end - b.start) < 1e-9 for a, b in zip(phonemes, phonemes[1:]))
    spoken = [p for p in phonemes if p.symbol != PAUSE]
    assert all(0.02 <= p.end - p.start <= 0.5 for p in spoken)
    assert 8 < len(spoken) / sum(p.end - p.start for p in spoken) < 20  # phonemes per second of speech
    symbols = [p.symbol for p in phonemes]
    assert symbols[symbols.index("m"):symbols.index("m") + 4] == ["m", "eI", "b", "i:"]
    assert sum(p.word_start for p in phonemes) == 4


def test_stress_comes_from_the_transcription(espeak):
    speech = espeak("Maybe tomorrow.")
    stressed = [p.symbol for p in speech.phonemes if p.stress == 2]
    assert stressed == ["eI", "A:"]  # MAY-be to-MOR-row
    assert all(p.stress == 0 for p in speech.phonemes if p.symbol in ("m", "b", "t", "r", "@"))


def test_stops_are_silent_and_vowels_start_when_espeak_says(espeak):
    """Energy onsets in the audio line up with the phoneme events: a stop's closure is quiet, the following
    vowel's energy rises within a few ms of its event."""
    speech = espeak("a pa, ta, ka. ba da ga.")
    env, rate = _envelope(speech), speech.sample_rate
    pairs = [(a, b) for a, b in zip(speech.phonemes, speech.phonemes[1:])
             if a.symbol in ("p", "t", "k", "b", "d", "g") and b.symbol == "A:"]
    assert len(pairs) == 6
    for stop, vowel in pairs:
        loud = np.median(env[int(vowel.start * rate):int(vowel.end * rate)])
        closure = env[int(stop.start * rate):int((stop.end - 0.01) * rate)]
        assert closure.mean() < 0.35 * loud, f"/{stop.symbol}/ at {stop.start:.3f}s is not a closure"
        if stop.symbol in ("b", "d", "g"):
            continue  # voiced stops hum through their closure (voice bar): no clean onset to time
        after = env[int(stop.start * rate):]
        onset = stop.start + np.flatnonzero(after > 0.5 * loud)[0] / rate
        assert abs(onset - vowel.start) < 0.025, f"vowel after /{stop.symbol}/: {onset:.3f}s vs {vowel.start:.3f}s"


def test_pauses_are_silent_and_represented(espeak):
    speech = espeak("Ah, ah. Ah.")
    vowels = [p for p in speech.phonemes if p.symbol.startswith("A")]
    pauses = [p for p in speech.phonemes if p.symbol == PAUSE and p.end - p.start > 0.1]
    assert len(vowels) == 3 and len(pauses) >= 3  # comma, full stop, end
    assert min(_rms(speech, v.start, v.end) for v in vowels) > 10 * max(
        _rms(speech, p.start + 0.02, p.end) for p in pauses)
    comma, full_stop = pauses[0], pauses[1]
    assert full_stop.end - full_stop.start > comma.end - comma.start  # sentence ends pause longer


def test_rate_and_voice_change_the_speech(espeak):
    slow = espeak("This sentence is spoken at two speeds.", rate=120)
    fast = espeak("This sentence is spoken at two speeds.", rate=240)
    assert slow.duration > 1.5 * fast.duration
    variant = Espeak.variants()[0]
    other = espeak("This sentence is spoken at two speeds.", variant=variant, rate=240)
    assert [p.symbol for p in other.phonemes if p.symbol != PAUSE] == \
        [p.symbol for p in fast.phonemes if p.symbol != PAUSE]
    assert not np.array_equal(other.audio[:len(fast.audio)], fast.audio[:len(other.audio)])


def test_concurrent_calls_are_serialised():
    espeak = Espeak(cache_size=0).setup()
    texts = ["One two three four.", "Five six seven eight."]
    expected = [espeak(t) for t in texts]
    results: dict[int, list] = {0: [], 1: []}

    def speak(k):
        for _ in range(3):
            results[k].append(espeak(texts[k]))

    threads = [threading.Thread(target=speak, args=(k,)) for k in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for k in range(2):  # espeak-ng itself varies by a few samples from call to call, not more
        for speech in results[k]:
            assert [p.symbol for p in speech.phonemes] == [p.symbol for p in expected[k].phonemes]
            assert abs(speech.duration - expected[k].duration) < 0.005
            starts = np.array([p.start for p in speech.phonemes])
            assert np.abs(starts - [p.start for p in expected[k].phonemes]).max() < 0.005


def test_asking_again_gives_the_same_speech(espeak):
    first = espeak("Same text, same speech.", rate=170)
    first.audio[:] = 0  # a caller scribbling on its copy does not change the next answer
    again = espeak("Same text, same speech.", rate=170)
    fresh = Espeak(cache_size=0)("Same text, same speech.", rate=170)
    assert np.abs(again.audio).max() > 0.1 and again.phonemes == espeak("Same text, same speech.", rate=170).phonemes
    assert [p.symbol for p in fresh.phonemes] == [p.symbol for p in again.phonemes]


def test_bad_input_is_refused(espeak):
    with pytest.raises(SpeechError, match="empty"):
        espeak("   ")
    with pytest.raises(SpeechError, match="pronounce"):
        espeak("...")
    with pytest.raises(SpeechError, match="voice"):
        espeak("hello", voice="no-such-voice")
    with pytest.raises(SpeechError, match="rate"):
        espeak("hello", rate=10)
    assert len(Espeak.variants()) > 10
