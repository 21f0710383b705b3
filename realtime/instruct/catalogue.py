"""The instruction catalogue: emotion-label expansion × intensity × paraphrase, facial and head motions,
and combinations, with a held-out split by wording (templates and synonyms never seen in training)."""
from __future__ import annotations

import hashlib
import itertools
import random
from dataclasses import dataclass

Programs = tuple[tuple[str, float], ...]

SLIGHT, MODERATE, STRONG = 0.35, 0.65, 1.0
INTENSITY_WORDS: dict[float, tuple[str, ...]] = {
    SLIGHT: ("slightly", "a little", "a bit", "somewhat", "mildly", "a touch"),
    MODERATE: ("", "quite", "moderately", "fairly", "rather"),
    STRONG: ("very", "extremely", "really", "totally", "incredibly", "utterly"),
}
# Phrases that lower or raise the intensity wherever they appear ("look furious, but only a little").
SLIGHT_CUES = ("a little", "a bit", "slightly", "somewhat", "mildly", "a touch", "only a little", "barely",
               "faintly", "kind of", "sort of", "gently", "subtly", "hint of", "tiny")
STRONG_CUES = ("very", "extremely", "really", "totally", "incredibly", "utterly", "super", "so ", "hugely",
               "intensely", "absolutely", "wildly", "completely")

EMOTION_ADJECTIVES: dict[str, tuple[str, ...]] = {
    "happy": ("happy", "joyful", "cheerful", "glad", "delighted", "pleased", "overjoyed", "content"),
    "sad": ("sad", "unhappy", "sorrowful", "gloomy", "miserable", "downcast", "heartbroken", "melancholy"),
    "angry": ("angry", "furious", "annoyed", "mad", "irritated", "enraged", "cross", "irate"),
    "surprised": ("surprised", "astonished", "amazed", "shocked", "startled", "stunned", "taken aback"),
    "disgusted": ("disgusted", "grossed out", "repulsed", "revolted", "sickened", "nauseated"),
    "fearful": ("scared", "afraid", "frightened", "terrified", "fearful", "anxious", "nervous"),
    "contemptuous": ("contemptuous", "scornful", "disdainful", "smug", "condescending", "dismissive"),
    "neutral": ("neutral", "calm", "expressionless", "relaxed", "composed", "blank"),
}
EMOTION_NOUNS: dict[str, tuple[str, ...]] = {
    "happy": ("happiness", "joy"), "sad": ("sadness", "sorrow"), "angry": ("anger", "rage"),
    "surprised": ("surprise", "astonishment"), "disgusted": ("disgust", "revulsion"),
    "fearful": ("fear", "terror"), "contemptuous": ("contempt", "scorn"), "neutral": ("no emotion", "calm"),
}
ADJ_TEMPLATES = ("look {i} {a}", "be {i} {a}", "you are {i} {a}", "act {i} {a}", "{i} {a}, please",
                 "seem {i} {a}", "appear {i} {a}", "feel {i} {a}", "make a {i} {a} face", "now look {i} {a}")
NOUN_TEMPLATES = ("show {n}", "express {n}", "your face shows {n}")

MOTION_PHRASES: dict[str, tuple[str, ...]] = {
    "raise_eyebrows": ("raise your eyebrows", "lift your brows", "raise your brows", "eyebrows up",
                       "arch your eyebrows", "brows raised", "lift your eyebrows high"),
    "frown": ("frown", "furrow your brow", "knit your brows", "lower your eyebrows", "scowl",
              "draw your brows together"),
    "smile": ("smile", "smile warmly", "give a smile", "put on a smile", "smile softly", "a warm smile",
              "show a friendly smile"),
    "grin": ("grin", "grin broadly", "a big grin", "grin from ear to ear", "show your teeth in a grin"),
    "pout": ("pout", "pout your lips", "push your lips out", "make a pouty face", "purse your lips"),
    "open_mouth_wide": ("open your mouth wide", "open your mouth", "drop your jaw", "mouth wide open",
                        "gape", "jaw dropped open"),
    "blink": ("blink", "blink a few times", "blink your eyes", "keep blinking", "flutter your eyelids"),
    "wink": ("wink", "give a wink", "wink at me", "wink one eye", "do a cheeky wink"),
    "close_eyes": ("close your eyes", "shut your eyes", "eyes closed", "keep your eyes shut",
                   "close both eyes", "rest your eyes"),
    "look_left": ("look to the left", "look left", "glance left", "eyes to the left", "look over to the left"),
    "look_right": ("look to the right", "look right", "glance right", "eyes to the right",
                   "look over to the right"),
    "look_up": ("look up", "glance up", "eyes up", "look upwards", "look at the ceiling"),
    "look_down": ("look down", "glance down", "eyes down", "look downwards", "look at the floor"),
    "turn_head_left": ("turn your head left", "turn your head to the left", "face left", "turn left",
                       "rotate your head to the left"),
    "turn_head_right": ("turn your head right", "turn your head to the right", "face right", "turn right",
                        "rotate your head to the right"),
    "tilt_head": ("tilt your head", "tilt your head to the side", "cock your head", "lean your head sideways",
                  "head tilted"),
    "nod": ("nod", "nod slowly", "nod your head", "nod in agreement", "nod yes", "give a nod"),
    "shake_head": ("shake your head", "shake your head no", "shake your head slowly", "say no with your head",
                   "head shake"),
}
COMBINERS = ("{a} while you {b}", "{a} and {b}", "{a}, and {b}", "{b} and {a}")
HELD_OUT_TEMPLATES = {"seem {i} {a}", "your face shows {n}"}
HELD_OUT_COMBINERS = {"{a}, and {b}"}


@dataclass(frozen=True)
class Instruction:
    text: str
    programs: Programs
    split: str  # "train" | "heldout"


def _held_out_words(words: tuple[str, ...]) -> set[str]:
    """About one wording in six, chosen by a stable hash: never seen in training."""
    return {w for w in words[1:] if int(hashlib.sha1(w.encode()).hexdigest(), 16) % 7 == 0} or {words[-1]}


def _clean(text: str) -> str:
    return " ".join(text.split())


def emotion_instructions() -> list[Instruction]:
    out = []
    for emotion, adjectives in EMOTION_ADJECTIVES.items():
        held_adj = _held_out_words(adjectives)
        for level, words in INTENSITY_WORDS.items():
            if emotion == "neutral" and level != MODERATE:
                continue
            for template, adj, word in itertools.product(ADJ_TEMPLATES, adjectives, words):
                split = "heldout" if template in HELD_OUT_TEMPLATES or adj in held_adj else "train"
                out.append(Instruction(_clean(template.format(i=word, a=adj)), ((emotion, level),), split))
        for template, noun in itertools.product(NOUN_TEMPLATES, EMOTION_NOUNS[emotion]):
            split = "heldout" if template in HELD_OUT_TEMPLATES else "train"
            out.append(Instruction(template.format(n=noun), ((emotion, MODERATE),), split))
    return out


def motion_instructions() -> list[Instruction]:
    out = []
    for program, phrases in MOTION_PHRASES.items():
        held = _held_out_words(phrases)
        for phrase in phrases:
            split = "heldout" if phrase in held else "train"
            out.append(Instruction(phrase, ((program, STRONG),), split))
            for word in ("slightly", "a little"):
                out.append(Instruction(f"{word} {phrase}" if program not in ("nod", "blink", "wink") else
                                       f"{phrase} a little", ((program, SLIGHT),), split))
    return out


def combination_instructions(seed: int = 0, count: int = 400) -> list[Instruction]:
    rng = random.Random(seed)
    emotions = [e for e in EMOTION_ADJECTIVES if e != "neutral"]
    out = []
    for _ in range(count):
        emotion = rng.choice(emotions)
        adj = rng.choice(EMOTION_ADJECTIVES[emotion])
        motion = rng.choice([m for m in MOTION_PHRASES if m not in ("smile", "grin", "frown")])
        phrase = rng.choice(MOTION_PHRASES[motion])
        combiner = rng.choice(COMBINERS)
        text = combiner.format(a=f"look {adj}", b=phrase)
        held = combiner in HELD_OUT_COMBINERS or adj in _held_out_words(EMOTION_ADJECTIVES[emotion]) \
            or phrase in _held_out_words(MOTION_PHRASES[motion])
        out.append(Instruction(text, ((emotion, MODERATE), (motion, STRONG)), "heldout" if held else "train"))
    return list({i.text: i for i in out}.values())


def build_catalogue(seed: int = 0) -> list[Instruction]:
    """Every instruction text with its programs and split; texts are unique."""
    items = emotion_instructions() + motion_instructions() + combination_instructions(seed)
    return list({i.text: i for i in items}.values())


def train(seed: int = 0) -> list[Instruction]:
    return [i for i in build_catalogue(seed) if i.split == "train"]


def heldout(seed: int = 0) -> list[Instruction]:
    return [i for i in build_catalogue(seed) if i.split == "heldout"]


def reference_texts() -> list[Instruction]:
    """A compact set for matching free text: every synonym and phrase once, in plain wording."""
    out = []
    for emotion, adjectives in EMOTION_ADJECTIVES.items():
        for adj in adjectives:
            out += [Instruction(f"look {adj}", ((emotion, MODERATE),), "train"),
                    Instruction(f"be {adj}", ((emotion, MODERATE),), "train")]
        for noun in EMOTION_NOUNS[emotion]:
            out.append(Instruction(f"show {noun}", ((emotion, MODERATE),), "train"))
    for program, phrases in MOTION_PHRASES.items():
        out += [Instruction(p, ((program, STRONG),), "train") for p in phrases]
    return out


def intensity_from_words(text: str) -> float | None:
    """An intensity named by the wording, or None when the text names none."""
    padded = f" {text.lower()} "
    if any(f" {cue} " in padded or f" {cue}," in padded for cue in SLIGHT_CUES):
        return SLIGHT
    if any(f" {cue.strip()} " in padded for cue in STRONG_CUES):
        return STRONG
    return None
