"""Compile the Triton kernels ahead of time for a GPU architecture (no GPU needed) and report resources.

For each launch configuration: registers per thread, stack bytes (spills), shared memory, and
instruction counts from the SASS (HGMMA = Hopper warpgroup MMA, HMMA = older MMA, FFMA, MUFU.EX2,
LDL/STL = local-memory spill traffic). This answers "are the tensor cores used, does it spill"
before any GPU time is spent; the heuristics in kernels/*.py pick configurations that do not spill.

  python bench/kernel_report.py                   # sm_90 (H100/H200), the default configurations
  python bench/kernel_report.py --arch 80 --sweep # A100, a sweep of block sizes / warps
"""

from __future__ import annotations

import argparse
import collections
import itertools
import os
import re
import subprocess
import sys
import tempfile

os.environ.pop("TRITON_INTERPRET", None)  # compile for real, not for the interpreter

import triton  # noqa: E402
from triton.backends.compiler import GPUTarget  # noqa: E402
from triton.compiler import ASTSource  # noqa: E402

from mqlrec.kernels import info_nce as nce  # noqa: E402
from mqlrec.kernels import rq_quantize as rq  # noqa: E402

# Most dynamic shared memory one block may use, by compute capability (bytes); a launch asking more fails.
SMEM_LIMIT = {80: 166912, 86: 101376, 89: 101376, 90: 232448}
_OPS = ("HGMMA", "HMMA", "FFMA", "MUFU.EX2", "LDL", "STL")


def _tool(name: str) -> str:
    import triton.backends.nvidia as nvidia

    return os.path.join(os.path.dirname(nvidia.__file__), "bin", name)


def compile_report(fn, signature: dict, constexprs: dict, arch: int, num_warps: int, num_stages: int) -> dict:
    sig = dict(signature, **{k: "constexpr" for k in constexprs})
    kernel = triton.compile(ASTSource(fn, sig, constexprs), target=GPUTarget("cuda", arch, 32),
                            options={"num_warps": num_warps, "num_stages": num_stages})
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "k.cubin")
        with open(path, "wb") as f:
            f.write(kernel.asm["cubin"])
        usage = subprocess.run([_tool("cuobjdump"), "--dump-resource-usage", path], capture_output=True, text=True, check=True).stdout
        sass = subprocess.run([_tool("cuobjdump"), "-sass", path], capture_output=True, text=True, check=True).stdout
    line = next(ln for ln in usage.splitlines() if "REG:" in ln)
    res = {k: int(v) for k, v in re.findall(r"(REG|STACK):(\d+)", line)}
    counts = collections.Counter(m for m in re.findall(r"\b(HGMMA|HMMA|FFMA|MUFU\.EX2|LDL|STL)\b", sass))
    return {"regs": res["REG"], "stack": res["STACK"], "smem": kernel.metadata.shared, **{op: counts.get(op, 0) for op in _OPS}}


RQ_SIG = {"x_ptr": "*fp32", "cb_ptr": "*fp32", "codes_ptr": "*i64", "quant_ptr": "*fp32", "resid_ptr": "*fp32",
          "topc_ptr": "*i64", "topd_ptr": "*fp32", "N": "i32", "D": "i32", "K": "i32"}
LSE_SIG = {"x_ptr": "*fp32", "y_ptr": "*fp32", "tgt_ptr": "*i32", "lse_ptr": "*fp32", "tgt_logit_ptr": "*fp32",
           "M": "i32", "NY": "i32", "D": "i32", "scale2": "fp32"}
GRAD_SIG = {"x_ptr": "*fp32", "y_ptr": "*fp32", "dx_ptr": "*fp32", "lse_x_ptr": "*fp32", "w_x_ptr": "*fp32",
            "tgt_x_ptr": "*i32", "lse_y_ptr": "*fp32", "w_y_ptr": "*fp32", "tgt_y_ptr": "*i32",
            "M": "i32", "NY": "i32", "D": "i32", "scale2": "fp32", "scale": "fp32"}


def _typed(sig: dict, dtype: str) -> dict:
    """Input tensors x/y/cb in the given element type (fp32 or bf16)."""
    return {k: (f"*{dtype}" if k in ("x_ptr", "y_ptr", "cb_ptr", "dx_ptr") else v) for k, v in sig.items()}


def rq_variants(sweep: bool, dims=(32, 64, 128), k: int = 256, n: int = 1_000_000):
    for d in dims:
        for topk in (0, 16):
            base = rq._launch_config(n, k, d, topk)
            blocks = [(base["BLOCK_N"], base["BLOCK_K"], base["num_warps"], base["num_stages"])]
            if sweep and d == dims[0] and not topk:
                blocks += list(itertools.product([64, 128], [32, 64, 128], [4, 8], [2, 3]))
            for bn, bk, warps, stages in blocks:
                const = dict(L=4, T=topk, BLOCK_T=max(2, triton.next_power_of_2(topk)), BLOCK_N=bn, BLOCK_K=bk,
                             BLOCK_D=max(16, triton.next_power_of_2(d)), STORE_RESID=False, PRECISION="tf32x3")
                yield (f"rq L=4 K={k} D={d} T={topk} BN={bn} BK={bk} w={warps} s={stages}",
                       rq._rq_kernel, RQ_SIG, const, warps, stages)


def nce_variants(sweep: bool, dims=(64, 128, 256)):
    for d in dims:
        for dtype in ("fp32", "bf16"):
            base = nce._launch_config(8192, d, dtype != "fp32")
            grid = [(base["lse"], base["grad"])]
            if sweep and d == 128:
                grid += [(dict(BLOCK_M=bm, BLOCK_N=bn, num_warps=w, num_stages=s),) * 2
                         for bm, bn, w, s in itertools.product([64, 128], [32, 64], [4, 8], [2, 3])]
            for lse_cfg, grad_cfg in grid:
                common = dict(UPCAST=dtype == "fp32", PRECISION="tf32x3", BLOCK_D=max(16, triton.next_power_of_2(d)))
                for kind, fn, sig, extra, cfg in (
                    ("lse ", nce._lse_kernel, LSE_SIG, dict(MASK_DIAG=False), lse_cfg),
                    ("grad", nce._grad_kernel, GRAD_SIG, dict(X_TERM=True, Y_TERM=True, MASK_DIAG=False), grad_cfg),
                ):
                    const = dict(common, BLOCK_M=cfg["BLOCK_M"], BLOCK_N=cfg["BLOCK_N"], **extra)
                    tag = f"D={d} {dtype} BM={cfg['BLOCK_M']} BN={cfg['BLOCK_N']} w={cfg['num_warps']} s={cfg['num_stages']}"
                    yield f"nce {kind} {tag}", fn, _typed(sig, dtype), const, cfg["num_warps"], cfg["num_stages"]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--arch", type=int, default=90, help="compute capability as an integer (90 = Hopper)")
    p.add_argument("--sweep", action="store_true", help="also compile a grid of block sizes, warps, stages, precisions")
    p.add_argument("--only", choices=["rq", "nce"], help="one kernel family only")
    p.add_argument("--quick", action="store_true", help="only the benchmark targets' shapes (rq D=32, InfoNCE D=128)")
    args = p.parse_args()
    variants = []
    if args.only in (None, "rq"):
        variants += list(rq_variants(args.sweep, dims=(32,) if args.quick else (32, 64, 128)))
    if args.only in (None, "nce"):
        variants += list(nce_variants(args.sweep, dims=(128,) if args.quick else (64, 128, 256)))
    smem_limit = SMEM_LIMIT.get(args.arch)
    print(f"# Triton {triton.__version__}, target sm_{args.arch}; stack > 0 or LDL/STL > 0 means register spills")
    print(f"{'kernel':58s} {'regs':>4s} {'stack':>5s} {'smem':>6s} " + " ".join(f"{op:>8s}" for op in _OPS))
    failed = False
    for name, fn, sig, const, warps, stages in variants:
        try:
            r = compile_report(fn, sig, const, args.arch, warps, stages)
        except Exception as exc:  # report and continue: one bad config should not hide the others
            print(f"{name:58s} COMPILE ERROR {type(exc).__name__}: {str(exc).splitlines()[0][:80]}")
            failed = True
            continue
        over = smem_limit is not None and r["smem"] > smem_limit
        failed |= over
        print(f"{name:58s} {r['regs']:4d} {r['stack']:5d} {r['smem']:6d} " + " ".join(f"{r[op]:8d}" for op in _OPS)
              + ("  OVER THE SHARED-MEMORY LIMIT" if over else ""), flush=True)
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
