"""Chronological leave-one-out split, row for row as the official RecBole files.

Per user (ascending user id) with items s[0..n-1]:
  train: targets s[n-3], s[n-4], ..., s[1] (longest prefix first, as the official file), each with
         the up to `max_history` items before it;
  valid: target s[n-2];  test: target s[n-1] (histories capped the same way).
"""

from __future__ import annotations

import numpy as np

from mqlrec.data.dataset import DataError, Split

MAX_HISTORY = 50  # the official RecBole files cap every history at 50 items
MIN_SEQUENCE_LENGTH = 3  # one history item + the valid target + the test target


def leave_one_out(sequences: list[np.ndarray], max_history: int = MAX_HISTORY) -> dict[str, Split]:
    if max_history < 1:
        raise ValueError(f"max_history must be >= 1, got {max_history}")
    rows = {"train": ([], [], []), "valid": ([], [], []), "test": ([], [], [])}

    def add(name, user, seq, t):
        users, histories, targets = rows[name]
        users.append(user)
        histories.append(np.asarray(seq[max(0, t - max_history):t], dtype=np.int32))
        targets.append(int(seq[t]))

    for user, seq in enumerate(sequences):
        n = len(seq)
        if n < MIN_SEQUENCE_LENGTH:
            raise DataError(f"user {user} has {n} item(s); leave-one-out needs at least {MIN_SEQUENCE_LENGTH}")
        for t in range(n - 3, 0, -1):
            add("train", user, seq, t)
        add("valid", user, seq, n - 2)
        add("test", user, seq, n - 1)
    return {
        name: Split(np.array(u, dtype=np.int64), h, np.array(t, dtype=np.int64))
        for name, (u, h, t) in rows.items()
    }
