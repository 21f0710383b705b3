"""FlashAttention-2-style forward kernel in Triton (self- and cross-attention, key padding, causal).

Imported lazily, through ``avatar_kernels.dispatch.triton_module("flash_triton")``: compiled for CUDA, or for the CPU
interpreter when ``TRITON_INTERPRET=1`` was set before triton was imported.

One program computes a BLOCK_M slice of queries of one (batch, head): it streams BLOCK_N keys at a time,
keeps a running row maximum and row sum (online softmax, in float32, base 2) and rescales its float32
accumulator, so the (Lq, Lk) score matrix never exists in memory.
"""

from __future__ import annotations

import math

import torch
import triton
import triton.language as tl

from avatar_kernels.layout import dot_precision, padded_head_dim

# Finite start for the running maximum: a block whose keys are all masked then gives exp2(-inf - m) = 0
# and a rescale factor exp2(0) = 1 instead of the NaN of (-inf) - (-inf).
NEG_BIG = tl.constexpr(-1.0e30)

INTERPRETED = bool(triton.knobs.runtime.interpret)  # decided now, at decoration time


def _configs() -> list[triton.Config]:
    if triton.knobs.runtime.interpret:
        # The interpreter has no GPU benchmarker, and big blocks mean fewer (slow) interpreted iterations.
        return [triton.Config({"BLOCK_M": 64, "BLOCK_N": 64})]
    return [
        triton.Config({"BLOCK_M": bm, "BLOCK_N": bn}, num_warps=warps, num_stages=stages)
        for bm, bn, warps in ((32, 32, 4), (64, 32, 4), (64, 64, 4), (128, 64, 8), (128, 32, 4))
        for stages in (2, 3)
    ]


def _prune(configs: list[triton.Config], named_args: dict, **kwargs) -> list[triton.Config]:
    """Blocks much larger than the sequence only burn registers: keep the smallest that cover it."""
    lq, lk = named_args["LQ_BUCKET"], named_args["LK_BUCKET"]
    kept = [c for c in configs if c.kwargs["BLOCK_M"] <= max(32, lq) and c.kwargs["BLOCK_N"] <= max(32, lk)]
    return kept or configs[:1]


@triton.autotune(
    configs=_configs(),
    key=["LQ_BUCKET", "LK_BUCKET", "HEAD_DIM", "D", "CAUSAL", "HAS_MASK"],
    prune_configs_by={"early_config_prune": _prune},
)
@triton.jit
def _attention_fwd(
    Q, K, V, Mask, Out,
    stride_qb, stride_qh, stride_qm, stride_qd,
    stride_kb, stride_kh, stride_kn, stride_kd,
    stride_vb, stride_vh, stride_vn, stride_vd,
    stride_ob, stride_oh, stride_om, stride_od,
    stride_mb, stride_mn,
    H, Lq, Lk,
    qk_scale,  # softmax scale * log2(e): the kernel works in base 2
    LQ_BUCKET, LK_BUCKET,  # autotune keys only: power-of-two buckets so each new length does not re-tune
    D: tl.constexpr,  # real head dim; HEAD_DIM is it padded to a supported block width
    HEAD_DIM: tl.constexpr,
    CAUSAL: tl.constexpr,
    HAS_MASK: tl.constexpr,
    DOT_PRECISION: tl.constexpr,
    BLOCK_M: tl.constexpr,
    BLOCK_N: tl.constexpr,
):
    start_m = tl.program_id(0)
    off_bh = tl.program_id(1)
    off_b = off_bh // H
    off_h = off_bh % H

    offs_m = start_m * BLOCK_M + tl.arange(0, BLOCK_M)
    offs_n = tl.arange(0, BLOCK_N)
    offs_d = tl.arange(0, HEAD_DIM)
    d_in = offs_d < D  # padded head-dim columns read as zeros: they add nothing to q.k and are not stored

    q_ptrs = Q + off_b * stride_qb + off_h * stride_qh + offs_m[:, None] * stride_qm + offs_d[None, :] * stride_qd
    q = tl.load(q_ptrs, mask=(offs_m[:, None] < Lq) & d_in[None, :], other=0.0)
    k_base = K + off_b * stride_kb + off_h * stride_kh
    v_base = V + off_b * stride_vb + off_h * stride_vh
    mask_base = Mask + off_b * stride_mb

    m_i = tl.full([BLOCK_M], NEG_BIG, dtype=tl.float32)
    l_i = tl.zeros([BLOCK_M], dtype=tl.float32)
    acc = tl.zeros([BLOCK_M, HEAD_DIM], dtype=tl.float32)

    # Causal (top-left aligned): query i sees keys 0..i, so key blocks past this query block are skipped.
    hi = Lk
    if CAUSAL:
        hi = tl.minimum(Lk, (start_m + 1) * BLOCK_M)
    for start_n in range(0, hi, BLOCK_N):
        cols = start_n + offs_n
        col_in = cols < Lk
        k_t = tl.load(
            k_base + cols[None, :] * stride_kn + offs_d[:, None] * stride_kd,
            mask=col_in[None, :] & d_in[:, None],
            other=0.0,
        )
        s = tl.dot(q, k_t, input_precision=DOT_PRECISION) * qk_scale
        keep = col_in[None, :]
        if HAS_MASK:
            attend = tl.load(mask_base + cols * stride_mn, mask=col_in, other=0)
            keep = keep & (attend[None, :] != 0)
        if CAUSAL:
            keep = keep & (cols[None, :] <= offs_m[:, None])
        s = tl.where(keep, s, float("-inf"))

        m_new = tl.maximum(m_i, tl.max(s, 1))
        alpha = tl.exp2(m_i - m_new)
        p = tl.exp2(s - m_new[:, None])
        l_i = l_i * alpha + tl.sum(p, 1)
        v = tl.load(
            v_base + cols[:, None] * stride_vn + offs_d[None, :] * stride_vd,
            mask=col_in[:, None] & d_in[None, :],
            other=0.0,
        )
        acc = tl.dot(p.to(v.dtype), v, acc * alpha[:, None], input_precision=DOT_PRECISION)
        m_i = m_new

    # A row that attended to nothing has l_i == 0 and acc == 0: it returns zeros.
    out = acc / tl.where(l_i > 0.0, l_i, 1.0)[:, None]
    o_ptrs = Out + off_b * stride_ob + off_h * stride_oh + offs_m[:, None] * stride_om + offs_d[None, :] * stride_od
    tl.store(o_ptrs, out.to(Out.dtype.element_ty), mask=(offs_m[:, None] < Lq) & d_in[None, :])


def flash_attention(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    key_padding_mask: torch.Tensor | None,
    causal: bool,
    scale: float,
) -> torch.Tensor:
    """Launch on validated inputs: q (B,H,Lq,D), k/v (B,H,Lk,D), any strides; mask (B,Lk) bool or None."""
    B, H, Lq, D = q.shape
    Lk = k.shape[2]
    out = torch.empty_like(q, memory_format=torch.contiguous_format)
    # bool as bytes (a free view): plain uint8 loads rather than i1 pointers
    mask = key_padding_mask if key_padding_mask is not None else q.new_empty((1, 1), dtype=torch.bool)
    mask = mask.view(torch.uint8)

    def grid(meta: dict) -> tuple[int, int]:
        return triton.cdiv(Lq, meta["BLOCK_M"]), B * H

    _attention_fwd[grid](
        q, k, v, mask, out,
        *q.stride(), *k.stride(), *v.stride(), *out.stride(), *mask.stride(),
        H, Lq, Lk,
        scale * math.log2(math.e),
        triton.next_power_of_2(Lq), triton.next_power_of_2(Lk),
        D=D,
        HEAD_DIM=padded_head_dim(D),
        CAUSAL=causal,
        HAS_MASK=key_padding_mask is not None,
        DOT_PRECISION=dot_precision(q.dtype),
    )
    return out
