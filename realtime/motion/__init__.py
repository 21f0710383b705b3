"""Motion: the interpretable motion space (`space`) and the learned audio+instruction -> motion generator.

`features` (causal log-mel), `model` (audio encoder + two-branch conformer denoiser), `diffusion` (cosine
schedule, DDIM, guidance), `sampler` (streaming chunks; offline `generate`), `checkpoint`, `train`.
Heavy names are imported lazily so that `realtime.vocab` stays free of torch.
"""
from __future__ import annotations

from typing import Any

_LAZY = {
    "load_generator": "realtime.motion.checkpoint",
    "CheckpointError": "realtime.motion.checkpoint",
    "GeneratorConfig": "realtime.motion.model",
    "MotionGenerator": "realtime.motion.model",
    "SamplerConfig": "realtime.motion.sampler",
    "SamplerError": "realtime.motion.sampler",
    "StreamingSampler": "realtime.motion.sampler",
    "generate": "realtime.motion.sampler",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'realtime.motion' has no attribute {name!r}")


__all__ = sorted(_LAZY)
