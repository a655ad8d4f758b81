"""In-batch InfoNCE, forward and forward+backward: torch eager reference vs torch.compile vs Triton.

Correctness first (loss and both gradients of every provider against a float64 reference), then
median times per batch size, GFLOP/s of the minimal work (6 B^2 D for fwd+bwd), the roofline floor
from this device's measured ceilings, peak extra memory (GPU; the kernel's is O(B*D), the
reference's O(B^2)), and ratios to eager and torch.compile in the same run. One record per run is
appended to bench/results/infonce.json.

  python bench/bench_infonce.py                          # CPU: small batches, reference providers
  python bench/bench_infonce.py --device cuda            # GPU: B up to 16k, plus Triton
  python bench/bench_infonce.py --device cuda --positive # MACRec form: positive index per row, masked diagonal
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

from mqlrec.ops.reference import info_nce_reference  # noqa: E402

DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16}


def problem(b, d, dtype, device, positive, seed):
    g = torch.Generator().manual_seed(seed)
    a = torch.nn.functional.normalize(torch.randn(b, d, generator=g), dim=1)
    k = torch.nn.functional.normalize(torch.randn(b, d, generator=g), dim=1)
    kw = {}
    if positive:
        pos = torch.randint(-1, b, (b,), generator=g)
        kw = {"positive": torch.where(pos == torch.arange(b), -1, pos).to(device), "mask_diagonal": True}
    return a.to(device=device, dtype=dtype), k.to(device=device, dtype=dtype), kw


def fwd_bwd(loss_fn, a, b, tau, kw):
    a = a.detach().requires_grad_()
    b = b.detach().requires_grad_()
    loss = loss_fn(a, b, tau, **kw)
    loss.backward()
    return loss.detach(), a.grad, b.grad


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--batches", type=int, nargs="+", help="batch sizes B (default: 1024..16384 on GPU, 256..1024 on CPU)")
    p.add_argument("--dim", type=int, default=128, help="embedding dimension D")
    p.add_argument("--tau", type=float, default=0.1, help="temperature")
    p.add_argument("--dtype", default="float32", choices=sorted(DTYPES), help="dtype of the embeddings")
    p.add_argument("--positive", action="store_true", help="explicit positive per row + masked diagonal instead of symmetric")
    p.add_argument("--check-batch", type=int, default=512, help="batch size of the correctness check")
    kb.add_common_args(p, "infonce.json")
    args = p.parse_args()

    device, providers = kb.resolve_device_and_providers(args)
    gpu = device.type == "cuda"
    batches = args.batches or ([1024, 4096, 8192, 16384] if gpu else [256, 512, 1024])
    dtype, d, tau = DTYPES[args.dtype], args.dim, args.tau
    form = "positive+masked diagonal" if args.positive else "symmetric"

    env = kb.environment(device)
    print(f"# info_nce  {form}  D={d} tau={tau} dtype={args.dtype}")
    print("# " + "  ".join(f"{key}={val}" for key, val in env.items()))
    ceil = kb.ceilings(device)
    print("# measured ceilings: " + "  ".join(f"{key}={val:.4g}" for key, val in ceil.items()))

    losses = {"eager": info_nce_reference}
    if "compile" in providers:
        losses["compile"] = torch.compile(info_nce_reference)
    if "triton" in providers:
        from mqlrec.kernels.info_nce import info_nce_triton

        losses["triton"] = info_nce_triton

    # Correctness first: loss and gradients against float64.
    a, k, kw = problem(args.check_batch, d, dtype, device, args.positive, args.seed + 1)
    ref = fwd_bwd(info_nce_reference, a.cpu().double(), k.cpu().double(), tau,
                  {key: (v.cpu() if isinstance(v, torch.Tensor) else v) for key, v in kw.items()})
    tol = 1e-2 if dtype == torch.bfloat16 else (3e-3 if env["fp32_matmul_tf32"] else 1e-4)
    checks, compile_s = {}, None
    for name, fn in losses.items():
        t = time.perf_counter()
        got = fwd_bwd(fn, a, k, tau, kw)
        kb.sync(device)
        if name == "compile":
            compile_s = time.perf_counter() - t
        errs = [((g.cpu().double() - r).norm() / r.norm().clamp(min=1e-30)).item() for g, r in zip(got, ref)]
        if not all(e <= tol for e in errs):
            raise SystemExit(f"CHECK FAILED ({name}): relative errors loss/da/db {errs} > {tol}; no timing reported")
        checks[name] = {"loss_rel_err": errs[0], "da_rel_err": errs[1], "db_rel_err": errs[2]}
    print(f"# check on B={args.check_batch} (tol {tol:g}): " + "  ".join(
        f"{n}: " + "/".join(f"{e:.1g}" for e in c.values()) for n, c in checks.items()))
    if compile_s is not None:
        print(f"# torch.compile first call (compile + run): {compile_s:.1f} s")

    elt = torch.tensor([], dtype=dtype).element_size()
    rows = []
    for b in batches:
        a, k, kw = problem(b, d, dtype, device, args.positive, args.seed)
        flops = 6.0 * b * b * d + 10.0 * b * b  # logits, two gradient products; softmax elementwise
        bytes_moved = 4.0 * b * d * elt  # a, b in; da, db out
        floor = kb.floor_ms(flops, bytes_moved, ceil, "bf16_matmul_TFLOPs" if dtype == torch.bfloat16 and gpu else "fp32_matmul_TFLOPs")
        t_fwd, t_all = {}, {}
        for name, fn in losses.items():
            def forward(fn=fn):
                with torch.no_grad():
                    return fn(a, k, tau, **kw)

            t_fwd[name] = kb.time_ms(forward, device, repeat=args.repeat)
            t_all[name] = kb.time_ms(lambda fn=fn: fwd_bwd(fn, a, k, tau, kw), device, repeat=args.repeat)
            ms = t_all[name]
            rows.append({
                "B": b, "provider": name, "fwd_ms": t_fwd[name], "fwdbwd_ms": ms, "GFLOP/s": flops / ms / 1e6,
                "floor_ms": floor, "%floor": 100 * floor / ms,
                "peak_MB": kb.peak_memory_mb(lambda fn=fn: fwd_bwd(fn, a, k, tau, kw), device),
                "x_eager": t_all["eager"] / ms, "x_compile": t_all["compile"] / ms if "compile" in t_all else None,
                "fwd_x_eager": t_fwd["eager"] / t_fwd[name], "flops": flops, "bytes": bytes_moved,
            })
        del a, k
        if gpu:
            torch.cuda.empty_cache()
    kb.print_table(rows, ["B", "provider", "fwd_ms", "fwdbwd_ms", "GFLOP/s", "floor_ms", "%floor", "peak_MB",
                          "x_eager", "x_compile", "fwd_x_eager"])
    append_json(args.out, {
        "bench": "info_nce", **env, "ceilings": ceil,
        "shape": {"D": d, "tau": tau, "dtype": args.dtype, "form": form},
        "check": checks, "compile_first_call_s": compile_s, "rows": rows,
    })


if __name__ == "__main__":
    main()
