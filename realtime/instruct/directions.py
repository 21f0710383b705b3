"""Words that decide what sentence embeddings cannot: which way ("left" or "right", "up" or "down") and how many
("one eye" or both). MiniLM puts "look left" next to "look right" and "close one eye" next to "close both eyes",
so the matcher takes the nearest catalogue wording and these rules set its direction and count from the user's
own words."""
from __future__ import annotations

import re

from realtime.instruct.catalogue import Instruction

_SIDEWARD = re.compile(r"\b(left|right)wards?\b", re.IGNORECASE)


def sideward_plain(text: str) -> str:
    """"leftward(s)" as "to the left": a word MiniLM barely knows, and a phrase it does."""
    return _SIDEWARD.sub(r"to the \1", text)


_ONE_EYE = re.compile(r"\b(?:one|an|a single|single)\s+eye\b", re.IGNORECASE)


def counted(text: str, program: str) -> str:
    """Embeddings barely tell one from both: closing one eye is a wink ("close one eye" is nearest "close both
    eyes")."""
    return "wink" if program == "close_eyes" and _ONE_EYE.search(text) else program


# Sentence embeddings barely tell "left" from "right" (or "up" from "down"): the words decide.
_MIRRORED = {"look_left": "look_right", "look_right": "look_left", "look_up": "look_down",
             "look_down": "look_up", "turn_head_left": "turn_head_right", "turn_head_right": "turn_head_left",
             "tilt_head_left": "tilt_head_right", "tilt_head_right": "tilt_head_left",
             "raise_eyebrows": "frown", "frown": "raise_eyebrows"}
_BROWS = {"raise_eyebrows": "up", "frown": "down"}  # the brows' direction
_DIRECTION = {name: _BROWS.get(name) or name.rsplit("_", 1)[1] for name in _MIRRORED}
_OPPOSITE_WORD = {"left": "right", "right": "left", "up": "down", "down": "up"}
_BROW_WORDS = {"brow", "brows", "eyebrow", "eyebrows"}


def named_direction(text: str) -> bool:
    """The text names a way to move: "left", "rightwards", "upward" (a bare "up" or "down" is as often a particle:
    "cheer up", "calm down"), not a side of the face ("left eye")."""
    words = re.findall(r"[a-z]+", text.lower())
    return any((w in ("left", "right") or re.fullmatch(r"(left|right|up|down)wards?", w))
               and not nxt.startswith(("eye", "brow", "cheek", "side")) for w, nxt in zip(words, words[1:] + [""]))


Scored = tuple[Instruction, float]


def directed_first(text: str, candidates: list[Scored], threshold: float) -> Scored:
    """The best candidate, or, when the text names a direction and the best has none, the best one that has
    ("peek leftward": a thesaurus reading of "peek" as "blink" must not drop the direction the user asked for)."""
    def has_direction(instruction: Instruction) -> bool:
        return any(name in _MIRRORED for name, _ in instruction.programs)

    best = candidates[0]
    if not named_direction(text) or has_direction(best[0]):
        return best
    with_one = [c for c in candidates if c[1] >= threshold and has_direction(c[0])]
    return with_one[0] if with_one else best


def directed(text: str, program: str) -> str:
    """The program turned the way the user's words say ("look to the right" matched "look left")."""
    if program not in _MIRRORED:
        return program
    # "leftward(s)", "upward": the direction is the stem
    words = {re.sub(r"wards?$", "", w) for w in re.findall(r"[a-z]+", text.lower())}
    if program in _BROWS:
        if not words & _BROW_WORDS:  # "frown and calm down": the brows' direction only where the brows are named
            return program
        words |= {"up"} if words & {"raise", "raised", "lift", "lifted"} else set()
        words |= {"down"} if words & {"lower", "lowered", "drop", "dropped"} else set()
    direction = _DIRECTION[program]
    said = {w for w in _OPPOSITE_WORD if w in words} | ({"up"} if words & {"ceiling", "sky"} else set()) \
        | ({"down"} if words & {"floor", "ground"} else set())
    if program.startswith("look_") and len(said) == 1 and direction not in said:
        return f"look_{next(iter(said))}"  # the eyes go the one way named ("eyes toward the ceiling": not left)
    return _MIRRORED[program] if _OPPOSITE_WORD[direction] in said and direction not in said else program
