"""Text + image ensemble re-ranking, the rule of the official MQL4GRec ensemble.py.

Walk the two lists by rank, text before image at each rank (t0, i0, t1, i1, ...). The first time an
item is seen it takes its own score; when it is seen again (in the other modality) its score
becomes (s_seen + s_new) / 2 + 1. Then sort by score, best first; ties keep the walk order (the
official uses Python's stable sort). The scores are the beam scores (HF sequences_scores in the
official run; beam_search(normalise="full") gives the same numbers), so the +1 bonus lifts items
both modalities agree on above any single-modality item whose mean log-prob is > -1 lower.

Difference from the official script, by contract: with colliding codes the official keeps only the
first item of a code (and evaluates against the first item of the target's code); our rankings list
every item of a leaf, and each enters the walk at its leaf's rank.
"""

from __future__ import annotations

from mqlrec.generate.ranking import Ranking


def ensemble(text: Ranking, image: Ranking) -> Ranking:
    if len(text) != len(image):
        raise ValueError(f"ensemble needs rankings of the same users, got {len(text)} text rows and {len(image)} image rows")
    rows = []
    for b in range(len(text)):
        merged: dict[int, float] = {}  # insertion order = walk order
        walk = []
        for r in range(max(text.items.shape[1], image.items.shape[1])):
            for rank in (text, image):
                if r < rank.items.shape[1] and rank.items[b, r] >= 0:
                    walk.append((int(rank.items[b, r]), float(rank.scores[b, r])))
        for item, s in walk:
            merged[item] = (merged[item] + s) / 2 + 1 if item in merged else s
        rows.append(sorted(merged.items(), key=lambda kv: kv[1], reverse=True))
    return Ranking.from_rows(rows)
