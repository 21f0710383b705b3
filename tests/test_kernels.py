"""Attention kernels against a float64 reference: compiled on a CUDA GPU, else on CPU through the Triton interpreter.

Without a GPU, `TRITON_INTERPRET=1` is set before triton is first imported (below, at collection) so triton and
the kernel modules are built for the interpreter; it is then restored and set again per test by a fixture, so the
other test modules keep the plain SDPA path on CPU.

Tolerance: a low-precision result may be off the float64 reference by at most twice what PyTorch's own SDPA in
that dtype is off, plus 1e-5.
"""

from __future__ import annotations

import importlib
import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

import avatar_kernels
from avatar_kernels import (
    AttentionInputError,
    CachedKV,
    UnsupportedHeadDimError,
    attention,
    cross_attention,
    naive_attention,
    sdpa_attention,
    select_backend,
)

ON_GPU = torch.cuda.is_available()
DEVICE = "cuda" if ON_GPU else "cpu"


def _import_triton_for_interpreter() -> bool:
    previous = os.environ.get("TRITON_INTERPRET")
    os.environ["TRITON_INTERPRET"] = "1"
    try:
        if not avatar_kernels.triton_available():  # imports triton, now in interpreter mode
            return False
        for name in ("flash_triton", "cross_triton"):  # the kernels are decorated for the interpreter too
            importlib.import_module(f"avatar_kernels.{name}")
        return True
    finally:
        if previous is None:
            del os.environ["TRITON_INTERPRET"]
        else:
            os.environ["TRITON_INTERPRET"] = previous


HAS_TRITON = avatar_kernels.triton_available() if ON_GPU else _import_triton_for_interpreter()
pytestmark = pytest.mark.skipif(not HAS_TRITON, reason="triton is not installed")
DTYPES = [torch.float32, torch.float16] + ([torch.bfloat16] if ON_GPU else [])  # bf16 tl.dot: wrong when interpreted


@pytest.fixture(autouse=True)
def interpreter(monkeypatch: pytest.MonkeyPatch) -> None:
    if not ON_GPU:
        monkeypatch.setenv("TRITON_INTERPRET", "1")


def make_inputs(
    B: int, H: int, Lq: int, Lk: int, D: int, dtype: torch.dtype = torch.float32, device: str = DEVICE, seed: int = 0
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    q, k, v = (torch.randn(B, H, n, D, generator=g) for n in (Lq, Lk, Lk))
    return q.to(device, dtype), k.to(device, dtype), v.to(device, dtype)


def padding_mask(B: int, Lk: int, device: str = DEVICE, seed: int = 1) -> torch.Tensor:
    """Random padding; batch row 0 is fully masked (its outputs must be zeros), the last keeps key 0."""
    g = torch.Generator().manual_seed(seed)
    mask = torch.rand(B, Lk, generator=g) > 0.3
    mask[-1, 0] = True
    mask[0] = False
    return mask.to(device)


def assert_matches_reference(
    out: torch.Tensor,
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    mask: torch.Tensor | None = None,
    causal: bool = False,
) -> None:
    assert out.shape == q.shape and out.dtype == q.dtype
    assert torch.isfinite(out).all()
    ref = naive_attention(q.double(), k.double(), v.double(), mask, causal)
    torch_err = (sdpa_attention(q, k, v, mask, causal).double() - ref).abs().max().item()
    err = (out.double() - ref).abs().max().item()
    assert err <= 2 * torch_err + 1e-5, f"max error {err:.3g}, PyTorch's own {torch_err:.3g}"
    if mask is not None:
        empty = ~mask.any(-1)
        assert (out[empty] == 0).all(), "rows with nothing to attend to must be zeros"


SHAPES = [  # (B, H, Lq, Lk, D): odd lengths, Lq != Lk both ways, one and several blocks
    (1, 2, 1, 7, 32),
    (2, 2, 7, 1, 64),
    (2, 2, 77, 100, 32),
    (2, 1, 100, 250, 64),
    (2, 1, 250, 77, 128),
]


@pytest.mark.parametrize("shape", SHAPES, ids=lambda s: "x".join(map(str, s)))
@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("masked", [False, True], ids=["nomask", "mask"])
@pytest.mark.parametrize("causal", [False, True], ids=["full", "causal"])
def test_attention_matches_sdpa(shape: tuple, dtype: torch.dtype, masked: bool, causal: bool) -> None:
    B, H, Lq, Lk, D = shape
    q, k, v = make_inputs(B, H, Lq, Lk, D, dtype)
    mask = padding_mask(B, Lk) if masked else None
    assert select_backend(q, k, v) == "triton"
    out = attention(q, k, v, key_padding_mask=mask, causal=causal)
    assert_matches_reference(out, q, k, v, mask, causal)


def test_causal_is_top_left_aligned() -> None:
    """Query i sees keys 0..i even when Lq != Lk (SDPA's is_causal), not the bottom-right alignment."""
    for Lq, Lk in ((5, 9), (9, 5)):
        q, k, v = make_inputs(1, 1, Lq, Lk, 32)
        expected = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        torch.testing.assert_close(attention(q, k, v, causal=True), expected, atol=1e-5, rtol=1e-5)
    # Only key 0 is visible to query 0, so it returns v[0] exactly (up to float rounding).
    torch.testing.assert_close(attention(q, k, v, causal=True)[..., 0, :], v[..., 0, :], atol=1e-6, rtol=0)


@pytest.mark.parametrize("D", [16, 48, 100])
def test_other_head_dims_are_padded(D: int) -> None:
    q, k, v = make_inputs(2, 2, 30, 41, D)
    mask = padding_mask(2, 41)
    assert_matches_reference(attention(q, k, v, key_padding_mask=mask), q, k, v, mask)


def test_strided_inputs_and_custom_scale() -> None:
    """The model hands over views of one fused qkv projection: (B, L, 3, H, D) permuted, not contiguous."""
    B, L, H, D = 2, 33, 4, 32
    qkv = torch.randn(B, L, 3, H, D)
    q, k, v = qkv.permute(2, 0, 3, 1, 4)
    assert not q.is_contiguous()
    mask = padding_mask(B, L)
    out = attention(q, k, v, key_padding_mask=mask, scale=0.3)
    ref = naive_attention(q.double(), k.double(), v.double(), mask, scale=0.3)
    torch.testing.assert_close(out.double(), ref, atol=1e-5, rtol=0)


@pytest.mark.skipif(ON_GPU, reason="interpreter behaviour")
def test_bf16_under_interpreter_runs_in_fp32() -> None:
    q, k, v = make_inputs(1, 2, 20, 13, 32, torch.bfloat16)
    out = attention(q, k, v)
    assert out.dtype == torch.bfloat16
    assert_matches_reference(out, q, k, v)


@pytest.mark.parametrize("shape", [(2, 4, 12, 8, 32), (3, 2, 100, 20, 64), (2, 2, 7, 32, 48)])
@pytest.mark.parametrize("dtype", DTYPES, ids=str)
def test_cached_kv_equals_plain_attention(shape: tuple, dtype: torch.dtype) -> None:
    B, H, Lq, Lk, D = shape
    q, k, v = make_inputs(B, H, Lq, Lk, D, dtype)
    mask = padding_mask(B, Lk)
    kv = CachedKV.build(k, v, mask)
    out = cross_attention(q, kv)
    plain = attention(q, k, v, key_padding_mask=mask)
    atol = {torch.float32: 1e-6, torch.float16: 2e-3, torch.bfloat16: 1.6e-2}[dtype]
    torch.testing.assert_close(out, plain, atol=atol, rtol=0)
    assert_matches_reference(out, q, k, v, mask)


def test_cached_kv_is_packed_once_and_reused() -> None:
    q1, k, v = make_inputs(2, 4, 12, 8, 32)
    q2 = torch.randn_like(q1)
    kv = CachedKV.build(k, v, padding_mask(2, 8))
    first = cross_attention(q1, kv)
    packed = kv.packed()
    second = cross_attention(q2, kv)
    assert kv.packed() is packed
    assert packed.k_t.is_contiguous() and packed.v.is_contiguous()
    assert_matches_reference(first, q1, k, v, kv.key_padding_mask)
    assert_matches_reference(second, q2, k, v, kv.key_padding_mask)


def test_cached_kv_longer_than_one_block_uses_general_kernel() -> None:
    q, k, v = make_inputs(2, 1, 9, avatar_kernels.MAX_CACHED_KEYS + 3, 32)
    mask = padding_mask(2, k.shape[2])
    kv = CachedKV.build(k, v, mask)
    out = cross_attention(q, kv)
    assert kv._packed is None  # no one-block layout was built
    assert_matches_reference(out, q, k, v, mask)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float16, torch.bfloat16, torch.float64], ids=str)
def test_torch_sdpa_returns_zeros_for_fully_masked_rows(dtype: torch.dtype) -> None:
    """The SDPA path relies on this (torch >= 2.5); were it NaN, the fallback would need to zero those rows."""
    q, k, v = make_inputs(2, 2, 5, 6, 32, dtype, device="cpu")
    mask = padding_mask(2, 6, device="cpu")
    out = F.scaled_dot_product_attention(q, k, v, attn_mask=mask[:, None, None, :])
    assert (out[0] == 0).all() and torch.isfinite(out).all()


def test_cached_kv_on_sdpa_path(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("TRITON_INTERPRET", raising=False)
    q, k, v = make_inputs(2, 4, 12, 8, 32, device="cpu")
    mask = padding_mask(2, 8, device="cpu")
    kv = CachedKV.build(k, v, mask)
    assert select_backend(q, k, v) == "sdpa"
    out = cross_attention(q, kv)
    assert kv._packed is None
    assert_matches_reference(out, q, k, v, mask)


def test_cpu_without_interpreter_uses_sdpa(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("TRITON_INTERPRET", raising=False)
    q, k, v = make_inputs(2, 2, 10, 13, 32, device="cpu")
    mask = padding_mask(2, 13, device="cpu")
    assert select_backend(q, k, v) == "sdpa"
    expected = F.scaled_dot_product_attention(q, k, v, attn_mask=mask[:, None, None, :])
    assert torch.equal(attention(q, k, v, key_padding_mask=mask), expected)


def test_autograd_and_float64_take_sdpa() -> None:
    q, k, v = make_inputs(1, 2, 10, 13, 32)
    q.requires_grad_(True)
    assert select_backend(q, k, v) == "sdpa"
    attention(q, k, v).sum().backward()  # the kernels are forward-only; training still works
    assert q.grad is not None and torch.isfinite(q.grad).all()
    with torch.no_grad():
        assert select_backend(q, k, v) == "triton"
    assert select_backend(*(t.double() for t in (q, k, v))) == "sdpa"


def test_forced_triton_refuses_what_it_cannot_run(monkeypatch: pytest.MonkeyPatch) -> None:
    q, k, v = make_inputs(1, 2, 4, 4, 32)
    with pytest.raises(AttentionInputError, match="need no gradient"):
        attention(q.requires_grad_(True), k, v, backend="triton")
    with pytest.raises(AttentionInputError, match="float64"):
        attention(q.detach().double(), k.double(), v.double(), backend="triton")
    monkeypatch.delenv("TRITON_INTERPRET", raising=False)
    with pytest.raises(AttentionInputError, match="TRITON_INTERPRET"):
        attention(*(t.detach().cpu() for t in (q, k, v)), backend="triton")


def test_package_imports_without_triton_and_imports_it_lazily() -> None:
    script = (
        "import sys, torch\n"
        "import avatar_kernels\n"
        "assert 'triton' not in sys.modules, 'importing avatar_kernels must not import triton'\n"
        "sys.modules['triton'] = None  # as if triton were not installed\n"
        "avatar_kernels.triton_available.cache_clear()\n"
        "q = torch.randn(1, 2, 5, 32)\n"
        "assert avatar_kernels.select_backend(q, q, q) == 'sdpa'\n"
        "out = avatar_kernels.attention(q, q, q)\n"
        "assert torch.allclose(out, torch.nn.functional.scaled_dot_product_attention(q, q, q))\n"
    )
    env = {**os.environ, "TRITON_INTERPRET": "1"}
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env, timeout=120)
    assert result.returncode == 0, result.stderr


PTXAS = Path(importlib.util.find_spec("triton").origin).parent / "backends/nvidia/bin/ptxas" if HAS_TRITON else None


@pytest.mark.skipif(PTXAS is None or not PTXAS.exists(), reason="triton without its bundled ptxas")
def test_kernels_compile_for_h100() -> None:
    """The compiled (GPU) build lowers to an sm_90 cubin: legal tl.dot shapes, no interpreter-only constructs."""
    env = {k: v for k, v in os.environ.items() if k != "TRITON_INTERPRET"}
    result = subprocess.run(
        [sys.executable, "-m", "avatar_kernels.compile_check", "--arch", "90", "--dtype", "float16"],
        capture_output=True, text=True, env=env, timeout=300,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    lines = result.stdout.splitlines()
    assert len(lines) == 8 and all("mma" in line for line in lines), result.stdout  # tensor cores in use


@pytest.mark.parametrize("interpret", [True, False])
def test_unsupported_head_dim_is_refused(monkeypatch: pytest.MonkeyPatch, interpret: bool) -> None:
    if not interpret:
        monkeypatch.delenv("TRITON_INTERPRET", raising=False)
    q, k, v = make_inputs(1, 1, 4, 4, 256)
    with pytest.raises(UnsupportedHeadDimError, match="head dim 256"):
        attention(q, k, v)
    with pytest.raises(UnsupportedHeadDimError):
        CachedKV.build(k, v)


@pytest.mark.parametrize(
    "change, message",
    [
        (lambda q, k, v, m: (q, k[:, :, :5], v, m), "same length"),
        (lambda q, k, v, m: (q, k, v, m.int()), "must be bool"),
        (lambda q, k, v, m: (q, k, v, m[:, :3]), r"shape \(B, Lk\)"),
        (lambda q, k, v, m: (q[0], k, v, m), "4-D"),
        (lambda q, k, v, m: (q, k.half(), v, m), "share a dtype"),
        (lambda q, k, v, m: (q[:, :1], k, v, m), "batch and heads"),
    ],
)
def test_bad_inputs_get_clear_errors(change, message: str) -> None:
    q, k, v = make_inputs(2, 2, 6, 9, 32)
    q, k, v, mask = change(q, k, v, padding_mask(2, 9))
    with pytest.raises(AttentionInputError, match=message):
        attention(q, k, v, key_padding_mask=mask)


def test_cross_attention_checks_query_against_cache() -> None:
    q, k, v = make_inputs(2, 2, 6, 9, 32)
    kv = CachedKV.build(k, v)
    with pytest.raises(AttentionInputError, match="q must have shape"):
        cross_attention(q[:, :1], kv)
    with pytest.raises(AttentionInputError, match="CachedKV"):
        cross_attention(q, (k, v))  # type: ignore[arg-type]
