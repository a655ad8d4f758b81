"""Collision reallocation: C++ (mqlrec._C) vs the Python port on the same inputs.

Checks that both give identical codes first, then times each (best of --repeats) and appends
items/s and the speedup to bench/results/collision.json.

  python bench/bench_collision.py [--items 6250 100000] [--levels 4] [--codebook-size 256] [--candidates 256]
"""

from __future__ import annotations

import argparse
import os
import platform
import time

import numpy as np
from _results import append_json


def make_problem(n, levels, k, n_cand, spread, seed):
    """Random codes concentrated on `spread` values per level (heavy collisions), sorted candidate lists."""
    rng = np.random.default_rng(seed)
    codes = rng.integers(0, spread, size=(n, levels))
    cand = np.empty((n, levels, n_cand), dtype=np.int64)
    for l in range(levels):
        # own code first, then a random permutation of the others (a quantizer's sorted list)
        perm = np.argsort(rng.random((n, k)), axis=1)
        perm = perm[perm != codes[:, l : l + 1]].reshape(n, k - 1)
        cand[:, l, 0] = codes[:, l]
        cand[:, l, 1:] = perm[:, : n_cand - 1]
    dist = np.sort(rng.random((n, levels, n_cand)).astype(np.float32), axis=2)
    return codes, cand, dist


def best_time(fn, repeats):
    best = float("inf")
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t)
    return best


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--items", type=int, nargs="+", default=[6250, 100_000], help="item counts to run")
    p.add_argument("--levels", type=int, default=4)
    p.add_argument("--codebook-size", type=int, default=256)
    p.add_argument("--candidates", type=int, default=256, help="nearest codes kept per level (T)")
    p.add_argument("--spread", type=int, default=4, help="distinct values per level in the input codes")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default=os.path.join(os.path.dirname(__file__), "results", "collision.json"))
    args = p.parse_args()

    import torch

    from mqlrec import _C
    from mqlrec.tokenizer.collisions import count_collisions, reallocate_collisions_reference

    device = f"CPU: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, OpenMP={_C.with_openmp}"
    runs = []
    for n in args.items:
        codes, cand, dist = make_problem(n, args.levels, args.codebook_size, args.candidates, args.spread, args.seed)
        ref = reallocate_collisions_reference(codes, cand, dist, args.codebook_size)
        out, _ = _C.reallocate_collisions(codes, cand, dist, args.codebook_size, 2, True)
        if not np.array_equal(out, ref.codes):
            raise SystemExit(f"MISMATCH at N={n}: C++ and the Python port differ; no timing reported")
        assert ref.collisions_after == 0
        t_py = best_time(lambda: reallocate_collisions_reference(codes, cand, dist, args.codebook_size), args.repeats)
        t_cpp = best_time(lambda: _C.reallocate_collisions(codes, cand, dist, args.codebook_size, 2, True), args.repeats)
        run = {
            "items": n, "levels": args.levels, "codebook_size": args.codebook_size, "candidates": args.candidates,
            "collisions_before": count_collisions(codes), "collisions_after": 0, "identical": True,
            "python_s": t_py, "cpp_s": t_cpp, "python_items_per_s": n / t_py, "cpp_items_per_s": n / t_cpp,
            "speedup": t_py / t_cpp,
        }
        runs.append(run)
        print(f"N={n:>7}: collisions {run['collisions_before']} -> 0 | python {t_py:.3f}s ({n / t_py:,.0f} items/s) | "
              f"C++ {t_cpp:.4f}s ({n / t_cpp:,.0f} items/s) | x{t_py / t_cpp:.1f}")
    record = {"time": time.strftime("%Y-%m-%dT%H:%M:%S"), "device": device, "torch": torch.__version__,
              "numpy": np.__version__, "python": platform.python_version(), "runs": runs}
    append_json(args.out, record)


if __name__ == "__main__":
    main()
