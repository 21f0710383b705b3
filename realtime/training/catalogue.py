"""The instruction catalogue of the training corpus: emotion-label expansion × intensity × paraphrase, facial
and head motions, and combinations, with a held-out split by wording.

Held-out wordings are listed explicitly (one paraphrase template, one synonym per emotion, one phrase per
motion, one combiner): a held-out text always contains a wording that no training text contains, so
evaluating on it measures generalisation to new phrasings, not recall of seen ones.
"""
from __future__ import annotations

import itertools
import random
import re

from realtime.instruct.catalogue import (
    EMOTION_ADJECTIVES,
    EMOTION_NOUNS,
    HELD_OUT_WORDS,
    INTENSITY_WORDS,
    MOTION_GERUNDS,
    MOTION_PHRASES,
    NEUTRAL_PHRASES,
    Instruction,
)
from realtime.vocab import FACE_MOTIONS, HEAD_MOTIONS, MODERATE, SLIGHT, STRONG

ADJ_TEMPLATES = ("look {i} {a}", "be {i} {a}", "you are {i} {a}", "act {i} {a}", "{i} {a}, please",
                 "appear {i} {a}", "feel {i} {a}", "make a {i} {a} face", "now look {i} {a}", "try to look {i} {a}",
                 "put on a {i} {a} expression", "give me a {i} {a} look", "seem {i} {a}")
NOUN_TEMPLATES = ("show {n}", "express {n}", "look full of {n}", "your face shows {n}")

# Emotions already move these; combining them would ask for the same axes twice.
MOTIONS_THAT_CLASH_WITH_EMOTIONS = ("smile", "grin", "frown")
COMBINERS = ("{a} and {b}", "{a} while you {b}", "{a} while {g}", "{b} and {a}", "{a}, {b}", "{a} whilst you {b}")

HELD_OUT_TEMPLATES = frozenset({"seem {i} {a}", "your face shows {n}", "{a} whilst you {b}"})


def _clean(text: str) -> str:
    text = " ".join(text.split()).replace(" ,", ",")
    return re.sub(r"\ba (?=[aeiou])", "an ", text)


def _split(*wordings: str) -> str:
    return "heldout" if any(w in HELD_OUT_TEMPLATES or w in HELD_OUT_WORDS for w in wordings) else "train"


def emotion_instructions() -> list[Instruction]:
    out = []
    for emotion, adjectives in EMOTION_ADJECTIVES.items():
        for level, words in INTENSITY_WORDS.items():
            if emotion == "neutral" and level != MODERATE:
                continue  # "very neutral" means nothing
            for template, adj, word in itertools.product(ADJ_TEMPLATES, adjectives, words):
                out.append(Instruction(_clean(template.format(i=word, a=adj)), ((emotion, level),),
                                       _split(template, adj)))
        for template, noun in itertools.product(NOUN_TEMPLATES, EMOTION_NOUNS[emotion]):
            out.append(Instruction(template.format(n=noun), ((emotion, MODERATE),), _split(template)))
    return out


def motion_instructions() -> list[Instruction]:
    out = []
    for program, phrases in MOTION_PHRASES.items():
        for phrase in phrases:
            split = _split(phrase)
            out.append(Instruction(phrase, ((program, STRONG),), split))
            out.append(Instruction(f"slightly {phrase}", ((program, SLIGHT),), split))
            out.append(Instruction(f"{phrase} a little", ((program, SLIGHT),), split))
    return out


def combination_instructions(seed: int = 0, count: int = 600) -> list[Instruction]:
    """Emotion + motion ("look sad and close your eyes") and face + head motion ("smile while nodding")."""
    rng = random.Random(seed)
    emotions = [e for e in EMOTION_ADJECTIVES if e != "neutral"]
    out = []
    for _ in range(count):
        if rng.random() < 0.6:
            first = rng.choice(emotions)
            adj = rng.choice(EMOTION_ADJECTIVES[first])
            word = rng.choice(("", "", "very", "a little"))
            a, a_wording = _clean(f"look {word} {adj}"), adj
            level = {"": MODERATE, "very": STRONG, "a little": SLIGHT}[word]
            second = rng.choice([m for m in MOTION_PHRASES if m not in MOTIONS_THAT_CLASH_WITH_EMOTIONS])
        else:
            first = rng.choice(FACE_MOTIONS)
            a = a_wording = rng.choice(MOTION_PHRASES[first])
            level = STRONG
            second = rng.choice([m for m in HEAD_MOTIONS
                                 if not (first in ("close_eyes", "wink") and m in ("blink", "look_up", "look_down",
                                                                                   "look_left", "look_right"))])
        b = rng.choice(MOTION_PHRASES[second])
        combiner = rng.choice(COMBINERS)
        text = _clean(combiner.format(a=a, b=b, g=MOTION_GERUNDS[second]))
        b_wording = b if "{b}" in combiner else MOTION_GERUNDS[second]
        out.append(Instruction(text, ((first, level), (second, STRONG)), _split(combiner, a_wording, b_wording)))
    return list({i.text: i for i in out}.values())


def build_catalogue(seed: int = 0) -> list[Instruction]:
    """Every instruction text with its programs and split; texts are unique. No instruction at all (idle life
    only) is the callers' None / empty text, which the encoder refuses; its wordings here map to neutral."""
    items = [Instruction(text, (("neutral", MODERATE),), "train") for text in NEUTRAL_PHRASES]
    items += emotion_instructions() + motion_instructions() + combination_instructions(seed)
    return list({i.text: i for i in items}.values())


def train(seed: int = 0) -> list[Instruction]:
    return [i for i in build_catalogue(seed) if i.split == "train"]


def heldout(seed: int = 0) -> list[Instruction]:
    return [i for i in build_catalogue(seed) if i.split == "heldout"]


