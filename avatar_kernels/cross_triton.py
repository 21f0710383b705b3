"""Cross-attention kernel for cached keys/values (an instruction's 8-32 text tokens), in Triton.

Imported lazily, through ``avatar_kernels.dispatch.triton_module("cross_triton")``. Inputs are packed once by
``CachedKV``:
K^T as (B*H, HEAD_DIM, LK_PAD) and V as (B*H, LK_PAD, HEAD_DIM), contiguous and zero-padded, plus a float32
bias (B, LK_PAD) that is 0 where a key is attended and -inf for padding tokens and pad columns.

Against the general kernel this saves, per call: the key loop and its online-softmax rescaling (all keys fit
one block, so the softmax is computed in one pass), every bounds and head-dim mask on K/V loads (padding is
in memory), the key-padding-mask load and compare (folded into the bias, added with the scale in one FMA),
and the transposed, strided K reads (K^T is stored row-major for the dot).
"""

from __future__ import annotations

import math

import torch
import triton
import triton.language as tl

from avatar_kernels.layout import key_block, padded_head_dim

INTERPRETED = bool(triton.knobs.runtime.interpret)  # decided now, at decoration time


def _configs() -> list[triton.Config]:
    if triton.knobs.runtime.interpret:
        return [triton.Config({"BLOCK_M": 64})]
    return [
        triton.Config({"BLOCK_M": bm}, num_warps=warps, num_stages=1)
        for bm, warps in ((16, 2), (32, 2), (32, 4), (64, 4), (128, 8))
    ]


def _prune(configs: list[triton.Config], named_args: dict, **kwargs) -> list[triton.Config]:
    kept = [c for c in configs if c.kwargs["BLOCK_M"] <= max(16, named_args["LQ_BUCKET"])]
    return kept or configs[:1]


@triton.autotune(
    configs=_configs(),
    key=["LQ_BUCKET", "LK_PAD", "HEAD_DIM", "D"],
    prune_configs_by={"early_config_prune": _prune},
)
@triton.jit
def _cached_cross_attention_fwd(
    Q, KT, V, Bias, Out,
    stride_qb, stride_qh, stride_qm, stride_qd,
    stride_ob, stride_oh, stride_om, stride_od,
    H, Lq,
    qk_scale,  # softmax scale * log2(e)
    LQ_BUCKET,  # autotune key only
    D: tl.constexpr,
    HEAD_DIM: tl.constexpr,
    LK_PAD: tl.constexpr,
    DOT_PRECISION: tl.constexpr,
    BLOCK_M: tl.constexpr,
):
    start_m = tl.program_id(0)
    off_bh = tl.program_id(1)
    off_b = off_bh // H
    off_h = off_bh % H

    offs_m = start_m * BLOCK_M + tl.arange(0, BLOCK_M)
    offs_n = tl.arange(0, LK_PAD)
    offs_d = tl.arange(0, HEAD_DIM)
    row_in = offs_m < Lq
    d_in = offs_d < D

    q = tl.load(
        Q + off_b * stride_qb + off_h * stride_qh + offs_m[:, None] * stride_qm + offs_d[None, :] * stride_qd,
        mask=row_in[:, None] & d_in[None, :],
        other=0.0,
    )
    k_t = tl.load(KT + off_bh * HEAD_DIM * LK_PAD + offs_d[:, None] * LK_PAD + offs_n[None, :])
    v = tl.load(V + off_bh * LK_PAD * HEAD_DIM + offs_n[:, None] * HEAD_DIM + offs_d[None, :])
    bias = tl.load(Bias + off_b * LK_PAD + offs_n)

    s = tl.dot(q, k_t, input_precision=DOT_PRECISION) * qk_scale + bias[None, :]
    m = tl.max(s, 1)
    m = tl.where(m == float("-inf"), 0.0, m)  # a batch row with every token masked: p = 0, output zeros
    p = tl.exp2(s - m[:, None])
    denom = tl.sum(p, 1)
    acc = tl.dot(p.to(v.dtype), v, input_precision=DOT_PRECISION)
    out = acc / tl.where(denom > 0.0, denom, 1.0)[:, None]
    tl.store(
        Out + off_b * stride_ob + off_h * stride_oh + offs_m[:, None] * stride_om + offs_d[None, :] * stride_od,
        out.to(Out.dtype.element_ty),
        mask=row_in[:, None] & d_in[None, :],
    )


def pack(
    k: torch.Tensor, v: torch.Tensor, key_padding_mask: torch.Tensor | None
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(K^T, V, bias) in the kernel's layout; done once per instruction."""
    B, H, Lk, D = k.shape
    lk_pad, d_pad = key_block(Lk), padded_head_dim(D)
    k_t = k.new_zeros(B * H, d_pad, lk_pad)
    k_t[:, :D, :Lk] = k.reshape(B * H, Lk, D).transpose(1, 2)
    v_packed = v.new_zeros(B * H, lk_pad, d_pad)
    v_packed[:, :Lk, :D] = v.reshape(B * H, Lk, D)
    bias = torch.full((B, lk_pad), float("-inf"), dtype=torch.float32, device=k.device)
    bias[:, :Lk] = 0.0
    if key_padding_mask is not None:
        bias[:, :Lk].masked_fill_(~key_padding_mask, float("-inf"))
    return k_t, v_packed, bias


def cached_cross_attention(
    q: torch.Tensor, k_t: torch.Tensor, v: torch.Tensor, bias: torch.Tensor, scale: float, dot_precision: str
) -> torch.Tensor:
    """Launch on validated inputs: q (B,H,Lq,D) any strides, the packed tensors from `pack`."""
    B, H, Lq, D = q.shape
    out = torch.empty_like(q, memory_format=torch.contiguous_format)

    def grid(meta: dict) -> tuple[int, int]:
        return triton.cdiv(Lq, meta["BLOCK_M"]), B * H

    _cached_cross_attention_fwd[grid](
        q, k_t, v, bias, out,
        *q.stride(), *out.stride(),
        H, Lq,
        scale * math.log2(math.e),
        triton.next_power_of_2(Lq),
        D=D,
        HEAD_DIM=k_t.shape[1],
        LK_PAD=k_t.shape[2],
        DOT_PRECISION=dot_precision,
    )
    return out
