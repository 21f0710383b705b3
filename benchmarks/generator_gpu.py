"""The motion generator's denoiser on a GPU: one DDIM forward at session batch sizes, Triton vs SDPA attention.

    python -m benchmarks.generator_gpu [--batches 1 8 64 256] [--iters 50] [--device cuda]

The live server runs the generator on CPU cores (`benchmarks.generator_speed`); this measures what a GPU adds
when every session's window waits in one batch (`realtime/motion/batcher.py` batches them). Each row is one
forward of the shipped checkpoint (fp32) over B windows, each with its own 8-frame prefix, audio states and a
12-token instruction cache, timed eager (CUDA events, mean over `--iters` calls) and as a CUDA-graph replay. The
attention is the project's Triton kernels (`avatar_kernels.attention`, what `attend` takes on CUDA) or PyTorch
SDPA, swapped in at `realtime.motion.model.attend`. Outputs are checked against SDPA on the GPU and against the
CPU forward. `chunk_ms_per_session` = DDIM steps x the forward of 2B rows (CFG pairs) / B. Without CUDA it runs
on the CPU (eager only) so the script itself stays tested. Writes benchmarks/results/generator_gpu.json.
"""
from __future__ import annotations

import argparse
import functools
import json
import platform
import time
from collections.abc import Callable
from pathlib import Path

import torch
import torch.nn.functional as F

from realtime.motion import model as generator_module

RESULTS = Path(__file__).parent / "results"
TOKENS = 12


def sdpa_attend(q, k, v, key_padding_mask):
    mask = None if key_padding_mask is None else key_padding_mask[:, None, None, :]
    return F.scaled_dot_product_attention(q, k, v, attn_mask=mask)


def make_inputs(model, batch: int, device: str, seed: int = 0) -> tuple:
    cfg = model.cfg
    g = torch.Generator().manual_seed(seed)
    x_t = torch.randn(batch, cfg.window, cfg.motion_dim, generator=g)
    t = torch.rand(batch, generator=g)
    prefix = torch.randn(batch, cfg.prefix, cfg.motion_dim, generator=g)
    prefix_valid = torch.ones(batch, cfg.prefix, dtype=torch.bool)
    prefix_valid[: batch // 4, : cfg.prefix // 2] = False  # some sessions just started
    audio = torch.randn(batch, cfg.prefix + cfg.window, cfg.audio_dim, generator=g)
    tokens = torch.randn(batch, TOKENS, cfg.text_dim, generator=g)
    mask = torch.arange(TOKENS)[None] < torch.randint(3, TOKENS + 1, (batch, 1), generator=g)
    inputs = (x_t, t, prefix, prefix_valid, audio)
    return tuple(x.to(device) for x in inputs), (tokens.to(device), mask.to(device))


def time_us(fn: Callable[[], torch.Tensor], device: str, iters: int) -> float:
    fn()
    if device != "cuda":
        t0 = time.perf_counter()
        for _ in range(iters):
            fn()
        return (time.perf_counter() - t0) * 1e6 / iters
    start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    torch.cuda.synchronize()
    start.record()
    for _ in range(iters):
        fn()
    end.record()
    end.synchronize()
    return start.elapsed_time(end) * 1e3 / iters


def graph_us(fn: Callable[[], torch.Tensor], iters: int) -> float:
    stream = torch.cuda.Stream()
    stream.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(stream):
        for _ in range(3):
            fn()
    torch.cuda.current_stream().wait_stream(stream)
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        fn()
    return time_us(graph.replay, "cuda", iters)


def run(batches: list[int], iters: int, device: str, steps: int) -> list[dict]:
    from realtime.motion.checkpoint import load_generator

    cpu_model = load_generator()
    model = load_generator(device=device)
    original = generator_module.attend
    impls = {"triton": original, "sdpa": sdpa_attend} if device == "cuda" else {"sdpa": sdpa_attend}
    rows = []
    for batch in batches:
        inputs, text = make_inputs(model, batch, device)
        with torch.inference_mode():
            cache = model.text_cache(*text)
            generator_module.attend = sdpa_attend
            reference = model(*inputs, cache).float()
            cpu_out = cpu_model(*(x.cpu() for x in inputs), cpu_model.text_cache(*(x.cpu() for x in text)))
            for name, attend in impls.items():
                generator_module.attend = attend
                out = model(*inputs, cache)
                fn = functools.partial(model, *inputs, cache)
                eager = time_us(fn, device, iters)
                graph = graph_us(fn, iters) if device == "cuda" else None
                best = graph if graph is not None else eager
                row = {"batch": batch, "attention": name, "eager_us": round(eager, 1),
                       "graph_us": None if graph is None else round(graph, 1),
                       "max_abs_diff_vs_sdpa": (out.float() - reference).abs().max().item(),
                       "max_abs_diff_vs_cpu": (out.float().cpu() - cpu_out).abs().max().item(),
                       # a CFG pair per session is one batch of 2B rows; assume it costs 2x the B-row forward
                       # at most (GPU forwards at these sizes are launch-bound, so this overstates it)
                       "chunk_ms_per_session_upper": round(steps * 2 * best / batch / 1e3, 3)}
                rows.append(row)
                graph_text = "n/a" if graph is None else f"{graph:8.1f} us"
                print(f"B{batch:>4} {name:>6}: eager {eager:8.1f} us  graph {graph_text}  "
                      f"diff vs sdpa {row['max_abs_diff_vs_sdpa']:.1e}, vs cpu {row['max_abs_diff_vs_cpu']:.1e}",
                      flush=True)
    generator_module.attend = original
    return rows


def main(argv: list[str] | None = None) -> int:
    from realtime.motion.sampler import SamplerConfig

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batches", type=int, nargs="+", default=[1, 8, 64, 256])
    parser.add_argument("--iters", type=int, default=50)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--out", type=Path, default=RESULTS / "generator_gpu.json")
    args = parser.parse_args(argv)
    steps = SamplerConfig().steps
    rows = run(args.batches, args.iters, args.device, steps)
    report = {"device": torch.cuda.get_device_name(0) if args.device == "cuda" else platform.processor() or "cpu",
              "torch": torch.__version__, "ddim_steps": steps, "instruction_tokens": TOKENS, "results": rows}
    if args.device == "cuda":
        import triton

        report["triton"] = triton.__version__
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=1) + "\n")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
