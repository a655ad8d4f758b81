"""RQ-VAE for one modality: MLP encoder, L residual codebooks, mirrored MLP decoder.

Codes come only from `mqlrec.ops.rq_quantize` (forward, no grad, fused kernel on GPU); the
differentiable residual chain is then rebuilt from those codes with gathers, and the decoder sees the
straight-through quantized vector z + sg(sum of codewords - z).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from mqlrec.ops import RQResult, rq_quantize


def mlp(sizes: list[int], dropout: float) -> nn.Sequential:
    """Linear layers with ReLU between them (none after the last), xavier-normal weights, zero bias."""
    layers: list[nn.Module] = []
    for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:])):
        if dropout > 0:
            layers.append(nn.Dropout(dropout))
        linear = nn.Linear(a, b)
        nn.init.xavier_normal_(linear.weight)
        nn.init.zeros_(linear.bias)
        layers.append(linear)
        if i < len(sizes) - 2:
            layers.append(nn.ReLU())
    return nn.Sequential(*layers)


def faiss_kmeans(x: np.ndarray, k: int, iters: int, seed: int) -> np.ndarray:
    """k centroids [k, D] of the rows of x; with fewer rows than k, rows are reused with a tiny jitter."""
    import faiss

    x = np.ascontiguousarray(x, dtype=np.float32)
    rng = np.random.default_rng(seed)
    if len(x) < k:
        extra = x[rng.integers(0, len(x), k - len(x))]
        scale = 1e-3 * (float(x.std()) + 1e-6)
        return np.concatenate([x, extra + scale * rng.standard_normal(extra.shape).astype(np.float32)])
    km = faiss.Kmeans(x.shape[1], k, niter=iters, seed=int(seed) % (2**31), verbose=False, min_points_per_centroid=1)
    km.train(x)
    return np.asarray(km.centroids, dtype=np.float32).reshape(k, x.shape[1])


def faiss_assign(x: np.ndarray, centroids: np.ndarray) -> np.ndarray:
    import faiss

    index = faiss.IndexFlatL2(centroids.shape[1])
    index.add(np.ascontiguousarray(centroids, dtype=np.float32))
    _, labels = index.search(np.ascontiguousarray(x, dtype=np.float32), 1)
    return labels[:, 0].astype(np.int64)


@dataclass
class RQForward:
    codes: torch.Tensor  # [B, L] int64
    residuals: list[torch.Tensor]  # L tensors [B, e_dim], the residual entering each level (differentiable)
    codeword_sum: torch.Tensor  # [B, e_dim] sum of the chosen codewords (gradient to the codebooks)
    z_q: torch.Tensor  # [B, e_dim] straight-through quantized vector (gradient to the encoder)
    x_hat: torch.Tensor  # [B, in_dim] reconstruction
    recon_loss: torch.Tensor  # MSE(x_hat, x)
    rq_loss: torch.Tensor  # mean over levels of codebook MSE + beta * commitment MSE


class RQVAE(nn.Module):
    def __init__(
        self,
        in_dim: int,
        hidden: tuple[int, ...] = (2048, 1024, 512, 256, 128, 64),
        e_dim: int = 32,
        levels: int = 4,
        codebook_size: int = 256,
        dropout: float = 0.0,
        beta: float = 0.25,
        detach_residuals: bool = False,
    ):
        super().__init__()
        self.beta = beta
        self.detach_residuals = detach_residuals
        self.encoder = mlp([in_dim, *hidden, e_dim], dropout)
        self.decoder = mlp([e_dim, *reversed(hidden), in_dim], dropout)
        # replaced by k-means before training; uniform(-1/K, 1/K) as the official uninitialised codebook
        self.codebooks = nn.Parameter(torch.empty(levels, codebook_size, e_dim).uniform_(-1 / codebook_size, 1 / codebook_size))

    @property
    def levels(self) -> int:
        return self.codebooks.shape[0]

    @property
    def codebook_size(self) -> int:
        return self.codebooks.shape[1]

    @torch.no_grad()
    def kmeans_init(self, x: torch.Tensor, iters: int, seed: int) -> None:
        """Codebook l = k-means centroids of all items' level-l residuals (level by level)."""
        residual = self.encoder(x).float().cpu().numpy()
        for level in range(self.levels):
            centroids = faiss_kmeans(residual, self.codebook_size, iters, seed + level)
            residual = residual - centroids[faiss_assign(residual, centroids)]
            self.codebooks[level].copy_(torch.from_numpy(centroids).to(self.codebooks.device))

    def forward(self, x: torch.Tensor) -> RQForward:
        z = self.encoder(x)
        codes = rq_quantize(z.detach(), self.codebooks.detach()).codes
        residual = z
        residuals, rq_losses = [], []
        codeword_sum = torch.zeros_like(z)
        for level in range(self.levels):
            chosen = self.codebooks[level][codes[:, level]]
            residuals.append(residual)
            codebook_loss = F.mse_loss(chosen, residual.detach())
            commitment_loss = F.mse_loss(residual, chosen.detach())
            rq_losses.append(codebook_loss + self.beta * commitment_loss)
            codeword_sum = codeword_sum + chosen
            residual = residual - chosen
            if self.detach_residuals:
                residual = residual.detach()
        z_q = z + (codeword_sum - z).detach()
        x_hat = self.decoder(z_q)
        return RQForward(
            codes=codes,
            residuals=residuals,
            codeword_sum=codeword_sum,
            z_q=z_q,
            x_hat=x_hat,
            recon_loss=F.mse_loss(x_hat, x),
            rq_loss=torch.stack(rq_losses).mean(),
        )

    @torch.no_grad()
    def quantize_all(self, x: torch.Tensor, topk: int = 0, batch_size: int = 8192) -> RQResult:
        """Codes (and the topk nearest codes/distances per level) for every row of x, in batches."""
        parts = [rq_quantize(self.encoder(x[s : s + batch_size]), self.codebooks, topk=topk) for s in range(0, len(x), batch_size)]
        return RQResult(
            codes=torch.cat([p.codes for p in parts]),
            quantized=torch.cat([p.quantized for p in parts]),
            topk_codes=torch.cat([p.topk_codes for p in parts]) if topk else None,
            topk_dists=torch.cat([p.topk_dists for p in parts]) if topk else None,
        )

    @torch.no_grad()
    def reconstruction_mse(self, x: torch.Tensor, batch_size: int = 8192) -> float:
        total = 0.0
        for s in range(0, len(x), batch_size):
            xb = x[s : s + batch_size]
            q = rq_quantize(self.encoder(xb), self.codebooks).quantized
            total += float(F.mse_loss(self.decoder(q), xb, reduction="sum"))
        return total / max(1, x.numel())
