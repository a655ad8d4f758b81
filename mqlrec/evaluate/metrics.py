"""Full-ranking metrics with one ground-truth item per user (leave-one-out): HR@k, NDCG@k.

IDCG = 1, so NDCG@k = 1 / log2(rank + 2) when the target sits at 0-based rank < k, else 0.
Every user counts: a user whose target is not in the list scores 0 (never dropped).
"""

from __future__ import annotations

import numpy as np

from mqlrec.generate.ranking import Ranking

METRICS = ("HR@1", "HR@5", "HR@10", "NDCG@5", "NDCG@10")


def target_ranks(ranking: Ranking, targets) -> np.ndarray:
    """0-based rank of each user's target in its list, -1 when absent."""
    targets = np.asarray(targets)
    if targets.ndim != 1 or len(targets) != len(ranking):
        raise ValueError(f"targets must be one item per user [B={len(ranking)}], got shape {targets.shape}")
    hit = ranking.items == targets.astype(np.int64)[:, None]
    return np.where(hit.any(1), hit.argmax(1), -1)


def per_user_metrics(ranking: Ranking, targets) -> dict[str, np.ndarray]:
    """Per-user float64 arrays for every metric in METRICS (sum them across shards, divide by users)."""
    rank = target_ranks(ranking, targets)
    found = rank >= 0
    gain = np.where(found, 1.0 / np.log2(np.maximum(rank, 0) + 2.0), 0.0)
    out = {}
    for name in METRICS:
        kind, k = name.split("@")
        within = found & (rank < int(k))
        out[name] = np.where(within, 1.0 if kind == "HR" else gain, 0.0).astype(np.float64)
    return out


def ranking_metrics(ranking: Ranking, targets) -> dict[str, float]:
    """Means over users of per_user_metrics (every user counted)."""
    per_user = per_user_metrics(ranking, targets)
    return {k: float(v.mean()) if len(v) else 0.0 for k, v in per_user.items()}
