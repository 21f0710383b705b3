"""Cross-attention against keys/values that stay fixed for many calls.

An instruction's text tokens (8-32) give per-layer K/V that are reused for every DDIM step of every chunk
while the instruction holds. `CachedKV` takes them once and prepares each path's form of them once: the
SDPA mask for the CPU path, and on first Triton use the packed,
padded layout of `avatar_kernels/cross_triton.py` with the padding mask folded into an additive bias.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
import torch.nn.functional as F

from avatar_kernels.attention import attention, check_inputs
from avatar_kernels.dispatch import Backend, interpreter_requested, select_backend, triton_module
from avatar_kernels.errors import AttentionInputError
from avatar_kernels.layout import dot_precision

MAX_CACHED_KEYS = 128  # all keys in one block of the cached kernel; longer K/V use the general kernel


@dataclass(frozen=True)
class PackedKV:
    k_t: torch.Tensor  # (B*H, HEAD_DIM, LK_PAD)
    v: torch.Tensor  # (B*H, LK_PAD, HEAD_DIM)
    bias: torch.Tensor  # (B, LK_PAD) float32: 0 = attend, -inf = padding


@dataclass
class CachedKV:
    """Keys/values (B,H,Lk,D) and key padding mask (B,Lk) bool (True = attend), fixed across calls."""

    k: torch.Tensor
    v: torch.Tensor
    key_padding_mask: torch.Tensor | None
    scale: float
    sdpa_mask: torch.Tensor | None = field(init=False, repr=False)  # (B,1,1,Lk)
    _packed: PackedKV | None = field(default=None, init=False, repr=False)

    @classmethod
    def build(
        cls,
        k: torch.Tensor,
        v: torch.Tensor,
        key_padding_mask: torch.Tensor | None = None,
        *,
        scale: float | None = None,
    ) -> CachedKV:
        check_inputs(k, k, v, key_padding_mask)
        scale = k.shape[-1] ** -0.5 if scale is None else float(scale)
        return cls(k=k, v=v, key_padding_mask=key_padding_mask, scale=scale)

    def __post_init__(self) -> None:
        mask = self.key_padding_mask
        self.sdpa_mask = None if mask is None else mask[:, None, None, :]

    @property
    def shape(self) -> torch.Size:
        return self.k.shape

    def packed(self) -> PackedKV:
        """The Triton layout, built on first use and kept."""
        if self._packed is None:
            compute = torch.float32 if self.k.dtype == torch.bfloat16 and interpreter_requested() else self.k.dtype
            k_t, v, bias = triton_module("cross_triton").pack(
                self.k.to(compute), self.v.to(compute), self.key_padding_mask
            )
            self._packed = PackedKV(k_t=k_t, v=v, bias=bias)
        return self._packed


def cross_attention(q: torch.Tensor, kv: CachedKV, *, backend: Backend = "auto") -> torch.Tensor:
    """`attention(q, kv.k, kv.v, key_padding_mask=kv.key_padding_mask, scale=kv.scale)`, on the cached path."""
    if not isinstance(kv, CachedKV):
        raise AttentionInputError(f"kv must be a CachedKV (CachedKV.build(k, v, mask)), got {type(kv).__name__}")
    B, H, Lk, D = kv.shape
    if q.dim() != 4 or (q.shape[0], q.shape[1], q.shape[3]) != (B, H, D):
        raise AttentionInputError(f"q must have shape (B, H, Lq, D) = ({B}, {H}, Lq, {D}), got {tuple(q.shape)}")
    if q.dtype != kv.k.dtype or q.device != kv.k.device:
        raise AttentionInputError(
            f"q is {q.dtype} on {q.device}, the cached K/V are {kv.k.dtype} on {kv.k.device}"
        )
    if select_backend(q, kv.k, kv.v, backend=backend) == "sdpa":
        return F.scaled_dot_product_attention(q, kv.k, kv.v, attn_mask=kv.sdpa_mask, scale=kv.scale)
    if Lk > MAX_CACHED_KEYS:
        return attention(q, kv.k, kv.v, key_padding_mask=kv.key_padding_mask, scale=kv.scale, backend="triton")
    if q.shape[2] == 0:
        return q.new_empty(q.shape)
    packed = kv.packed()
    out = triton_module("cross_triton").cached_cross_attention(
        q.to(packed.k_t.dtype), packed.k_t, packed.v, packed.bias, kv.scale, dot_precision(packed.k_t.dtype)
    )
    return out.to(q.dtype)
