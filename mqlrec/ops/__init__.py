"""The single dispatch point for the fused ops.

Callers (RQ-VAE, MACRec losses, implicit alignment) use only these functions. The backend is
Triton for CUDA tensors when Triton is importable, the torch reference otherwise; the environment
variable MQLREC_OPS=torch|triton|auto forces one (auto is the default).
"""

from __future__ import annotations

import os

import torch

from mqlrec.ops.reference import RQResult, info_nce_reference, rq_quantize_reference

__all__ = ["RQResult", "backend", "rq_quantize", "info_nce"]


def _triton_available() -> bool:
    try:
        import triton  # noqa: F401
    except Exception:
        return False
    return True


def backend(t: torch.Tensor) -> str:
    """'triton' or 'torch' for an op on tensor t, honouring MQLREC_OPS."""
    choice = os.environ.get("MQLREC_OPS", "auto").lower()
    if choice not in ("auto", "torch", "triton"):
        raise ValueError(f"MQLREC_OPS must be auto, torch or triton, not {choice!r}")
    if choice == "torch":
        return "torch"
    interpreting = os.environ.get("TRITON_INTERPRET") == "1"
    if choice == "triton":
        if not _triton_available():
            raise RuntimeError("MQLREC_OPS=triton but Triton cannot be imported")
        if not (t.is_cuda or interpreting):
            raise RuntimeError("MQLREC_OPS=triton needs CUDA tensors (or TRITON_INTERPRET=1 on CPU)")
        return "triton"
    return "triton" if t.is_cuda and _triton_available() else "torch"


def rq_quantize(
    x: torch.Tensor, codebooks: torch.Tensor, return_residuals: bool = False, topk: int = 0
) -> RQResult:
    """Forward-only residual quantization of x [N, D] with codebooks [L, K, D] (no gradients)."""
    if x.ndim != 2 or codebooks.ndim != 3 or codebooks.shape[2] != x.shape[1]:
        raise ValueError(f"rq_quantize: x [N, D] and codebooks [L, K, D], got {tuple(x.shape)} and {tuple(codebooks.shape)}")
    with torch.no_grad():
        if backend(x) == "triton":
            from mqlrec.kernels.rq_quantize import rq_quantize_triton

            return rq_quantize_triton(x, codebooks, return_residuals=return_residuals, topk=topk)
        return rq_quantize_reference(x, codebooks, return_residuals=return_residuals, topk=topk)


def info_nce(
    a: torch.Tensor,
    b: torch.Tensor,
    tau: float | torch.Tensor,
    positive: torch.Tensor | None = None,
    mask_diagonal: bool = False,
) -> torch.Tensor:
    """In-batch InfoNCE (differentiable); see `reference.info_nce_reference` for the semantics."""
    if a.ndim != 2 or b.ndim != 2 or a.shape[1] != b.shape[1]:
        raise ValueError(f"info_nce: a [B, D] and b [B', D], got {tuple(a.shape)} and {tuple(b.shape)}")
    if positive is None and a.shape[0] != b.shape[0]:
        raise ValueError("info_nce: the symmetric loss needs as many rows in a as in b")
    # The kernel treats tau as a constant: a learnable temperature goes through the reference.
    tau_learnable = isinstance(tau, torch.Tensor) and tau.requires_grad
    if backend(a) == "triton" and not tau_learnable:
        from mqlrec.kernels.info_nce import info_nce_triton

        return info_nce_triton(a, b, tau, positive=positive, mask_diagonal=mask_diagonal)
    return info_nce_reference(a, b, tau, positive=positive, mask_diagonal=mask_diagonal)
