"""Contact sheets of every emotion and motion program on the default portrait → docs/contact_sheets/.

    python -m benchmarks.contact_sheets [--out docs/contact_sheets] [--only NAME ...]

Each sheet shows the program over time (onset, apex, offset) without speech, and for emotions the three
documented intensities; one extra sheet shows speech under an emotion (lips still close on /m/).
"""
from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from realtime.vocab import FPS, LEVELS

COLUMNS = 8
FACE = (slice(96, 480), slice(96, 416))  # rows, cols of the aligned 512² frame that hold head and neck
SCALE = 0.6


def _save(frames: np.ndarray, labels: list[str], path: Path) -> None:
    """Face crops, downscaled and palette-quantised: sheets stay small enough to commit."""
    from realtime.avatar.sheet import contact_sheet

    sheet = contact_sheet(np.asarray(frames)[:, FACE[0], FACE[1]], labels, cols=COLUMNS, scale=SCALE)
    sheet.quantize(colors=256, dither=0).save(path, optimize=True)
    print(f"wrote {path}")


def _pick(frames: int, n: int = COLUMNS) -> np.ndarray:
    return np.linspace(0, frames - 1, n).round().astype(int)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", default="docs/contact_sheets")
    parser.add_argument("--only", nargs="*", default=None)
    parser.add_argument("--seconds", type=float, default=3.0)
    args = parser.parse_args(argv)

    from realtime.animate import PROGRAMS, Animator, AnimatorConfig
    from realtime.avatar import RenderConfig, Renderer, enrol

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    renderer = Renderer(enrol(None), RenderConfig())
    renderer.setup()
    animator = Animator(AnimatorConfig())
    frames = int(args.seconds * FPS)
    picks = _pick(frames)
    for name, program in PROGRAMS.items():
        if args.only and name not in args.only:
            continue
        levels = tuple(LEVELS.values()) if program.kind == "emotion" else (1.0,)
        tiles, labels = [], []
        for level in levels:
            motion = animator(None, frames, programs=[(name, level)], seed=0).values
            tiles.append(np.asarray(renderer(motion[picks])))
            labels += [f"{level:.2f} t={i / FPS:.2f}s" for i in picks]
        _save(np.concatenate(tiles), labels, out / f"{program.kind}_{name}.png")

    if not args.only:
        from realtime.speech import Espeak

        espeak = Espeak()
        espeak.setup()
        speech = espeak("Mama made my money, maybe.")
        n = int(np.ceil(speech.duration * FPS))
        for emotion in ("happy", "sad"):
            motion = animator(speech, n, programs=[(emotion, 1.0)], seed=0).values
            picks = np.arange(0, n, max(1, n // 16))[:16]
            _save(renderer(motion[picks]), [f"{emotion} t={i / FPS:.2f}s" for i in picks],
                  out / f"speech_{emotion}.png")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
