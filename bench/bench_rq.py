"""Residual quantization: torch eager reference vs torch.compile of it vs the fused Triton kernel.

Correctness first (every provider against the eager reference: codes equal except genuine near-ties,
the quantized sum close), then the median time of each provider per size, with rows/s, GB/s of the
minimum traffic, GFLOP/s, the roofline floor from this device's measured copy bandwidth and fp32
matmul rate, and ratios to eager and to torch.compile measured in the same run. One record per run
is appended to bench/results/rq.json.

  python bench/bench_rq.py                              # CPU: small sizes, reference providers
  python bench/bench_rq.py --device cuda                # GPU: N up to 10M, plus Triton
  python bench/bench_rq.py --device cuda --configs "BLOCK_N=64,BLOCK_K=64,num_warps=4" "BLOCK_N=128,BLOCK_K=128,num_warps=8"
"""

from __future__ import annotations

import argparse
import os
import sys
import time

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import _kernel_bench as kb  # noqa: E402
from _results import append_json  # noqa: E402

from mqlrec.ops.reference import rq_quantize_reference  # noqa: E402

DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16}


def parse_config(text: str) -> dict:
    """'BLOCK_N=128,BLOCK_K=64,num_warps=4' -> dict of ints."""
    try:
        return {k.strip(): int(v) for k, v in (item.split("=") for item in text.split(",") if item.strip())}
    except ValueError:
        raise SystemExit(f"--configs: cannot parse {text!r}; expected KEY=INT,KEY=INT") from None


def problem(n, d, k, levels, dtype, device, seed):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, d, generator=g)
    # Shrinking codebooks, like trained residual levels, so every level still separates rows.
    cb = torch.randn(levels, k, d, generator=g) * 0.6 ** torch.arange(levels)[:, None, None]
    return x.to(device=device, dtype=dtype), cb.to(device=device, dtype=dtype)


def check(name, out, ref, x, cb) -> dict:
    """Codes must equal the reference's except where the two codewords are equally near (float64 gap)."""
    codes, ref_codes = out.codes.cpu(), ref.codes.cpu()
    if codes.dtype != torch.int64 or codes.shape != ref_codes.shape:
        raise SystemExit(f"CHECK FAILED ({name}): codes {codes.dtype} {tuple(codes.shape)}, expected int64 {tuple(ref_codes.shape)}")
    residual = x.cpu().double()
    agree = torch.ones(codes.shape[0], dtype=torch.bool)
    for level in range(codes.shape[1]):
        c = cb[level].cpu().double()
        rows = (agree & (codes[:, level] != ref_codes[:, level])).nonzero()[:, 0]
        r = residual[rows]
        d_got = ((r - c[codes[rows, level]]) ** 2).sum(1)
        d_ref = ((r - c[ref_codes[rows, level]]) ** 2).sum(1)
        scale = 1.0 + (r * r).sum(1) + (c * c).sum(1).max()
        if not ((d_got - d_ref).abs() <= 1e-5 * scale).all():
            raise SystemExit(f"CHECK FAILED ({name}): level {level} has codes that differ without a tie; no timing reported")
        agree[rows] = False
        residual = residual - c[ref_codes[:, level]]
    if agree.float().mean() < 0.99:
        raise SystemExit(f"CHECK FAILED ({name}): {int((~agree).sum())} rows differ (ties), more than 1%")
    q, q_ref = out.quantized.cpu()[agree], ref.quantized.cpu()[agree]
    err = ((q - q_ref).norm() / q_ref.norm()).item()
    if not err <= 1e-5:
        raise SystemExit(f"CHECK FAILED ({name}): quantized relative error {err:.3g}")
    return {"tie_rows": int((~agree).sum()), "quantized_rel_err": err}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--sizes", type=int, nargs="+", help="row counts N (default: 1e4..1e7 on GPU, 1e3..2e4 on CPU)")
    p.add_argument("--levels", type=int, default=4, help="codebook levels L")
    p.add_argument("--codebook-size", type=int, default=256, help="codewords per level K")
    p.add_argument("--dim", type=int, default=32, help="vector dimension D")
    p.add_argument("--dtype", default="float32", choices=sorted(DTYPES), help="dtype of x and the codebooks")
    p.add_argument("--configs", nargs="*", default=[], help="extra Triton launch configs to time, e.g. BLOCK_N=64,BLOCK_K=64,num_warps=4")
    p.add_argument("--check-rows", type=int, default=4000, help="rows of the correctness check")
    kb.add_common_args(p, "rq.json")
    args = p.parse_args()

    device, providers = kb.resolve_device_and_providers(args)
    gpu = device.type == "cuda"
    sizes = args.sizes or ([10_000, 100_000, 1_000_000, 10_000_000] if gpu else [1_000, 4_000, 16_000])
    dtype = DTYPES[args.dtype]
    n_levels, k, d = args.levels, args.codebook_size, args.dim

    env = kb.environment(device)
    print(f"# rq_quantize  L={n_levels} K={k} D={d} dtype={args.dtype}")
    print("# " + "  ".join(f"{key}={val}" for key, val in env.items()))
    ceil = kb.ceilings(device)
    print("# measured ceilings: " + "  ".join(f"{key}={val:.4g}" for key, val in ceil.items()))

    compile_s = None
    fns = {"eager": lambda x, cb: rq_quantize_reference(x, cb)}  # always run: the baseline of the ratios
    if "compile" in providers:
        compiled = torch.compile(rq_quantize_reference)
        fns["compile"] = lambda x, cb: compiled(x, cb)
    if "triton" in providers:
        from mqlrec.kernels.rq_quantize import rq_quantize_triton

        fns["triton"] = lambda x, cb: rq_quantize_triton(x, cb)
        for text in args.configs:
            cfg = parse_config(text)
            fns[f"triton[{text}]"] = lambda x, cb, cfg=cfg: rq_quantize_triton(x, cb, config=cfg)

    # Correctness first, on one problem, every provider against eager.
    x, cb = problem(min(args.check_rows, max(sizes)), d, k, n_levels, dtype, device, args.seed + 1)
    ref = rq_quantize_reference(x, cb)
    checks = {}
    for name, fn in fns.items():
        t = time.perf_counter()
        out = fn(x, cb)
        kb.sync(device)
        if name == "compile":
            compile_s = time.perf_counter() - t
        checks[name] = check(name, out, ref, x, cb)
    print(f"# check on N={x.shape[0]}: " + "  ".join(f"{n}: ties={c['tie_rows']} qerr={c['quantized_rel_err']:.2g}" for n, c in checks.items()))
    if compile_s is not None:
        print(f"# torch.compile first call (compile + run): {compile_s:.1f} s")
    del x, cb, ref

    elt = torch.tensor([], dtype=dtype).element_size()
    rows = []
    for n in sizes:
        x, cb = problem(n, d, k, n_levels, dtype, device, args.seed)
        flops = 2.0 * n * n_levels * k * d + 3.0 * n * n_levels * k  # distance dots + assembly
        bytes_moved = n * d * elt + n_levels * k * d * elt + n * n_levels * 8 + n * d * 4  # x, codebooks in; codes, quantized out
        floor = kb.floor_ms(flops, bytes_moved, ceil)
        times = {}
        for name, fn in fns.items():
            times[name] = kb.time_ms(lambda: fn(x, cb), device, repeat=args.repeat)
            ms = times[name]
            rows.append({
                "N": n, "provider": name, "ms": ms, "Mrows/s": n / ms / 1e3, "GB/s": bytes_moved / ms / 1e6,
                "GFLOP/s": flops / ms / 1e6, "floor_ms": floor, "%floor": 100 * floor / ms,
                "peak_MB": kb.peak_memory_mb(lambda: fn(x, cb), device),
                "x_eager": times["eager"] / ms, "x_compile": times["compile"] / ms if "compile" in times else None,
                "flops": flops, "bytes": bytes_moved,
            })
        del x, cb
        if gpu:
            torch.cuda.empty_cache()
    kb.print_table(rows, ["N", "provider", "ms", "Mrows/s", "GB/s", "GFLOP/s", "floor_ms", "%floor", "peak_MB", "x_eager", "x_compile"])
    append_json(args.out, {
        "bench": "rq_quantize", **env, "ceilings": ceil,
        "shape": {"L": n_levels, "K": k, "D": d, "dtype": args.dtype},
        "check": checks, "compile_first_call_s": compile_s, "rows": rows,
    })


if __name__ == "__main__":
    main()
