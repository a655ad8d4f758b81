"""embeddings per modality -> trained quantizer -> codes -> collision-free codes + stats."""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np
import torch

from mqlrec.tokenizer.collisions import reallocate_collisions
from mqlrec.tokenizer.config import TokenizerConfig
from mqlrec.tokenizer.stats import usage_per_level
from mqlrec.tokenizer.train import TrainedTokenizer, train_tokenizer


@dataclass
class TokenizeResult:
    codes: dict[str, np.ndarray]  # modality -> [N, L] int64, unique per item
    codes_before: dict[str, np.ndarray]  # the quantizer's codes before reallocation
    stats: dict  # JSON-able
    trained: TrainedTokenizer


def check_embeddings(embeddings: dict[str, np.ndarray]) -> int:
    """Number of items; ValueError naming the modality for bad tables."""
    if not embeddings:
        raise ValueError("need at least one modality's embeddings")
    n = None
    for m, e in embeddings.items():
        if not isinstance(e, np.ndarray) or e.ndim != 2 or e.shape[0] < 1 or e.shape[1] < 1:
            raise ValueError(f"{m} embeddings must be a non-empty [N, D] array, got {getattr(e, 'shape', type(e))}")
        if not np.isfinite(e).all():
            raise ValueError(f"{m} embeddings contain NaN or inf")
        if n is not None and e.shape[0] != n:
            raise ValueError(f"{m} embeddings have {e.shape[0]} rows, other modalities {n}")
        n = e.shape[0]
    return int(n)


def tokenize_dataset(embeddings: dict[str, np.ndarray], config: TokenizerConfig | None = None) -> TokenizeResult:
    config = config or TokenizerConfig()
    config.validate()
    n = check_embeddings(embeddings)
    if float(config.codebook_size) ** config.levels < n:
        raise ValueError(f"{n} items cannot get unique IDs from {config.codebook_size}^{config.levels} codes")
    t0 = time.perf_counter()
    trained = train_tokenizer(embeddings, config)
    train_s = time.perf_counter() - t0
    n_cand = config.realloc_candidates or config.codebook_size
    codes, before, per_modality = {}, {}, {}
    for m, model in trained.models.items():
        x = torch.as_tensor(np.asarray(embeddings[m], dtype=np.float32), device=config.device)
        q = model.quantize_all(x, topk=n_cand)
        raw = q.codes.cpu().numpy()
        t1 = time.perf_counter()
        realloc = reallocate_collisions(
            raw, q.topk_codes.cpu().numpy(), q.topk_dists.cpu().numpy(), config.codebook_size,
            max_passes=config.realloc_max_passes, complete=True,
        )
        codes[m], before[m] = realloc.codes, raw
        per_modality[m] = {
            "items": n,
            "collisions_before": realloc.collisions_before,
            "collision_rate_before": realloc.collisions_before / n,
            "collisions_after": realloc.collisions_after,
            "collision_rate_after": realloc.collisions_after / n,
            "items_moved_per_level": realloc.moved_per_level,
            "reallocation_backend": realloc.backend,
            "reallocation_official_passes": realloc.passes,
            "reallocation_seconds": time.perf_counter() - t1,
            "reconstruction_mse": model.reconstruction_mse(x),
            "best_epoch": trained.best_epoch[m],
            "usage_before": usage_per_level(raw, config.codebook_size),
            "usage_after": usage_per_level(realloc.codes, config.codebook_size),
        }
    stats = {
        "method": config.method,
        "config": config.to_dict(),
        "items": n,
        "train_seconds": train_s,
        "total_seconds": time.perf_counter() - t0,
        "torch": torch.__version__,
        "modalities": per_modality,
        "history": trained.history,
    }
    return TokenizeResult(codes=codes, codes_before=before, stats=stats, trained=trained)
