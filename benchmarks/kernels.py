"""Attention kernels on CUDA: Triton vs PyTorch SDPA vs naive attention, at the motion generator's shapes.

    python -m benchmarks.kernels [--dtype float16 bfloat16 float32] [--iters 200] [--quick]

Shapes: B 1..8, H 4, D 32/64; self-attention over motion/audio frames (Lq 50-100, Lk 50-150) with a key
padding mask, and cross-attention to an instruction's text tokens (Lk 8-32), where the cached-K/V kernel
(`CachedKV` + `cross_attention`) is timed too. Each case is first checked against SDPA.

Two times per implementation, in microseconds from CUDA events:
- `eager_us`: one Python call (validation, dispatch, launch), the mean over `--iters` back-to-back calls; at these
  sizes this is mostly host overhead, which is what an eager model pays;
- `graph_us`: the same call captured in a CUDA graph and replayed: GPU time only, what a graphed model pays.
TFLOP/s counts 4 * B * H * Lq * Lk * D flops (two matmuls) against `graph_us`. The device is described through
`cuda-python` (name, SMs, clocks, memory) when installed, else through torch, so figures from different GPUs can
be compared. Writes benchmarks/results/kernels.json. Without a CUDA GPU it says so and exits 0.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import torch

from avatar_kernels import CachedKV, attention, cross_attention, naive_attention, sdpa_attention

RESULTS = Path(__file__).parent / "results"
HEADS = 4


@dataclass(frozen=True)
class Case:
    kind: str  # "self" (frames attend frames) or "cross" (frames attend instruction tokens)
    batch: int
    head_dim: int
    lq: int
    lk: int

    @property
    def flops(self) -> int:
        return 4 * self.batch * HEADS * self.lq * self.lk * self.head_dim


def cases(quick: bool) -> list[Case]:
    batches, dims = ((1, 8), (32,)) if quick else ((1, 2, 4, 8), (32, 64))
    self_lengths = ((50, 50), (100, 100), (100, 150)) if not quick else ((100, 100),)
    cross_lengths = ((50, 8), (100, 16), (100, 32)) if not quick else ((100, 16),)
    out = [Case("self", b, d, lq, lk) for b in batches for d in dims for lq, lk in self_lengths]
    out += [Case("cross", b, d, lq, lk) for b in batches for d in dims for lq, lk in cross_lengths]
    return out


def make_inputs(case: Case, dtype: torch.dtype, device: str, seed: int = 0):
    g = torch.Generator(device=device).manual_seed(seed)
    shape = (case.batch, HEADS)
    q = torch.randn(*shape, case.lq, case.head_dim, generator=g, device=device).to(dtype)
    k = torch.randn(*shape, case.lk, case.head_dim, generator=g, device=device).to(dtype)
    v = torch.randn(*shape, case.lk, case.head_dim, generator=g, device=device).to(dtype)
    # Real batches are padded to the longest sequence: 0-30 % of the keys of each row are padding.
    lengths = torch.randint(int(0.7 * case.lk), case.lk + 1, (case.batch,), generator=g, device=device).clamp(min=1)
    mask = torch.arange(case.lk, device=device)[None, :] < lengths[:, None]
    return q, k, v, mask


def implementations(case: Case, q, k, v, mask) -> dict[str, Callable[[], torch.Tensor]]:
    impls: dict[str, Callable[[], torch.Tensor]] = {
        "triton": lambda: attention(q, k, v, key_padding_mask=mask, backend="triton"),
        "sdpa": lambda: sdpa_attention(q, k, v, mask),
        "naive": lambda: naive_attention(q, k, v, mask),
    }
    if case.kind == "cross":
        cached = CachedKV.build(k, v, mask)
        impls["triton_cached"] = lambda: cross_attention(q, cached, backend="triton")
        impls["sdpa_cached"] = lambda: cross_attention(q, cached, backend="sdpa")
    return impls


def eager_us(fn: Callable[[], torch.Tensor], iters: int, repeats: int = 5) -> float:
    start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    per_call = []
    for _ in range(repeats):
        torch.cuda.synchronize()
        start.record()
        for _ in range(iters):
            fn()
        end.record()
        end.synchronize()
        per_call.append(start.elapsed_time(end) * 1e3 / iters)
    return statistics.median(per_call)


def graph_us(fn: Callable[[], torch.Tensor], iters: int, repeats: int = 5) -> float | None:
    """GPU time of one call: `iters` calls captured in one CUDA graph, replayed; None if capture fails."""
    try:
        stream = torch.cuda.Stream()
        stream.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(stream):  # warm-up on a side stream, as capture requires
            for _ in range(3):
                fn()
        torch.cuda.current_stream().wait_stream(stream)
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph):
            for _ in range(iters):
                fn()
    except Exception as err:  # noqa: BLE001 - a benchmark reports what it could not measure
        print(f"  (CUDA graph capture failed: {err})", file=sys.stderr)
        return None
    start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    per_call = []
    graph.replay()
    for _ in range(repeats):
        torch.cuda.synchronize()
        start.record()
        graph.replay()
        end.record()
        end.synchronize()
        per_call.append(start.elapsed_time(end) * 1e3 / iters)
    return statistics.median(per_call)


def describe_device(index: int = 0) -> dict:
    """Name, SMs, clocks and memory of the GPU, from cuda-python's driver API when installed, else from torch."""
    props = torch.cuda.get_device_properties(index)
    info: dict = {
        "source": "torch",
        "name": props.name,
        "compute_capability": f"{props.major}.{props.minor}",
        "sm_count": props.multi_processor_count,
        "memory_gib": round(props.total_memory / 2**30, 1),
        "torch_cuda": torch.version.cuda,
    }
    try:
        try:
            from cuda.bindings import driver  # cuda-python >= 12.6
        except ImportError:
            from cuda import cuda as driver  # older cuda-python
    except ImportError:
        return info

    def query(call, *args):
        err, *values = call(*args)
        if err != driver.CUresult.CUDA_SUCCESS:
            raise RuntimeError(f"{call.__name__} failed: {err}")
        return values[0] if len(values) == 1 else values

    def attribute(name: str, dev) -> int | None:
        try:
            return query(driver.cuDeviceGetAttribute, getattr(driver.CUdevice_attribute, name), dev)
        except Exception:  # noqa: BLE001 - attributes come and go between CUDA versions
            return None

    try:
        query(driver.cuInit, 0)
        dev = query(driver.cuDeviceGet, index)
        sm_clock = attribute("CU_DEVICE_ATTRIBUTE_CLOCK_RATE", dev)
        mem_clock = attribute("CU_DEVICE_ATTRIBUTE_MEMORY_CLOCK_RATE", dev)
        bus_bits = attribute("CU_DEVICE_ATTRIBUTE_GLOBAL_MEMORY_BUS_WIDTH", dev)
        info.update(
            source="cuda-python",
            name=query(driver.cuDeviceGetName, 256, dev).split(b"\0", 1)[0].decode(),
            sm_count=attribute("CU_DEVICE_ATTRIBUTE_MULTIPROCESSOR_COUNT", dev),
            sm_clock_mhz=None if sm_clock is None else sm_clock / 1e3,
            memory_clock_mhz=None if mem_clock is None else mem_clock / 1e3,
            memory_bus_bits=bus_bits,
            # DDR: two transfers per clock
            peak_memory_gb_s=None if None in (mem_clock, bus_bits) else round(2 * mem_clock * 1e3 * bus_bits / 8 / 1e9),
            memory_gib=round(query(driver.cuDeviceTotalMem, dev) / 2**30, 1),
            l2_mib=(attribute("CU_DEVICE_ATTRIBUTE_L2_CACHE_SIZE", dev) or 0) / 2**20,
            driver_version=query(driver.cuDriverGetVersion),
        )
    except Exception as err:  # noqa: BLE001 - fall back to what torch said
        info["cuda_python_error"] = str(err)
    return info


def run(dtypes: list[torch.dtype], iters: int, quick: bool, device: str = "cuda") -> list[dict]:
    rows = []
    for dtype in dtypes:
        for case in cases(quick):
            q, k, v, mask = make_inputs(case, dtype, device)
            reference = sdpa_attention(q, k, v, mask).float()
            for name, fn in implementations(case, q, k, v, mask).items():
                max_err = (fn().float() - reference).abs().max().item()  # also autotunes before timing
                eager = eager_us(fn, iters)
                graph = graph_us(fn, iters)
                row = {
                    **asdict(case),
                    "heads": HEADS,
                    "dtype": str(dtype).removeprefix("torch."),
                    "impl": name,
                    "eager_us": round(eager, 2),
                    "graph_us": None if graph is None else round(graph, 2),
                    "tflops": None if graph is None else round(case.flops / (graph * 1e-6) / 1e12, 3),
                    "max_abs_diff_vs_sdpa": max_err,
                }
                rows.append(row)
                graph_text = "n/a" if graph is None else f"{graph:7.2f} us  {row['tflops']:6.3f} TFLOP/s"
                print(
                    f"{row['dtype']:>8} {case.kind:>5} B{case.batch} D{case.head_dim} Lq{case.lq:>3} Lk{case.lk:>3}"
                    f" {name:>13}: eager {eager:8.1f} us  graph {graph_text}  diff {max_err:.1e}"
                )
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dtype", nargs="+", default=["float16", "bfloat16", "float32"],
                        choices=["float16", "bfloat16", "float32"])
    parser.add_argument("--iters", type=int, default=200, help="calls per timed repeat")
    parser.add_argument("--quick", action="store_true", help="a few shapes only")
    parser.add_argument("--out", type=Path, default=RESULTS / "kernels.json")
    args = parser.parse_args(argv)
    if not torch.cuda.is_available():
        print("no CUDA GPU on this machine: nothing to benchmark (the kernels are tested on CPU in "
              "tests/test_kernels.py under TRITON_INTERPRET=1)")
        return 0
    import triton

    dtypes = [getattr(torch, name) for name in args.dtype]
    report = {
        "device": describe_device(),
        "host": platform.node(),
        "torch": torch.__version__,
        "triton": triton.__version__,
        "heads": HEADS,
        "iters": args.iters,
        "results": run(dtypes, args.iters, args.quick),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=1))
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
