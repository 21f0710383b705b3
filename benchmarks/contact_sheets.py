"""Contact sheets of the teacher's programs → docs/contact_sheets/.

    python -m benchmarks.contact_sheets [--out docs/contact_sheets] [--only NAME ...]

- `expressions_<portrait>.png`: every emotion at its apex (intensity 1), next to the face as photographed,
  on each portrait of `benchmarks/expressions.py`, face crops at full resolution;
- `emotion_<name>.png`: the emotion over time (onset to held) at the three documented intensities, full
  resolution;
- `speech_<emotion>.png`: talking under an emotion (and as photographed), mouth and face at full resolution;
- `motion_<name>.png`: each facial or head motion over time, downscaled to keep the folder small.
"""
from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from realtime.vocab import FPS, LEVELS

FACE = (slice(120, 424), slice(128, 384))  # rows, cols of the aligned 512² frame: brows to chin, full size
HEAD = (slice(96, 480), slice(96, 416))  # head and neck, for the head motions
SPEECH_TEXT = "Mama made my money, maybe. We will see what the weather does."
SPEECH_EMOTIONS = (None, "neutral", "happy", "sad", "angry", "surprised")


def _save(frames: np.ndarray, labels: list[str], path: Path, crop=FACE, cols: int = 6, scale: float = 1.0) -> None:
    """256 colours, dithered (a plain palette turns skin sepia): full-size sheets small enough to commit."""
    from PIL import Image

    from realtime.avatar.sheet import contact_sheet

    sheet = contact_sheet(np.asarray(frames)[:, crop[0], crop[1]], labels, cols=cols, scale=scale)
    sheet.quantize(colors=256, method=Image.Quantize.MEDIANCUT, dither=Image.Dither.FLOYDSTEINBERG).save(
        path, optimize=True)
    print(f"wrote {path}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", default="docs/contact_sheets")
    parser.add_argument("--only", nargs="*", default=None, help="program names (and/or 'speech', 'expressions')")
    parser.add_argument("--seconds", type=float, default=3.0)
    args = parser.parse_args(argv)

    from benchmarks.expressions import PORTRAITS
    from realtime.animate import PROGRAMS, Animator, AnimatorConfig
    from realtime.avatar import RenderConfig, Renderer, enrol
    from realtime.vocab import EMOTIONS

    def wanted(name: str) -> bool:
        return not args.only or name in args.only

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    animator = Animator(AnimatorConfig())
    frames = int(args.seconds * FPS)
    apex = frames - 1
    if wanted("expressions"):
        for portrait_name, image in PORTRAITS.items():
            renderer = Renderer(enrol(image), RenderConfig()).setup()
            tiles = [np.asarray(renderer(animator(None, frames, seed=0).values[apex:]))]
            for name in EMOTIONS:
                tiles.append(np.asarray(renderer(animator(None, frames, [(name, 1.0)], seed=0).values[apex:])))
            _save(np.concatenate(tiles), ["as photographed", *EMOTIONS], out / f"expressions_{portrait_name}.png",
                  cols=3)

    renderer = Renderer(enrol(None), RenderConfig()).setup()
    for name, program in PROGRAMS.items():
        if not wanted(name):
            continue
        emotion = program.kind == "emotion"
        picks = np.array([0, 5, 10, 20, 40, apex]) if emotion else np.linspace(0, apex, 8).round().astype(int)
        levels = tuple(LEVELS.values()) if emotion else (1.0,)
        tiles, labels = [], []
        for level in levels:
            motion = animator(None, frames, programs=[(name, level)], seed=0).values
            tiles.append(np.asarray(renderer(motion[picks])))
            labels += [f"{level:.2f} t={i / FPS:.2f}s" for i in picks]
        if emotion:
            _save(np.concatenate(tiles), labels, out / f"emotion_{name}.png")
        else:
            _save(np.concatenate(tiles), labels, out / f"motion_{name}.png", crop=HEAD, cols=8, scale=0.6)

    if wanted("speech"):
        from realtime.speech import Espeak

        espeak = Espeak()
        espeak.setup()
        speech = espeak(SPEECH_TEXT)
        n = int(np.ceil(speech.duration * FPS))
        picks = np.arange(12, n, max(1, (n - 12) // 12))[:12]
        for emotion in SPEECH_EMOTIONS:
            programs = [(emotion, 1.0)] if emotion else []
            motion = animator(speech, n, programs=programs, seed=0).values
            label = emotion or "as photographed"
            _save(renderer(motion[picks]), [f"{label} t={i / FPS:.2f}s" for i in picks],
                  out / f"speech_{emotion or 'photographed'}.png")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
