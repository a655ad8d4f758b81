"""Exact top-K over the trie: best-first (branch and bound) search, seeded by beam search.

A path's log-probability only decreases as tokens are appended (every log p <= 0), so a prefix's
score bounds every completion below it. Popping prefixes best first, a completed path that reaches
the top of the queue is better than (or equal to) everything still unexplored: the first K completed
paths popped are the K best leaves under the model, with the same score definition as beam_search.

The bound: beam search with K beams runs first (cheap next to the exact search) and finds K real
items; the K-th of their scores is a lower bound of the true K-th best. A prefix scoring below it
can lead to no top-K item, so it is never queued, and every queued incomplete prefix has to be
expanded anyway: each round expands all of them at once (one round per level), and the search
expands little more than the prefixes that outscore the true K-th best item. (Without the seed, a
best-first search either pops one prefix per round or guesses how many to pop; guessing expanded
about 10x more prefixes on a trained Instruments model.) The bound is loosened by a small margin so
float rounding between the two searches cannot prune a needed prefix.

All popped prefixes of one length run through the model in one call, re-decoded from scratch (no
cache). With a trained (peaked) model few prefixes pass the bound; with a random (flat) one the
search approaches brute force.
"""

from __future__ import annotations

import heapq
from collections import defaultdict
from itertools import count

import numpy as np
import torch

from mqlrec.generate.beam_search import _search_chunk, eos_id, level_token_ranges
from mqlrec.generate.batching import run_in_chunks
from mqlrec.generate.ranking import Ranking, ranking_from_leaves
from mqlrec.generate.step import TrieTensors, resolve_step
from mqlrec.generate.t5_decoder import T5BeamDecoder
from mqlrec.language import Trie


@torch.no_grad()
def exact_search(model, input_ids, attention_mask, trie: Trie, k: int, normalise: str = "full",
                 batch_size: int | None = None, max_prefixes: int = 4096, progress: bool = False) -> Ranking:
    model.eval()
    # what the seeding beam search needs, built once for all chunks
    seed = (TrieTensors.of(trie, input_ids.device), resolve_step("auto", input_ids.device), level_token_ranges(trie))
    leaves, scores = run_in_chunks(
        lambda ids, mask: _exact_chunk(model, ids, mask, trie, seed, int(k), normalise, max_prefixes),
        input_ids, attention_mask, batch_size, int(k), "exact search", progress)
    return ranking_from_leaves(trie, leaves, scores)


def _beam_bound(model, input_ids, attention_mask, seed, k, normalise, denom):
    """Per user, a lower bound of the K-th best path log-prob sum: beam search's K-th score x denom,
    less a margin for float rounding (-inf when beam search finds fewer than K leaves)."""
    tt, impl, ranges = seed
    _, scores = _search_chunk(model, input_ids, attention_mask, tt, ranges, k, impl, normalise)
    kth = scores[:, k - 1].astype(np.float64) * denom
    return np.where(np.isfinite(kth), kth - (1e-3 + 1e-4 * np.abs(kth)), -np.inf)


def _exact_chunk(model, input_ids, attention_mask, trie, seed, k, normalise, max_prefixes):
    L = trie.depth
    ranges = seed[2]
    done_depth = L + 1 if normalise == "full" else L  # full: the forced eos step completes a path (and is scored)
    eos = eos_id(model)
    start = model.config.decoder_start_token_id or 0
    dev = input_ids.device
    bound = _beam_bound(model, input_ids, attention_mask, seed, k, normalise, done_depth)
    dec = T5BeamDecoder(model)
    state = dec.encode(input_ids, attention_mask)  # cross K/V once per user
    B = input_ids.shape[0]
    tie = count()
    # queue entries: (-log p of the prefix, tie, depth, node, token tuple)
    queues = [[(0.0, next(tie), 0, 0, ())] for _ in range(B)]
    found = [[] for _ in range(B)]
    while True:
        requests = defaultdict(list)  # depth -> [(user, logp, node, tokens)]
        for u in range(B):
            q = queues[u]
            while q and q[0][2] == done_depth and len(found[u]) < k:
                neg, _, _, node, _ = heapq.heappop(q)
                found[u].append((node, -neg))
            while q and len(found[u]) < k and q[0][2] < done_depth:  # every queued prefix passed the bound
                neg, _, depth, node, toks = heapq.heappop(q)
                requests[depth].append((u, -neg, node, toks))
        if not requests:
            break
        for depth, reqs in requests.items():
            for part, logits in _decode(dec, state, reqs, start, max_prefixes, dev):
                if depth == L:  # leaf: the only continuation is eos (full mode only)
                    lp = logits.log_softmax(-1)[:, eos].cpu().numpy()
                    for (u, base, node, toks), x in zip(part, lp):
                        s_new = float(np.float32(base) + x)
                        if s_new >= bound[u]:
                            heapq.heappush(queues[u], (-s_new, next(tie), L + 1, node, toks))
                    continue
                lo, hi = ranges[depth]
                lp = (logits.log_softmax(-1)[:, lo:hi] if normalise == "full" else logits[:, lo:hi].log_softmax(-1))
                lp = lp.cpu().numpy()
                for (u, base, node, toks), row in zip(part, lp):
                    e0, e1 = trie.child_ptr[node], trie.child_ptr[node + 1]
                    for tok, child in zip(trie.child_token[e0:e1], trie.child_node[e0:e1]):
                        # float32 sums, as the beam search accumulates them
                        s_new = float(np.float32(base) + row[tok - lo])
                        if s_new >= bound[u]:
                            heapq.heappush(queues[u], (-s_new, next(tie), depth + 1, int(child), toks + (int(tok),)))
    leaf = np.full((B, k), -1, dtype=np.int64)
    score = np.full((B, k), -np.inf, dtype=np.float32)
    for u in range(B):
        for j, (node, s) in enumerate(found[u]):
            leaf[u, j] = node
            score[u, j] = np.float32(s) / np.float32(done_depth)  # the mean over the completed path
    return leaf, score


def _decode(dec, state, reqs, start, max_prefixes, dev):
    """Yield (requests, full-vocabulary logits [n, V]) for requests of one prefix length, grouped per
    user so the user's cross-attention K/V are shared: prefixes laid out [users, P, t], padded rows
    repeat the user's last prefix and are dropped."""
    by_user = defaultdict(list)
    for r in reqs:
        by_user[r[0]].append(r)
    groups, size = [], 0
    for u, rs in by_user.items():
        for s in range(0, len(rs), max_prefixes):
            groups.append(rs[s : s + max_prefixes])
    batch = []
    for g in groups + [None]:
        if g is not None and size + len(g) <= max_prefixes:
            batch.append(g)
            size += len(g)
            continue
        if batch:
            P = max(len(x) for x in batch)
            toks = [[(start,) + x[min(i, len(x) - 1)][3] for i in range(P)] for x in batch]
            users = torch.tensor([x[0][0] for x in batch], device=dev)
            hidden = dec.last_hidden(state, torch.tensor(toks, dtype=torch.long, device=dev), users)
            logits = dec.logits(hidden)
            for x, row in zip(batch, logits):
                yield x, row[: len(x)]
        batch, size = ([g], len(g)) if g is not None else ([], 0)
