"""The instruction catalogue: emotion-label expansion × intensity × paraphrase, facial and head motions,
and combinations, with a held-out split by wording.

Held-out wordings are listed explicitly (one paraphrase template, one synonym per emotion, one phrase per
motion, one combiner): a held-out text always contains a wording that no training text contains, so
evaluating on it measures generalisation to new phrasings, not recall of seen ones.
"""
from __future__ import annotations

import itertools
import random
import re
from dataclasses import dataclass

Programs = tuple[tuple[str, float], ...]

SLIGHT, MODERATE, STRONG = 0.35, 0.65, 1.0
INTENSITY_WORDS: dict[float, tuple[str, ...]] = {
    SLIGHT: ("slightly", "a little", "a bit", "somewhat"),
    MODERATE: ("", "quite", "moderately"),
    STRONG: ("very", "extremely", "really", "totally"),
}
# Phrases that set the intensity wherever they appear ("look furious, but only a little").
SLIGHT_CUES = ("a little", "a bit", "slightly", "somewhat", "mildly", "a touch", "barely", "faintly", "kind of",
               "sort of", "gently", "subtly", "a hint of", "a tiny bit", "a little bit", "lightly")
MODERATE_CUES = ("quite", "moderately", "fairly", "rather", "pretty")
STRONG_CUES = ("very", "extremely", "really", "totally", "incredibly", "utterly", "super", "so", "hugely",
               "intensely", "absolutely", "wildly", "completely", "deeply", "terribly", "seriously")

# Synonyms per emotion; the last one of each list is held out.
EMOTION_ADJECTIVES: dict[str, tuple[str, ...]] = {
    "happy": ("happy", "joyful", "cheerful", "glad", "delighted", "pleased", "overjoyed", "content", "jolly",
              "merry", "upbeat", "elated"),
    "sad": ("sad", "unhappy", "sorrowful", "gloomy", "miserable", "downcast", "heartbroken", "melancholy",
            "depressed", "glum", "blue", "dejected"),
    "angry": ("angry", "furious", "annoyed", "mad", "irritated", "enraged", "cross", "irate", "fuming",
              "outraged", "livid"),
    "surprised": ("surprised", "astonished", "amazed", "shocked", "startled", "stunned", "taken aback",
                  "dumbfounded", "flabbergasted", "astounded"),
    "disgusted": ("disgusted", "grossed out", "repulsed", "sickened", "nauseated", "appalled", "repelled",
                  "revolted"),
    "fearful": ("scared", "afraid", "terrified", "fearful", "anxious", "nervous", "panicked", "alarmed",
                "petrified", "frightened"),
    "contemptuous": ("contemptuous", "scornful", "smug", "condescending", "dismissive", "sneering", "haughty",
                     "arrogant", "disdainful"),
    "neutral": ("neutral", "calm", "expressionless", "relaxed", "composed", "blank", "serene", "deadpan",
                "straight-faced", "serious", "unsmiling", "poker-faced", "impassive"),
}
EMOTION_NOUNS: dict[str, tuple[str, ...]] = {
    "happy": ("happiness", "joy", "delight"), "sad": ("sadness", "sorrow", "grief"),
    "angry": ("anger", "rage", "fury"), "surprised": ("surprise", "astonishment", "amazement"),
    "disgusted": ("disgust", "revulsion", "distaste"), "fearful": ("fear", "terror", "dread"),
    "contemptuous": ("contempt", "scorn", "disdain"), "neutral": ("no emotion", "calm", "composure"),
}
ADJ_TEMPLATES = ("look {i} {a}", "be {i} {a}", "you are {i} {a}", "act {i} {a}", "{i} {a}, please",
                 "appear {i} {a}", "feel {i} {a}", "make a {i} {a} face", "now look {i} {a}", "try to look {i} {a}",
                 "put on a {i} {a} expression", "give me a {i} {a} look", "seem {i} {a}")
NOUN_TEMPLATES = ("show {n}", "express {n}", "look full of {n}", "your face shows {n}")

# Phrases per motion program (intensity 1); the last one of each list is held out.
MOTION_PHRASES: dict[str, tuple[str, ...]] = {
    "raise_eyebrows": ("raise your eyebrows", "lift your brows", "raise your brows", "eyebrows up",
                       "brows raised", "lift your eyebrows high", "arch your eyebrows"),
    "frown": ("frown", "furrow your brow", "lower your eyebrows", "scowl", "draw your brows together",
              "knit your brows"),
    "smile": ("smile", "smile warmly", "give a smile", "smile softly", "a warm smile", "show a friendly smile",
              "put on a smile"),
    "grin": ("grin", "grin broadly", "a big grin", "show your teeth in a grin", "grin from ear to ear"),
    "pout": ("pout", "pout your lips", "push your lips out", "stick out your lips", "make a pouty face"),
    "open_mouth_wide": ("open your mouth wide", "open your mouth", "drop your jaw", "mouth wide open",
                        "jaw dropped open", "gape"),
    "blink": ("blink", "blink a few times", "blink your eyes", "keep blinking", "flutter your eyelids"),
    "wink": ("wink", "wink at me", "wink one eye", "do a cheeky wink", "give a wink"),
    "close_eyes": ("close your eyes", "shut your eyes", "eyes closed", "keep your eyes shut", "close both eyes",
                   "rest your eyes"),
    "look_left": ("look to the left", "look left", "eyes to the left", "look over to the left", "glance left"),
    "look_right": ("look to the right", "look right", "glance right", "look over to the right",
                   "eyes to the right"),
    "look_up": ("look up", "glance up", "eyes up", "look upwards", "look at the ceiling"),
    "look_down": ("look down", "glance down", "eyes down", "look downwards", "look at the floor"),
    "turn_head_left": ("turn your head left", "turn your head to the left", "face left", "turn left",
                       "rotate your head to the left"),
    "turn_head_right": ("turn your head right", "turn your head to the right", "turn right",
                        "rotate your head to the right", "face right"),
    "tilt_head": ("tilt your head", "tilt your head to the side", "lean your head sideways", "head tilted",
                  "cock your head"),
    "nod": ("nod", "nod slowly", "nod your head", "nod yes", "give a nod", "nod in agreement"),
    "shake_head": ("shake your head", "shake your head no", "shake your head slowly", "head shake",
                   "say no with your head"),
}
# "-ing" forms for "smile while nodding"
MOTION_GERUNDS: dict[str, str] = {
    "raise_eyebrows": "raising your eyebrows", "frown": "frowning", "smile": "smiling", "grin": "grinning",
    "pout": "pouting", "open_mouth_wide": "opening your mouth wide", "blink": "blinking", "wink": "winking",
    "close_eyes": "closing your eyes", "look_left": "looking to the left", "look_right": "looking to the right",
    "look_up": "looking up", "look_down": "looking down", "turn_head_left": "turning your head to the left",
    "turn_head_right": "turning your head to the right", "tilt_head": "tilting your head", "nod": "nodding",
    "shake_head": "shaking your head",
}
FACE_MOTIONS = ("raise_eyebrows", "frown", "smile", "grin", "pout", "open_mouth_wide", "close_eyes", "wink")
HEAD_MOTIONS = ("look_left", "look_right", "look_up", "look_down", "turn_head_left", "turn_head_right",
                "tilt_head", "nod", "shake_head", "blink")
# Emotions already move these; combining them would ask for the same axes twice.
MOTIONS_THAT_CLASH_WITH_EMOTIONS = ("smile", "grin", "frown")
COMBINERS = ("{a} and {b}", "{a} while you {b}", "{a} while {g}", "{b} and {a}", "{a}, {b}", "{a} whilst you {b}")

NEUTRAL_PHRASES = ("stay neutral", "no expression", "keep a straight face", "relax your face", "back to normal",
                   "stop that", "look at me", "look at the camera", "eyes on me", "a straight face", "stop smiling",
                   "don't smile", "no smile", "wipe the smile off your face")
HELD_OUT_TEMPLATES = frozenset({"seem {i} {a}", "your face shows {n}", "{a} whilst you {b}"})
HELD_OUT_WORDS = frozenset([words[-1] for words in EMOTION_ADJECTIVES.values()] +
                           [phrases[-1] for phrases in MOTION_PHRASES.values()])


@dataclass(frozen=True)
class Instruction:
    text: str
    programs: Programs
    split: str  # "train" | "heldout"


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


def program_names() -> set[str]:
    """Every program the catalogue asks the animator for."""
    return set(EMOTION_ADJECTIVES) | set(MOTION_PHRASES)


def reference_texts() -> list[Instruction]:
    """The compact set free text is matched against: every training synonym and phrase once, in plain wording
    (intensity words are read from the user's text instead, see intensity_from_words)."""
    out = []
    for emotion, adjectives in EMOTION_ADJECTIVES.items():
        for adj in adjectives:
            if adj not in HELD_OUT_WORDS:
                out += [Instruction(f"look {adj}", ((emotion, MODERATE),), "train"),
                        Instruction(f"be {adj}", ((emotion, MODERATE),), "train")]
        for noun in EMOTION_NOUNS[emotion]:
            out.append(Instruction(f"show {noun}", ((emotion, MODERATE),), "train"))
    out += [Instruction(text, (("neutral", MODERATE),), "train") for text in NEUTRAL_PHRASES]
    for program, phrases in MOTION_PHRASES.items():
        out += [Instruction(p, ((program, STRONG),), "train") for p in phrases if p not in HELD_OUT_WORDS]
    return out


def intensity_from_words(text: str) -> float | None:
    """The intensity the wording names (slight cues win: "very slightly"), or None when it names none."""
    words = " " + " ".join(re.findall(r"[a-z']+", text.lower())) + " "
    for level, cues in ((SLIGHT, SLIGHT_CUES), (STRONG, STRONG_CUES), (MODERATE, MODERATE_CUES)):
        if any(f" {cue} " in words for cue in cues):
            return level
    return None
