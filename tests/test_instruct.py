"""Instruction encoder (real MiniLM, offline), catalogue split, matcher and AU description."""
import time

import numpy as np
import pytest
import torch

from realtime.animate import PROGRAMS, Animator
from realtime.instruct import (InstructionEncoder, InstructionError, InstructionNotUnderstood, ProgramMatcher,
                               build_catalogue)
from realtime.instruct.catalogue import heldout, train
from realtime.instruct.describe import describe, detect_aus


@pytest.fixture(scope="module")
def encoder():
    return InstructionEncoder().setup()


@pytest.fixture(scope="module")
def matcher(encoder):
    return ProgramMatcher(encoder).setup()


def test_embeddings_are_token_states_with_a_normalised_pool(encoder):
    e = encoder("Smile warmly")
    assert e.tokens.dtype == torch.float32 and e.tokens.shape[1] == 384
    assert e.mask.all() and e.tokens.shape[0] == e.mask.shape[0] >= 3
    assert abs(float(e.pooled.norm()) - 1) < 1e-5
    assert encoder("  smile   WARMLY ") is e  # normalised text hits the cache
    start = time.perf_counter()
    for _ in range(100):
        encoder("Smile warmly")
    assert time.perf_counter() - start < 1.0  # sanity, not a benchmark: cached lookups do no model work


def test_similar_wordings_are_close_and_different_motions_differ(encoder):
    happy, glad, nod = (encoder(t).pooled for t in ("look happy", "look glad", "shake your head"))
    assert float(happy @ glad) > float(happy @ nod)


def test_bad_instructions_are_refused(encoder):
    with pytest.raises(InstructionError, match="empty"):
        encoder("  ")
    with pytest.raises(InstructionError, match="201 characters.*200"):
        encoder("a" * 201)


def test_catalogue_covers_every_program_and_splits_by_wording():
    catalogue = build_catalogue()
    assert len(catalogue) > 2000
    named = {name for item in catalogue for name, _ in item.programs}
    assert named == set(PROGRAMS)
    train_texts, held_texts = {i.text for i in train()}, {i.text for i in heldout()}
    assert not train_texts & held_texts
    assert 0.1 < len(held_texts) / len(catalogue) < 0.35
    # held-out wordings use words that never appear in a training text of the same program
    assert any(t.startswith("seem ") for t in held_texts) and not any(t.startswith("seem ") for t in train_texts)


@pytest.mark.parametrize("text, expected", [
    ("smile warmly", {"smile": 1.0}),
    ("look a little annoyed", {"angry": 0.35}),
    ("raise your eyebrows", {"raise_eyebrows": 1.0}),
    ("nod", {"nod": 1.0}),
    ("close your eyes", {"close_eyes": 1.0}),
    ("look furious, but only a little", {"angry": 0.35}),
    ("seem pleased", {"happy": 0.65}),
    ("look extremely sad", {"sad": 1.0}),
    ("look very sad and nod", {"sad": 1.0, "nod": 1.0}),
])
def test_matcher_accepts_free_text(matcher, text, expected):
    assert dict(matcher(text).programs) == expected


@pytest.mark.parametrize("text", ["asdf qwerty", "what is the capital of France", "compile the kernel"])
def test_matcher_refuses_what_it_does_not_know(matcher, text):
    with pytest.raises(InstructionNotUnderstood, match="not understood.*try e.g."):
        matcher(text)


@pytest.mark.parametrize("name", ["happy", "sad", "angry", "surprised", "raise_eyebrows", "close_eyes",
                                  "look_left", "nod", "shake_head", "wink", "open_mouth_wide"])
def test_describe_recovers_the_program(name):
    motion = Animator()(None, 150, programs=[(name, 1.0)], seed=3).values[50:]
    description = describe(motion)
    assert name in dict(description.programs)
    assert description.text


def test_describe_idle_is_calm_and_aus_have_intensities():
    assert describe(Animator()(None, 300, seed=1).values).programs == []
    aus = detect_aus(Animator()(None, 150, programs=[("happy", 1.0)], seed=1).values[50:])
    assert aus["AU12"] > 0.6 and aus["AU6"] > 0.5 and "AU4" not in aus
