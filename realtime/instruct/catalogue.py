"""The instruction wordings: synonyms per emotion, phrases per motion, intensity cues.

The matcher compares free text with these (`reference_texts`, `intensity_from_words`); the training catalogue
(`realtime.training.catalogue`) expands them into every instruction text of the corpus, and the annotator words
what it finds in footage with them (`canonical_phrase`). The last synonym or phrase of each list is held out
of training, so held-out texts measure generalisation to new phrasings.
"""
from __future__ import annotations

import re
from dataclasses import dataclass

from realtime.instruct.idioms import IDIOMS
from realtime.vocab import EMOTIONS, MODERATE, MOTIONS, SLIGHT, STRONG

Programs = tuple[tuple[str, float], ...]

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
    "tilt_head_left": ("tilt your head to the left", "tilt your head left", "lean your head to the left",
                       "head tilted to the left", "cock your head to the left"),
    "tilt_head_right": ("tilt your head to the right", "tilt your head right", "lean your head to the right",
                        "head tilted to the right", "cock your head to the right"),
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
    "turn_head_right": "turning your head to the right", "tilt_head_left": "tilting your head to the left",
    "tilt_head_right": "tilting your head to the right", "nod": "nodding",
    "shake_head": "shaking your head",
}
NEUTRAL_PHRASES = ("stay neutral", "no expression", "keep a straight face", "relax your face", "back to normal",
                   "stop that", "look at me", "look at the camera", "eyes on me", "a straight face", "stop smiling",
                   "don't smile", "no smile", "wipe the smile off your face")
HELD_OUT_WORDS = frozenset([words[-1] for words in EMOTION_ADJECTIVES.values()] +
                           [phrases[-1] for phrases in MOTION_PHRASES.values()])
assert tuple(EMOTION_ADJECTIVES) == tuple(EMOTION_NOUNS) and set(EMOTION_ADJECTIVES) == set(EMOTIONS)
assert set(MOTION_PHRASES) == set(MOTION_GERUNDS) == set(MOTIONS)


@dataclass(frozen=True)
class Instruction:
    text: str
    programs: Programs
    split: str  # "train" | "heldout"


def canonical_phrase(program: str) -> str:
    """The plain wording of a motion program (its first phrase), e.g. "turn your head left"."""
    return MOTION_PHRASES[program][0]


def reference_texts(idioms: bool = False) -> list[Instruction]:
    """The compact set free text is matched against: every training synonym and phrase once, in plain wording
    (intensity words are read from the user's text instead, see intensity_from_words), and with `idioms` the
    figurative wordings of `realtime.instruct.idioms` ("see red", "bat your lashes"), split "idiom"."""
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
    if idioms:
        out += [Instruction(text, ((program, MODERATE if program in EMOTION_ADJECTIVES else STRONG),), "idiom")
                for program, texts in IDIOMS.items() for text in texts]
    return out


def intensity_from_words(text: str) -> float | None:
    """The intensity the wording names (slight cues win: "very slightly"), or None when it names none."""
    words = " " + " ".join(re.findall(r"[a-z']+", text.lower())) + " "
    for level, cues in ((SLIGHT, SLIGHT_CUES), (STRONG, STRONG_CUES), (MODERATE, MODERATE_CUES)):
        if any(f" {cue} " in words for cue in cues):
            return level
    return None
