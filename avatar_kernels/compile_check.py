"""Compile the attention kernels for an NVIDIA architecture without a GPU (triton ships ptxas).

    python -m avatar_kernels.compile_check [--arch 90 80] [--dtype float16 bfloat16 float32] [--all-configs]

Proves that the compiled build lowers all the way to a cubin (block shapes legal for tl.dot, no unsupported
ops) and reports shared memory and the matrix instructions used, on a machine with no GPU. Must run with
TRITON_INTERPRET unset (the interpreter never compiles).
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass

TYPES = {"float16": "fp16", "bfloat16": "bf16", "float32": "fp32"}
# (D, HEAD_DIM, CAUSAL, HAS_MASK) of the general kernel; (D, HEAD_DIM, LK_PAD) of the cached one
FLASH_VARIANTS = ((32, 32, False, True), (64, 64, True, True), (48, 64, False, False), (128, 128, True, False))
CROSS_VARIANTS = ((32, 32, 16), (64, 64, 32), (48, 64, 16), (128, 128, 128))


@dataclass
class Compiled:
    kernel: str
    arch: int
    dtype: str
    config: str
    variant: tuple
    shared_bytes: int
    matrix_ops: str  # wgmma (Hopper tensor cores), mma.sync (Ampere-style tensor cores) or fma (no tensor cores)


def _compile(jit_fn, pointer_types: dict[str, str], constexprs: dict, arch: int, config) -> tuple[int, str]:
    import triton
    from triton.backends.compiler import GPUTarget
    from triton.compiler import ASTSource

    constexprs = {**constexprs, **config.kwargs}
    signature = {
        name: "constexpr" if name in constexprs else pointer_types.get(name, "i32") for name in jit_fn.arg_names
    }
    source = ASTSource(
        fn=jit_fn, signature=signature, constexprs={(jit_fn.arg_names.index(k),): v for k, v in constexprs.items()}
    )
    compiled = triton.compile(
        source,
        target=GPUTarget("cuda", arch, 32),
        options={"num_warps": config.num_warps, "num_stages": config.num_stages},
    )
    ptx = compiled.asm["ptx"]
    ops = "wgmma" if "wgmma" in ptx else "mma.sync" if "mma.sync" in ptx else "fma"
    return compiled.metadata.shared, ops


def compile_all(arches: list[int], dtypes: list[str], all_configs: bool) -> list[Compiled]:
    import triton

    if triton.knobs.runtime.interpret:
        raise RuntimeError("unset TRITON_INTERPRET: the interpreter does not compile kernels")
    from avatar_kernels import cross_triton, flash_triton

    out = []
    for arch in arches:
        for dtype in dtypes:
            ptr = "*" + TYPES[dtype]
            precision = "ieee" if dtype == "float32" else "tf32"
            flash_configs = flash_triton._configs() if all_configs else flash_triton._configs()[:1]
            for config in flash_configs:
                for d, head_dim, causal, has_mask in FLASH_VARIANTS:
                    shared, ops = _compile(
                        flash_triton._attention_fwd.fn,
                        {"Q": ptr, "K": ptr, "V": ptr, "Out": ptr, "Mask": "*u8", "qk_scale": "fp32"},
                        dict(D=d, HEAD_DIM=head_dim, CAUSAL=causal, HAS_MASK=has_mask, DOT_PRECISION=precision),
                        arch,
                        config,
                    )
                    out.append(Compiled("flash", arch, dtype, _describe(config), (d, causal, has_mask), shared, ops))
            cross_configs = cross_triton._configs() if all_configs else cross_triton._configs()[:1]
            for config in cross_configs:
                for d, head_dim, lk_pad in CROSS_VARIANTS:
                    shared, ops = _compile(
                        cross_triton._cached_cross_attention_fwd.fn,
                        {"Q": ptr, "KT": ptr, "V": ptr, "Out": ptr, "Bias": "*fp32", "qk_scale": "fp32"},
                        dict(D=d, HEAD_DIM=head_dim, LK_PAD=lk_pad, DOT_PRECISION=precision),
                        arch,
                        config,
                    )
                    out.append(Compiled("cross", arch, dtype, _describe(config), (d, lk_pad), shared, ops))
    return out


def _describe(config) -> str:
    blocks = " ".join(f"{k}={v}" for k, v in config.kwargs.items())
    return f"{blocks} warps={config.num_warps} stages={config.num_stages}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--arch", type=int, nargs="+", default=[90], help="compute capability x10 (90 = H100)")
    parser.add_argument("--dtype", nargs="+", default=["float16"], choices=list(TYPES))
    parser.add_argument("--all-configs", action="store_true", help="every autotune config, not just the first")
    args = parser.parse_args(argv)
    for c in compile_all(args.arch, args.dtype, args.all_configs):
        print(f"sm_{c.arch} {c.kernel:5} {c.dtype:8} {c.variant!s:20} {c.config:40} "
              f"shared {c.shared_bytes:6d} B  {c.matrix_ops}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
