"""Instructions that describe a situation ("react as if your team just lost"): what the matcher reads.

    python -m benchmarks.situations   -> benchmarks/results/situations.json

Two parts, kept apart:
- calibration (chose `SituationConfig`'s settings): each appraisal of `realtime.instruct.appraisals` read with
  itself left out of its emotion's list, and the chat lines of `benchmarks.matcher_wordings` (must be refused),
  over a grid of thresholds and margins;
- validation (measured once the settings were fixed, not tuned on): `benchmarks.scenario_wordings`, situation
  wordings and chat lines written at once by hand by a session that saw neither the appraisals nor the
  implementation, through the whole matcher, with situations on and off.
"""
from __future__ import annotations

import argparse
import json
from collections import Counter
from pathlib import Path


def calibrate(reader, chat: tuple[str, ...]) -> list[dict]:
    from realtime.instruct.appraisals import APPRAISALS

    held = [(text, name) for name, texts in APPRAISALS.items() for text in texts]
    scored = [(name, reader.scores(text, leave_out=text)) for text, name in held]
    chat_scores = [reader.scores(text) for text in chat]
    rows = []
    for threshold in (0.35, 0.4, 0.45, 0.5, 0.55):
        for margin in (0.0, 0.02, 0.04, 0.06):
            def read(scores, threshold=threshold, margin=margin):
                ranked = sorted(scores.items(), key=lambda kv: -kv[1])
                ok = ranked[0][1] >= threshold and ranked[0][1] - ranked[1][1] >= margin
                return ranked[0][0] if ok else None
            got = [read(s) for _, s in scored]
            rows.append({"threshold": threshold, "margin": margin,
                         "appraisals_right": sum(g == n for g, (n, _) in zip(got, scored)) / len(scored),
                         "appraisals_wrong": sum(g not in (None, n) for g, (n, _) in zip(got, scored)) / len(scored),
                         "chat_accepted": sum(read(s) is not None for s in chat_scores)})
    return rows


def validate(situations: bool) -> dict:
    from benchmarks.scenario_wordings import CHAT, SCENARIOS
    from realtime.instruct import InstructionEncoder, InstructionNotUnderstood, MatcherConfig, ProgramMatcher

    matcher = ProgramMatcher(InstructionEncoder().setup(), config=MatcherConfig(situations=situations)).setup()
    rows, outcome = [], Counter()
    for text, expected in SCENARIOS:
        try:
            match = matcher(text)
            got = sorted(n for n, _ in match.programs)
        except InstructionNotUnderstood:
            got, match = ["(refused)"], None
        kind = "right" if got == [expected] else "refused" if match is None else "wrong"
        outcome[kind] += 1
        rows.append({"text": text, "expected": expected, "got": got, "outcome": kind,
                     "via": None if match is None else match.nearest_text})
    accepted = []
    for text in CHAT:
        try:
            accepted.append([text, sorted(n for n, _ in matcher(text).programs)])
        except InstructionNotUnderstood:
            pass
    per_emotion = {e: sum(r["outcome"] == "right" for r in rows if r["expected"] == e)
                   / sum(r["expected"] == e for r in rows) for e in sorted({e for _, e in SCENARIOS})}
    return {"right": outcome["right"] / len(rows), "wrong": outcome["wrong"] / len(rows),
            "refused": outcome["refused"] / len(rows), "count": len(rows), "per_emotion": per_emotion,
            "chat_accepted": accepted, "chat_count": len(CHAT), "rows": rows}


def main(argv: list[str] | None = None) -> None:
    from benchmarks.matcher_wordings import SMALL_TALK
    from realtime.instruct import InstructionEncoder
    from realtime.instruct.situations import SituationReader

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/situations.json"))
    args = parser.parse_args(argv)
    reader = SituationReader(InstructionEncoder().setup()).setup()
    result = {"calibration": calibrate(reader, SMALL_TALK), "config": vars(reader.config),
              "validation_without": validate(False), "validation_with": validate(True)}
    for row in result["calibration"]:
        print("calibration  threshold {threshold:.2f} margin {margin:.2f}: appraisals right {appraisals_right:.2f} "
              "wrong {appraisals_wrong:.2f}, chat accepted {chat_accepted}".format(**row))
    for name in ("validation_without", "validation_with"):
        r = result[name]
        print(f"{name}: right {r['right']:.2f} wrong {r['wrong']:.2f} refused {r['refused']:.2f} of {r['count']}; "
              f"chat accepted {len(r['chat_accepted'])} of {r['chat_count']}; per emotion "
              + ", ".join(f"{e} {v:.2f}" for e, v in r["per_emotion"].items()))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
