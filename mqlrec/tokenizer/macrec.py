"""MACRec cross-modal quantization losses (text and image RQ-VAEs trained jointly).

- pseudo labels: faiss k-means (n_clusters, capped at N) on each modality's raw embeddings;
- L_con at the configured levels: InfoNCE on L2-normalised residuals where a text anchor's positive
  is another in-batch item sharing its IMAGE cluster (and vice versa), one sampled per row, rows
  without one ignored; keys are the anchors themselves, so the diagonal is masked;
- L_align ("cross-modal reconstruction alignment", MACRec 4.2.1.3): InfoNCE between the L2-normalised
  quantized text and image vectors of the same item, t->v plus v->t as in the paper (2x the mean).
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from mqlrec.ops import info_nce
from mqlrec.tokenizer.rqvae import RQForward, faiss_assign, faiss_kmeans


def pseudo_labels(embeddings: np.ndarray, n_clusters: int, iters: int, seed: int) -> np.ndarray:
    """Cluster id per item [N] int64 from k-means with min(n_clusters, N) clusters."""
    k = max(1, min(n_clusters, len(embeddings)))
    centroids = faiss_kmeans(embeddings, k, iters, seed)
    return faiss_assign(embeddings, centroids)


def sample_positives(labels: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
    """For each row i, a uniformly drawn j != i with labels[j] == labels[i], or -1 when none exists."""
    same = labels[:, None] == labels[None, :]
    same.fill_diagonal_(False)
    scores = torch.rand(same.shape, generator=generator, device="cpu").to(labels.device)
    scores = scores.masked_fill(~same, -1.0)
    positive = scores.argmax(dim=1)
    return torch.where(same.any(dim=1), positive, torch.full_like(positive, -1))


def cross_modal_loss(
    text: RQForward,
    image: RQForward,
    text_labels: torch.Tensor,
    image_labels: torch.Tensor,
    con_levels: tuple[int, ...],
    con_weight: float,
    align_weight: float,
    tau: float,
    align_on: str = "straight_through",
    generator: torch.Generator | None = None,
) -> tuple[torch.Tensor, dict[str, float]]:
    """lambda_con * sum_l (L_con^{l,v->t} + L_con^{l,t->v}) + lambda_align * L_align for one batch."""
    total = text.recon_loss.new_zeros(())
    parts: dict[str, float] = {}
    if con_weight and con_levels:
        pos_text = sample_positives(image_labels, generator)  # text anchors: same image cluster
        pos_image = sample_positives(text_labels, generator)
        con = total.new_zeros(())
        for level in con_levels:
            rt = F.normalize(text.residuals[level], dim=1)
            ri = F.normalize(image.residuals[level], dim=1)
            con = con + info_nce(rt, rt, tau, positive=pos_text, mask_diagonal=True)
            con = con + info_nce(ri, ri, tau, positive=pos_image, mask_diagonal=True)
        total = total + con_weight * con
        parts["con"] = con.item()
    if align_weight:
        zt, zi = (text.z_q, image.z_q) if align_on == "straight_through" else (text.codeword_sum, image.codeword_sum)
        align = 2.0 * info_nce(F.normalize(zt, dim=1), F.normalize(zi, dim=1), tau)
        total = total + align_weight * align
        parts["align"] = align.item()
    return total, parts
