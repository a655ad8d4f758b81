"""The synthetic default dataset: deterministic, well-formed, and carrying real multimodal and sequential signal."""

import numpy as np

from mqlrec.data.synthetic import make_synthetic, synthetic_topics


def test_deterministic_by_seed_and_different_across_seeds():
    a, b, c = make_synthetic(seed=5, n_items=150, n_users=300), make_synthetic(seed=5, n_items=150, n_users=300), \
        make_synthetic(seed=6, n_items=150, n_users=300)
    assert all(np.array_equal(x, y) for x, y in zip(a.sequences, b.sequences))
    for m in ("text", "image"):
        assert np.array_equal(a.embeddings[m], b.embeddings[m])
    assert a.item_text == b.item_text
    assert not np.array_equal(a.embeddings["text"], c.embeddings["text"])
    assert any(not np.array_equal(x, y) for x, y in zip(a.sequences, c.sequences))


def test_default_shapes_and_invariants():
    ds = make_synthetic()
    assert ds.n_items == 500 and ds.n_users == 1500
    assert ds.embeddings["text"].shape == (500, 64) and ds.embeddings["image"].shape == (500, 48)
    assert all(t.dtype == np.float32 and np.isfinite(t).all() for t in ds.embeddings.values())
    ds.validate()
    for seq in ds.sequences:
        assert len(seq) >= 5 and len(np.unique(seq)) == len(seq)  # no repeated item in a user's history
    assert len(ds.item_text) == 500 and all(e["title"] for e in ds.item_text)
    assert len(np.unique(np.concatenate(ds.sequences))) > 0.9 * ds.n_items
    n = ds.n_interactions
    assert len(ds.splits["train"].targets) == n - 3 * ds.n_users
    # Zipf skew: the top 10% of items take far more than 10% of the interactions
    counts = np.sort(np.bincount(np.concatenate(ds.sequences), minlength=ds.n_items))[::-1]
    assert counts[:50].sum() > 0.25 * n


def _nearest(table):
    x = table / np.linalg.norm(table, axis=1, keepdims=True)
    sim = x @ x.T
    np.fill_diagonal(sim, -np.inf)
    return sim.argmax(1)


def test_text_and_image_embeddings_share_topics():
    ds = make_synthetic(seed=1)
    topics = synthetic_topics(ds)
    chance = np.sum((np.bincount(topics) / len(topics)) ** 2)  # two random items share a topic
    nn_text, nn_image = _nearest(ds.embeddings["text"]), _nearest(ds.embeddings["image"])
    assert (topics[nn_text] == topics).mean() > 0.7 > 5 * chance
    assert (topics[nn_image] == topics).mean() > 0.7
    # across modalities: the text-space neighbour and the image-space neighbour agree on the topic
    assert (topics[nn_text] == topics[nn_image]).mean() > 0.6
    # but the modalities are not copies of each other: their own nearest neighbours often differ
    assert (nn_text != nn_image).mean() > 0.2


def _hit_rate_at_10(scores_for, split):
    hits = 0
    for history, target in zip(split.histories, split.targets):
        scores = scores_for(history).astype(float)
        scores[history] = -np.inf
        hits += target in np.argsort(-scores, kind="stable")[:10]
    return hits / len(split.targets)


def test_sequential_heuristic_beats_popularity():
    ds = make_synthetic(seed=2)
    n = ds.n_items
    train, valid = ds.splits["train"], ds.splits["valid"]
    # popularity and last-item -> next-item transition counts, both from train + valid only
    popularity = np.bincount(np.concatenate(valid.histories + [valid.targets]), minlength=n).astype(float)
    transitions = np.zeros((n, n))
    for split in (train, valid):
        for history, target in zip(split.histories, split.targets):
            transitions[history[-1], target] += 1
    pop_hr = _hit_rate_at_10(lambda h: popularity, ds.splits["test"])
    seq_hr = _hit_rate_at_10(lambda h: transitions[h[-1]] * (popularity.max() + 1) + popularity, ds.splits["test"])
    assert pop_hr > 0.03  # popularity is a sane baseline (Zipf)...
    assert seq_hr > 2 * pop_hr  # ...and order carries much more signal
