"""Per-epoch shuffling, rank sharding and dynamic padding of the flat sample arrays."""

from __future__ import annotations

import numpy as np
import torch

from mqlrec.language import PAD_ID
from mqlrec.tasks import Samples


def epoch_batches(n: int, batch_size: int, epoch: int, seed: int, rank: int = 0, world: int = 1,
                  lengths: np.ndarray | None = None, bucket_batches: int = 50) -> list[np.ndarray]:
    """This rank's batches of sample indices for one epoch.

    The permutation depends only on (seed, epoch), so a resumed run sees the same order. Every rank
    gets the same number of batches (the permutation is wrapped around to a multiple of the world
    size), which DDP needs to keep its all-reduces in step.

    With `lengths` (source lengths), samples are bucketed: each run of `bucket_batches` batches of the
    shuffled order is sorted by length before it is cut into batches, and the batches are shuffled
    again. Batches then hold similar lengths, so trimming the padding per batch saves most of the
    encoder work (histories are mostly much shorter than the 20-item cap).
    """
    if n == 0:
        return []
    rng = np.random.default_rng([seed, epoch])
    perm = rng.permutation(n)
    per_rank = -(-n // world)
    if per_rank * world > n:
        perm = np.concatenate([perm, perm[: per_rank * world - n]])
    mine = perm[rank::world]
    if lengths is None:
        return [mine[i : i + batch_size] for i in range(0, len(mine), batch_size)]
    chunk = batch_size * bucket_batches
    batches = []
    for c in range(0, len(mine), chunk):
        part = mine[c : c + chunk]
        part = part[np.argsort(lengths[part], kind="stable")]
        batches += [part[i : i + batch_size] for i in range(0, len(part), batch_size)]
    order = rng.permutation(len(batches))
    return [batches[i] for i in order]


def to_batch(samples: Samples, idx: np.ndarray, device) -> dict[str, torch.Tensor]:
    """Tensors for one batch, trimmed to the longest source / target in it."""
    src_width = int(samples.src_len[idx].max())
    src = torch.from_numpy(samples.src[idx, :src_width].astype(np.int64))
    tgt = samples.tgt[idx]
    tgt_width = int((tgt != PAD_ID).sum(1).max())
    labels = torch.from_numpy(tgt[:, :tgt_width].astype(np.int64))
    labels[labels == PAD_ID] = -100  # ignored by the cross-entropy
    return {
        "input_ids": src.to(device),
        "attention_mask": (src != PAD_ID).long().to(device),
        "labels": labels.to(device),
        "items": torch.from_numpy(samples.item[idx]).to(device),
    }
