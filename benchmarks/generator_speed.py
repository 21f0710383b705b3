"""Cost of one streaming chunk of the motion generator on ONE CPU core (all DDIM steps and CFG included).

    python -m benchmarks.generator_speed [--checkpoint DIR] [--seconds 20] [--steps N]

Pushes real-time-sized audio chunks (one chunk's worth each) through a StreamingSampler and times every
push that produced a chunk; reports median / p90 / max milliseconds per chunk and their ratio to the chunk's
audio duration (budget: <= 25 %). Cases: no instruction (1 pass), instruction (CFG, 2 in one batch) and an
instruction cross-fade (3 in one batch). Writes benchmarks/results/generator_speed.json.
"""
from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path

import numpy as np
import torch

from realtime.vocab import MODEL_RATE, SAMPLES_PER_FRAME

RESULTS = Path(__file__).parent / "results"


def _speech(seconds: float, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * MODEL_RATE)) / MODEL_RATE
    envelope = (np.sin(2 * np.pi * 3.3 * t) > 0.2).astype(np.float32)
    tone = sum(np.sin(2 * np.pi * f * t) / k for k, f in enumerate([140, 280, 700, 1200], 1))
    return (0.2 * envelope * tone + 0.003 * rng.standard_normal(len(t))).astype(np.float32)


def _encoder():
    """The real instruction encoder when present; otherwise fixed random tokens of a typical length."""
    try:
        from realtime.instruct.encoder import InstructionEncoder

        enc = InstructionEncoder()
        enc.setup()
        return enc, "minilm"
    except ImportError:
        from types import SimpleNamespace

        def enc(text: str):
            g = torch.Generator().manual_seed(len(text))
            return SimpleNamespace(tokens=torch.randn(12, 384, generator=g), mask=torch.ones(12, dtype=torch.bool))

        return enc, "random-12-tokens"


def _load_model(path: str | None):
    from realtime.motion.checkpoint import CheckpointError, load_generator
    from realtime.motion.model import GeneratorConfig, MotionGenerator

    try:
        return load_generator(path), "checkpoint"
    except CheckpointError:
        if path is not None:
            raise
        return MotionGenerator(GeneratorConfig()).eval().requires_grad_(False), "untrained-default-config"


def time_case(model, encoder, audio: np.ndarray, instruction: str | None, switch_to: str | None, steps: int) -> dict:
    from realtime.motion.sampler import SamplerConfig, StreamingSampler

    sampler = StreamingSampler(model, encoder, SamplerConfig(steps=steps, transition_s=1e9 if switch_to else 0.48))
    sampler.set_instruction(instruction)
    step = model.cfg.window * SAMPLES_PER_FRAME
    times = []
    for i, start in enumerate(range(0, len(audio), step)):
        if switch_to and i == 3:
            sampler.set_instruction(switch_to)  # an endless cross-fade: every later chunk runs 3 in a batch
        t0 = time.perf_counter()
        out = sampler.push(audio[start:start + step])
        dt = time.perf_counter() - t0
        if len(out) and i >= 5:  # skip warm-up
            times.append(dt)
    chunk_s = model.cfg.window / 25
    ms = np.array(times) * 1e3
    return {"chunks": len(times), "median_ms": float(np.median(ms)), "p90_ms": float(np.percentile(ms, 90)),
            "max_ms": float(ms.max()), "chunk_ms": chunk_s * 1e3,
            "median_fraction_of_audio": float(np.median(ms) / (chunk_s * 1e3)),
            "p90_fraction_of_audio": float(np.percentile(ms, 90) / (chunk_s * 1e3))}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint", default=None, help="generator folder (default: the shipped checkpoint)")
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--steps", type=int, default=None, help="DDIM steps (default: SamplerConfig's)")
    args = parser.parse_args(argv)
    from realtime.motion.sampler import SamplerConfig

    torch.set_num_threads(1)
    steps = args.steps or SamplerConfig().steps
    model, source = _load_model(args.checkpoint)
    encoder, enc_source = _encoder()
    audio = _speech(args.seconds)
    with torch.inference_mode():
        cases = {
            "no_instruction": time_case(model, encoder, audio, None, None, steps),
            "instruction_cfg": time_case(model, encoder, audio, "smile warmly", None, steps),
            "instruction_crossfade": time_case(model, encoder, audio, "smile warmly", "look furious", steps),
        }
    result = {"model": source, "params": model.num_params(), "ddim_steps": steps, "threads": 1,
              "instruction_tokens": enc_source, "torch": torch.__version__,
              "cpu": platform.processor() or platform.machine(),
              "budget_fraction": 0.25, "cases": cases,
              "within_budget": all(c["median_fraction_of_audio"] <= 0.25 for c in cases.values())}
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "generator_speed.json").write_text(json.dumps(result, indent=1))
    for name, c in cases.items():
        print(f"{name:24s} median {c['median_ms']:6.1f} ms  p90 {c['p90_ms']:6.1f} ms  "
              f"per {c['chunk_ms']:.0f} ms chunk "
              f"-> {100 * c['median_fraction_of_audio']:.1f} % of real time (budget 25 %)")
    print(f"wrote {RESULTS / 'generator_speed.json'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
