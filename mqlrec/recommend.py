"""Top-k recommendations for one user history from a trained checkpoint.

    from mqlrec import recommend
    recs = recommend("runs/synthetic/best", [12, 7, 301], k=10)          # text + image ensemble
    recs.items, recs.scores, recs.titles

    python -m mqlrec.recommend --checkpoint runs/synthetic/best --history 12 7 301 --k 10
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import types
from dataclasses import dataclass

import numpy as np
import torch

MODALITIES = ("ensemble", "text", "image")
_CACHE: dict = {}


@dataclass
class Recommendations:
    items: list[int]  # best first
    scores: list[float]
    titles: list[str] | None  # when the training data had item text

    def as_rows(self) -> list[dict]:
        return [
            {"rank": r + 1, "item": i, "score": s, **({"title": self.titles[r]} if self.titles else {})}
            for r, (i, s) in enumerate(zip(self.items, self.scores))
        ]


def _load(checkpoint, device: str):
    from mqlrec.train.checkpoint import Checkpoint, load_checkpoint

    if isinstance(checkpoint, Checkpoint):
        return checkpoint
    path = os.path.realpath(str(checkpoint))
    meta = os.path.join(path, "mqlrec.json")
    key = (path, device, os.path.getmtime(meta) if os.path.exists(meta) else None)  # a rewritten checkpoint reloads
    if key not in _CACHE:
        _CACHE[key] = load_checkpoint(str(checkpoint), device)
    return _CACHE[key]


def _check_history(history_item_ids, n_items: int) -> np.ndarray:
    try:
        history = np.asarray(list(history_item_ids), dtype=np.int64)
    except (TypeError, ValueError):
        raise ValueError(f"history must be a list of integer item ids, got {history_item_ids!r}") from None
    if history.ndim != 1 or len(history) == 0:
        raise ValueError("history must contain at least one item id")
    bad = history[(history < 0) | (history >= n_items)]
    if len(bad):
        raise ValueError(f"unknown item ids in history: {bad[:10].tolist()} (this checkpoint knows items 0..{n_items - 1})")
    return history


@torch.no_grad()
def recommend(checkpoint, history_item_ids, k: int = 10, modality: str = "ensemble", beam_width: int | None = None,
              device: str = "cpu") -> Recommendations:
    """Top-k item ids for a history (oldest first; the last `max_history` items are used).

    checkpoint: a directory written by `python -m mqlrec.train` (e.g. runs/NAME/best) or a loaded
    `mqlrec.train.checkpoint.Checkpoint`. modality: "ensemble" (text + image, the official re-ranking),
    "text" or "image". beam_width defaults to max(k, 20). Fewer than k items come back only when
    the catalog has fewer than k items reachable by the search.
    """
    from mqlrec.generate import beam_search
    from mqlrec.tasks import NIG_TASK, encode_sources

    if modality not in MODALITIES:
        raise ValueError(f"modality must be one of {MODALITIES}, not {modality!r}")
    ckpt = _load(checkpoint, device)
    lang = ckpt.language
    if not isinstance(k, (int, np.integer)) or k < 1:
        raise ValueError(f"k must be a positive integer, got {k!r}")
    k = int(k)
    if k > lang.n_items:
        raise ValueError(f"k={k} is larger than the catalog ({lang.n_items} items)")
    needed = ["text", "image"] if modality == "ensemble" else [modality]
    missing = [m for m in needed if m not in lang.modalities]
    if missing:
        raise ValueError(f"modality {modality!r} needs {missing} IDs; this checkpoint has {lang.modalities}")
    history = _check_history(history_item_ids, lang.n_items)
    max_history = int(ckpt.meta.get("max_history", 20))
    hist = history[-max_history:][None, :]
    width = max(k, 20) if beam_width is None else int(beam_width)
    if width < k:
        raise ValueError(f"beam_width={width} must be at least k={k}")
    rankings = {}
    for m in needed:
        src, src_len = encode_sources(hist, lang.item_tokens(m), lang.task_id(NIG_TASK[m]))
        ids = torch.from_numpy(src[:, : int(src_len.max())].astype(np.int64)).to(device)
        rankings[m] = beam_search(ckpt.model, ids, (ids != 0).long(), lang.trie(m), beam_width=width)
    if modality == "ensemble":
        from mqlrec.evaluate import ensemble

        ranking = ensemble(rankings["text"], rankings["image"])
    else:
        ranking = rankings[modality]
    keep = ranking.items[0] >= 0
    items = ranking.items[0][keep][:k].tolist()
    scores = [float(s) for s in ranking.scores[0][keep][:k]]
    titles = [ckpt.titles[i] for i in items] if ckpt.titles else None
    return Recommendations(items, scores, titles)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m mqlrec.recommend", description="Top-k items for a user history from a checkpoint.")
    p.add_argument("--checkpoint", required=True, help="checkpoint directory written by python -m mqlrec.train (e.g. runs/NAME/best)")
    p.add_argument("--history", required=True, nargs="+", help="item ids the user interacted with, oldest first")
    p.add_argument("--k", type=int, default=10, help="number of recommendations")
    p.add_argument("--modality", choices=MODALITIES, default="ensemble", help="which IDs to generate (ensemble = text + image)")
    p.add_argument("--beam-width", type=int, help="beams per modality (default max(k, 20))")
    p.add_argument("--device", default="cpu", help="cpu, cuda or cuda:N")
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")
    return p


def main(argv: list[str] | None = None) -> int:
    from mqlrec.data import DataError
    from mqlrec.train.checkpoint import CheckpointError

    args = build_parser().parse_args(argv)
    try:
        history = [int(h) for h in args.history]
    except ValueError:
        print(f"error: --history takes integer item ids, got {' '.join(args.history)}", file=sys.stderr)
        return 2
    try:
        recs = recommend(args.checkpoint, history, k=args.k, modality=args.modality, beam_width=args.beam_width, device=args.device)
    except (ValueError, CheckpointError, DataError, FileNotFoundError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    rows = recs.as_rows()
    if args.json:
        print(json.dumps(rows, indent=1))
    else:
        for r in rows:
            print(f"{r['rank']:>3}  item {r['item']:>7}  score {r['score']:9.4f}  {r.get('title', '')}")
    return 0


class _CallableModule(types.ModuleType):
    """Importing this submodule binds `mqlrec.recommend` to the module, shadowing the function that
    `mqlrec.__getattr__` hands out; making the module callable keeps `mqlrec.recommend(...)` working."""

    def __call__(self, *args, **kwargs) -> Recommendations:
        return recommend(*args, **kwargs)


sys.modules[__name__].__class__ = _CallableModule

if __name__ == "__main__":
    sys.exit(main())
