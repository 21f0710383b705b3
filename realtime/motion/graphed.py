"""The shared denoiser's forward on a GPU, replayed from CUDA graphs: one captured graph per batch size.

Why: eager on a GPU the forward is ~7-11 ms whatever the batch (hundreds of small kernels, each waiting on Python),
slower than the CPU trace; captured, it is 0.6-1.2 ms for 1-256 windows, and the Triton attention kernels are
13-21 % faster than SDPA only there (benchmarks/RESULTS.md, "On a GPU"). A graph replays fixed shapes, so each call
runs the graph of the next captured batch (`GraphConfig.batches`) and `GraphConfig.tokens` instruction tokens, its
own rows and tokens copied into the graph's buffers (`load`): the rows beyond it are dropped, the tokens beyond
it masked out, so every real row equals the forward of the call alone. Called like the model with CPU tensors
(what `ddim_sample_many` builds) and returning a CPU x0, so the DDIM arithmetic and the sessions' instruction
caches stay where they are; a call larger than any graph runs eagerly on the device.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

from realtime.motion.model import InstructionCache, MotionGenerator

Inputs = tuple[torch.Tensor, ...]  # x_t, t, prefix, prefix_valid, audio, mask, then 4 K/V tensors per layer


@dataclass(frozen=True)
class GraphConfig:
    # Rows per forward (a session's guidance branches are 2-3 rows): one graph each, ~1 s to capture on an H200
    batches: tuple[int, ...] = (2, 4, 8, 16, 32, 64)
    tokens: int = 32  # instruction tokens (the encoder's max_tokens)
    warmup: int = 3  # eager calls on a side stream before a capture (cuDNN / Triton autotune pick here)

    def __post_init__(self) -> None:
        assert self.batches and list(self.batches) == sorted(set(self.batches)) and self.batches[0] >= 1
        assert self.tokens >= 1 and self.warmup >= 1


def flatten(x_t, t, prefix, prefix_valid, audio, cache: InstructionCache) -> Inputs:
    return (x_t, t, prefix, prefix_valid, audio, cache.mask, *cache.flat())


def example(model: MotionGenerator, batch: int, tokens: int, device: torch.device) -> Inputs:
    """Inputs of `batch` rows and `tokens` tokens: a resting window, a valid prefix, every token attended."""
    cfg = model.cfg
    cache = model.text_cache(torch.zeros(batch, tokens, cfg.text_dim, device=device),
                             torch.ones(batch, tokens, dtype=torch.bool, device=device))
    return flatten(torch.zeros(batch, cfg.window, cfg.motion_dim, device=device), torch.zeros(batch, device=device),
                   torch.zeros(batch, cfg.prefix, cfg.motion_dim, device=device),
                   torch.ones(batch, cfg.prefix, dtype=torch.bool, device=device),
                   torch.zeros(batch, cfg.prefix + cfg.window, cfg.audio_dim, device=device), cache)


def load(static: Inputs, inputs: Inputs) -> None:
    """Copy a call's B rows of L tokens (flat `inputs`) into a graph's buffers (`static`, more rows and tokens):
    rows beyond B keep what an earlier call left (finite, independent rows, dropped), tokens beyond L are masked
    out of the real rows. Nothing is padded on the host: only the call's own bytes cross to the device."""
    rows, length = inputs[0].shape[0], inputs[5].shape[1]
    if rows > static[0].shape[0] or length > static[5].shape[1]:
        raise ValueError(f"{rows} rows of {length} tokens do not fit {static[0].shape[0]} x {static[5].shape[1]}")
    for i, (dst, src) in enumerate(zip(static, inputs)):
        if i == 5:  # the instruction mask (B, L)
            dst[:rows, :length].copy_(src, non_blocking=True)
            dst[:rows, length:] = False
        elif i > 5:  # K/V (B, H, L, D)
            dst[:rows, :, :length].copy_(src, non_blocking=True)
        else:
            dst[:rows].copy_(src, non_blocking=True)


def _forward(model: MotionGenerator, inputs: Inputs) -> torch.Tensor:
    x_t, t, prefix, prefix_valid, audio, mask, *kv = inputs
    return model(x_t, t, prefix, prefix_valid, audio, InstructionCache.of_flat(kv, mask))


class GraphedDenoiser:
    """`GraphedDenoiser(model_on_cuda).setup()` captures the graphs; then `denoiser(x_t, t, prefix, prefix_valid,
    audio, cache)` with CPU tensors returns x0 on the CPU. Serve it from one thread (the SharedDenoiser's)."""

    def __init__(self, model: MotionGenerator, config: GraphConfig | None = None):
        self.model = model
        self.config = config or GraphConfig()
        self.device = next(model.parameters()).device
        self._graphs: dict[int, tuple[torch.cuda.CUDAGraph, Inputs, torch.Tensor]] = {}

    def setup(self) -> GraphedDenoiser:
        if self._graphs:
            return self
        with torch.inference_mode():
            for batch in self.config.batches:
                static = example(self.model, batch, self.config.tokens, self.device)
                side = torch.cuda.Stream(self.device)
                side.wait_stream(torch.cuda.current_stream(self.device))
                with torch.cuda.stream(side):
                    for _ in range(self.config.warmup):
                        _forward(self.model, static)
                torch.cuda.current_stream(self.device).wait_stream(side)
                graph = torch.cuda.CUDAGraph()
                with torch.cuda.graph(graph):
                    out = _forward(self.model, static)
                self._graphs[batch] = (graph, static, out)
        return self

    def __call__(self, x_t, t, prefix, prefix_valid, audio, cache: InstructionCache) -> torch.Tensor:
        rows, tokens = x_t.shape[0], cache.mask.shape[1]
        batch = next((b for b in self.config.batches if b >= rows), None)
        inputs = flatten(x_t, t, prefix, prefix_valid, audio, cache)
        if batch is None or tokens > self.config.tokens:  # larger than any graph: eager, still on the device
            return _forward(self.model, tuple(x.to(self.device) for x in inputs)).cpu()
        graph, static, out = self._graphs[batch]
        load(static, inputs)
        graph.replay()
        return out[:rows].cpu()  # waits for the replay


__all__ = ["GraphConfig", "GraphedDenoiser", "example", "flatten", "load"]
