"""Attention kernels: FlashAttention-style Triton forward kernels with PyTorch SDPA as the CPU path.

`attention` is the general entry point; `CachedKV` + `cross_attention` are the fast path for keys and values
that stay fixed across many calls (an instruction's tokens across DDIM steps and chunks). Triton is imported
only when a call takes the Triton path, so this package imports without it.
"""

from avatar_kernels.attention import MAX_HEAD_DIM, SUPPORTED_HEAD_DIMS, attention
from avatar_kernels.cached_kv import MAX_CACHED_KEYS, CachedKV, cross_attention
from avatar_kernels.dispatch import select_backend, triton_available
from avatar_kernels.errors import AttentionInputError, TritonModeError, UnsupportedHeadDimError
from avatar_kernels.reference import naive_attention, sdpa_attention

__all__ = [
    "MAX_CACHED_KEYS",
    "MAX_HEAD_DIM",
    "SUPPORTED_HEAD_DIMS",
    "AttentionInputError",
    "CachedKV",
    "TritonModeError",
    "UnsupportedHeadDimError",
    "attention",
    "cross_attention",
    "naive_attention",
    "sdpa_attention",
    "select_backend",
    "triton_available",
]
