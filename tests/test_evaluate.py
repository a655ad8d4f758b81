"""Ensemble (official rule) and HR / NDCG metrics, checked against hand computations."""

import math

import numpy as np
import pytest

from mqlrec.evaluate import ensemble, per_user_metrics, ranking_metrics
from mqlrec.generate import Ranking


def test_ensemble_by_hand():
    text = Ranking([[10, 11, 12]], [[-0.5, -1.0, -2.0]])
    image = Ranking([[11, 13, 10]], [[-0.4, -3.0, -3.5]])
    # walk: t10 -0.5, i11 -0.4, t11 -1.0 -> (-0.4-1.0)/2+1 = 0.3, i13 -3.0, t12 -2.0, i10 -> (-0.5-3.5)/2+1 = -1.0
    got = ensemble(text, image)
    assert got.items.tolist() == [[11, 10, 12, 13]]
    np.testing.assert_allclose(got.scores, [[0.3, -1.0, -2.0, -3.0]], rtol=1e-6)


def test_ensemble_ties_keep_walk_order_and_padding_is_skipped():
    text = Ranking([[1, 2, -1]], [[-1.0, -2.0, -np.inf]])
    image = Ranking([[3, 4]], [[-1.0, -2.0]])
    got = ensemble(text, image)
    assert got.items.tolist() == [[1, 3, 2, 4]]  # equal scores: text rank 0, image rank 0, ...
    with pytest.raises(ValueError, match="same users"):
        ensemble(text, Ranking(np.zeros((2, 1)), np.zeros((2, 1))))


def test_ensemble_matches_a_plain_transcription_on_random_lists():
    rng = np.random.default_rng(0)
    for _ in range(50):
        n = rng.integers(1, 8)
        t_items = rng.choice(12, n, replace=False)
        i_items = rng.choice(12, n, replace=False)
        t_scores = np.sort(rng.standard_normal(n))[::-1].astype(np.float32)
        i_scores = np.sort(rng.standard_normal(n))[::-1].astype(np.float32)
        seen = {}
        for r in range(n):
            for it, s in ((t_items[r], t_scores[r]), (i_items[r], i_scores[r])):
                seen[int(it)] = (seen[int(it)] + float(s)) / 2 + 1 if int(it) in seen else float(s)
        want = sorted(seen.items(), key=lambda kv: kv[1], reverse=True)
        got = ensemble(Ranking([t_items], [t_scores]), Ranking([i_items], [i_scores]))
        assert got.items[0].tolist() == [k for k, _ in want]
        np.testing.assert_allclose(got.scores[0], [v for _, v in want], rtol=1e-6)


def test_metrics_by_hand():
    items = [[5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15],
             [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11],
             [1, 2, -1, -1, -1, -1, -1, -1, -1, -1, -1],
             [3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13]]
    r = Ranking(items, np.zeros((4, 11)))
    targets = np.array([5, 3, 9, 13])  # ranks 0, 2, absent, 10 (outside top 10)
    per = per_user_metrics(r, targets)
    assert per["HR@1"].tolist() == [1, 0, 0, 0]
    assert per["HR@5"].tolist() == [1, 1, 0, 0]
    assert per["HR@10"].tolist() == [1, 1, 0, 0]
    np.testing.assert_allclose(per["NDCG@5"], [1.0, 1 / math.log2(4), 0, 0])
    np.testing.assert_allclose(per["NDCG@10"], [1.0, 0.5, 0, 0])
    m = ranking_metrics(r, targets)
    assert m["HR@5"] == 0.5 and m["HR@1"] == 0.25  # every user counted, misses included
    np.testing.assert_allclose(m["NDCG@10"], 1.5 / 4)


def test_metrics_shard_sums_equal_the_whole():
    rng = np.random.default_rng(1)
    items = np.stack([rng.permutation(40)[:20] for _ in range(37)])
    targets = rng.integers(0, 40, 37)
    r = Ranking(items, np.zeros(items.shape))
    whole = per_user_metrics(r, targets)
    for name, arr in whole.items():
        shards = sum(per_user_metrics(Ranking(items[s:s + 10], np.zeros((len(items[s:s + 10]), 20))), targets[s:s + 10])[name].sum()
                     for s in range(0, 37, 10))
        assert shards == pytest.approx(arr.sum())
        assert ranking_metrics(r, targets)[name] == pytest.approx(arr.mean())


def test_metrics_reject_wrong_target_shape():
    with pytest.raises(ValueError, match="one item per user"):
        per_user_metrics(Ranking([[1, 2]], [[0.0, 0.0]]), np.array([1, 2]))
