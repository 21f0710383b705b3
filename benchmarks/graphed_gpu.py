"""The shared denoiser on a GPU (`realtime/motion/graphed.py`): equal to the CPU forward, and what one call costs.

    python -m benchmarks.graphed_gpu [--out benchmarks/results/graphed_gpu.json]    (needs a CUDA device)

Checks the graphed forward against the CPU forward of the shipped checkpoint over row counts and instruction lengths
that land on every captured graph, between graphs, beyond the largest (eager on the device) and beyond the
captured token count; then times one call as the SharedDenoiser makes it (CPU tensors in, x0 back on the CPU) for
the graphed path, the CPU TorchScript trace on one thread (what the server runs without a GPU) and the eager
forward on the device (inputs already there); and runs six streams' windows through `SharedDenoiser(device="cuda")`
against each stream denoised alone on the CPU.
"""
from __future__ import annotations

import argparse
import concurrent.futures
import json
import time
from collections.abc import Callable
from pathlib import Path

import torch

RESULTS = Path(__file__).parent / "results"


def median_ms(call: Callable[[], object], iters: int) -> float:
    for _ in range(5):
        call()
    times = []
    for _ in range(iters):
        start = time.perf_counter()
        call()
        times.append(time.perf_counter() - start)
    return sorted(times)[len(times) // 2] * 1e3


def main(argv: list[str] | None = None) -> int:
    from realtime.motion.batcher import SharedDenoiser, traced_denoiser
    from realtime.motion.checkpoint import load_generator
    from realtime.motion.diffusion import DenoiseRequest, ddim_sample
    from realtime.motion.graphed import GraphedDenoiser, flatten
    from realtime.motion.model import InstructionCache

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=RESULTS / "graphed_gpu.json")
    args = parser.parse_args(argv)
    if not torch.cuda.is_available():
        raise SystemExit("benchmarks.graphed_gpu needs a CUDA device")
    torch.set_num_threads(1)
    cpu = load_generator()
    cfg = cpu.cfg
    g = torch.Generator().manual_seed(0)

    def call_args(rows: int, tokens: int) -> tuple:
        mask = torch.arange(tokens)[None] < torch.randint(1, tokens + 1, (rows, 1), generator=g)
        return (torch.randn(rows, cfg.window, cfg.motion_dim, generator=g), torch.rand(rows, generator=g),
                torch.randn(rows, cfg.prefix, cfg.motion_dim, generator=g),
                torch.rand(rows, cfg.prefix, generator=g) > 0.3,
                torch.randn(rows, cfg.prefix + cfg.window, cfg.audio_dim, generator=g),
                cpu.text_cache(torch.randn(rows, tokens, cfg.text_dim, generator=g), mask))

    report: dict = {"device": torch.cuda.get_device_name(0), "torch": torch.__version__}
    with torch.inference_mode():
        start = time.perf_counter()
        graphed = GraphedDenoiser(load_generator(device="cuda")).setup()
        report["capture_s"], report["batches"] = round(time.perf_counter() - start, 2), graphed.config.batches
        report["equality"] = []
        for rows, tokens in ((1, 1), (2, 12), (3, 7), (5, 32), (16, 20), (40, 12), (64, 32), (70, 12), (4, 40)):
            a = call_args(rows, tokens)
            diff = (graphed(*a) - cpu(*a)).abs().max().item()
            report["equality"].append({"rows": rows, "tokens": tokens, "max_abs_diff_vs_cpu": diff})
            print(f"rows {rows:3d} tokens {tokens:2d}: max diff vs CPU {diff:.2e}", flush=True)
        traced, report["timing_ms"] = traced_denoiser(cpu), []
        for rows in (2, 8, 32, 64):
            a = call_args(rows, 12)
            on_device = [x.cuda() for x in flatten(*a)]
            cache = InstructionCache.of_flat(on_device[6:], on_device[5])
            row = {"rows": rows, "graphed": median_ms(lambda a=a: graphed(*a), 50),
                   "traced_cpu_1_thread": median_ms(lambda a=a: traced(*a), 10),
                   "eager_on_device": median_ms(lambda d=on_device, c=cache: graphed.model(*d[:5], c).cpu(), 50)}
            report["timing_ms"].append({k: round(v, 3) for k, v in row.items()})
            print(report["timing_ms"][-1], flush=True)
    requests = []
    for k in range(6):  # 2 or 3 guidance branches a stream, as the sampler makes them
        branches = 2 + k % 2
        cache = cpu.text_cache(torch.randn(branches, 9, cfg.text_dim, generator=g),
                               torch.ones(branches, 9, dtype=torch.bool))
        requests.append(DenoiseRequest(torch.randn(1, cfg.window, cfg.motion_dim, generator=g),
                                       torch.randn(1, cfg.prefix, cfg.motion_dim, generator=g),
                                       torch.ones(1, cfg.prefix, dtype=torch.bool),
                                       torch.randn(1, cfg.prefix + cfg.window, cfg.audio_dim, generator=g),
                                       cache, [1.5] * (branches - 1)))
    shared = SharedDenoiser(cpu, device="cuda").start()
    with concurrent.futures.ThreadPoolExecutor(len(requests)) as pool:
        got = list(pool.map(lambda r: shared(r, 3), requests))
    alone = [ddim_sample(cpu, r.noise, 3, r.prefix, r.prefix_valid, r.audio, r.cache, r.weights) for r in requests]
    diff = max((a - b).abs().max().item() for a, b in zip(got, alone))
    report["shared_denoiser"] = {"streams": len(requests), "model_calls": shared.batches,
                                 "path": type(shared.model).__name__, "max_abs_diff_vs_cpu_alone": diff}
    shared.stop()
    print(report["shared_denoiser"])
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=1) + "\n")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
