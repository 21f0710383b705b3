"""The procedural animator: visemes with coarticulation, programs, idle life, determinism."""
import numpy as np
import pytest

from realtime.animate import PROGRAMS, Animator, Viseme, viseme_labels, viseme_of
from realtime.motion.space import FPS, INDEX
from realtime.speech import Espeak


@pytest.fixture(scope="module")
def espeak():
    return Espeak().setup()


def _frames(speech):
    return int(np.ceil(speech.duration * FPS))


def _bilabial_frames(speech, lead=0.08):
    """The frames showing each /p b m/ (the mouth leads the sound by `lead`)."""
    return [max(0, int(round((0.5 * (p.start + p.end) - lead) * FPS))) for p in speech.phonemes
            if viseme_of(p.symbol) is Viseme.BILABIAL]


@pytest.mark.parametrize("programs", [[], [("happy", 1.0)], [("surprised", 1.0)]])
def test_lips_close_on_m_even_with_an_emotion(espeak, programs):
    speech = espeak("Mama made my money, maybe.")
    motion = Animator()(speech, _frames(speech), programs=programs, seed=0)
    frames = _bilabial_frames(speech)
    assert len(frames) >= 5
    for f in frames:
        window = motion.axis("lips_close")[max(0, f - 1):f + 2]
        assert window.max() >= 0.99, f"lips not closed at /m/ frame {f}"
        assert motion.axis("jaw_open")[max(0, f - 1):f + 2].min() < 0.05


def test_jaw_opens_on_open_vowels(espeak):
    speech = espeak("Father, ah.")
    motion = Animator()(speech, _frames(speech), seed=0)
    assert motion.axis("jaw_open").max() > 0.5
    labels = viseme_labels(speech.phonemes, _frames(speech))
    assert (labels == Viseme.OPEN).sum() >= 3


def test_lips_lead_the_sound(espeak):
    speech = espeak("a ma")
    motion = Animator()(speech, _frames(speech), seed=0)
    m = [p for p in speech.phonemes if p.symbol == "m"][0]
    close = motion.axis("lips_close")
    # the first frame of full closure comes before the acoustic start of /m/, by 40–120 ms
    first_closed = next(i for i in range(int(0.1 * FPS), len(close)) if close[i] >= 0.99)
    lead = m.start - first_closed / FPS
    assert 0.0 < lead <= 0.12 + 1 / FPS


def test_silence_rests_closed_and_still(espeak):
    speech = espeak("Hello.")
    n = _frames(speech) + 3 * FPS  # three seconds of silence after speaking
    motion = Animator()(speech, n, seed=0)
    tail = motion.values[-2 * FPS:]
    assert tail[:, INDEX["lips_close"]].min() > 0.99
    assert tail[:, INDEX["jaw_open"]].max() < 0.02
    assert np.abs(np.diff(tail[:, INDEX["jaw_open"]])).max() < 0.01


@pytest.mark.parametrize("name", sorted(PROGRAMS))
def test_every_program_moves_the_axes_it_claims(name):
    program = PROGRAMS[name]
    base = Animator()(None, 150, programs=[], seed=5).values
    moved = Animator()(None, 150, programs=[(name, 1.0)], seed=5).values
    delta = moved - base
    for axis, sign in program.claims.items():
        d = delta[:, INDEX[axis]]
        if program.mode == "gesture" and axis in ("head_pitch", "head_yaw"):
            assert np.abs(d).max() > 4.0, f"{name} does not oscillate {axis}"
        elif axis == "lips_close" and sign < 0:  # opens the lips that rest closed in silence
            assert d.min() < -0.3, f"{name} does not part the lips"
        else:
            assert (sign * d).max() > 0.15 * max(1.0, abs(program.apex.get(axis, 1.0))), f"{name}: {axis}"
    untouched = [a for a in ("lips_close", "jaw_open") if a not in program.claims]
    for axis in untouched:
        assert np.abs(delta[:, INDEX[axis]]).max() < 1e-6, f"{name} moves {axis} without claiming it"


def test_emotion_intensity_scales(espeak):
    strong = Animator()(None, 100, programs=[("sad", 1.0)], seed=1).axis("brow_inner_up")[-20:].mean()
    slight = Animator()(None, 100, programs=[("sad", 0.35)], seed=1).axis("brow_inner_up")[-20:].mean()
    assert strong > 2 * slight > 0.1


def test_idle_blinks_at_a_natural_rate():
    motion = Animator()(None, 60 * FPS, seed=11)
    closed = motion.axis("blink_left") > 0.5
    onsets = np.flatnonzero(np.diff(closed.astype(int)) == 1)
    assert 8 <= len(onsets) <= 22
    lengths = np.flatnonzero(np.diff(closed.astype(int)) == -1) - onsets[: len(np.flatnonzero(np.diff(closed.astype(int)) == -1))]
    assert lengths.max() / FPS <= 0.3


def test_close_eyes_overrides_blinks_and_transitions_are_smooth():
    anim = Animator()
    motion = anim.animate_segments(None, 200, [(0, [("close_eyes", 1.0)]), (100, [("happy", 1.0)])], seed=2)
    assert motion.axis("blink_left")[30:100].min() > 0.95
    assert motion.axis("smile")[-10:].mean() > 0.5
    assert np.abs(np.diff(motion.axis("smile"))).max() < 0.2


def test_deterministic_per_seed(espeak):
    speech = espeak("Same seed, same motion.")
    a = Animator()(speech, None, programs=[("nod", 0.7)], seed=3).values
    b = Animator()(speech, None, programs=[("nod", 0.7)], seed=3).values
    c = Animator()(speech, None, programs=[("nod", 0.7)], seed=4).values
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)
