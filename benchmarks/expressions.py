"""Expressions measured on the output pixels, on every portrait: does "look sad" read as sad?

    python -m benchmarks.expressions [--portraits default,grace_hopper] [--levels 0.35,0.65,1] [--quick]

For each portrait and each instruction ("look sad", "look serious", ... and negations such as "stop
smiling") at each intensity, renders what `avatar render --teacher --text SENTENCE --instruction TEXT
--intensity I` renders (the instruction matcher, the procedural animator with speech, the renderer), reads
dlib's 68 points on the frames after the expression's onset and compares their medians with the
uninstructed render of the same sentence (`benchmarks/face_metrics.py` holds the definitions and the
signatures each expression must show). Writes benchmarks/results/expressions.json and .md.
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from benchmarks.face_metrics import SIGNATURES, against, check, clip_signature
from realtime.vocab import FPS

RESULTS = Path(__file__).parent / "results"
PORTRAITS = {"default": None, "grace_hopper": Path(__file__).parent / "portraits" / "grace_hopper.jpg"}
SENTENCE = "We will see what the weather does over the next few days."
# (label, instruction text); the label names the signature the clip is judged by
INSTRUCTIONS = (
    ("serious", "look serious"), ("serious", "keep a straight face"), ("neutral", "look neutral"),
    ("serious", "look serious, no smile"), ("serious", "stop smiling"),
    ("happy", "look happy"), ("sad", "look sad"), ("angry", "look angry"), ("surprised", "look surprised"),
    ("disgusted", "look disgusted"), ("fearful", "look scared"), ("contemptuous", "look contemptuous"),
)
ONSET_S = 0.7  # programs reach their apex within 0.5 s; measure after


def matched(matcher, instruction: str | None, intensity: float) -> list[tuple[str, float]]:
    """The programs `render --teacher --instruction TEXT --intensity I` animates."""
    return [(name, intensity) for name, _ in matcher(instruction).programs] if instruction else []


def clip_frames(renderer, animator, speech, programs, seed: int = 0, stride: int = 2) -> np.ndarray:
    """The rendered frames after the programs' onset, every `stride`-th."""
    n = int(np.ceil(speech.duration * FPS))
    motion = animator(speech, n, programs=programs, seed=seed).values
    return np.asarray(renderer(motion[np.arange(int(ONSET_S * FPS), n, stride)]))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--portraits", default=",".join(PORTRAITS))
    parser.add_argument("--levels", default="0.35,0.65,1")
    parser.add_argument("--quick", action="store_true", help="intensity 1 only, every 4th frame")
    parser.add_argument("--out", default=str(RESULTS))
    args = parser.parse_args(argv)

    from realtime.animate import Animator, AnimatorConfig
    from realtime.avatar import DlibLandmarkDetector, RenderConfig, Renderer, enrol
    from realtime.instruct import InstructionEncoder, ProgramMatcher
    from realtime.speech import Espeak

    levels = [1.0] if args.quick else [float(v) for v in args.levels.split(",")]
    stride = 4 if args.quick else 2
    espeak = Espeak()
    espeak.setup()
    speech = espeak(SENTENCE)
    matcher = ProgramMatcher(InstructionEncoder()).setup()
    animator, detector = Animator(AnimatorConfig()), DlibLandmarkDetector()
    rows = []
    for portrait_name in args.portraits.split(","):
        renderer = Renderer(enrol(PORTRAITS[portrait_name]), RenderConfig()).setup()
        base = clip_signature(detector, clip_frames(renderer, animator, speech, [], stride=stride))
        print(f"{portrait_name}: uninstructed lift {base['lift']:+.3f}, brows {base['brow_height']:.3f}", flush=True)
        for label, text in INSTRUCTIONS:
            for level in levels:
                programs = matched(matcher, text, level)
                frames = clip_frames(renderer, animator, speech, programs, stride=stride)
                changes = against(clip_signature(detector, frames), base)
                failed = check(label, changes) if level == 1.0 else []
                rows.append({"portrait": portrait_name, "label": label, "instruction": text, "intensity": level,
                             "programs": programs, **{k: round(v, 4) for k, v in changes.items()},
                             "judged": level == 1.0 and label in SIGNATURES, "failed": failed})
                print(f"  {text!r:28} {level:.2f} {programs} " + " ".join(f"{k} {v:+.3f}" for k, v in changes.items())
                      + (f"  FAILED {failed}" if failed else ""), flush=True)
        rows.append({"portrait": portrait_name, "label": "uninstructed",
                     "base": {k: round(v, 4) for k, v in base.items()}})
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "expressions.json").write_text(json.dumps({"sentence": SENTENCE, "onset_s": ONSET_S, "rows": rows},
                                                     indent=1) + "\n")
    (out / "expressions.md").write_text(table(rows))
    print(f"wrote {out / 'expressions.json'} and {out / 'expressions.md'}")
    judged = [r for r in rows if r.get("judged")]
    return 0 if all(not r["failed"] for r in judged) else 1


def table(rows: list[dict]) -> str:
    cols = ("lift", "corners_up", "brows_up", "brows_closer", "eyes_wider", "upper_lip_up", "nose_up", "mouth_opener")
    lines = ["| portrait | instruction | intensity | programs | " + " | ".join(cols) + " | signature |",
             "|---|---|---|---|" + "---|" * len(cols) + "---|"]
    for r in rows:
        if "base" in r:
            continue
        programs = ", ".join(name for name, _ in r["programs"])
        verdict = ("fails: " + "; ".join(r["failed"])) if r["failed"] else ("holds" if r["judged"] else "")
        lines.append(f"| {r['portrait']} | {r['instruction']} | {r['intensity']:.2f} | {programs} | "
                     + " | ".join(f"{r[c]:+.3f}" for c in cols) + f" | {verdict} |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    raise SystemExit(main())
