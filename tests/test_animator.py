"""The procedural animator: visemes with coarticulation, programs, idle life, determinism."""
import numpy as np
import pytest

from realtime.animate import (
    PROGRAMS,
    AnimationError,
    Animator,
    GestureStream,
    UnknownProgramError,
    animate_segments,
    program_track,
    viseme_labels,
    viseme_of,
    viseme_track,
)
from realtime.vocab import DIM, EMOTIONS, FPS, INDEX, MOTIONS, Viseme

CLOSURE_AXES = ("lips_close", "lip_press", "jaw_open")


@pytest.fixture(scope="module")
def mama(espeak):
    return espeak("Mama made my money, maybe.")


def _frames(speech):
    return int(np.ceil(speech.duration * FPS))


def _bilabials(speech):
    return [p for p in speech.phonemes if viseme_of(p.symbol) is Viseme.BILABIAL]


def _closure_frames(speech, lead=0.08):
    """For each /p b m/, the frames showing it (its acoustic interval moved `lead` earlier)."""
    times = np.arange(_frames(speech)) / FPS
    out = []
    for p in _bilabials(speech):
        inside = np.flatnonzero((times >= p.start - lead) & (times <= p.end - lead))
        out.append(inside if len(inside) else np.array([int(round((0.5 * (p.start + p.end) - lead) * FPS))]))
    return out


def test_the_exact_names_other_modules_use():
    assert set(EMOTIONS) == {"neutral", "happy", "sad", "angry", "surprised", "disgusted", "fearful", "contemptuous"}
    assert set(MOTIONS) == {"raise_eyebrows", "frown", "smile", "grin", "pout", "open_mouth_wide", "blink", "wink",
                            "close_eyes", "look_left", "look_right", "look_up", "look_down", "turn_head_left",
                            "turn_head_right", "tilt_head_left", "tilt_head_right", "nod", "shake_head"}


@pytest.mark.parametrize("programs", [[], [("happy", 1.0)], [("surprised", 1.0)], [("grin", 1.0)],
                                      [("open_mouth_wide", 1.0)], [("pout", 1.0), ("angry", 0.65)]])
def test_lips_close_on_every_m_even_with_an_expression(mama, programs):
    motion = Animator()(mama, None, programs=programs, seed=0)
    frames = _closure_frames(mama)
    assert len(frames) == 7  # MaMa Made My Money, MayBe
    for f in frames:
        assert motion.axis("lips_close")[f].min() >= 0.999, f"lips open at /p b m/ frames {f}"
        assert motion.axis("lip_press")[f].min() >= 0.5
        assert motion.axis("jaw_open")[f].max() < 0.01


def test_jaw_opens_on_open_vowels_and_not_on_closed_ones(espeak):
    speech = espeak("Father, ah.")
    motion = Animator()(speech, None, seed=0)
    labels = viseme_labels(speech.phonemes, len(motion))
    assert (labels == Viseme.OPEN).sum() >= 4
    jaw = motion.axis("jaw_open")
    assert jaw.max() > 0.6
    lead = int(round(0.08 * FPS))
    shown_open = labels[lead:] == Viseme.OPEN  # what the mouth shows leads the sound
    assert np.median(jaw[:-lead][shown_open]) > 0.5
    ee = Animator()(espeak("Eve, we see."), None, seed=0).axis("jaw_open")
    assert ee.max() < 0.35  # spread vowels open little


def test_lips_lead_the_sound(espeak):
    speech = espeak("ah ma ah ba ah pa ah ma")
    close = Animator()(speech, None, seed=0).axis("lips_close")
    leads = []
    for p in _bilabials(speech):
        window = np.arange(int((p.start - 0.2) * FPS), int(p.start * FPS) + 1)
        closed = window[close[window] >= 0.999]
        assert len(closed) and close[window[0]] < 0.9, f"no closure just before /{p.symbol}/ at {p.start:.2f}s"
        leads.append(p.start - closed[0] / FPS)  # the lips are shut this long before the sound of /m/
    assert len(leads) == 4 and all(0.04 <= lead <= 0.12 for lead in leads), leads


def test_short_phonemes_do_not_reach_their_targets(espeak):
    slow = Animator()(espeak("papa", rate=80), None, seed=0).axis("jaw_open").max()
    fast = Animator()(espeak("papa", rate=400), None, seed=0).axis("jaw_open").max()
    assert slow > 0.5 and fast < 0.8 * slow


def test_silence_rests_closed_and_still(espeak):
    speech = espeak("Hello. Maybe later.")
    pause = max((p for p in speech.phonemes if p.symbol == "_"), key=lambda p: p.end - p.start)
    n = _frames(speech) + 3 * FPS  # three more seconds of silence after speaking
    for programs in ([], [("happy", 1.0)]):
        motion = Animator()(speech, n, programs=programs, seed=0)
        tail = motion.values[-2 * FPS:]
        assert tail[:, INDEX["lips_close"]].min() > 0.99 and tail[:, INDEX["jaw_open"]].max() < 0.01
        for axis in ("jaw_open", "lips_close", "lip_funnel", "lip_pucker", "lower_lip_tuck", "mouth_stretch"):
            assert np.abs(np.diff(tail[:, INDEX[axis]])).max() < 1e-3
    # a mid-sentence pause also rests closed
    middle = int(((pause.start + pause.end) / 2 - 0.08) * FPS) if pause.end < speech.duration - 0.1 else None
    if middle is not None and pause.end - pause.start > 0.3:
        assert motion.axis("lips_close")[middle] > 0.95
    silent = Animator()(None, 100, seed=0)
    assert silent.axis("lips_close").min() == 1.0 and silent.axis("jaw_open").max() == 0.0


def test_viseme_track_only_moves_the_mouth(mama):
    track = viseme_track(mama.phonemes, _frames(mama))
    assert track.shape == (_frames(mama), DIM) and track.dtype == np.float32
    mouth = [INDEX[a] for a in ("jaw_open", "lips_close", "lip_press", "lip_funnel", "lip_pucker",
                                "lower_lip_tuck", "mouth_stretch")]
    others = np.delete(track, mouth, axis=1)
    assert np.abs(others).max() == 0.0


def test_viseme_labels_follow_the_acoustics(mama):
    labels = viseme_labels(mama.phonemes, _frames(mama))
    assert labels.dtype.kind == "i" and labels.min() >= 0 and labels.max() < len(Viseme)
    for p in _bilabials(mama):
        middle = int((p.start + p.end) / 2 * FPS)
        if p.end - p.start > 0.05:
            assert labels[middle] == Viseme.BILABIAL
    assert labels[-2] == Viseme.SIL


@pytest.mark.parametrize("name", sorted(PROGRAMS))
def test_every_program_moves_the_axes_it_claims_and_no_others(name):
    program = PROGRAMS[name]
    base = Animator()(None, 150, programs=[], seed=5).values
    moved = Animator()(None, 150, programs=[(name, 1.0)], seed=5).values
    delta = moved - base
    assert program.claims
    for axis, sign in program.claims.items():
        d = delta[:, INDEX[axis]]
        if program.mode == "gesture" and axis in ("head_pitch", "head_yaw"):
            assert np.abs(d).max() > 4.0, f"{name} does not swing {axis}"
        elif axis == "lips_close" and sign < 0:  # parts the lips that rest closed in silence
            assert d.min() < -0.3, f"{name} does not part the lips"
        else:
            assert (sign * d).max() > 0.15 * max(1.0, abs(program.apex.get(axis, 1.0))), f"{name}: {axis}"
    unclaimed = [a for a in INDEX if a not in program.claims]
    for axis in unclaimed:
        if axis in CLOSURE_AXES:
            assert np.abs(delta[:, INDEX[axis]]).max() < 1e-6, f"{name} moves {axis} without claiming it"
        elif axis not in ("blink_left", "blink_right"):  # an instructed eyelid may hide an idle blink
            assert np.abs(delta[:, INDEX[axis]]).max() < 1e-6, f"{name} moves {axis} without claiming it"


def test_emotion_intensity_levels_scale(espeak):
    def brow(intensity):
        return Animator()(None, 100, programs=[("sad", intensity)], seed=1).axis("brow_inner_up")[-20:].mean()

    assert brow(1.0) > brow(0.65) > brow(0.35) > 0.2
    assert abs(brow(1.0) / brow(0.35) - 1.0 / 0.35) < 0.5


def test_sad_and_angry_take_the_portraits_smile_away():
    for name in ("sad", "angry"):
        assert PROGRAMS[name].claims.get("frown") == 1


def test_onsets_are_smooth_and_nods_oscillate():
    rng = np.random.default_rng(0)
    smile = program_track("happy", 60, 1.0, rng)[:, INDEX["smile"]]
    assert smile[0] == 0.0 and 5 <= np.argmax(smile > 0.9 * smile.max()) <= 15  # 200-600 ms to the apex
    nod = program_track("nod", 75, 1.0, np.random.default_rng(0))[:, INDEX["head_pitch"]]
    first = nod[: int(2.0 * FPS)]
    peaks = [i for i in range(1, len(first) - 1) if first[i] > first[i - 1] and first[i] >= first[i + 1]
             and first[i] > 1.0]
    assert 2 <= len(peaks) <= 3 and first.max() > 5.0 and first.min() > -1.0  # down-and-up, damped
    assert nod[peaks[-1]] < nod[peaks[0]]


def test_gesture_blinks_and_winks_have_natural_lengths():
    blink = program_track("blink", 250, 1.0, np.random.default_rng(0))
    wink = program_track("wink", 250, 1.0, np.random.default_rng(0))
    closed = blink[:, INDEX["blink_left"]] > 0.05
    runs = np.diff(np.flatnonzero(np.diff(np.r_[0, closed.astype(int), 0])).reshape(-1, 2), axis=1).ravel()
    assert len(runs) >= 4 and all(2 <= r <= 7 for r in runs)
    assert wink[:, INDEX["blink_right"]].max() > 0.9 and wink[:, INDEX["blink_left"]].max() == 0.0


@pytest.mark.parametrize("name", ["nod", "shake_head", "blink", "wink"])
def test_a_gesture_performed_on_a_stream_is_the_same_in_any_pieces(name):
    """The sampler takes a gesture a chunk at a time: the frames do not depend on how the stream is cut, and
    equal what the teacher's track draws for the same window."""
    whole = program_track(name, 400, 0.7, np.random.default_rng(4))
    stream, cuts, pieces = GestureStream(name, 0.7, 4), np.random.default_rng(1), []
    while sum(len(p) for p in pieces) < 400:
        pieces.append(stream.take(min(int(cuts.integers(1, 7)), 400 - sum(len(p) for p in pieces))))
    assert np.allclose(np.concatenate(pieces), whole, atol=1e-5)
    with pytest.raises(UnknownProgramError):
        GestureStream("smile", 1.0)


def test_a_stopped_gesture_finishes_its_movement_and_starts_no_other():
    stream = GestureStream("nod", 1.0, 0)
    pitch = stream.take(int(0.3 * FPS))[:, INDEX["head_pitch"]]  # the first nod is under way
    assert pitch[-1] > 1.0 and not stream.finished
    stream.stop()
    rest = np.concatenate([stream.take(2) for _ in range(100)])[:, INDEX["head_pitch"]]
    moving = np.flatnonzero(np.abs(rest) > 1e-3)
    assert 0 < moving[-1] < 2.0 * FPS and stream.finished  # the nods under way end (2-3 swings), no new ones
    assert rest[moving[-1] + 1:].max() == 0.0
    assert np.abs(np.diff(np.r_[pitch, rest])).max() < 2.0  # no jump when stopped


def test_idle_blinks_at_a_natural_rate():
    counts = []
    for seed in range(4):
        blink = Animator()(None, 60 * FPS, seed=seed).axis("blink_left")
        closed = np.r_[0, (blink > 0.02).astype(int), 0]
        edges = np.flatnonzero(np.diff(closed)).reshape(-1, 2)
        lengths = (edges[:, 1] - edges[:, 0]) / FPS
        assert lengths.min() >= 0.08 and lengths.max() <= 0.32  # 150-300 ms blinks sampled at 25 fps
        assert blink.max() > 0.95
        counts.append(len(edges))
    assert all(8 <= c <= 22 for c in counts) and 10 <= np.mean(counts) <= 20, counts


def test_idle_head_motion_is_small_and_livelier_when_speaking(espeak):
    speech = espeak("I am telling you a rather long story about the weather and the sea. " * 2)
    n = _frames(speech)
    talking = Animator()(speech, n, seed=2)
    quiet = Animator()(None, n, seed=2)
    for motion in (talking, quiet):
        assert np.abs(motion.axis("head_yaw")).max() < 5.0 and np.abs(motion.axis("head_roll")).max() < 3.0
    speed = lambda m: np.abs(np.diff(m.axis("head_pitch"))).mean()  # noqa: E731
    assert speed(talking) > 1.2 * speed(quiet)


def test_close_eyes_overrides_blinks_and_transitions_are_smooth():
    motion = animate_segments(None, 200, [(0, [("close_eyes", 1.0)]), (100, [("happy", 1.0)])], seed=2)
    assert motion.axis("blink_left")[15:100].min() > 0.999 and motion.axis("blink_right")[15:100].min() > 0.999
    assert motion.axis("smile")[:100].max() == 0.0 and motion.axis("smile")[-10:].mean() > 0.5
    assert np.abs(np.diff(motion.axis("smile"))).max() < 0.3
    assert np.abs(np.diff(motion.axis("blink_left")[100:112])).max() < 0.3  # the eyes open gradually
    assert motion.axis("blink_left")[115:].min() < 0.05


def test_a_program_that_started_before_the_window():
    full = program_track("sad", 100, 1.0, np.random.default_rng(1))
    late = program_track("sad", 60, 1.0, np.random.default_rng(1), start=-40)
    np.testing.assert_allclose(late, full[40:])


def test_deterministic_per_seed(espeak):
    speech = espeak("Same seed, same motion.")
    a = Animator()(speech, None, programs=[("nod", 0.7), ("happy", 0.35)], seed=3).values
    b = Animator()(speech, None, programs=[("nod", 0.7), ("happy", 0.35)], seed=3).values
    c = Animator()(speech, None, programs=[("nod", 0.7), ("happy", 0.35)], seed=4).values
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)


def test_bad_requests_are_refused():
    with pytest.raises(UnknownProgramError, match="dance"):
        Animator()(None, 10, programs=[("dance", 1.0)])
    with pytest.raises(AnimationError, match="intensity"):
        Animator()(None, 10, programs=[("happy", 2.0)])
    with pytest.raises(AnimationError, match="n_frames"):
        Animator()(None, None)
    with pytest.raises(AnimationError, match="start frames"):
        Animator()(None, 10, programs=[("happy", 1.0)], starts=[0, 5])
