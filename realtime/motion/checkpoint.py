"""Generator checkpoints: `model.safetensors` (weights) + `config.json` (GeneratorConfig incl. feature
normalisation statistics, plus free-form training metadata). The committed one lives in
`realtime/motion/checkpoints/` as package data."""
from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file

from realtime.motion.model import GeneratorConfig, MotionGenerator
from realtime.vocab import INDEX, LEGACY_PROGRAM_NAMES, LO

DEFAULT_DIR = Path(__file__).parent / "checkpoints"
WEIGHTS, CONFIG = "model.safetensors", "config.json"


class CheckpointError(RuntimeError):
    """A generator checkpoint is missing or does not match this version of the model."""


def save_generator(model: MotionGenerator, path: str | Path, meta: dict[str, Any] | None = None) -> Path:
    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().contiguous().cpu() for k, v in model.state_dict().items()}
    save_file(state, str(path / (WEIGHTS + ".tmp")))
    (path / (WEIGHTS + ".tmp")).replace(path / WEIGHTS)
    doc = {"generator": dataclasses.asdict(model.cfg), "meta": meta or {}}
    (path / CONFIG).write_text(json.dumps(doc, indent=1))
    return path


def read_meta(path: str | Path | None = None) -> dict[str, Any]:
    path = Path(path) if path is not None else DEFAULT_DIR
    return json.loads((path / CONFIG).read_text()).get("meta", {})


def load_generator(path: str | Path | None = None, device: str | torch.device = "cpu") -> MotionGenerator:
    """The trained generator in eval mode; default: the checkpoint shipped with the package."""
    path = Path(path) if path is not None else DEFAULT_DIR
    if not (path / WEIGHTS).is_file() or not (path / CONFIG).is_file():
        hint = " (train one with `avatar train --corpus DIR --out DIR`, see realtime/motion/checkpoints/README.md)"
        raise CheckpointError(f"no generator checkpoint at {path}: expected {WEIGHTS} and {CONFIG}{hint}")
    try:
        cfg = GeneratorConfig.from_dict(json.loads((path / CONFIG).read_text())["generator"])
    except (KeyError, TypeError, json.JSONDecodeError) as exc:
        raise CheckpointError(f"{path / CONFIG}: not a generator config ({exc})") from exc
    model = MotionGenerator(cfg)
    try:
        model.load_state_dict(load_file(str(path / WEIGHTS)))
    except RuntimeError as exc:
        raise CheckpointError(f"{path / WEIGHTS} does not fit its config: {exc}") from exc
    # The lowest output per axis: a checkpoint trained before `smile` took negative values (no "smile_range" in
    # its meta) learned 0 .. 1, and its small negative outputs are noise, so they are clipped at 0.
    output_lo = LO.copy()
    output_lo[INDEX["smile"]] = max(float(LO[INDEX["smile"]]), read_meta(path).get("smile_range", [0.0])[0])
    model.output_lo = output_lo
    # The programs it learned: checkpoints from before a program was added to the vocabulary do not know it (the
    # sampler performs what they never learned with the teacher's programs).
    model.programs = tuple(read_meta(path).get("programs", LEGACY_PROGRAM_NAMES))
    return model.to(device).eval().requires_grad_(False)
