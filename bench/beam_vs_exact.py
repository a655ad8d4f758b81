"""How often does beam search miss the model's own best items? Beam vs exact top-K on real test users.

Beam search (W beams) keeps only W prefixes per level, so an item whose first codes score badly but
whose full path scores well can be lost. The exact search (mqlrec.generate.exact) returns the
provably best K items under the same model and the same score. For a trained checkpoint and real
test users this reports, per modality: the share of users whose top-10 list (ordered, and as a set)
differs, the mean overlap of the two top-10 sets, HR/NDCG@10 of both, and the time of both.
Appends to bench/results/beam_vs_exact.json.

    python bench/beam_vs_exact.py --checkpoint runs/Instruments/best --data ../shared/data/Instruments
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from datetime import datetime, timezone

import numpy as np
import torch

from mqlrec.data import load_dataset
from mqlrec.evaluate import per_user_metrics
from mqlrec.generate import beam_search
from mqlrec.tasks import NIG_TASK, SequenceTable, build_samples
from mqlrec.train.checkpoint import load_checkpoint
from mqlrec.train.evaluation import eval_users
from _results import append_json

HERE = os.path.dirname(os.path.abspath(__file__))


def parse_args():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--checkpoint", required=True, help="checkpoint written by python -m mqlrec.train (e.g. runs/X/best)")
    p.add_argument("--data", required=True, help="the dataset folder the checkpoint was trained on")
    p.add_argument("--users", type=int, default=500, help="seeded random test users (0 = all)")
    p.add_argument("--beams", type=int, default=20, help="beam width W (and the exact search's K)")
    p.add_argument("--top", type=int, default=10, help="list length compared")
    p.add_argument("--batch-size", type=int, default=64, help="users per search batch")
    p.add_argument("--note", default="", help="free text stored with the result (e.g. how long the checkpoint was trained)")
    p.add_argument("--seed", type=int, default=0, help="seed of the user subset")
    p.add_argument("--out", default=os.path.join(HERE, "results", "beam_vs_exact.json"), help="JSON results file (appended)")
    return p.parse_args()


def timed(fn):
    t = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - t


def compare(beam, exact, targets, top: int) -> dict:
    b, e = beam.items[:, :top], exact.items[:, :top]
    overlap = np.array([len(set(x[x >= 0]) & set(y[y >= 0])) for x, y in zip(b, e)])
    mb, me = per_user_metrics(beam, targets), per_user_metrics(exact, targets)
    return {
        f"top{top}_list_differs": float((b != e).any(1).mean()),
        f"top{top}_set_differs": float((overlap < np.minimum((b >= 0).sum(1), (e >= 0).sum(1))).mean()),
        f"mean_top{top}_overlap": float(overlap.mean()),
        # the exact list is the model's true best, so beam can only score lower or equal at each rank
        "beam_score_below_exact_at_rank1": float((beam.scores[:, 0] < exact.scores[:, 0] - 1e-6).mean()),
        "beam": {k: float(np.mean(mb[k])) for k in ("HR@10", "NDCG@10")},
        "exact": {k: float(np.mean(me[k])) for k in ("HR@10", "NDCG@10")},
    }


def main():
    args = parse_args()
    ckpt = load_checkpoint(args.checkpoint)
    lang, model = ckpt.language, ckpt.model.eval()
    dataset = load_dataset(args.data)
    table = SequenceTable(dataset.sequences, dataset.n_items)
    users = eval_users(table, "test", args.users or None, args.seed)
    result = {
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "device": f"cpu: {platform.processor() or platform.machine()}, {torch.get_num_threads()} torch threads",
        "checkpoint": {"dataset": ckpt.meta.get("dataset"), "tasks": ckpt.meta.get("tasks"),
                       "training": {k: ckpt.meta.get("args", {}).get(k) for k in ("epochs", "max_train_samples", "lr", "batch_size", "seed")}},
        "note": args.note,
        "users": int(len(users)), "beams": args.beams, "modalities": {},
    }
    for m in lang.modalities:
        s = build_samples(None, lang, [NIG_TASK[m]], split="test", max_history=int(ckpt.meta.get("max_history", 20)),
                          users=users, table=table)
        ids = torch.from_numpy(s.src[:, : int(s.src_len.max())].astype(np.int64))
        mask = (ids != 0).long()
        trie = lang.trie(m)
        beam, t_beam = timed(lambda: beam_search(model, ids, mask, trie, beam_width=args.beams, batch_size=args.batch_size))
        exact, t_exact = timed(lambda: beam_search(model, ids, mask, trie, beam_width=args.beams, search="exact",
                                                   batch_size=args.batch_size, progress=True))
        row = compare(beam, exact, s.item, args.top)
        row["users_per_s"] = {"beam": round(len(users) / t_beam, 2), "exact": round(len(users) / t_exact, 2)}
        result["modalities"][m] = row
        print(m, json.dumps(row))
    append_json(args.out, result)


if __name__ == "__main__":
    main()
