"""Instruction wordings made by a different process than the training templates, split by class.

Where they come from (none is produced by `realtime.training.catalogue`; `check()` asserts that no wording is
a catalogue text, train or held-out, nor a matcher reference text):
- WordNet 3.0 synonyms of the catalogue's words (Debian `wordnet-base`, read from /usr/share/wordnet with
  `synonyms()` below): infuriated, maddened (furious), wrath, ire (anger), joyfulness (joy), sorrowfulness
  (sorrow), fright (fear), disrespect (contempt), glower, lour (frown), sulk (pout), nictitate (blink),
  tranquil (calm), surprisal (surprise);
- phrasings written by hand for this file (idioms, other verbs: "bob your head", "swivel", "peek");
- negations ("quit smiling", "no more grinning"), combinations ("beam and bob your head"), intensity words
  the templates do not use ("a tad", "enormously").

Thresholds are about half of what the teacher (the procedural animator, `render --teacher`) shows on the same pixels
for the class's program at intensity 1 (calibrated once, on the uninstructed sentence of
`benchmarks.generalisation`; the width rules again when the mouth's corners came to be read from the pixels, as the
teacher's smile then measured +0.154 IOD instead of dlib's +0.022: round 8 of benchmarks/RESULTS.md; on these pixels
the width no longer tells a grin from a smile); a class whose teacher change does not pass its own rule is reported
as not measurable on these pixels rather than as failed (`teacher_followed` in the results). Some signatures are not
the obvious ones because the obvious ones do not show in dlib's points on this renderer: anger lowers the lip
corners (its brow lowering moves dlib's brow points by < 0.01 IOD, for the teacher too), a frown narrows the eyes, a
nod moves the nose tip up and down. Where dlib's shape prior hides the change, the eye pixels are read
(`benchmarks.pixels` open_l / open_r, iris_y, iris_lid; round 5 of benchmarks/RESULTS.md): a wink is one eye's pixel
openness falling while the other stays (dlib moves both eyes' points together); vertical gaze must move the iris
against both the eye corners and the lids; happy on a portrait that already smiles (the default, whose corners
cannot rise further) is its narrowed, still open eyes (`smile_eyes`: raised cheeks, AU6).

A class is judged on the pixels (`benchmarks.pixels` measures), against the uninstructed render of the same
speech: `Rule(measure, sign, threshold)` holds when the change of the measure's median over the clip
(or, for `energy` rules, the ratio of its frame-to-frame motion) is at least `threshold` in direction `sign`.
Directions follow the project's convention: "left" is the image's left (`realtime/animate/programs.py`).
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Rule:
    measure: str  # a benchmarks.pixels measure, or "blinks" / "wink" / "smile_eyes" / "<measure>_energy"
    sign: float  # +1: must rise, -1: must fall (energy rules: ratio over the uninstructed render)
    threshold: float


# class -> (group, rules that must all hold, wordings); the first two wordings of a class make --quick
CLASSES: dict[str, tuple[str, tuple[Rule, ...], tuple[str, ...]]] = {
    # emotions
    "happy": ("emotion", (Rule("smile_eyes", -1, 0.04),),
              ("show joyfulness", "beam with happiness", "look thrilled to bits", "be full of joy and glee")),
    "sad": ("emotion", (Rule("lift", -1, 0.05),),
            ("show sorrowfulness", "look like you are about to cry", "be mournful", "look crestfallen")),
    "angry": ("emotion", (Rule("lift", -1, 0.05),),
              ("look infuriated", "give me a furious scowl", "be full of wrath", "look maddened")),
    "surprised": ("emotion", (Rule("brow_height", 1, 0.06),),
                  ("look thunderstruck", "act as if you cannot believe it", "show surprisal", "be caught off guard")),
    "disgusted": ("emotion", (Rule("nose", -1, 0.015),),
                  ("look queasy", "act like something smells awful", "wrinkle your nose in revulsion",
                   "look grossed out by it")),
    "fearful": ("emotion", (Rule("brow_height", 1, 0.05),),
                ("look spooked", "show fright", "act as if you saw a ghost", "look jittery")),
    "contemptuous": ("emotion", (Rule("mouth_asym", 1, 0.011),),
                     ("sneer at me", "look down your nose at me", "look supercilious", "show disrespect")),
    "not_smiling": ("emotion", (Rule("lift", -1, 0.06),),
                    ("quit smiling", "no more grinning please", "stop laughing", "look tranquil, no smiles")),
    # action units
    "raise_brows": ("action_unit", (Rule("brow_height", 1, 0.07),),
                    ("hoist your eyebrows", "put your eyebrows up high", "brows way up", "lift the eyebrows")),
    "frown": ("action_unit", (Rule("eye_open", -1, 0.015),),
              ("glower", "pull your brows down", "knit the brow", "lour at me")),
    "smile": ("action_unit", (Rule("width", 1, 0.075),),
              ("crack a smile", "flash a smile", "smile with your whole face", "give me a little smile")),
    "grin": ("action_unit", (Rule("width", 1, 0.13),),
             ("a toothy grin", "grin widely", "grin like a cheshire cat", "show a cheeky grin")),
    "pout": ("action_unit", (Rule("width", -1, 0.16),),
             ("sulk", "purse your lips", "push the lips forward", "pucker up")),
    "open_mouth": ("action_unit", (Rule("mouth_open", 1, 0.15),),
                   ("let your jaw hang open", "open wide", "mouth agape", "hang your mouth open")),
    "close_eyes": ("action_unit", (Rule("eye_open", -1, 0.1),),
                   ("shut both eyes tight", "keep the eyelids closed", "eyes shut please", "squeeze your eyes shut")),
    "blink": ("action_unit", (Rule("blinks", 1, 0.025),),
              ("bat your eyelids", "blink rapidly", "nictitate", "blink lots")),
    "wink": ("action_unit", (Rule("wink", 1, 0.034),),
             ("wink your eye at me", "a sly wink", "wink cheekily", "close one eye")),
    # gaze (the iris in the pixels)
    "gaze_left": ("gaze", (Rule("gaze_x", -1, 0.08),),
                  ("peek leftward", "cast your eyes to the left side", "eyes toward the left", "steal a look left")),
    "gaze_right": ("gaze", (Rule("gaze_x", 1, 0.08),),
                   ("peek rightward", "cast your eyes to the right side", "eyes toward the right",
                    "steal a look right")),
    "gaze_up": ("gaze", (Rule("iris_y", -1, 0.009), Rule("iris_lid", -1, 0.013)),
                ("peek upward", "gaze at the sky", "eyes toward the ceiling", "glance skyward")),
    "gaze_down": ("gaze", (Rule("iris_y", 1, 0.012), Rule("iris_lid", 1, 0.013)),
                  ("peek downward", "gaze at the ground", "eyes toward your feet", "glance at the ground")),
    # head gestures, both directions
    "nod": ("head", (Rule("nose_y_range", 1, 1.3),),
            ("bob your head up and down", "nod along", "give me a yes with your head", "keep nodding")),
    "shake": ("head", (Rule("nose_x_range", 1, 1.6),),
              ("wag your head side to side", "signal no with a head shake", "shake the head in disbelief",
               "head going side to side")),
    "turn_left": ("head", (Rule("yaw", -1, 0.05),),
                  ("swivel your head leftward", "swing your face to the left", "rotate the head leftward",
                   "point your nose to the left")),
    "turn_right": ("head", (Rule("yaw", 1, 0.06),),
                   ("swivel your head rightward", "swing your face to the right", "rotate the head rightward",
                    "point your nose to the right")),
    "tilt_left": ("head", (Rule("roll", -1, 4.0),),
                  ("tip your head to the left", "lean the head leftward", "cock the head to the left",
                   "incline your head to the left")),
    "tilt_right": ("head", (Rule("roll", 1, 4.0),),
                   ("tip your head to the right", "lean the head rightward", "cock the head to the right",
                    "incline your head to the right")),
    # combinations: every part must show
    "happy+nod": ("combination", (Rule("smile_eyes", -1, 0.04), Rule("nose_y_range", 1, 1.3)),
                  ("beam and bob your head", "look joyous while you nod along")),
    "angry+turn_left": ("combination", (Rule("lift", -1, 0.05), Rule("yaw", -1, 0.05)),
                        ("look infuriated and swivel your head leftward", "glower while swinging your face left")),
}
# Intensity: (slight wording, strong wording, measure, sign): followed when the strong wording moves the
# measure the right way by at least 1.3x what the slight one does, and the slight one by at least 0.25x. A smile
# is read on its width, as the smile class is: the default portrait already smiles, so its corners cannot lift.
INTENSITY_PAIRS: tuple[tuple[str, str, str, float], ...] = (
    ("a faint smile", "an enormous beaming smile", "width", 1),
    ("look a tad infuriated", "look enormously infuriated", "brow_height", -1),
    ("hoist your eyebrows a tad", "hoist your eyebrows enormously", "brow_height", 1),
    ("look a tad thunderstruck", "look enormously thunderstruck", "brow_height", 1),
)
# A wording that asks for less than the class's full expression is judged at this share of the class's thresholds:
# the thresholds are half the teacher's change at intensity 1, and "a little" asks for about a third of it (the
# intensity pairs above check that slight stays below strong).
ASKED_SHARE: dict[str, float] = {"give me a little smile": 0.5}


def rules_for(name: str, wording: str) -> tuple[Rule, ...]:
    """The class's rules, scaled to what the wording asks for (`ASKED_SHARE`)."""
    share = ASKED_SHARE.get(wording, 1.0)
    return tuple(Rule(r.measure, r.sign, r.threshold * share) for r in CLASSES[name][1])


# The teacher program(s) each class stands for, to measure the teacher's own magnitude on the same pixels.
TEACHER: dict[str, tuple[tuple[str, float], ...]] = {
    "happy": (("happy", 1.0),), "sad": (("sad", 1.0),), "angry": (("angry", 1.0),),
    "surprised": (("surprised", 1.0),), "disgusted": (("disgusted", 1.0),), "fearful": (("fearful", 1.0),),
    "contemptuous": (("contemptuous", 1.0),), "not_smiling": (("neutral", 1.0),),
    "raise_brows": (("raise_eyebrows", 1.0),), "frown": (("frown", 1.0),), "smile": (("smile", 1.0),),
    "grin": (("grin", 1.0),), "pout": (("pout", 1.0),), "open_mouth": (("open_mouth_wide", 1.0),),
    "close_eyes": (("close_eyes", 1.0),), "blink": (("blink", 1.0),), "wink": (("wink", 1.0),),
    "gaze_left": (("look_left", 1.0),), "gaze_right": (("look_right", 1.0),), "gaze_up": (("look_up", 1.0),),
    "gaze_down": (("look_down", 1.0),), "nod": (("nod", 1.0),), "shake": (("shake_head", 1.0),),
    "turn_left": (("turn_head_left", 1.0),), "turn_right": (("turn_head_right", 1.0),),
    "tilt_left": (("tilt_head_left", 1.0),), "tilt_right": (("tilt_head_right", 1.0),),
    "happy+nod": (("happy", 1.0), ("nod", 1.0)), "angry+turn_left": (("angry", 1.0), ("turn_head_left", 1.0)),
}


def wordings(quick: bool) -> list[tuple[str, str]]:
    """(class, wording) pairs: two per class with --quick, all otherwise."""
    return [(name, w) for name, (_, _, ws) in CLASSES.items() for w in (ws[:2] if quick else ws)]


def _norm(text: str) -> str:
    return " ".join(text.lower().replace(",", " ").split())


def check() -> int:
    """Assert that no wording here is a training-catalogue text (train or held-out split) or a matcher
    reference text; returns how many catalogue texts were compared."""
    from realtime.instruct.catalogue import reference_texts
    from realtime.training.catalogue import build_catalogue

    known = {_norm(i.text) for i in build_catalogue()} | {_norm(i.text) for i in reference_texts(idioms=True)}
    ours = [w for _, (_, _, ws) in CLASSES.items() for w in ws]
    ours += [w for slight, strong, _, _ in INTENSITY_PAIRS for w in (slight, strong)]
    clash = sorted(w for w in ours if _norm(w) in known)
    assert not clash, f"evaluation wordings that the training catalogue holds: {clash}"
    assert set(ASKED_SHARE) <= set(ours), "ASKED_SHARE names a wording the classes do not hold"
    return len(known)


def synonyms(word: str, pos: str = "adj", root: Path = Path("/usr/share/wordnet")) -> list[str]:
    """WordNet 3.0 synonyms of `word` (every sense), read straight from the database files (no nltk)."""
    parts = next((line.split() for line in (root / f"index.{pos}").open() if line.startswith(word + " ")), None)
    if parts is None:
        return []
    offsets = parts[4 + int(parts[3]) + 2:]
    out: list[str] = []
    with (root / f"data.{pos}").open("rb") as f:
        for offset in offsets:
            f.seek(int(offset))
            fields = f.readline().decode().split()
            for k in range(int(fields[3], 16)):
                lemma = fields[4 + 2 * k].split("(")[0].replace("_", " ").lower()
                if lemma != word and lemma not in out:
                    out.append(lemma)
    return out
