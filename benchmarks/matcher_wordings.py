"""What the matcher reads in wordings written by hand for this check, thesaurus on and off.

    python -m benchmarks.matcher_wordings   -> benchmarks/results/matcher_wordings.json

The wordings below were written at once, before the thesaurus (`realtime.instruct.thesaurus`) was measured on
them, and its settings were not changed after: they check the matcher on words nobody tuned for, apart from the
WordNet wordings of `benchmarks.heldout_wordings` (which are judged on pixels) and from the catalogue's own held-out
wordings (which chose the thesaurus's settings). A wording counts when the matcher's program names are exactly
the expected ones; small talk counts when it is refused.
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

WORDINGS: tuple[tuple[str, frozenset[str]], ...] = tuple((text, frozenset(names.split())) for text, names in (
    ("look blissful", "happy"), ("seem chipper", "happy"), ("be gleeful", "happy"),
    ("look woeful", "sad"), ("seem mournful and weepy", "sad"), ("look disheartened", "sad"),
    ("look incensed", "angry"), ("be indignant", "angry"), ("seem exasperated", "angry"),
    ("look bewildered", "surprised"), ("be astonished beyond words", "surprised"), ("look staggered", "surprised"),
    ("look sickened by the smell", "disgusted"), ("be repelled", "disgusted"), ("seem grossed out", "disgusted"),
    ("look timid and fearful", "fearful"), ("seem apprehensive", "fearful"), ("look panicky", "fearful"),
    ("look smug and superior", "contemptuous"), ("be derisive", "contemptuous"), ("look scornful", "contemptuous"),
    ("look stoic", "neutral"), ("keep a poker face", "neutral"), ("look unemotional", "neutral"),
    ("lift your eyebrows in surprise", "surprised raise_eyebrows"), ("elevate your brows", "raise_eyebrows"),
    ("crease your forehead", "frown"), ("knit your forehead", "frown"),
    ("flash a smile", "smile"), ("show a big toothy grin", "grin"), ("pucker your lips", "pout"),
    ("let your mouth fall open", "open_mouth_wide"), ("flutter your eyes", "blink"), ("wink slyly", "wink"),
    ("squeeze your eyes shut", "close_eyes"), ("glance sideways to the left", "look_left"),
    ("shift your eyes to the right", "look_right"), ("roll your eyes upward", "look_up"),
    ("lower your gaze", "look_down"), ("swivel your head to the left", "turn_head_left"),
    ("swing your head to the right", "turn_head_right"), ("incline your head to the left", "tilt_head_left"),
    ("lean your head rightward", "tilt_head_right"), ("nod approvingly", "nod"),
    ("shake your head in disbelief", "shake_head"),
))
SMALL_TALK = ("good evening chat", "where did you buy that jacket", "the pizza arrived", "who won the match",
              "my internet is slow", "please read the next question", "thanks for the gift", "see you tomorrow",
              "turn up the music", "close the browser tab", "follow for more", "what a lovely day")


def measure(thesaurus: bool) -> dict:
    from realtime.instruct import InstructionEncoder, InstructionNotUnderstood, MatcherConfig, ProgramMatcher

    matcher = ProgramMatcher(InstructionEncoder().setup(), config=MatcherConfig(thesaurus=thesaurus)).setup()
    rows, right = [], 0
    for text, expected in WORDINGS:
        try:
            got = sorted(n for n, _ in matcher(text).programs)
        except InstructionNotUnderstood:
            got = ["(refused)"]
        right += set(got) == expected
        rows.append({"text": text, "expected": sorted(expected), "got": got})
    accepted = []
    for text in SMALL_TALK:
        try:
            accepted.append([text, sorted(n for n, _ in matcher(text).programs)])
        except InstructionNotUnderstood:
            pass
    return {"followed": right / len(WORDINGS), "count": len(WORDINGS), "rows": rows,
            "small_talk_accepted": accepted, "small_talk_count": len(SMALL_TALK)}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/matcher_wordings.json"))
    args = parser.parse_args(argv)
    result = {"without_thesaurus": measure(False), "with_thesaurus": measure(True)}
    for name, r in result.items():
        print(f"{name}: {r['followed']:.2f} of {r['count']} followed; small talk accepted "
              f"{len(r['small_talk_accepted'])} of {r['small_talk_count']}")
        for row in r["rows"]:
            if set(row["got"]) != set(row["expected"]):
                print(f"    {row['text']!r}: {row['got']} (expected {row['expected']})")
        for text, got in r["small_talk_accepted"]:
            print(f"    small talk {text!r} -> {got}")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
