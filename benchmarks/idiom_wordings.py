"""Idiomatic, figurative and colloquial instructions for the program matcher.

Five idiom-laden wordings per program, ten two-program combinations, and thirty chat lines that
use figurative language but ask for no expression or movement. Written blind to the matcher's
reference wordings and to the project's other evaluation sets. A wording counts as followed when
the matcher's program names equal the expected set exactly; a chat line counts when it is refused.

    python -m benchmarks.idiom_wordings   -> benchmarks/results/idiom_wordings.json (without and with idioms)
"""

from __future__ import annotations

import argparse
import json
from collections import defaultdict
from pathlib import Path


def _one(program: str, *texts: str) -> tuple[tuple[str, frozenset[str]], ...]:
    """Pair each text with the single-program expected set."""
    return tuple((text, frozenset({program})) for text in texts)


SINGLE: tuple[tuple[str, frozenset[str]], ...] = (
    # emotions
    *_one(
        "happy",
        "look like you just won the lottery",
        "be on cloud nine",
        "look happy as a clam",
        "show me you're over the moon",
        "look like a kid on christmas morning",
    ),
    *_one(
        "sad",
        "be down in the dumps",
        "look like you lost your best friend",
        "look like someone rained on your parade",
        "look heartbroken and blue",
        "put on a long face",
    ),
    *_one(
        "angry",
        "look like you're about to blow a fuse",
        "be hopping mad",
        "look ready to bite someone's head off",
        "show me you're seeing red",
        "look like steam is coming out of your ears",
    ),
    *_one(
        "surprised",
        "look taken aback",
        "look like your eyes are playing tricks on you",
        "look like that came out of left field",
        "look like you got caught off guard",
        "look totally gobsmacked",
    ),
    *_one(
        "disgusted",
        "look like you smelled something rotten",
        "look like you stepped in something gross",
        "look like you just sniffed spoiled milk",
        "look totally grossed out",
        "look like that turns your stomach",
    ),
    *_one(
        "fearful",
        "look scared stiff",
        "look like you're shaking in your boots",
        "look like there's a monster under the bed",
        "be scared out of your wits",
        "look like you're walking through a haunted house",
    ),
    *_one(
        "contemptuous",
        "look down your nose at me",
        "act like you're too good for this",
        "look like i'm beneath you",
        "be all high and mighty",
        "give me a holier than thou sneer",
    ),
    *_one(
        "neutral",
        "put on your poker face",
        "keep a straight face",
        "look cool as a cucumber",
        "keep it deadpan",
        "reset your face to factory settings",
    ),
    # motions: face
    *_one(
        "raise_eyebrows",
        "raise an eyebrow at that",
        "make your eyebrows hit your hairline",
        "do the rock eyebrow thing",
        "pop those brows up",
        "eyebrows up like oh really",
    ),
    *_one(
        "frown",
        "knit your brows",
        "furrow your brow",
        "scrunch your eyebrows together",
        "make a frowny face",
        "draw your brows together like a puzzled detective",
    ),
    *_one(
        "smile",
        "crack a smile",
        "turn that frown upside down",
        "give us a mona lisa smile",
        "flash a friendly smile",
        "let the corners of your mouth curl up",
    ),
    *_one(
        "grin",
        "grin from ear to ear",
        "show off those pearly whites",
        "give me a big cheesy grin",
        "grin like a cheshire cat",
        "say cheese with all your teeth",
    ),
    *_one(
        "pout",
        "stick out your bottom lip",
        "give me duck lips",
        "do a duck face for the selfie",
        "sulk with your lip stuck out",
        "pucker up for a kiss",
    ),
    *_one(
        "open_mouth_wide",
        "open wide like at the dentist",
        "say aah like at the doctor's",
        "gape like you're catching flies",
        "open up like a baby bird waiting for food",
        "unhinge your jaw like a snake",
    ),
    # motions: eyes
    *_one(
        "blink",
        "bat your eyelashes",
        "blink twice if you can hear me",
        "flutter your eyelids",
        "blink like there's dust in your eye",
        "give me a slow cat blink",
    ),
    *_one(
        "wink",
        "give me a cheeky wink",
        "wink wink nudge nudge",
        "wink like we share a secret",
        "give chat a sly wink",
        "tip us a wink",
    ),
    *_one(
        "close_eyes",
        "rest your eyes for a minute",
        "catch some shut-eye",
        "close your peepers",
        "squeeze your eyes shut tight",
        "shut your eyes like you're making a wish",
    ),
    *_one(
        "look_left",
        "throw some side-eye to your left",
        "cut your eyes to the left",
        "peek left out of the corner of your eye",
        "shifty eyes over to the left",
        "let your eyes wander off to the left",
    ),
    *_one(
        "look_right",
        "shoot a side-eye to the right",
        "cut your eyes over to the right",
        "peek right out of the corner of your eye",
        "dart your eyes over to the right",
        "let your gaze drift to the right",
    ),
    *_one(
        "look_up",
        "cast your eyes heavenward",
        "eyes up to the sky",
        "lift your gaze to the ceiling",
        "glance up like you're searching your memory",
        "peek up through your lashes",
    ),
    *_one(
        "look_down",
        "cast your eyes down",
        "drop your gaze to the floor",
        "eyes on the floor like a shy kid",
        "glance down like you're checking your phone",
        "lower your eyes to your lap",
    ),
    # motions: head
    *_one(
        "turn_head_left",
        "swivel your head to the left",
        "whip your head around to the left",
        "turn to the left like someone called your name",
        "look back over your left shoulder",
        "face left like you're checking for traffic",
    ),
    *_one(
        "turn_head_right",
        "swivel your head to the right",
        "snap your head around to the right",
        "turn right like you heard a noise over there",
        "look back over your right shoulder",
        "face right like you're crossing the road",
    ),
    *_one(
        "tilt_head_left",
        "tilt your head left like a confused puppy",
        "cock your head to the left",
        "lean your head toward your left shoulder",
        "give me the curious dog head tilt to the left",
        "drop your left ear to your shoulder",
    ),
    *_one(
        "tilt_head_right",
        "cock your head to the right",
        "do the confused puppy tilt to the right",
        "lean your head over onto your right shoulder",
        "tip your head right like you're listening closely",
        "drop your right ear toward your shoulder",
    ),
    *_one(
        "nod",
        "nod along like you agree",
        "bob your head yes",
        "nod like a dashboard dog",
        "give a knowing nod",
        "say yes with your head",
    ),
    *_one(
        "shake_head",
        "shake your head in disbelief",
        "give me the disappointed dad head shake",
        "shake your head like nuh-uh",
        "tsk tsk and shake your head",
        "give that idea a big head shake",
    ),
)

# Two programs at once: an idiomatic emotion or gesture joined with another.
COMBOS: tuple[tuple[str, frozenset[str]], ...] = (
    ("be on cloud nine and grin from ear to ear", frozenset({"happy", "grin"})),
    ("put on a long face and cast your eyes down", frozenset({"sad", "look_down"})),
    ("see red while you knit your brows", frozenset({"angry", "frown"})),
    ("look gobsmacked and open wide like at the dentist", frozenset({"surprised", "open_mouth_wide"})),
    ("be all high and mighty and shake your head", frozenset({"contemptuous", "shake_head"})),
    ("put on your poker face and cock your head left", frozenset({"neutral", "tilt_head_left"})),
    ("look scared stiff while you peek to the right", frozenset({"fearful", "look_right"})),
    ("give me a cheeky wink and crack a smile", frozenset({"wink", "smile"})),
    ("look grossed out and whip your head to the left", frozenset({"disgusted", "turn_head_left"})),
    ("raise an eyebrow and swivel your head to the right", frozenset({"raise_eyebrows", "turn_head_right"})),
)

WORDINGS: tuple[tuple[str, frozenset[str]], ...] = SINGLE + COMBOS

# Figurative chat that asks the avatar for nothing; the matcher should refuse each line.
CHAT: tuple[str, ...] = (
    "break a leg tonight",
    "that stream was fire",
    "it's raining cats and dogs here",
    "you hit the nail on the head",
    "my boss is driving me up the wall",
    "i'm over the moon about my new job",
    "this boss fight is a piece of cake",
    "let's call it a night",
    "i'm feeling under the weather today",
    "that joke went right over my head",
    "the cat's out of the bag now",
    "we're all in the same boat",
    "you're pulling my leg",
    "that headset cost an arm and a leg",
    "my old laptop finally bit the dust",
    "time flies when you're having fun",
    "that plot twist blew my mind",
    "the ball is in your court now",
    "i'll take a rain check on that",
    "he spilled the beans about the party",
    "we painted the town red last night",
    "that song is stuck in my head",
    "i'm burning the midnight oil for finals",
    "once in a blue moon i win a ranked game",
    "your voice is music to my ears",
    "i've got butterflies before my interview",
    "you're a sight for sore eyes",
    "this lag is a pain in the neck",
    "let's cut to the chase",
    "lowkey this chat slaps",
)


def measure(idioms: bool) -> dict:
    """Every wording and chat line through the matcher, with or without the idiom wordings among its references."""
    from realtime.instruct import InstructionEncoder, InstructionNotUnderstood, ProgramMatcher, reference_texts

    matcher = ProgramMatcher(InstructionEncoder().setup(), reference_texts(idioms=idioms)).setup()

    def names(text: str) -> list[str] | None:
        """Matched program names, or None when the matcher refuses the text."""
        try:
            return sorted(name for name, _level in matcher(text).programs)
        except InstructionNotUnderstood:
            return None

    rows: list[dict[str, object]] = []
    followed: dict[str, int] = defaultdict(int)
    total: dict[str, int] = defaultdict(int)
    for text, expected in WORDINGS:
        got = names(text)
        ok = got is not None and frozenset(got) == expected
        key = "+".join(sorted(expected))  # single program name, or a combo key
        total[key] += 1
        followed[key] += ok
        rows.append({"kind": "wording", "text": text, "expected": sorted(expected), "got": got, "ok": ok})
    accepted = []
    for text in CHAT:
        got = names(text)
        if got is not None:
            accepted.append([text, got])
        rows.append({"kind": "chat", "text": text, "expected": None, "got": got, "ok": got is None})
    per_program = {key: f"{followed[key]}/{total[key]}" for key in sorted(total, key=lambda k: ("+" in k, k))}
    return {"followed": sum(followed.values()) / len(WORDINGS), "count": len(WORDINGS), "per_program": per_program,
            "chat_accepted": accepted, "rows": rows}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/idiom_wordings.json"))
    args = parser.parse_args(argv)
    result = {"command": "python -m benchmarks.idiom_wordings"}
    for key, idioms in (("without_idioms", False), ("with_idioms", True)):
        result[key] = measured = measure(idioms)
        print(f"{key}: followed {measured['followed']:.3f} of {measured['count']}, chat lines accepted "
              f"{len(measured['chat_accepted'])} of {len(CHAT)}")
        for program, share in measured["per_program"].items():
            print(f"  {program:<34} {share}")
        for text, got in measured["chat_accepted"]:
            print(f"  chat {text!r} -> {got}")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
