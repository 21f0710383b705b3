"""PyTorch attention with the project's semantics: the CPU path, the fallback and the benchmarks' baselines.

Semantics shared with the Triton kernels: ``key_padding_mask`` (B, Lk) bool, True = attend; ``causal`` is
aligned top-left (query i sees keys j <= i, as SDPA's ``is_causal``); a query row with no key to attend to
returns zeros.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def attention_mask(
    key_padding_mask: torch.Tensor | None, causal: bool, lq: int, lk: int, device: torch.device
) -> torch.Tensor | None:
    """Boolean mask broadcastable to (B, H, Lq, Lk), True = attend; None when every key is visible."""
    mask = None if key_padding_mask is None else key_padding_mask[:, None, None, :]
    if causal:
        tril = torch.ones(lq, lk, dtype=torch.bool, device=device).tril()
        mask = tril if mask is None else mask & tril
    return mask


def sdpa_attention(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    key_padding_mask: torch.Tensor | None = None,
    causal: bool = False,
    scale: float | None = None,
) -> torch.Tensor:
    if key_padding_mask is None:
        return F.scaled_dot_product_attention(q, k, v, is_causal=causal, scale=scale)
    # torch >= 2.5 SDPA (every backend; checked on 2.13 CPU) returns zeros for a row with nothing to attend to,
    # which is this package's contract; tests/test_kernels.py pins it.
    mask = attention_mask(key_padding_mask, causal, q.shape[-2], k.shape[-2], q.device)
    return F.scaled_dot_product_attention(q, k, v, attn_mask=mask, scale=scale)


def naive_attention(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    key_padding_mask: torch.Tensor | None = None,
    causal: bool = False,
    scale: float | None = None,
) -> torch.Tensor:
    """Materialises the (Lq, Lk) score matrix; the benchmarks' baseline and, in float64, the tests' reference."""
    scale = q.shape[-1] ** -0.5 if scale is None else scale
    scores = (q @ k.transpose(-2, -1)).to(torch.promote_types(q.dtype, torch.float32)) * scale
    mask = attention_mask(key_padding_mask, causal, q.shape[-2], k.shape[-2], q.device)
    if mask is not None:
        scores = scores.masked_fill(~mask, float("-inf"))
    weights = torch.softmax(scores, dim=-1).nan_to_num(0.0)  # all -inf rows softmax to NaN: zeros instead
    return weights.to(v.dtype) @ v
