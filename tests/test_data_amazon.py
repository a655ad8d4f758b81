"""Raw Amazon 2018 preprocessing on small gz files built here."""

import gzip
import json

import numpy as np
import pytest

from mqlrec.data import DataError, load_dataset
from mqlrec.data.amazon import k_core, prepare_amazon
from mqlrec.data.mqlrec_format import write_mqlrec


def _write_gz(path, records):
    with gzip.open(path, "wt", encoding="utf-8") as f:
        for r in records:
            f.write((r if isinstance(r, str) else json.dumps(r)) + "\n")
    return str(path)


def _review(user, item, time):
    return {"overall": 5.0, "reviewerID": user, "asin": item, "unixReviewTime": time, "reviewText": "ok"}


def _meta(item, title="A thing", **extra):
    return {"asin": item, "title": title, "description": ["Good", "&amp; cheap"], "brand": "B", "category": ["C"], **extra}


def _reference_pipeline(reviews, meta, k):
    """Plain restatement of the preprocessing rules, for random inputs."""
    titled = {}
    for m in meta:
        if m["asin"] not in titled:
            titled[m["asin"]] = bool(m.get("title", "").strip())
    first, seen = [], set()
    for r in reviews:
        key = (r["reviewerID"], r["asin"])
        if key not in seen:
            seen.add(key)
            first.append(r)
    rows = [(r["reviewerID"], r["asin"], r["unixReviewTime"]) for r in first if titled.get(r["asin"])]
    changed = True
    while changed:
        users, items = {}, {}
        for u, i, _ in rows:
            users[u] = users.get(u, 0) + 1
            items[i] = items.get(i, 0) + 1
        kept = [r for r in rows if users[r[0]] >= k and items[r[1]] >= k]
        changed = len(kept) != len(rows)
        rows = kept
    order = []
    for u, _, _ in rows:
        if u not in order:
            order.append(u)
    return {u: [i for _, i, _ in sorted((r for r in rows if r[0] == u), key=lambda r: r[2])] for u in order}


def test_rules_on_a_hand_made_example(tmp_path):
    reviews = []
    # u0..u3 each review items a,b,c,d (times vary); u0 reviews item a twice (second dropped);
    # 'x' has no metadata, 'y' has an empty title: both dropped; u4 has too few items after that.
    for n, user in enumerate(["u0", "u1", "u2", "u3"]):
        for j, item in enumerate(["a", "b", "c", "d"]):
            reviews.append(_review(user, item, 100 + (j * 7 + n * 3) % 5))  # ties in time on purpose
    reviews.insert(2, _review("u0", "a", 1))  # duplicate (user, item): the first one is kept
    reviews += [_review("u4", "x", 1), _review("u4", "y", 2), _review("u4", "a", 3)]
    meta = [_meta("a"), _meta("b", "Second & thing"), _meta("c"), _meta("d"), _meta("y", "  "), _meta("a", "dup")]
    r = _write_gz(tmp_path / "r_5.json.gz", reviews)
    m = _write_gz(tmp_path / "meta.json.gz", meta)
    ds = prepare_amazon(r, m, k=3)
    assert ds.user_ids == ["u0", "u1", "u2", "u3"]
    expected = _reference_pipeline(reviews, meta, 3)
    assert [[ds.item_ids[i] for i in seq] for seq in ds.sequences] == [expected[u] for u in ds.user_ids]
    # item ids follow first appearance walking users in id order
    assert np.array_equal(ds.sequences[0], np.arange(4))
    assert ds.item_text[ds.item_ids.index("a")]["title"] == "A thing"  # first metadata entry wins
    assert ds.item_text[0]["description"] == "Good & cheap"
    # time ties keep file order: u0's times are 100,102,104,101 -> a, d, b, c
    assert [ds.item_ids[i] for i in ds.sequences[0]] == ["a", "d", "b", "c"]


def test_random_inputs_match_plain_reference(tmp_path):
    rng = np.random.default_rng(0)
    for trial in range(3):
        reviews = [_review(f"u{rng.integers(40)}", f"i{rng.integers(25)}", int(rng.integers(0, 30)))
                   for _ in range(700)]
        meta = [_meta(f"i{j}", "" if j % 11 == 0 else f"title {j}") for j in range(23)]  # i23, i24: no metadata
        r = _write_gz(tmp_path / f"r{trial}.json.gz", reviews)
        m = _write_gz(tmp_path / f"m{trial}.json.gz", meta)
        ds = prepare_amazon(r, m, k=5)
        expected = _reference_pipeline(reviews, meta, 5)
        assert ds.user_ids == list(expected)
        assert [[ds.item_ids[i] for i in s] for s in ds.sequences] == [expected[u] for u in ds.user_ids]
        # the result is a true 5-core
        counts = np.bincount(np.concatenate(ds.sequences), minlength=ds.n_items)
        assert counts.min() >= 5 and min(len(s) for s in ds.sequences) >= 5


def test_k_core_is_iterative():
    # at k=3: dropping user v and item d leaves item b with 2 users, which cascades
    rows = [("u", "a", 0), ("u", "b", 1), ("u", "c", 2), ("w", "a", 0), ("w", "b", 1), ("w", "c", 2),
            ("x", "a", 0), ("x", "c", 1), ("x", "d", 2), ("v", "b", 0), ("v", "d", 1)]
    assert k_core(rows, 2) == rows  # everyone already has 2
    # one pass at k=3 would keep u, w, x; repeating until stable empties it
    assert k_core(rows, 3) == []


def test_prepare_write_load_round_trip(tmp_path):
    reviews = [_review(f"u{u}", f"i{(u + j) % 6}", j) for u in range(8) for j in range(5)]
    r = _write_gz(tmp_path / "r.json.gz", reviews)
    m = _write_gz(tmp_path / "m.json.gz", [_meta(f"i{j}") for j in range(6)])
    ds = prepare_amazon(r, m, k=5, name="Toy")
    write_mqlrec(ds, str(tmp_path / "Toy"))
    back = load_dataset(str(tmp_path / "Toy"))
    assert back.stats() == ds.stats() and back.item_ids == ds.item_ids and back.user_ids == ds.user_ids
    assert back.item_text == ds.item_text


@pytest.mark.parametrize(
    "reviews, meta, message",
    [
        (['{"reviewerID": "u", "asin": "a", "unixReviewTime": 1}', "{not json"], None, "r.json.gz: line 2: malformed JSON"),
        ([{"reviewerID": "u", "unixReviewTime": 1}], None, "r.json.gz: line 1: missing field 'asin'"),
        ([{"reviewerID": "u", "asin": "a", "unixReviewTime": "soon"}], None, "line 1: unixReviewTime must be an integer"),
        ([_review("u", "a", 1)], ['{"title": "no asin"}'], "m.json.gz: line 1: missing field 'asin'"),
        ([_review("u", "a", 1)], [_meta("a")], "no interactions left"),
    ],
)
def test_bad_raw_files_name_file_and_line(tmp_path, reviews, meta, message):
    r = _write_gz(tmp_path / "r.json.gz", reviews)
    m = _write_gz(tmp_path / "m.json.gz", meta if meta is not None else [_meta("a")])
    with pytest.raises(DataError, match=message.replace("(", r"\(")):
        prepare_amazon(r, m, k=5)


def test_not_gzip_and_missing_files(tmp_path):
    bad = tmp_path / "r.json.gz"
    bad.write_bytes(b"this is not gzip")
    m = _write_gz(tmp_path / "m.json.gz", [_meta("a")])
    with pytest.raises(DataError, match="r.json.gz: unreadable"):
        prepare_amazon(str(bad), m)
    with pytest.raises(DataError, match="nope.json.gz: reviews not found"):
        prepare_amazon(str(tmp_path / "nope.json.gz"), m)
