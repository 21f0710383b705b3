"""Words that decide what sentence embeddings cannot: which way ("left" or "right", "up" or "down"), how many
("one eye" or both) and which answer ("yes" or "no"). MiniLM puts "look left" next to "look right", "close one eye"
next to "close both eyes" and "a yes with your head" next to "shake your head no", so the matcher takes the
nearest catalogue wording and these rules set its direction, count and answer from the user's own words."""
from __future__ import annotations

import re

from realtime.instruct.catalogue import Instruction

_SIDEWARD = re.compile(r"\b(left|right)wards?\b", re.IGNORECASE)


def sideward_plain(text: str) -> str:
    """"leftward(s)" as "to the left": a word MiniLM barely knows, and a phrase it does."""
    return _SIDEWARD.sub(r"to the \1", text)


def names_side(text: str) -> bool:
    """The text says "left" or "right" (or "-ward(s)")."""
    return bool(re.search(r"\b(?:left|right)(?:wards?)?\b", text, re.IGNORECASE))


_ONE_EYE = re.compile(r"\b(?:one|an|a single|single)\s+eye\b", re.IGNORECASE)


def counted(text: str, program: str) -> str:
    """Embeddings barely tell one from both: closing one eye is a wink ("close one eye" is nearest "close both
    eyes")."""
    return "wink" if program == "close_eyes" and _ONE_EYE.search(text) else program


# A head gesture's answer: "yes" is a nod, "no" a shake. A "no" that negates what follows it ("nod with no smile")
# is no answer: only a "no" at the end or before "with"/"to"/"by" is ("signal no with your head", "a no").
_YES = re.compile(r"\b(?:yes|yeah|yep|agree|agreeing|agreement|approve|approving|approval|assent|affirm\w*)\b")
_NO = re.compile(r"\b(?:no(?=\s*(?:$|[,.!;]|\b(?:with|to|by|using)\b))|nope|disagree\w*|disapprov\w*|deny\w*|"
                 r"refus\w*|declin\w*)\b")


def answered(text: str, program: str) -> str:
    """A nod or a shake turned to the answer the user's words give ("give me a yes with your head" matched "shake
    your head no")."""
    if program not in ("nod", "shake_head"):
        return program
    lowered = text.lower()
    yes, no = bool(_YES.search(lowered)), bool(_NO.search(lowered))
    return program if yes == no else "nod" if yes else "shake_head"


# Sentence embeddings barely tell "left" from "right" (or "up" from "down"): the words decide.
_MIRRORED = {"look_left": "look_right", "look_right": "look_left", "look_up": "look_down",
             "look_down": "look_up", "turn_head_left": "turn_head_right", "turn_head_right": "turn_head_left",
             "tilt_head_left": "tilt_head_right", "tilt_head_right": "tilt_head_left",
             "raise_eyebrows": "frown", "frown": "raise_eyebrows"}
_BROWS = {"raise_eyebrows": "up", "frown": "down"}  # the brows' direction
_DIRECTION = {name: _BROWS.get(name) or name.rsplit("_", 1)[1] for name in _MIRRORED}
_OPPOSITE_WORD = {"left": "right", "right": "left", "up": "down", "down": "up"}
_BROW_WORDS = {"brow", "brows", "eyebrow", "eyebrows"}
_GAZE_WORDS = {"eye", "eyes", "gaze", "glance", "stare"}
_RAISING, _LOWERING = {"raise", "raised", "lift", "lifted"}, {"lower", "lowered", "drop", "dropped"}
EYE_WORDS = {"eye", "eyes", "look", "looking", "glance", "gaze", "stare", "peek", "peer", "eyeball", "eyeballs"}
# Places the eyes can be sent to that are above or below them, whatever the wording around them
_ABOVE = {"ceiling", "sky", "skies", "heaven", "heavens", "roof", "clouds", "sun", "moon", "stars", "overhead"}
_BELOW = {"floor", "ground", "feet", "foot", "toes", "shoes", "lap", "knees", "carpet", "desk", "table", "underfoot"}


def named_direction(text: str) -> bool:
    """The text names a way to move: "left", "rightwards", "upward" (a bare "up" or "down" is as often a particle:
    "cheer up", "calm down"), not a side of the face ("left eye"); or sends the eyes above or below ("your shoes")."""
    words = re.findall(r"[a-z]+", text.lower())
    if set(words) & (_ABOVE | _BELOW) and set(words) & EYE_WORDS:  # "look at your shoes"
        return True
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
    raised, lowered = bool(words & _RAISING), bool(words & _LOWERING)
    if program in _BROWS and not words & _BROW_WORDS:  # "frown and calm down": only where the brows are named
        if words & _GAZE_WORDS and raised != lowered:  # "lower your eyes" (nearest "lower your eyebrows")
            return "look_up" if raised else "look_down"
        return program
    if program in _BROWS or program in ("look_up", "look_down"):  # "lower your gaze", "lift your brows"
        words |= ({"up"} if raised else set()) | ({"down"} if lowered else set())
    direction = _DIRECTION[program]
    said = {w for w in _OPPOSITE_WORD if w in words} | ({"up"} if words & _ABOVE else set()) \
        | ({"down"} if words & _BELOW else set())
    if program.startswith("look_") and len(said) == 1 and direction not in said:
        return f"look_{next(iter(said))}"  # the eyes go the one way named ("eyes toward the ceiling": not left)
    return _MIRRORED[program] if _OPPOSITE_WORD[direction] in said and direction not in said else program
