"""Choosing between the Triton kernels and PyTorch's SDPA, and loading the Triton kernels lazily.

Rules, decided per call:
- autograd needed (grad mode on and an input requires grad): SDPA, the kernels are forward-only;
- float64: SDPA;
- ``TRITON_INTERPRET=1`` in the environment and triton importable: Triton, interpreted (runs on CPU; for tests);
- CUDA tensors and triton importable: Triton, compiled;
- otherwise: SDPA.

Triton fixes "interpreted or compiled" when it is imported (triton.language's own helpers are decorated
then) and when a kernel module is imported, so ``TRITON_INTERPRET`` must be set before the first
``import triton``; a call that finds it changed since then gets a `TritonModeError` rather than a crash inside
the kernel.
"""

from __future__ import annotations

import functools
import importlib
import importlib.util
import os
from types import ModuleType
from typing import Literal

import torch

from avatar_kernels.errors import AttentionInputError, TritonModeError

Backend = Literal["auto", "triton", "sdpa"]
TRITON_DTYPES = (torch.float32, torch.float16, torch.bfloat16)


def interpreter_requested() -> bool:
    return os.environ.get("TRITON_INTERPRET", "0") == "1"


@functools.cache
def triton_available() -> bool:
    if importlib.util.find_spec("triton") is None:
        return False
    try:
        import triton  # noqa: F401
    except Exception:  # a broken install behaves like a missing one: fall back to SDPA
        return False
    return True


def select_backend(*tensors: torch.Tensor | None, backend: Backend = "auto") -> Literal["triton", "sdpa"]:
    """The path a call with these tensors takes (see the module docstring)."""
    if backend not in ("auto", "triton", "sdpa"):
        raise ValueError(f"backend must be 'auto', 'triton' or 'sdpa', got {backend!r}")
    present = [t for t in tensors if t is not None]
    if backend == "sdpa":
        return "sdpa"
    needs_grad = torch.is_grad_enabled() and any(t.requires_grad for t in present)
    dtype_ok = all(t.dtype in TRITON_DTYPES for t in present if t.is_floating_point())
    device_ok = interpreter_requested() or present[0].is_cuda
    if backend == "triton":
        if not triton_available():
            raise RuntimeError("backend='triton' was asked for but triton cannot be imported")
        if needs_grad or not dtype_ok or not device_ok:
            raise AttentionInputError(
                "backend='triton' takes float32/float16/bfloat16 inputs that need no gradient, on CUDA "
                f"(or anywhere with TRITON_INTERPRET=1); got {present[0].dtype} on {present[0].device}"
                + (" requiring grad" if needs_grad else "")
            )
        return "triton"
    if needs_grad or not dtype_ok or not device_ok:
        return "sdpa"
    return "triton" if triton_available() else "sdpa"


def triton_module(name: str) -> ModuleType:
    """``avatar_kernels.<name>`` (a module of Triton kernels), imported on first use, checked against the mode."""
    import triton.language as tl

    module = importlib.import_module(f"{__package__}.{name}")
    wanted = interpreter_requested()
    if _is_interpreted(tl.zeros) != wanted or module.INTERPRETED != wanted:
        state = "set" if wanted else "unset"
        raise TritonModeError(
            f"TRITON_INTERPRET is {state} now but was not when triton (or {module.__name__}) was imported: "
            "set it before the first `import triton` in the process"
        )
    return module


def _is_interpreted(fn: object) -> bool:
    return type(fn).__name__ == "InterpretedFunction"
