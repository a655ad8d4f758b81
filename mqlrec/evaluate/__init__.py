"""Evaluation: text+image ensemble (official rule) and full-ranking HR / NDCG metrics."""

from mqlrec.evaluate.ensemble import ensemble
from mqlrec.evaluate.metrics import METRICS, per_user_metrics, ranking_metrics, target_ranks

__all__ = ["ensemble", "ranking_metrics", "per_user_metrics", "target_ranks", "METRICS"]
