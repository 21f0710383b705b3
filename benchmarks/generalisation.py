"""Motion on input nobody tuned for, measured on the output pixels.

    python -m benchmarks.generalisation [--quick] [--checkpoint DIR] [--sheets docs/contact_sheets/generalisation]

Every clip goes through what `avatar render --text/--audio` does (`realtime.render.generator_motion`, the
shipped sampler settings, the portrait renderer); dlib's 68 points on each rendered frame give the measures
(`benchmarks/pixels.py`), never the motion vectors.

- Lip sync (`benchmarks/pixel_judges.py`): espeak-ng sentences written for this evaluation (`render --text`),
  and real human speech from every offline source (`benchmarks/heldout_speech.py`) in clean, telephone-band
  (300-3400 Hz, 8 kHz), 15 dB SNR noise, reverberant (sox reverb) and telephone + line noise versions; every
  clip starts speaking at once and has pauses of 150-450 ms and a silent tail.
- Instructions (`benchmarks/heldout_wordings.py`): wordings no training template makes (asserted), per class
  (emotions, action units, gaze, head gestures in both directions, combinations) and intensity words, over
  an espeak-ng sentence (`--text`) and a real recording (`--audio`), each against the uninstructed render of
  the same speech; the teacher's own pixel change for each class on the same sentence, for scale.

Writes benchmarks/results/generalisation[_quick].json and .md. --quick: 2 wordings per class, fewer clips,
every 2nd frame for instructions (a few minutes on 2 cores); the default: 4 wordings, every clip.
"""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

from benchmarks import heldout_speech as hs
from benchmarks import heldout_wordings as hw
from benchmarks.pixel_judges import cold_start, followed, lipsync
from benchmarks.pixels import PixelMeter, column
from realtime.vocab import SAMPLES_PER_FRAME

RESULTS = Path(__file__).parent / "results"
INSTRUCTION_TEXT = "Somebody brought a blue umbrella to the meeting, but nobody used it."
ONSET_FRAMES = 15  # instructions are judged after 0.6 s (the programs' onset and the first chunks)
FACE = (slice(120, 424), slice(128, 384))


class Bench:
    """The render path, the pixel meter and the speech sources, loaded once."""

    def __init__(self, checkpoint: str | None, seed: int, sampler: dict | None = None, reword: bool = True):
        from realtime.assembly import AvatarParts
        from realtime.config import AvatarConfig
        from realtime.speech import Espeak

        config = AvatarConfig().replace("server", checkpoint=checkpoint) if checkpoint else AvatarConfig()
        config = config.replace("sampler", **(sampler or {}))
        if not reword:  # the instruction text as written, as before issue 11
            config = config.replace("encoder", reword=False)
        self.parts = AvatarParts.load(config)
        self.renderer = self.parts.renderer()
        self.meter = PixelMeter(self.parts.portrait)
        self.espeak = Espeak()
        self.espeak.setup()
        self.seed = seed

    def motion(self, audio: np.ndarray, instruction: str | None) -> np.ndarray:
        from realtime.render import generator_motion

        values = generator_motion(self.parts, audio, instruction, None, self.seed).values
        return values[: len(audio) // SAMPLES_PER_FRAME]

    def frames(self, values: np.ndarray) -> np.ndarray:
        return np.concatenate([np.asarray(self.renderer(values[k:k + 8])) for k in range(0, len(values), 8)])

    def aligner(self, audio: np.ndarray, text: str) -> list[tuple[float, float]]:
        from benchmarks.eval_generator import bilabial_times

        return bilabial_times(audio, text, self.parts.model, self.espeak)


def run_lipsync(bench: Bench, quick: bool) -> list[dict]:
    rows = []
    clips = hs.espeak_clips(bench.espeak, quick) + hs.human_clips(bench.aligner, quick)
    for clip in clips:
        conditions = ("clean",) if clip.source == "espeak-ng" else hs.CONDITIONS
        for condition in conditions:
            audio = hs.degrade(clip, condition)
            table = bench.meter(bench.frames(bench.motion(audio, None)))
            res = lipsync(column(table, "mouth_open"), hs.frame_db(clip.audio), hs.frame_db(audio), clip.voiced,
                          clip.bilabials)
            rows.append({"clip": clip.name, "source": clip.source, "condition": condition, "text": clip.text,
                         **res, "opening": [round(float(v), 3) for v in column(table, "mouth_open")]})
            print(f"  lipsync {clip.name:16} {condition:16} r {res['r']:.2f} lag {res['lag']:+d} "
                  f"pbm {res['bilabials_closed']}/{res['bilabials']} silent {res['silent_closed']}/"
                  f"{res['silent_frames']}", flush=True)
        cold, repeat = hs.cold_start_clip(clip)
        opening = column(bench.meter(bench.frames(bench.motion(cold.audio, None))), "mouth_open")
        ratio = cold_start(opening, repeat, -(-cold.first // SAMPLES_PER_FRAME))
        rows.append({"clip": cold.name, "source": clip.source, "condition": "cold_start", "cold_start": ratio,
                     "opening": [round(float(v), 3) for v in opening], "repeat_frame": repeat})
        print(f"  cold start {clip.name:16} first / again {ratio:.2f}", flush=True)
    return rows


def _teacher_tables(bench: Bench, speech, n: int, stride: int) -> dict[str, np.ndarray]:
    from realtime.animate import Animator, AnimatorConfig

    animator = Animator(AnimatorConfig())
    out = {"": None}
    for name, programs in [("", ())] + list(hw.TEACHER.items()):
        values = animator(speech, n, programs=list(programs), seed=bench.seed).values[ONSET_FRAMES:n:stride]
        out[name] = bench.meter(bench.frames(values))
    return out


def run_instructions(bench: Bench, quick: bool, sheets: Path | None) -> dict:
    from realtime.media import resample

    stride = 2 if quick else 1
    speech = bench.espeak(INSTRUCTION_TEXT, voice="en-us")
    from realtime.render import padded

    sources = {"text": padded(resample(speech.audio, speech.sample_rate, 16000))}
    human = [c for c in hs.human_clips(lambda *_: [], quick) if c.source in ("cmu-arctic", "alsa-utils")]
    for clip in human[: 1 if quick else 2]:
        sources[f"audio:{clip.source}"] = clip.audio
    rows, sheet_frames = [], {}
    teacher = _teacher_tables(bench, speech, len(sources["text"]) // SAMPLES_PER_FRAME, stride)
    for source, audio in sources.items():
        def render(text, audio=audio):
            frames = bench.frames(bench.motion(audio, text)[ONSET_FRAMES::stride])
            return frames, bench.meter(frames)

        base_frames, base = render(None)
        sheet_frames[(source, "")] = base_frames
        for name, wording in hw.wordings(quick):
            group, rules = hw.CLASSES[name][0], hw.rules_for(name, wording)
            frames, table = render(wording)
            ok, values = followed(rules, table, base)
            teacher_ok, teacher_values = (followed(rules, teacher[name], teacher[""]) if source == "text"
                                          else (None, None))
            rows.append({"source": source, "class": name, "group": group, "wording": wording, "followed": ok,
                         "values": values, "teacher_values": teacher_values, "teacher_followed": teacher_ok,
                         "rules": [[r.measure, r.sign, r.threshold] for r in rules]})
            sheet_frames.setdefault((source, name), frames)
            if not ok:
                sheet_frames[(source, wording)] = frames
            print(f"  {source:18} {name:16} {wording!r:45} {'ok  ' if ok else 'MISS'} "
                  + " ".join(f"{v:+.3f}" for v in values)
                  + (" teacher " + " ".join(f"{v:+.3f}" for v in teacher_values) if teacher_values else ""), flush=True)
        for slight, strong, measure, sign in hw.INTENSITY_PAIRS:
            rule = hw.Rule(measure, sign, 0.0)
            a = followed((rule,), render(slight)[1], base)[1][0] * sign
            b = followed((rule,), render(strong)[1], base)[1][0] * sign
            ok = b >= 1.3 * a and a >= 0.25 * b and b > 0.01
            rows.append({"source": source, "class": "intensity", "group": "intensity",
                         "wording": f"{slight} / {strong}",
                         "followed": bool(ok), "values": [a, b], "teacher_values": None, "rules": [[measure, sign, 0]]})
            print(f"  {source:18} intensity {slight!r} {a:+.3f} / {strong!r} {b:+.3f} {'ok' if ok else 'MISS'}")
    if sheets is not None:
        write_sheets(rows, sheet_frames, sheets)
    return {"sources": list(sources), "sentence": INSTRUCTION_TEXT, "stride": stride, "rows": rows}


def write_sheets(rows: list[dict], frames: dict, out: Path) -> None:
    """Contact sheets per source, a row of 6 frames per class after the uninstructed render's row: `classes_*`
    every class (its first wording), `failing_*` every wording that failed."""
    from PIL import Image

    from realtime.avatar.sheet import contact_sheet

    out.mkdir(parents=True, exist_ok=True)
    for source in sorted({r["source"] for r in rows}):
        mine = [r for r in rows if r["source"] == source and (source, r["class"]) in frames]
        missed = [r["wording"] for r in mine if not r["followed"] and (source, r["wording"]) in frames]
        for kind, names, scale in (("classes", [r["class"] for r in mine], 0.4), ("failing", missed, 0.5)):
            tiles, labels = [], []
            for name in [""] + list(dict.fromkeys(names)):
                clip = frames[(source, name)]
                for k in np.linspace(0, len(clip) - 1, 6).astype(int):
                    tiles.append(clip[k][FACE[0], FACE[1]])
                    labels.append(f"{(name or 'uninstructed')[:24]} {k}")
            sheet = contact_sheet(np.asarray(tiles), labels, cols=6, scale=scale)
            path = out / f"{kind}_{source.replace(':', '_')}.png"
            sheet.quantize(colors=256, method=Image.Quantize.MEDIANCUT).save(path, optimize=True)
            print(f"wrote {path}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--checkpoint", default=None)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--only", choices=("lipsync", "instructions"), default=None)
    parser.add_argument("--sampler", nargs="*", default=[], metavar="KEY=VALUE",
                        help="SamplerConfig overrides, e.g. prime_chunks=0 (the settings before issue 11)")
    parser.add_argument("--no-reword", action="store_true", help="give the generator the wordings as written")
    parser.add_argument("--sheets", default=None, help="folder for contact sheets: every class, and the failing ones")
    parser.add_argument("--out", default=None, help="JSON path (default benchmarks/results/generalisation[_quick])")
    args = parser.parse_args(argv)
    from benchmarks.generalisation_report import markdown, summary
    from realtime.motion.sampler import SamplerConfig

    hs.check_sentences()
    compared = hw.check()
    started = time.time()
    overrides = {k: type(getattr(SamplerConfig(), k))(v) for k, v in (kv.split("=", 1) for kv in args.sampler)}
    bench = Bench(args.checkpoint, args.seed, overrides, reword=not args.no_reword)
    result = {"command": "python -m benchmarks.generalisation" + (" --quick" if args.quick else "")
              + "".join(f" --sampler {kv}" for kv in args.sampler) + (" --no-reword" if args.no_reword else ""),
              "checkpoint": args.checkpoint or "shipped", "seed": args.seed,
              "sampler": vars(bench.parts.config.sampler), "catalogue_texts_checked": compared}
    if args.only != "instructions":
        result["lipsync"] = run_lipsync(bench, args.quick)
    if args.only != "lipsync":
        result["instructions"] = run_instructions(bench, args.quick, Path(args.sheets) if args.sheets else None)
    result["summary"] = summary(result)
    result["seconds"] = round(time.time() - started, 1)
    name = "generalisation_quick.json" if args.quick else "generalisation.json"
    out = Path(args.out) if args.out else RESULTS / name
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=1, default=float) + "\n")
    out.with_suffix(".md").write_text(markdown(result))
    print(out.with_suffix(".md").read_text())
    print(f"wrote {out} and {out.with_suffix('.md')} in {result['seconds']} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
