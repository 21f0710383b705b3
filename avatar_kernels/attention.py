"""`attention()`: one entry point, Triton on CUDA (or under the interpreter), SDPA otherwise."""

from __future__ import annotations

import torch

from avatar_kernels.dispatch import Backend, interpreter_requested, select_backend, triton_module
from avatar_kernels.errors import AttentionInputError, UnsupportedHeadDimError
from avatar_kernels.reference import sdpa_attention

MAX_HEAD_DIM = 128
SUPPORTED_HEAD_DIMS = (32, 64, 128)  # kernel block widths; smaller head dims are zero-padded up to the next


def check_head_dim(d: int) -> None:
    if not 1 <= d <= MAX_HEAD_DIM:
        raise UnsupportedHeadDimError(
            f"head dim {d} is not supported: the attention kernels take head dims up to {MAX_HEAD_DIM} "
            f"(built for {SUPPORTED_HEAD_DIMS}; smaller ones are padded up to the next); "
            "use more heads of a smaller dim"
        )


def check_inputs(
    q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, key_padding_mask: torch.Tensor | None
) -> None:
    for name, t in (("q", q), ("k", k), ("v", v)):
        if not isinstance(t, torch.Tensor) or t.dim() != 4:
            raise AttentionInputError(f"{name} must be a 4-D tensor (B, H, L, D), got {_describe(t)}")
        if not t.is_floating_point():
            raise AttentionInputError(f"{name} must be floating point, got {t.dtype}")
    if not (q.dtype == k.dtype == v.dtype):
        raise AttentionInputError(f"q, k, v must share a dtype, got {q.dtype}, {k.dtype}, {v.dtype}")
    if not (q.device == k.device == v.device):
        raise AttentionInputError(f"q, k, v must be on one device, got {q.device}, {k.device}, {v.device}")
    (B, H, _, D), (Bk, Hk, Lk, Dk) = q.shape, k.shape
    if (Bk, Hk) != (B, H) or v.shape[:2] != (B, H):
        raise AttentionInputError(
            f"q, k, v must share batch and heads, got q {tuple(q.shape)}, k {tuple(k.shape)}, v {tuple(v.shape)}"
        )
    if Dk != D or v.shape[3] != D:
        raise AttentionInputError(f"q, k, v must share the head dim, got {D}, {Dk}, {v.shape[3]}")
    if v.shape[2] != Lk:
        raise AttentionInputError(f"k and v must have the same length, got {Lk} and {v.shape[2]}")
    if Lk == 0:
        raise AttentionInputError("k and v are empty (Lk = 0): there is nothing to attend to")
    check_head_dim(D)
    if key_padding_mask is not None:
        if key_padding_mask.dtype != torch.bool:
            raise AttentionInputError(f"key_padding_mask must be bool (True = attend), got {key_padding_mask.dtype}")
        if tuple(key_padding_mask.shape) != (B, Lk):
            raise AttentionInputError(
                f"key_padding_mask must have shape (B, Lk) = ({B}, {Lk}), got {tuple(key_padding_mask.shape)}"
            )
        if key_padding_mask.device != q.device:
            raise AttentionInputError(f"key_padding_mask is on {key_padding_mask.device}, q on {q.device}")


def attention(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    *,
    key_padding_mask: torch.Tensor | None = None,
    causal: bool = False,
    scale: float | None = None,
    backend: Backend = "auto",
) -> torch.Tensor:
    """Scaled dot-product attention, same result as SDPA with the same mask.

    q (B,H,Lq,D), k/v (B,H,Lk,D), any strides; `key_padding_mask` (B,Lk) bool, True = attend; `causal` aligned
    top-left like SDPA's `is_causal`; `scale` defaults to 1/sqrt(D). Rows with no key to attend to are zeros.
    Head dims up to 128 (the kernel pads to 32/64/128). Returns (B,H,Lq,D) contiguous, in q's dtype.
    """
    check_inputs(q, k, v, key_padding_mask)
    scale = q.shape[-1] ** -0.5 if scale is None else float(scale)
    if select_backend(q, k, v, backend=backend) == "sdpa":
        return sdpa_attention(q, k, v, key_padding_mask, causal, scale)
    if q.shape[2] == 0:
        return q.new_empty(q.shape)
    compute = _interpreter_safe(q.dtype)
    out = triton_module("flash_triton").flash_attention(
        q.to(compute), k.to(compute), v.to(compute), key_padding_mask, causal, scale
    )
    return out.to(q.dtype)


def _interpreter_safe(dtype: torch.dtype) -> torch.dtype:
    """The interpreter computes bf16 tl.dot wrongly: run bf16 there in float32 (compiled GPU code is fine)."""
    if dtype == torch.bfloat16 and interpreter_requested():
        return torch.float32
    return dtype


def _describe(t: object) -> str:
    return f"shape {tuple(t.shape)}" if isinstance(t, torch.Tensor) else type(t).__name__
