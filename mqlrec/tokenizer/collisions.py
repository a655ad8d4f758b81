"""Collision reallocation: give every item of a modality a unique semantic ID.

`reallocate_collisions_reference` is a plain-Python port of the MQL4GRec official algorithm
(index/generate_indices_distance.py) and the oracle for the C++ version in `mqlrec._C`:

  per pass, for each group of items sharing a full code (groups ordered by their first item):
    sort the group by the item's distance to its own last-level code; the nearest keeps the code;
    the r-th item (r >= 1) tries its r-th, r+1-th, ... nearest last-level code until one is unused;
    if none is, it walks its penultimate level's candidates j = 1, 2, ... and for each rescans the
    last level from its nearest code.  The official script stops after 2 passes (`max_passes=2`).

Where candidate lists run out, the official search ends on an already used code (possibly the code
of an item that never collided, which pass 2 may then move). `complete=False` reproduces exactly that.
`complete=True` (our addition, deterministic) differs only there: a failed search leaves the item on
its current code, and after the passes every still-colliding non-nearest item tries, starting from its
input code, the last level alone, then level p = L-2 .. 0 set to its j-th candidate with the last
level rescanned, and finally the first unused code in lexicographic order after its own (wrapping),
which always exists when N <= K^L. So items that never collided, and the nearest item of every
group, never move; where the official passes finish without a failed search both modes agree.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass
class Reallocation:
    codes: np.ndarray  # [N, L] int64, unique per item when complete=True
    collisions_before: int  # items that share a code with an earlier item (N - unique codes)
    collisions_after: int
    moved_per_level: list[int]  # items whose code changed at each level
    passes: int  # official passes run
    backend: str


def count_collisions(codes: np.ndarray) -> int:
    """N - number of distinct rows (the official collision count; rate = count / N)."""
    codes = np.ascontiguousarray(codes, dtype=np.int64)
    if codes.ndim != 2 or len(codes) == 0:
        return 0
    rows = codes.view(np.dtype((np.void, codes.dtype.itemsize * codes.shape[1]))).ravel()
    return int(len(codes) - len(np.unique(rows)))


def _validate(codes, candidates, distances, codebook_size) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    codes = np.ascontiguousarray(codes, dtype=np.int64)
    candidates = np.ascontiguousarray(candidates, dtype=np.int64)
    distances = np.ascontiguousarray(distances, dtype=np.float32)
    if codes.ndim != 2:
        raise ValueError(f"codes must be [N, L], got shape {codes.shape}")
    n, n_levels = codes.shape
    if n_levels < 1:
        raise ValueError("codes need at least one level")
    if candidates.ndim != 3 or candidates.shape[:2] != (n, n_levels) or candidates.shape[2] < 1:
        raise ValueError(f"candidates must be [N, L, T] = [{n}, {n_levels}, T>=1], got {candidates.shape}")
    if distances.shape != candidates.shape:
        raise ValueError(f"distances must have the candidates' shape {candidates.shape}, got {distances.shape}")
    if codebook_size < 1:
        raise ValueError(f"codebook_size must be >= 1, got {codebook_size}")
    for name, arr in (("codes", codes), ("candidates", candidates)):
        if arr.size and (arr.min() < 0 or arr.max() >= codebook_size):
            raise ValueError(f"{name} must lie in [0, {codebook_size})")
    if not np.isfinite(distances).all():
        raise ValueError("distances contain NaN or inf")
    if float(codebook_size) ** n_levels < n:
        raise ValueError(f"{n} items cannot get unique IDs from {codebook_size}^{n_levels} codes")
    return codes, candidates, distances


def _collision_groups(current: list[tuple]) -> list[list[int]]:
    """Groups of >1 items sharing a code, ordered by their first item; items ascending."""
    members: dict[tuple, list[int]] = {}
    for item, code in enumerate(current):
        members.setdefault(code, []).append(item)
    return [g for g in members.values() if len(g) > 1]


def _by_nearest(group: list[int], nearest: np.ndarray) -> list[int]:
    # Stable: equal distances keep item order (numpy's default argsort is only stable for small groups).
    return [group[k] for k in sorted(range(len(group)), key=lambda k: (nearest[group[k]], k))]


def _official_move(code: list, start: int, item_cands: list, used: set, base: tuple) -> tuple:
    last, n_cand = len(code) - 1, len(item_cands[0])
    num = start
    while tuple(code) in used and num < n_cand:
        code[last] = item_cands[last][num]
        num += 1
    if last >= 1:  # walk the penultimate level, rescanning the last level each time
        for j in range(1, n_cand):
            if tuple(code) in used:
                code = list(base)
                code[last - 1] = item_cands[last - 1][j]
            num = 0
            while tuple(code) in used and num < n_cand:
                code[last] = item_cands[last][num]
                num += 1
            if tuple(code) not in used:
                break
    return tuple(code)


def _complete_move(base: tuple, item_cands: list, used: set, codebook_size: int) -> tuple:
    last, n_cand = len(base) - 1, len(item_cands[0])
    for level in [None] + list(range(last - 1, -1, -1)):
        for j in range(1, n_cand) if level is not None else [0]:
            code = list(base)
            if level is not None:
                code[level] = item_cands[level][j]
            for t in range(n_cand):
                code[last] = item_cands[last][t]
                if tuple(code) not in used:
                    return tuple(code)
    code = list(base)
    while True:  # lexicographic successor with wrap-around; terminates because N <= K^L
        level = last
        while level >= 0:
            code[level] += 1
            if code[level] < codebook_size:
                break
            code[level] = 0
            level -= 1
        if tuple(code) not in used:
            return tuple(code)


def reallocate_collisions_reference(
    codes: np.ndarray,
    candidates: np.ndarray,
    distances: np.ndarray,
    codebook_size: int,
    max_passes: int = 2,
    complete: bool = True,
) -> Reallocation:
    """Python port. candidates/distances [N, L, T]: per item and level the T nearest codes, nearest first."""
    codes, candidates, distances = _validate(codes, candidates, distances, codebook_size)
    n, n_levels = codes.shape
    current = [tuple(row) for row in codes.tolist()]
    used = set(current)  # every code ever handed out; old codes stay held by their group's keeper
    cands = candidates.tolist()
    nearest = distances[:, n_levels - 1, 0].tolist()
    before = count_collisions(codes)
    passes = 0
    while passes < max_passes:
        groups = _collision_groups(current)
        if not groups:
            break
        for group in groups:
            for rank, item in enumerate(_by_nearest(group, nearest)):
                if rank == 0:
                    continue
                code = _official_move(list(current[item]), rank, cands[item], used, current[item])
                if complete and code in used:
                    continue  # failed search: stay put for the completion phase (see module doc)
                current[item] = code
                used.add(code)
        passes += 1
    if complete:
        for group in _collision_groups(current):
            for rank, item in enumerate(_by_nearest(group, nearest)):
                if rank == 0:
                    continue
                code = _complete_move(tuple(codes[item].tolist()), cands[item], used, codebook_size)
                current[item] = code
                used.add(code)
    out = np.array(current, dtype=np.int64).reshape(n, n_levels)
    return Reallocation(
        codes=out,
        collisions_before=before,
        collisions_after=count_collisions(out),
        moved_per_level=[int(v) for v in (out != codes).sum(0)],
        passes=passes,
        backend="python",
    )


def native_available() -> bool:
    try:
        from mqlrec import _C
    except ImportError:
        return False
    return hasattr(_C, "reallocate_collisions")


def reallocate_collisions(
    codes: np.ndarray,
    candidates: np.ndarray,
    distances: np.ndarray,
    codebook_size: int,
    max_passes: int = 2,
    complete: bool = True,
    backend: str = "auto",
) -> Reallocation:
    """Same result as the reference; backend 'auto' (C++ when built), 'cpp' or 'python'."""
    if backend not in ("auto", "cpp", "python"):
        raise ValueError(f"backend must be auto, cpp or python, not {backend!r}")
    if max_passes < 0:
        raise ValueError(f"max_passes must be >= 0, got {max_passes}")
    if backend == "python" or (backend == "auto" and not native_available()):
        return reallocate_collisions_reference(codes, candidates, distances, codebook_size, max_passes, complete)
    if not native_available():
        raise RuntimeError("backend='cpp' but mqlrec._C has no reallocate_collisions (rebuild the extension)")
    from mqlrec import _C

    codes, candidates, distances = _validate(codes, candidates, distances, codebook_size)
    out, passes = _C.reallocate_collisions(codes, candidates, distances, int(codebook_size), int(max_passes), bool(complete))
    out = np.asarray(out, dtype=np.int64)
    return Reallocation(
        codes=out,
        collisions_before=count_collisions(codes),
        collisions_after=count_collisions(out),
        moved_per_level=[int(v) for v in (out != codes).sum(0)],
        passes=int(passes),
        backend="cpp",
    )
