"""Popularity baseline: every user gets the items most often interacted with in the training part."""

from __future__ import annotations

import numpy as np

from mqlrec.tasks import SequenceTable


def train_counts(table: SequenceTable) -> np.ndarray:
    """Per item, how often it occurs in the training interactions (each user's items[:-2])."""
    train_end = np.repeat(table.starts + np.maximum(table.lengths - 2, 0), table.lengths)
    keep = np.arange(len(table.flat)) < train_end
    return np.bincount(table.flat[keep], minlength=table.n_items)


class Popularity:
    """Callable users → Ranking of the `k` most popular training items (scores = counts; ties → lower id)."""

    def __init__(self, table: SequenceTable, k: int = 20):
        counts = train_counts(table)
        order = np.lexsort((np.arange(table.n_items), -counts))[:k]
        self.items = order.astype(np.int64)
        self.scores = counts[order].astype(np.float32)

    def __call__(self, users: np.ndarray):
        from mqlrec.generate import Ranking

        n = len(users)
        return Ranking(np.tile(self.items, (n, 1)), np.tile(self.scores, (n, 1)))
