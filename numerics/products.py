"""Matrix products of the hand-written forward and backward passes (the binary attention path of
``numerics.models.markov_transformer``), taken by the fastest exact kernel.

On the CPU torch multiplies float32 matrices with MKL's ``sgemm``, which on AMD processors
takes its AVX2 kernels even where the processor has AVX-512; oneDNN, which torch ships for
its fused layers, chooses its kernels by the instruction set alone. On the shapes of the
binary attention path (``benchmarks/markov_steps.py``: 128 rows by 150 to 1024) oneDNN runs
at 160 to 200 GFLOP/s against MKL's 95 on a Zen 5 core, in float32 round-off of the same
sums. The entry point is ``torch.ops.mkldnn._linear_pointwise``, the op torch's compiler
emits for a linear layer on the CPU; where it is missing, disabled
(``torch.backends.mkldnn.flags(enabled=False)``) or not applicable (float64, CUDA, inputs
that autograd should differentiate), the product is torch's own ``@``.
"""

from __future__ import annotations

import functools
from collections.abc import Callable

import torch


@functools.cache
def _onednn_op() -> Callable | None:
    """torch's oneDNN linear op, or None where this torch build lacks it or it does not give
    ``a @ w.T`` on a small probe (its signature is internal to torch)."""
    op = getattr(getattr(torch.ops, "mkldnn", None), "_linear_pointwise", None)
    if op is None or not torch.backends.mkldnn.is_available():
        return None
    a = torch.arange(6, dtype=torch.float32, device="cpu").view(2, 3)
    w = torch.arange(12, dtype=torch.float32, device="cpu").view(4, 3)
    try:
        return op if torch.equal(op(a, w, None, "none", [], ""), a @ w.T) else None
    except (RuntimeError, TypeError):
        return None


def _onednn_linear(a: torch.Tensor, w: torch.Tensor) -> Callable | None:
    """The oneDNN linear op when it applies to ``a @ w.T``, else None (it has no autograd
    formula, so inputs that need a gradient keep torch's product)."""
    if (a.dtype != torch.float32 or w.dtype != torch.float32 or a.device.type != "cpu"
            or a.ndim != 2 or w.ndim != 2 or not a.numel() or not w.numel()
            or not torch.backends.mkldnn.enabled
            or (torch.is_grad_enabled() and (a.requires_grad or w.requires_grad))):
        return None
    return _onednn_op()


def linear_product(a: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
    """``a @ w.T``, through oneDNN for float32 on the CPU (module docstring).

    oneDNN compiles a kernel per shape (about 0.4 ms, then cached), so callers should keep the
    set of shapes small. Its fast kernels need ``w`` dense, row-major or transposed: a ``w``
    with a padded leading dimension (a slice of columns) takes a reference kernel about 2000x
    slower, so such a ``w`` is copied first. A non-contiguous ``a`` is accepted (the op may
    copy it).

    Parameters
    ----------
    a : torch.Tensor
        ``(M, K)``.
    w : torch.Tensor
        ``(N, K)``.

    Returns
    -------
    torch.Tensor
        ``(M, N)``; differentiable by autograd only through torch's own product, which is
        what inputs that need a gradient get (call it inside an ``autograd.Function`` for the
        oneDNN kernels).
    """
    op = _onednn_linear(a, w)
    if op is None:
        return a @ w.T
    if not (w.is_contiguous() or w.T.is_contiguous()):
        w = w.contiguous()
    return op(a, w, None, "none", [], "")
