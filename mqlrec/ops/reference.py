"""Plain torch references for the fused ops. They are the fallback and the oracle for the kernels."""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F


@dataclass
class RQResult:
    codes: torch.Tensor  # [N, L] int64, nearest codeword per level (ties -> lowest index)
    quantized: torch.Tensor  # [N, D] float32, sum of the chosen codewords
    residuals: torch.Tensor | None = None  # [L, N, D] float32, residual *entering* each level
    topk_codes: torch.Tensor | None = None  # [N, L, T] int64, T nearest codes per level
    topk_dists: torch.Tensor | None = None  # [N, L, T] float32, their squared distances


def squared_distances(r: torch.Tensor, codebook: torch.Tensor) -> torch.Tensor:
    """||r - c||^2 for every row of r [N, D] and codeword c [K, D], computed in fp32."""
    r = r.float()
    codebook = codebook.float()
    return (r * r).sum(1, keepdim=True) - 2.0 * r @ codebook.T + (codebook * codebook).sum(1)[None, :]


def rq_quantize_reference(
    x: torch.Tensor, codebooks: torch.Tensor, return_residuals: bool = False, topk: int = 0
) -> RQResult:
    """Residual quantization of x [N, D] with codebooks [L, K, D], level by level."""
    n_levels = codebooks.shape[0]
    residual = x.float()
    quantized = torch.zeros_like(residual)
    codes, residuals, top_codes, top_dists = [], [], [], []
    for level in range(n_levels):
        cb = codebooks[level].float()
        dist = squared_distances(residual, cb)
        code = dist.argmin(dim=1)  # torch.argmin returns the first minimum: ties -> lowest index
        if topk:
            d, c = torch.topk(dist, min(topk, cb.shape[0]), dim=1, largest=False, sorted=True)
            top_codes.append(c)
            top_dists.append(d)
        if return_residuals:
            residuals.append(residual)
        chosen = cb[code]
        quantized = quantized + chosen
        residual = residual - chosen
        codes.append(code)
    return RQResult(
        codes=torch.stack(codes, 1) if codes else torch.empty(x.shape[0], 0, dtype=torch.long),
        quantized=quantized,
        residuals=torch.stack(residuals, 0) if return_residuals else None,
        topk_codes=torch.stack(top_codes, 1) if topk else None,
        topk_dists=torch.stack(top_dists, 1) if topk else None,
    )


def info_nce_reference(
    a: torch.Tensor,
    b: torch.Tensor,
    tau: float,
    positive: torch.Tensor | None = None,
    mask_diagonal: bool = False,
) -> torch.Tensor:
    """In-batch InfoNCE, mean over rows.

    positive is None: symmetric CLIP loss, positives on the diagonal, (CE(a->b) + CE(b->a)) / 2.
    positive given [B] int: one-directional CE of logits a @ b.T / tau with target positive[i];
    rows with positive < 0 are ignored; mask_diagonal removes key i from row i's candidates
    (for keys that are the anchors themselves, as in MACRec's residual loss).
    """
    logits = (a.float() @ b.float().T) / tau
    if positive is None:
        target = torch.arange(a.shape[0], device=a.device)
        return 0.5 * (F.cross_entropy(logits, target) + F.cross_entropy(logits.T, target))
    if mask_diagonal:
        eye = torch.eye(logits.shape[0], logits.shape[1], dtype=torch.bool, device=logits.device)
        logits = logits.masked_fill(eye, float("-inf"))
    valid = positive >= 0
    if not bool(valid.any()):
        return logits.sum() * 0.0
    return F.cross_entropy(logits[valid], positive[valid].long())
