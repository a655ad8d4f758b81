"""Ranking: per user a best-first list of (item id, score); the output of every search."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from mqlrec.language import Trie


@dataclass
class Ranking:
    items: np.ndarray  # [B, R] int64, -1 = padding
    scores: np.ndarray  # [B, R] float32, -inf padding; best first, each item once per row

    def __post_init__(self):
        self.items = np.asarray(self.items, dtype=np.int64)
        self.scores = np.asarray(self.scores, dtype=np.float32)
        if self.items.ndim != 2 or self.items.shape != self.scores.shape:
            raise ValueError(f"Ranking needs items and scores of one shape [B, R], got {self.items.shape} and {self.scores.shape}")

    def __len__(self) -> int:
        return self.items.shape[0]

    @classmethod
    def from_rows(cls, rows: list[list[tuple[int, float]]]) -> "Ranking":
        """Pack per-user lists of (item, score), already best first, into padded arrays."""
        width = max([len(r) for r in rows], default=0)
        items = np.full((len(rows), width), -1, dtype=np.int64)
        scores = np.full((len(rows), width), -np.inf, dtype=np.float32)
        for b, row in enumerate(rows):
            if row:
                items[b, : len(row)] = [i for i, _ in row]
                scores[b, : len(row)] = [s for _, s in row]
        return cls(items, scores)


def ranking_from_leaves(trie: Trie, leaves: np.ndarray, scores: np.ndarray) -> Ranking:
    """Leaf nodes [B, W] (-1 = dead) with final scores, best first -> items.

    A leaf holding several items (collisions) contributes all of them, in item order, with the leaf's score.
    """
    leaves = np.asarray(leaves)
    scores = np.asarray(scores, dtype=np.float32)
    rows = []
    for b in range(leaves.shape[0]):
        row = []
        for leaf, s in zip(leaves[b], scores[b]):
            if leaf < 0:
                continue
            row.extend((int(i), float(s)) for i in trie.leaf_items(int(leaf)))
        rows.append(row)
    return Ranking.from_rows(rows)


def distinct_leaves(ranking: Ranking, trie: Trie, item_tokens: np.ndarray) -> tuple[list[list[int]], list[list[float]]]:
    """Per row, the trie leaves of its items in ranking order, each once, with the leaf's score.

    The inverse of `ranking_from_leaves` (items of a shared leaf collapse back into that leaf), used to
    compare a Ranking with searches that return leaves, such as HF `generate`."""
    leaves, scores = [], []
    for items, row_scores in zip(ranking.items, ranking.scores):
        first: dict[int, float] = {}
        for item, score in zip(items, row_scores):
            if item >= 0:
                first.setdefault(trie.walk(item_tokens[item]), float(score))
        leaves.append(list(first))
        scores.append(list(first.values()))
    return leaves, scores
