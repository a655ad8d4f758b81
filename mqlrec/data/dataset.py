"""The one in-memory dataset type every reader returns and every stage consumes."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


class DataError(ValueError):
    """Bad input data; the message names the file (and line where it applies)."""


@dataclass
class Split:
    """Official leave-one-out split as (user, history, target) rows; history is chronological."""

    users: np.ndarray  # [R] int64
    histories: list[np.ndarray]  # R arrays of int32 item ids
    targets: np.ndarray  # [R] int64


@dataclass
class Dataset:
    name: str
    sequences: list[np.ndarray]  # per user (row = internal user id), int32 item ids, chronological
    n_items: int
    item_text: list[dict] | None = None  # per item: title/description/brand/categories
    embeddings: dict[str, np.ndarray] = field(default_factory=dict)  # modality -> [n_items, D] float32
    codes: dict[str, np.ndarray] = field(default_factory=dict)  # modality -> [n_items, L] int64 semantic IDs
    splits: dict[str, Split] = field(default_factory=dict)  # "train"/"valid"/"test": from files, else leave-one-out
    user_ids: list[str] | None = None  # external ids (reviewerID) by internal id
    item_ids: list[str] | None = None  # external ids (ASIN) by internal id

    @property
    def n_users(self) -> int:
        return len(self.sequences)

    @property
    def n_interactions(self) -> int:
        return int(sum(len(s) for s in self.sequences))

    def stats(self) -> dict:
        n_inter = self.n_interactions
        return {
            "name": self.name,
            "users": self.n_users,
            "items": self.n_items,
            "interactions": n_inter,
            "sparsity": 1.0 - n_inter / max(1, self.n_users * self.n_items),
            "avg_length": n_inter / max(1, self.n_users),
        }

    def validate(self, source: str = "dataset") -> None:
        """Raise DataError on out-of-range ids, short sequences or embedding tables of the wrong size."""
        for u, seq in enumerate(self.sequences):
            if len(seq) < 2:
                raise DataError(f"{source}: user {u} has {len(seq)} item(s); every user needs at least 2")
            if seq.min() < 0 or seq.max() >= self.n_items:
                raise DataError(f"{source}: user {u} has item ids outside [0, {self.n_items})")
        for modality, table in self.embeddings.items():
            if table.ndim != 2 or table.shape[0] != self.n_items:
                raise DataError(
                    f"{source}: {modality} embeddings have shape {table.shape}, need [{self.n_items}, D]"
                )
            if not np.isfinite(table).all():
                raise DataError(f"{source}: {modality} embeddings contain NaN or inf")
        for modality, codes in self.codes.items():
            if codes.ndim != 2 or codes.shape[0] != self.n_items:
                raise DataError(f"{source}: {modality} codes have shape {codes.shape}, need [{self.n_items}, L]")
