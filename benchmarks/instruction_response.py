"""How fast the generator itself answers an instruction change (offline, no server, no rendering).

    python -m benchmarks.instruction_response [--checkpoint DIR] [--seeds 3] [--silent]

Streams espeak-ng speech (or silence with --silent) through the StreamingSampler in 20 ms pushes, as a live
call does, and sends each instruction 2 s in. Per instruction: the mean of the axes it moves, projected on the
change from the 0.4 s before to 1.0-1.6 s after; "visible" is the audio time from sending to the first frame
of 3 held at >= 20 % of the change, "complete" at >= 90 %. The live pipeline adds its own latency on top
(`avatar bench`, instruction part). Writes benchmarks/results/instruction_response.json.
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from realtime.vocab import MODEL_RATE

RESULTS = Path(__file__).parent / "results"
TEXT = ("The moon is bright tonight and we can walk along the river for a while before dinner. "
        "Then we go home and read a book together.")
CASES = {"close your eyes": ("blink_left", "blink_right"), "smile warmly": ("smile",),
         "raise your eyebrows": ("brow_inner_up", "brow_outer_up"), "look a little annoyed": ("brow_down",)}
SEND_S, PUSH = 2.0, 320  # instruction time; 20 ms pushes at 16 kHz


def _held(progress: np.ndarray, level: float, hold: int = 3) -> int | None:
    return next((k for k in range(len(progress) - hold + 1) if (progress[k:k + hold] >= level).all()), None)


def response(model, encoder, audio: np.ndarray, text: str, axes: tuple[str, ...], seed: int) -> dict:
    from realtime.motion.sampler import StreamingSampler
    from realtime.vocab import INDEX

    sampler = StreamingSampler(model, encoder, seed=seed)
    send = int(SEND_S * MODEL_RATE)
    frames = []
    for start in range(0, len(audio), PUSH):
        if start == send:
            sampler.set_instruction(text)
        frames.append(sampler.push(audio[start:start + PUSH]))
    frames.append(sampler.flush())
    values = np.concatenate(frames)[:, [INDEX[a] for a in axes]].mean(1)
    f0 = int(SEND_S * 25)
    before, after = values[f0 - 10:f0].mean(), values[f0 + 25:f0 + 40].mean()
    change = float(after - before)
    progress = (values[f0:] - before) / (change if abs(change) > 1e-6 else 1.0)
    vis, full = _held(progress, 0.2), _held(progress, 0.9)
    return {"seed": seed, "change": round(change, 3), "visible_ms": None if vis is None else vis * 40,
            "complete_ms": None if full is None else full * 40}


def main(argv: list[str] | None = None) -> int:
    import torch

    from realtime.instruct.encoder import InstructionEncoder
    from realtime.media import resample
    from realtime.motion.checkpoint import load_generator
    from realtime.speech import Espeak

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint", default=None, help="generator folder (default: the shipped checkpoint)")
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--silent", action="store_true", help="a silent caller instead of speech")
    parser.add_argument("--out", default=str(RESULTS / "instruction_response.json"))
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    model = load_generator(args.checkpoint)
    encoder = InstructionEncoder()
    encoder.setup()
    speech = Espeak().setup()(TEXT, voice="en-us")
    audio = resample(speech.audio, speech.sample_rate, MODEL_RATE).astype(np.float32)
    if args.silent:
        audio = np.zeros_like(audio)
    rows = {}
    for text, axes in CASES.items():
        rows[text] = [response(model, encoder, audio, text, axes, seed) for seed in range(args.seeds)]
        vis = [r["visible_ms"] for r in rows[text]]
        full = [r["complete_ms"] for r in rows[text]]
        print(f"{text:24s} visible {vis} ms, complete {full} ms, change {[r['change'] for r in rows[text]]}")
    out = {"checkpoint": args.checkpoint or "shipped", "caller": "silent" if args.silent else "speech",
           "sent_at_s": SEND_S, "results": rows}
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(out, indent=1) + "\n")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
