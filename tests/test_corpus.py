"""Corpus format, sentences, audio augmentation, human speech list, and a tiny end-to-end build."""
from __future__ import annotations

import pickle

import numpy as np
import pytest

from realtime.training.corpus import augment
from realtime.training.corpus.format import Corpus, CorpusError, CorpusItem, CorpusWriter
from realtime.training.corpus.sentences import all_sentences, split_of
from realtime.vocab import DIM, SAMPLES_PER_FRAME

RATE = 16_000


def _item(rng: np.random.Generator, frames: int, **kw) -> CorpusItem:
    return CorpusItem(
        audio=(rng.standard_normal(frames * SAMPLES_PER_FRAME + 17) * 0.2).clip(-1, 1).astype(np.float32),
        motion=rng.standard_normal((frames, DIM)).astype(np.float32),
        visemes=rng.integers(0, 12, frames).astype(np.int8), **kw)


def test_write_read_round_trip(tmp_path):
    rng = np.random.default_rng(0)
    items = [
        _item(rng, 30, instruction="smile warmly", programs=[("smile", 0.8)], meta={"voice": "en-us", "rate": 160}),
        _item(rng, 75, instruction="raise your eyebrows", programs=[("brows_up", 1.0)],
              segments=[(0, "raise your eyebrows", [("brows_up", 1.0)]), (40, "", [])]),
        _item(rng, 1),
    ]
    with CorpusWriter(tmp_path / "c") as writer:
        for item in items:
            writer.write(item)
    corpus = Corpus(tmp_path / "c")
    assert len(corpus) == 3 and list(corpus.frames) == [30, 75, 1]
    assert corpus.instructions == ["", "raise your eyebrows", "smile warmly"]
    for want, got in zip(items, corpus):
        assert np.abs(got.audio - want.audio).max() <= 1 / 32767 + 1e-7  # int16 storage
        np.testing.assert_array_equal(got.motion, want.motion)
        np.testing.assert_array_equal(got.visemes, want.visemes)
        assert (got.instruction, got.programs, got.segments, got.meta) == \
               (want.instruction, want.programs, want.segments, want.meta)
    assert corpus[1].instruction_at(39) == ("raise your eyebrows", [("brows_up", 1.0)])
    assert corpus[1].instruction_at(40) == ("", [])
    audio, motion, visemes = corpus.window(1, 10, 20)
    assert audio.shape == (20 * SAMPLES_PER_FRAME,) and motion.shape == (20, DIM) and visemes.shape == (20,)
    np.testing.assert_array_equal(motion, items[1].motion[10:30])
    np.testing.assert_allclose(audio, items[1].audio[6400:19200], atol=1 / 32767 + 1e-7)
    with pytest.raises(CorpusError, match="outside item"):
        corpus.window(1, 60, 20)
    clone = pickle.loads(pickle.dumps(corpus))  # data-loader workers get a cheap copy that re-maps lazily
    np.testing.assert_array_equal(clone[2].motion, items[2].motion)


def test_bad_items_and_folders_are_refused(tmp_path):
    rng = np.random.default_rng(1)
    with pytest.raises(CorpusError, match="frames"):
        CorpusItem(audio=np.zeros(6400, np.float32), motion=np.zeros((11, DIM)), visemes=np.zeros(11))
    with pytest.raises(CorpusError, match="visemes"):
        CorpusItem(audio=np.zeros(6400, np.float32), motion=np.zeros((10, DIM)), visemes=np.zeros(9))
    with pytest.raises(CorpusError, match="segment"):
        _item(rng, 20, segments=[(5, "smile", [])])
    with pytest.raises(CorpusError, match="no corpus"):
        Corpus(tmp_path / "missing")
    CorpusWriter(tmp_path / "c").close()
    with pytest.raises(CorpusError, match="already holds"):
        CorpusWriter(tmp_path / "c")


def test_sentences_are_varied_and_split_stably():
    sentences = all_sentences(template_count=800)
    texts = [s.text for s in sentences]
    assert len(set(texts)) == len(texts)
    lengths = [len(t.split()) for t in texts]
    assert min(lengths) <= 2 and max(lengths) >= 25
    assert any(t.endswith("?") for t in texts) and any(t.endswith("!") for t in texts)
    assert any("..." in t for t in texts)
    assert {s.source for s in sentences} - {"template"}, "licence prose missing"
    heldout = [s for s in sentences if s.split == "heldout"]
    assert 0.05 < len(heldout) / len(sentences) < 0.2
    assert all(split_of(s.text) == s.split for s in sentences)


def _speechlike(seconds: float = 2.0, seed: int = 0) -> np.ndarray:
    """Harmonic source with formant-like energy up to 8 kHz, modulated like syllables."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * RATE)) / RATE
    x = sum(np.sin(2 * np.pi * 140 * k * t) / k ** 0.5 for k in range(1, 50))
    x = x * (0.5 + 0.5 * np.sin(2 * np.pi * 4 * t)) + 0.05 * rng.standard_normal(len(t))
    return (0.3 * x / np.abs(x).max()).astype(np.float32)


def _fraction_above(audio: np.ndarray, hz: float) -> float:
    power = np.abs(np.fft.rfft(audio)) ** 2
    return float(power[np.fft.rfftfreq(len(audio), 1 / RATE) > hz].sum() / power.sum())


def test_telephone_removes_energy_above_3400_hz():
    x = _speechlike()
    y = augment.telephone(x)
    assert y.shape == x.shape and y.dtype == np.float32
    assert _fraction_above(x, 3400) > 0.1
    assert _fraction_above(y, 3400) < 0.01
    assert _fraction_above(y, 3800) < 1e-3
    power = np.abs(np.fft.rfft(y)) ** 2
    freqs = np.fft.rfftfreq(len(y), 1 / RATE)
    assert power[freqs < 200].sum() / power.sum() < 0.01  # and the low band is gone too


def test_noise_is_mixed_at_the_requested_snr():
    x = _speechlike()
    rng = np.random.default_rng(2)
    for make in (augment.white_noise, augment.pink_noise):
        noise = make(len(x), rng)
        y = augment.add_noise(x, noise, snr_db=10.0)
        added = y - x
        snr = 10 * np.log10(augment.active_power(x) / np.mean(added.astype(np.float64) ** 2))
        assert abs(snr - 10.0) < 0.1
    pink = augment.pink_noise(RATE * 4, rng)
    assert _fraction_above(pink, 2000) < 0.3 < _fraction_above(augment.white_noise(RATE * 4, rng), 2000)
    babble = augment.babble_noise(len(x), [_speechlike(1.3, 5), _speechlike(0.7, 6)], rng)
    assert babble.shape == x.shape and np.std(babble) > 0


def test_reverb_smears_in_time_and_keeps_length():
    x = np.zeros(RATE, np.float32)
    x[1000] = 1.0
    y = augment.reverberate(x, rt60=0.5, rng=np.random.default_rng(3))
    assert y.shape == x.shape
    tail = np.abs(y[1000 + RATE // 10: 1000 + RATE // 5])  # 100–200 ms after the click
    assert tail.max() > 1e-3 and np.abs(y[:1000]).max() < 1e-6  # causal: nothing before the click


def test_resampling_artefacts_band_limit_or_alias():
    x = _speechlike()
    clean = augment.resample_artefacts(x, 8000, aliasing=False)
    aliased = augment.resample_artefacts(x, 8000, aliasing=True)
    assert clean.shape == aliased.shape == x.shape
    assert _fraction_above(clean, 4100) < 0.01
    assert not np.allclose(clean, aliased, atol=1e-3)


def test_augmenter_is_deterministic_and_keeps_length():
    x = _speechlike(1.5)
    others = [_speechlike(1.0, 7)]
    aug = augment.Augmenter().setup()
    seen = set()
    for seed in range(12):
        y1, done1 = aug(x, np.random.default_rng(seed), others)
        y2, done2 = aug(x, np.random.default_rng(seed), others)
        np.testing.assert_array_equal(y1, y2)
        assert done1 == done2 and y1.shape == x.shape and np.abs(y1).max() <= 1.0
        seen |= set(done1)
    assert {"noise", "reverb_rt60", "gain_db"} <= seen
    with pytest.raises(augment.AugmentError):
        aug(np.zeros((2, 100), np.float32), np.random.default_rng(0))


def test_build_four_items_end_to_end(tmp_path):
    from realtime.training.corpus.build import BuildConfig, build_corpus, main
    from realtime.vocab import INDEX, Viseme

    config = BuildConfig(p_change=0.5, p_neutral=0.0)
    corpus = build_corpus(tmp_path / "c", n_items=4, seed=3, workers=1, config=config, progress=False)
    assert len(corpus) == 4 and not (tmp_path / "c.tmp").exists()
    for item in corpus:
        assert item.frames == len(item.audio) // SAMPLES_PER_FRAME and item.frames >= 25
        assert item.visemes.shape == (item.frames,) and item.visemes.min() >= 0 and item.visemes.max() < len(Viseme)
        assert item.meta["split"] == "train" and item.meta["voice"].startswith("en") and "augmentation" in item.meta
        assert item.instruction in corpus.instructions and item.programs
        # the lead-in silence is silence for the animator too: the timings were shifted with the audio
        lead = int(item.meta["silences_s"][0] * 25)
        assert (item.visemes[: max(0, lead - 1)] == int(Viseme.SIL)).all()
        assert item.visemes[lead + 2: lead + 12].max() > 0  # speech starts right after it
        assert item.motion[:2, INDEX["jaw_open"]].max() < 0.5 * item.motion[:, INDEX["jaw_open"]].max()
        speaking = item.visemes != int(Viseme.SIL)
        assert item.motion[speaking, INDEX["jaw_open"]].max() > 0.2
    assert any(item.segments for item in corpus)
    # same seed, same corpus whatever the number of workers (up to espeak-ng's own jitter of a few ms)
    again = build_corpus(tmp_path / "d", n_items=4, seed=3, workers=2, config=config, progress=False)
    for a, b in zip(corpus, again):
        assert a.meta == b.meta and a.instruction == b.instruction
        assert abs(a.frames - b.frames) <= max(2, a.frames // 50)
    assert main(["--out", str(tmp_path / "h"), "--items", "2", "--split", "heldout", "--workers", "1",
                 "--quiet"]) == 0
    heldout = Corpus(tmp_path / "h")
    train_texts = {s for s in corpus.instructions}
    assert all(item.meta["split"] == "heldout" for item in heldout)
    assert not (set(heldout.instructions) - {""}) & train_texts


def test_human_speech_recordings_are_listed_and_readable():
    from realtime.media.audio import load_audio
    from realtime.training.corpus import human_speech

    found = human_speech.require()  # CI installs alsa-utils (and klettres-data, pysptk)
    assert all(r.path.is_file() and r.text and r.licence for r in found)
    assert not any(r.path.name == "Noise.wav" for r in found)
    assert human_speech.paths() == [r.path for r in found]
    for r in found[:3]:
        audio = load_audio(r.path)
        assert 0.3 < len(audio) / RATE < 10 and np.abs(audio).max() > 0.05
