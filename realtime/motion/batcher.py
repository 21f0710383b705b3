"""SharedDenoiser: one thread runs the DDIM windows of every live stream of a server.

The windows that are waiting when the thread becomes free run together, one batched model call per DDIM
step (`ddim_sample_many`). Alone, a window runs at once, so a single stream pays no added latency; under load
N streams cost about one call instead of N, because the model is small and its CPU time is per call (operator
dispatch), not per row. Each result equals what the stream would get alone. On CPU the denoiser runs as a
TorchScript trace: the same operations without Python between them (1.7x faster per call here) and without
holding the GIL while they run, which the sessions' render threads and the event loop need.
"""
from __future__ import annotations

import concurrent.futures
import copy
import logging
import queue
import threading
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass

import torch

from realtime.devices import pick_device
from realtime.motion.diffusion import DenoiseRequest, ddim_sample_many
from realtime.motion.model import InstructionCache, MotionGenerator

log = logging.getLogger(__name__)


@dataclass
class _Job:
    request: DenoiseRequest
    steps: int
    bounds: tuple[torch.Tensor, torch.Tensor] | None
    done: concurrent.futures.Future


class SharedDenoiser:
    """`SharedDenoiser(model).start()`; then `denoiser(request, steps, lo, hi)` from any thread blocks until that
    window is denoised; `stop()` ends the thread (waiting callers get an error)."""

    def __init__(self, model: MotionGenerator | Callable, max_batch: int = 16, trace: bool = True,
                 device: str = "cpu"):
        self.model, self.max_batch = model, max_batch
        # on a GPU the forward is replayed from CUDA graphs (graphed.py); the callers' tensors stay on the CPU
        self.device = pick_device(device) if isinstance(model, MotionGenerator) else torch.device("cpu")
        self.trace = trace and isinstance(model, MotionGenerator) and next(model.parameters()).device.type == "cpu"
        self._inbox: queue.SimpleQueue[_Job | None] = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._run, name="avatar-denoiser", daemon=True)
        self.batches = 0  # model batches run, and windows in them (batching efficiency = windows / batches)
        self.windows = 0
        self.busy_since: float | None = None  # monotonic start of the batch being denoised (None = idle)

    def stalled(self, limit_s: float) -> bool:
        """True when the thread is gone or one batch has run for longer than `limit_s` (it serves every call)."""
        since = self.busy_since
        return not self._thread.is_alive() or (since is not None and time.monotonic() - since > limit_s)

    def start(self) -> SharedDenoiser:
        self._thread.start()
        return self

    def stop(self, timeout: float = 5.0) -> None:
        self._inbox.put(None)
        if self._thread.is_alive():
            self._thread.join(timeout)

    def __call__(self, request: DenoiseRequest, steps: int, lo: torch.Tensor | None = None,
                 hi: torch.Tensor | None = None) -> torch.Tensor:
        if not self._thread.is_alive():
            raise RuntimeError("SharedDenoiser is not running (start() it; after stop() it is gone)")
        job = _Job(request, steps, None if lo is None else (lo, hi), concurrent.futures.Future())
        self._inbox.put(job)
        return job.done.result()

    def _run(self) -> None:
        with torch.inference_mode():
            if self.device.type == "cuda":
                self.model = self._graphed()
            elif self.trace:
                self.model = traced_denoiser(self.model)
            while True:
                self.busy_since = None
                jobs = [self._inbox.get()]
                self.busy_since = time.monotonic()
                while len(jobs) < self.max_batch:
                    try:
                        jobs.append(self._inbox.get_nowait())
                    except queue.Empty:
                        break
                stop = None in jobs
                live = [j for j in jobs if j is not None]
                # windows batch together when they share the step count and the clamp (in a server: always)
                groups: dict[tuple, list[_Job]] = {}
                for job in live:
                    groups.setdefault((job.steps, job.bounds is not None), []).append(job)
                for group in groups.values():
                    self._denoise(group)
                if stop:
                    return

    def _graphed(self) -> Callable:
        """The model's forward replayed from CUDA graphs; the CPU trace when capturing fails (logged)."""
        from realtime.motion.graphed import GraphedDenoiser

        try:
            return GraphedDenoiser(copy.deepcopy(self.model).to(self.device)).setup()
        except Exception:  # a driver or kernel that cannot be captured must not take the server down
            log.exception("capturing the denoiser's CUDA graphs failed; denoising on the CPU")
            return traced_denoiser(self.model) if self.trace else self.model

    def _denoise(self, jobs: list[_Job]) -> None:
        bounds = jobs[0].bounds or (None, None)
        try:
            results = ddim_sample_many(self.model, [j.request for j in jobs], jobs[0].steps, *bounds)
        except Exception as exc:  # the callers' sessions report it; the thread serves the others on
            log.exception("denoising %d windows failed", len(jobs))
            for job in jobs:
                job.done.set_exception(exc)
            return
        self.batches += 1
        self.windows += len(jobs)
        for job, x0 in zip(jobs, results):
            job.done.set_result(x0)


class _FlatDenoiser(torch.nn.Module):
    """The denoiser with the instruction cache as a flat list of tensors (what torch.jit.trace takes)."""

    def __init__(self, model: MotionGenerator):
        super().__init__()
        self.model = model

    def forward(self, x_t, t, prefix, prefix_valid, audio, mask, kv: list[torch.Tensor]) -> torch.Tensor:
        return self.model(x_t, t, prefix, prefix_valid, audio, InstructionCache.of_flat(kv, mask))


# torch.jit.trace is not thread-safe: two traces at once in one process failed (`IndexError: unordered_map::at`,
# the denoiser's thread and a session's sampler tracing the audio step, audio_stream.py). Every trace holds this.
TRACE_LOCK = threading.Lock()


def traced_denoiser(model: MotionGenerator) -> Callable:
    """`model`'s forward as a CPU TorchScript trace with the same call signature. Batch size and instruction
    length stay free (traced shapes are symbolic; checked equal to eager in tests); the attention dispatch is
    fixed to what the CPU takes (SDPA), so trace only on CPU. Frozen: later changes to `model`'s weights do not
    reach it (the server loads them once)."""
    cfg = model.cfg
    batch, tokens = 2, 5
    cache = model.text_cache(torch.zeros(batch, tokens, cfg.text_dim), torch.ones(batch, tokens, dtype=torch.bool))
    example = (torch.zeros(batch, cfg.window, cfg.motion_dim), torch.zeros(batch),
               torch.zeros(batch, cfg.prefix, cfg.motion_dim), torch.ones(batch, cfg.prefix, dtype=torch.bool),
               torch.zeros(batch, cfg.prefix + cfg.window, cfg.audio_dim), cache.mask,
               cache.flat())
    with TRACE_LOCK, warnings.catch_warnings():
        warnings.simplefilter("ignore", torch.jit.TracerWarning)  # the shape checks it bakes in hold for any batch
        flat = torch.jit.trace(_FlatDenoiser(model).eval(), example, check_trace=False)
    # frozen and optimised for inference (weights as constants, linear/conv fused with their bias and
    # activation): 15-20 % less CPU per forward on these small matrices, same values to float rounding
    flat = torch.jit.optimize_for_inference(torch.jit.freeze(flat))

    def forward(x_t, t, prefix, prefix_valid, audio, cache: InstructionCache) -> torch.Tensor:
        return flat(x_t, t, prefix, prefix_valid, audio, cache.mask, cache.flat())

    return forward


__all__ = ["SharedDenoiser", "traced_denoiser"]
