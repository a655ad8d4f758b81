"""Build every task's (source, target) token arrays once, vectorised, as flat padded int32 arrays.

Source: `[<task_X>] + tokens of the history items (oldest first, last `max_history`) + [eos]`, pad 0.
Target: `target item's code tokens + [eos]`, pad 0 (0 never occurs in a real target).

Splits follow the official MQL4GRec code: per user with items s[0..n-1],
train = targets s[i] for i in 1..n-3 (every prefix of s[:-2]), history s[:i];
valid = target s[n-2], history s[:n-2]; test = target s[n-1], history s[:n-1].
History is always cut to its last `max_history` items.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from mqlrec.language import EOS_ID, PAD_ID, Language
from mqlrec.tasks.registry import TASKS

SPLITS = ("train", "valid", "test")


@dataclass
class Samples:
    src: np.ndarray  # [S, max_src] int32, pad 0
    src_len: np.ndarray  # [S] int32, tokens before padding (task token + history tokens + eos)
    tgt: np.ndarray  # [S, max_tgt] int32, code tokens + eos, pad 0
    task: np.ndarray  # [S] int16, index into `tasks`
    item: np.ndarray  # [S] int64, the target item (for item tasks the item itself)
    user: np.ndarray  # [S] int64, user row (-1 for item tasks)
    tasks: list[str]

    def __len__(self) -> int:
        return len(self.src_len)

    def subset(self, rows: np.ndarray) -> "Samples":
        return Samples(self.src[rows], self.src_len[rows], self.tgt[rows], self.task[rows], self.item[rows], self.user[rows], self.tasks)


@dataclass
class Positions:
    """Where each sample's target sits in the flattened sequences."""

    user: np.ndarray  # [S] int64
    pos: np.ndarray  # [S] int64, index of the target within the user's sequence


class SequenceTable:
    """All users' sequences flattened once: flat items + per-user start offsets and lengths."""

    def __init__(self, sequences, n_items: int):
        self.lengths = np.fromiter((len(s) for s in sequences), dtype=np.int64, count=len(sequences))
        self.starts = np.zeros(len(sequences), dtype=np.int64)
        if len(sequences):
            self.starts[1:] = np.cumsum(self.lengths)[:-1]
        self.flat = (
            np.concatenate([np.asarray(s, dtype=np.int64) for s in sequences])
            if len(sequences)
            else np.zeros(0, np.int64)
        )
        if len(self.flat) and (self.flat.min() < 0 or self.flat.max() >= n_items):
            bad = self.flat[(self.flat < 0) | (self.flat >= n_items)][:5]
            raise ValueError(f"sequences contain item ids outside [0, {n_items}), e.g. {bad.tolist()}")
        self.n_items = n_items

    def positions(self, split: str, users: np.ndarray | None = None) -> Positions:
        if split not in SPLITS:
            raise ValueError(f"split must be one of {SPLITS}, not {split!r}")
        all_users = np.arange(len(self.lengths), dtype=np.int64)
        users = all_users if users is None else np.asarray(users, dtype=np.int64)
        n = self.lengths[users]
        if split == "train":
            counts = np.maximum(n - 3, 0)
            user = np.repeat(users, counts)
            group_start = np.repeat(np.cumsum(counts) - counts, counts)
            pos = np.arange(int(counts.sum()), dtype=np.int64) - group_start + 1
            return Positions(user, pos)
        offset = 2 if split == "valid" else 1
        keep = n >= offset + (0 if split == "valid" else 1)  # test needs a non-empty history
        return Positions(users[keep], n[keep] - offset)

    def histories(self, p: Positions, max_history: int) -> np.ndarray:
        """[S, max_history] item ids, oldest first, left-aligned, -1 padding."""
        hist_len = np.minimum(p.pos, max_history)
        first = self.starts[p.user] + p.pos - hist_len
        cols = np.arange(max_history, dtype=np.int64)
        idx = first[:, None] + cols[None, :]
        valid = cols[None, :] < hist_len[:, None]
        return np.where(valid, self.flat[np.where(valid, idx, 0)] if len(self.flat) else -1, -1)

    def targets(self, p: Positions) -> np.ndarray:
        return self.flat[self.starts[p.user] + p.pos]


def encode_sources(histories: np.ndarray, item_tokens: np.ndarray, task_token: int) -> tuple[np.ndarray, np.ndarray]:
    """Histories [S, H] (-1 padded, left-aligned) → src [S, 2 + H*L] int32 and src_len [S]."""
    s, h = histories.shape
    depth = item_tokens.shape[1]
    valid = histories >= 0
    hist_len = valid.sum(axis=1)
    tok = np.where(valid[:, :, None], item_tokens[np.maximum(histories, 0)], PAD_ID).reshape(s, h * depth)
    src = np.zeros((s, 2 + h * depth), dtype=np.int32)
    src[:, 0] = task_token
    src[:, 1 : 1 + h * depth] = tok
    src_len = 2 + hist_len * depth
    src[np.arange(s), src_len - 1] = EOS_ID
    return src, src_len.astype(np.int32)


def encode_targets(items: np.ndarray, item_tokens: np.ndarray) -> np.ndarray:
    tgt = np.full((len(items), item_tokens.shape[1] + 1), EOS_ID, dtype=np.int32)
    tgt[:, :-1] = item_tokens[items]
    return tgt


def _pad_concat(arrays: list[np.ndarray]) -> np.ndarray:
    width = max(a.shape[1] for a in arrays)
    out = np.full((sum(len(a) for a in arrays), width), PAD_ID, dtype=np.int32)
    row = 0
    for a in arrays:
        out[row : row + len(a), : a.shape[1]] = a
        row += len(a)
    return out


def concat_samples(parts: list[Samples]) -> Samples:
    """One sample set from several (e.g. source domains); task indices are remapped to the union of tasks."""
    tasks: list[str] = []
    for p in parts:
        tasks += [t for t in p.tasks if t not in tasks]
    remap = [np.array([tasks.index(t) for t in p.tasks], dtype=np.int16) for p in parts]
    return Samples(
        src=_pad_concat([p.src for p in parts]),
        src_len=np.concatenate([p.src_len for p in parts]),
        tgt=_pad_concat([p.tgt for p in parts]),
        task=np.concatenate([r[p.task] for r, p in zip(remap, parts)]),
        item=np.concatenate([p.item for p in parts]),
        user=np.concatenate([p.user for p in parts]),
        tasks=tasks,
    )


def build_samples(
    sequences,
    language: Language,
    tasks: list[str],
    split: str = "train",
    max_history: int = 20,
    users: np.ndarray | None = None,
    table: SequenceTable | None = None,
) -> Samples:
    """Samples of the given tasks for one split (item tasks only exist for "train").

    `sequences`: per user a chronological int array of item ids (the Dataset's `sequences`).
    `users`: restrict sequence tasks to these user rows (evaluation subsets, DDP shards).
    """
    if max_history < 1:
        raise ValueError(f"max_history must be >= 1, got {max_history}")
    table = table or SequenceTable(sequences, language.n_items)
    if table.n_items != language.n_items:
        raise ValueError(f"the sequences index {table.n_items} items but the language has {language.n_items}")
    parts = {k: [] for k in ("src", "src_len", "tgt", "task", "item", "user")}
    positions = None
    for k, name in enumerate(tasks):
        spec = TASKS[name]
        for m in (spec.source, spec.target):
            if m not in language.modalities:
                raise ValueError(f"task {name!r} needs {m} IDs; the language has {language.modalities}")
        src_tokens, tgt_tokens = language.item_tokens(spec.source), language.item_tokens(spec.target)
        if spec.kind == "sequence":
            if positions is None:
                positions = table.positions(split, users)
            hist = table.histories(positions, max_history)
            items = table.targets(positions)
            user = positions.user
        else:
            if split != "train":
                continue  # item-alignment tasks have no held-out targets
            items = np.arange(language.n_items, dtype=np.int64)
            hist = items[:, None]
            user = np.full(len(items), -1, dtype=np.int64)
        src, src_len = encode_sources(hist, src_tokens, language.task_id(name))
        parts["src"].append(src)
        parts["src_len"].append(src_len)
        parts["tgt"].append(encode_targets(items, tgt_tokens))
        parts["task"].append(np.full(len(items), k, dtype=np.int16))
        parts["item"].append(items.astype(np.int64))
        parts["user"].append(user.astype(np.int64))
    if not parts["src"]:
        raise ValueError(f"none of the tasks {tasks} has samples in the {split!r} split")
    return Samples(
        src=_pad_concat(parts["src"]),
        src_len=np.concatenate(parts["src_len"]),
        tgt=_pad_concat(parts["tgt"]),
        task=np.concatenate(parts["task"]),
        item=np.concatenate(parts["item"]),
        user=np.concatenate(parts["user"]),
        tasks=list(tasks),
    )
