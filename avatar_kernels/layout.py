"""Block sizes and precision choices shared by the launchers (plain Python: no triton import)."""

from __future__ import annotations

import torch


def next_power_of_2(n: int) -> int:
    return 1 << max(0, n - 1).bit_length()


def padded_head_dim(d: int) -> int:
    """The kernel block width a head dim runs at: 32, 64 or 128 (zero-padded columns cost nothing in the result)."""
    return max(32, next_power_of_2(d))


def key_block(lk: int) -> int:
    """One power-of-two block holding every cached key (>= 16: the smallest tl.dot side the GPU build takes)."""
    return max(16, next_power_of_2(lk))


def dot_precision(dtype: torch.dtype) -> str:
    """float32 follows torch's TF32 matmul switch (off by default), as SDPA does; half types ignore it."""
    if dtype == torch.float32 and not torch.backends.cuda.matmul.allow_tf32:
        return "ieee"
    return "tf32"
