"""Evaluate a model on the valid / test split: beam search per modality, ensemble, HR / NDCG.

DDP: the users are cut into fixed batches of `batch_size` (the same cut for any world size) and
batch j goes to rank j % world. Each rank computes per-user metric arrays; they are gathered and
put back by user position, so every user is counted exactly once and an N-process evaluation
gives exactly the 1-process numbers.
"""

from __future__ import annotations

import numpy as np
import nvtx
import torch
from tqdm import tqdm

from mqlrec.language import Language
from mqlrec.tasks import NIG_TASK, SequenceTable, build_samples
from mqlrec.train import distributed
from mqlrec.train.loop import autocast

METRICS = ("HR@1", "HR@5", "HR@10", "NDCG@5", "NDCG@10")


def eval_users(table: SequenceTable, split: str, n_users: int | None, seed: int = 0) -> np.ndarray:
    """Users with a target in the split; a seeded random subset of n_users when given (sorted)."""
    users = table.positions(split).user
    if n_users is not None and 0 < n_users < len(users):
        users = np.sort(np.random.default_rng(seed).choice(users, n_users, replace=False))
    return users


@torch.no_grad()
def rank_users(model, language: Language, table: SequenceTable, split: str, users: np.ndarray, modality: str,
               beam_width: int, device: str, max_history: int = 20, bf16: bool = False):
    """(Ranking, targets) for these users in one modality (prompt = that modality's NIG task)."""
    from mqlrec.generate import beam_search

    with nvtx.annotate("data"):
        s = build_samples(None, language, [NIG_TASK[modality]], split=split, max_history=max_history, users=users, table=table)
        width = int(s.src_len.max())
        ids = torch.from_numpy(s.src[:, :width].astype(np.int64)).to(device)
        mask = (ids != 0).long()
    with nvtx.annotate("beam_search"), autocast(device, bf16):
        ranking = beam_search(model, ids, mask, language.trie(modality), beam_width=beam_width)
    return ranking, s.item


def evaluate(model, language: Language, table: SequenceTable, split: str, users: np.ndarray, beam_width: int = 20,
             batch_size: int = 64, device: str = "cpu", max_history: int = 20, bf16: bool = False,
             baseline=None, desc: str | None = None) -> dict:
    """{"text": {...}, "image": {...}, "ensemble": {...}, "popularity": {...}} metric means over `users`.

    Also returns "per_user": {name: {metric: array [len(users)]}} (on every rank) for exact checks.
    `baseline(users) -> Ranking` adds a non-model ranking (the popularity baseline) under "popularity".
    """
    from mqlrec.evaluate import ensemble, per_user_metrics

    rank, world = distributed.rank(), distributed.world_size()
    model.eval()
    batches = [np.arange(i, min(i + batch_size, len(users))) for i in range(0, len(users), batch_size)]
    mine = batches[rank::world]
    local: list[tuple[np.ndarray, dict]] = []
    bar = tqdm(mine, desc=desc or f"evaluate {split}", disable=rank != 0, leave=False)
    for pos in bar:
        batch_users = users[pos]
        rankings, targets = {}, None
        for m in language.modalities:
            rankings[m], targets = rank_users(model, language, table, split, batch_users, m, beam_width, device, max_history, bf16)
        with nvtx.annotate("ranking"):
            if len(rankings) == 2:
                rankings["ensemble"] = ensemble(rankings["text"], rankings["image"])
            if baseline is not None:
                rankings["popularity"] = baseline(batch_users)
            metrics = {name: per_user_metrics(r, targets) for name, r in rankings.items()}
        local.append((pos, metrics))
    gathered = [part for rank_parts in distributed.all_gather(local) for part in rank_parts]
    names = list(gathered[0][1]) if gathered else []
    per_user = {n: {k: np.full(len(users), np.nan) for k in METRICS} for n in names}
    for pos, metrics in gathered:
        for n in names:
            for k in METRICS:
                per_user[n][k][pos] = np.asarray(metrics[n][k], dtype=np.float64)
    out = {n: {k: float(per_user[n][k].mean()) for k in METRICS} for n in names}
    out["per_user"] = per_user
    out["n_users"] = int(len(users))
    return out


def validation_score(metrics: dict) -> float:
    """NDCG@10 of the ensemble when there are two modalities, else of the single modality."""
    key = "ensemble" if "ensemble" in metrics else next(n for n in ("text", "image") if n in metrics)
    return metrics[key]["NDCG@10"]
