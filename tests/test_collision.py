"""Collision reallocation: C++ (mqlrec._C) against the Python port, and the properties both must keep."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mqlrec.tokenizer.collisions import (
    count_collisions,
    native_available,
    reallocate_collisions,
    reallocate_collisions_reference,
)

needs_cpp = pytest.mark.skipif(not native_available(), reason="mqlrec._C not built with reallocate_collisions")


def random_problem(rng, n, levels, k, n_cand, spread):
    """Heavily colliding codes (values < spread) with per-level candidate lists sorted by distance."""
    codes = rng.integers(0, spread, size=(n, levels))
    dists = rng.random((n, levels, k)).astype(np.float32)
    # make each item's own code its nearest one, as a trained quantizer would
    dists[np.arange(n)[:, None], np.arange(levels)[None, :], codes] = -1.0
    order = np.argsort(dists, axis=2, kind="stable")[:, :, :n_cand]
    return codes, order, np.take_along_axis(dists, order, axis=2)


def check_properties(codes, result, k, nearest):
    out = result.codes
    assert out.shape == codes.shape and out.dtype == np.int64
    assert out.min(initial=0) >= 0 and out.max(initial=0) < k
    assert len({tuple(r) for r in out.tolist()}) == len(out)  # independent uniqueness check
    rows = [tuple(r) for r in codes.tolist()]
    groups = {}
    for i, r in enumerate(rows):
        groups.setdefault(r, []).append(i)
    for members in groups.values():
        keeper = min(members, key=lambda i: (nearest[i], i))
        assert tuple(out[keeper]) == rows[keeper]  # singletons and each group's nearest item never move
    assert result.moved_per_level == [int((out[:, l] != codes[:, l]).sum()) for l in range(codes.shape[1])]


@needs_cpp
@pytest.mark.parametrize("seed", range(6))
def test_cpp_equals_python_port(seed):
    rng = np.random.default_rng(seed)
    for _ in range(25):
        levels = int(rng.integers(1, 5))
        k = int(rng.integers(2, 12))
        n = int(rng.integers(1, min(300, k**levels) + 1))
        n_cand = int(rng.integers(1, k + 1))
        codes, cand, dist = random_problem(rng, n, levels, k, n_cand, spread=int(rng.integers(1, k + 1)))
        for max_passes in (0, 1, 2, 4):
            for complete in (False, True):
                ref = reallocate_collisions_reference(codes, cand, dist, k, max_passes, complete)
                cpp = reallocate_collisions(codes, cand, dist, k, max_passes, complete, backend="cpp")
                np.testing.assert_array_equal(cpp.codes, ref.codes)
                assert cpp.passes == ref.passes
                assert cpp.collisions_after == ref.collisions_after


@needs_cpp
def test_cpp_equals_port_on_duplicate_and_tied_candidates():
    # candidate lists with repeats and equal distances (ties broken by item order in both)
    rng = np.random.default_rng(7)
    n, levels, k, n_cand = 500, 3, 8, 5
    codes = rng.integers(0, 2, size=(n, levels))
    cand = rng.integers(0, k, size=(n, levels, n_cand))
    dist = np.sort(rng.integers(0, 3, size=(n, levels, n_cand)).astype(np.float32), axis=2)
    for max_passes in (1, 2, 3):
        ref = reallocate_collisions_reference(codes, cand, dist, k, max_passes, True)
        cpp = reallocate_collisions(codes, cand, dist, k, max_passes, True, backend="cpp")
        np.testing.assert_array_equal(cpp.codes, ref.codes)
        check_properties(codes, cpp, k, dist[:, -1, 0])


def test_port_follows_the_official_rule_for_one_group():
    # one group sharing a code, everything else far away: the r-th nearest item must take its
    # first unused last-level candidate starting at index r (computed here independently)
    rng = np.random.default_rng(3)
    k, levels, g = 64, 3, 6
    codes, cand, dist = random_problem(rng, 40, levels, k, k, spread=k)
    codes[:, 0] = np.arange(40) % 8 + 8  # all rows distinct at level 0 except the group below
    codes[:g] = codes[0]
    codes[g:, 0] = 20 + np.arange(40 - g)
    cand[:g, :, 0] = codes[:g]
    dist[:, -1, 0] = rng.random(40).astype(np.float32)
    res = reallocate_collisions_reference(codes, cand, dist, k, max_passes=1, complete=False)
    used = {tuple(r) for r in codes.tolist()}
    for rank, item in enumerate(sorted(range(g), key=lambda i: dist[i, -1, 0])):
        if rank == 0:
            assert tuple(res.codes[item]) == tuple(codes[item])
            continue
        expect = None
        for t in range(rank, k):
            trial = tuple(codes[item, :-1]) + (int(cand[item, -1, t]),)
            if trial not in used:
                expect = trial
                break
        assert expect is not None
        assert tuple(res.codes[item]) == expect
        used.add(expect)


def test_penultimate_fallback_when_last_level_is_exhausted():
    # K=2 at every level and 3 items on one code: the third cannot stay under the same prefix
    codes = np.array([[0, 0], [0, 0], [0, 0]])
    cand = np.array([[[0, 1], [0, 1]]] * 3)
    dist = np.array([[[0.1, 0.9], [0.1, 0.9]], [[0.1, 0.9], [0.2, 0.9]], [[0.1, 0.9], [0.3, 0.9]]], dtype=np.float32)
    res = reallocate_collisions_reference(codes, cand, dist, 2, max_passes=1, complete=False)
    # nearest keeps [0,0]; second takes last-level candidate 1 -> [0,1]; third walks level 0 to 1 -> [1,0]
    assert res.codes.tolist() == [[0, 0], [0, 1], [1, 0]]
    assert res.collisions_after == 0 and res.moved_per_level == [1, 1]


def test_official_two_pass_limit_can_leave_collisions_and_completion_removes_them():
    rng = np.random.default_rng(11)
    codes, cand, dist = random_problem(rng, 300, 3, 8, 2, spread=2)  # tiny candidate lists run out
    official = reallocate_collisions_reference(codes, cand, dist, 8, max_passes=2, complete=False)
    assert official.collisions_after > 0 and official.passes == 2
    full = reallocate_collisions_reference(codes, cand, dist, 8, max_passes=2, complete=True)
    assert full.collisions_after == 0
    check_properties(codes, full, 8, dist[:, -1, 0])


def test_complete_equals_official_where_official_finishes():
    rng = np.random.default_rng(5)
    for _ in range(10):
        codes, cand, dist = random_problem(rng, 200, 4, 16, 16, spread=3)
        official = reallocate_collisions_reference(codes, cand, dist, 16, max_passes=2, complete=False)
        assert official.collisions_after == 0
        ours = reallocate_collisions(codes, cand, dist, 16)
        np.testing.assert_array_equal(ours.codes, official.codes)


@settings(max_examples=40, deadline=None)
@given(
    seed=st.integers(0, 2**31 - 1),
    n=st.integers(1, 2000),
    levels=st.integers(1, 4),
    k=st.integers(2, 16),
    n_cand=st.integers(1, 16),
    spread=st.integers(1, 4),
    max_passes=st.integers(0, 3),
)
def test_always_collision_free(seed, n, levels, k, n_cand, spread, max_passes):
    n = min(n, k**levels)
    rng = np.random.default_rng(seed)
    codes, cand, dist = random_problem(rng, n, levels, k, min(n_cand, k), spread=min(spread, k))
    res = reallocate_collisions(codes, cand, dist, k, max_passes=max_passes)
    assert res.collisions_before == count_collisions(codes)
    assert res.collisions_after == 0
    check_properties(codes, res, k, dist[:, -1, 0])


@pytest.mark.parametrize("n", [1, 2, 1000, 100_000])
def test_large_heavy_collisions(n):
    rng = np.random.default_rng(n)
    levels, k, n_cand = 4, 256, 8
    codes = rng.integers(0, 4, size=(n, levels))
    cand = rng.integers(0, k, size=(n, levels, n_cand))
    dist = np.sort(rng.random((n, levels, n_cand)).astype(np.float32), axis=2)
    res = reallocate_collisions(codes, cand, dist, k)
    assert res.collisions_after == 0
    check_properties(codes, res, k, dist[:, -1, 0])
    if native_available() and n <= 1000:
        ref = reallocate_collisions_reference(codes, cand, dist, k)
        np.testing.assert_array_equal(res.codes, ref.codes)


def test_count_collisions_matches_python_set():
    rng = np.random.default_rng(0)
    codes = rng.integers(0, 3, size=(777, 3))
    assert count_collisions(codes) == len(codes) - len({tuple(r) for r in codes.tolist()})


@pytest.mark.parametrize("backend", ["python", "cpp"])
def test_bad_input_raises(backend):
    if backend == "cpp" and not native_available():
        pytest.skip("mqlrec._C not built")
    codes = np.zeros((3, 2), dtype=np.int64)
    cand = np.zeros((3, 2, 2), dtype=np.int64)
    dist = np.zeros((3, 2, 2), dtype=np.float32)
    with pytest.raises(ValueError, match="lie in"):
        reallocate_collisions(codes + 5, cand, dist, 4, backend=backend)
    with pytest.raises(ValueError, match="candidates"):
        reallocate_collisions(codes, cand[:, :1], dist, 4, backend=backend)
    with pytest.raises(ValueError, match="cannot get unique"):
        reallocate_collisions(np.zeros((5, 1), dtype=np.int64), cand[:5, :1].repeat(2, 0)[:5], dist[:5, :1].repeat(2, 0)[:5], 4, backend=backend)
    with pytest.raises(ValueError, match="NaN"):
        reallocate_collisions(codes, cand, dist * np.nan, 4, backend=backend)
