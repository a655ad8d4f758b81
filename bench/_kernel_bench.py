"""Shared plumbing of bench_rq.py and bench_infonce.py: environment header, timing, roofline, JSON."""

from __future__ import annotations

import os
import platform
import statistics
import time

import torch

from _results import cpu_name


def environment(device: torch.device) -> dict:
    import triton

    if device.type == "cuda":
        name = torch.cuda.get_device_name(device)
    else:
        name = cpu_name()
    return {
        "device": name,
        "torch": torch.__version__,
        "triton": triton.__version__,
        "cuda": torch.version.cuda,
        "python": platform.python_version(),
        "fp32_matmul_tf32": bool(torch.backends.cuda.matmul.allow_tf32),
        "time": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def time_ms(fn, device: torch.device, warmup: int = 3, repeat: int = 10) -> float:
    """Median milliseconds of fn(). GPU: triton's do_bench (CUDA events, L2 flushed between runs)."""
    if device.type == "cuda":
        import triton.testing

        return float(triton.testing.do_bench(fn, warmup=25, rep=max(100, 10 * repeat), return_mode="median"))
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t) * 1e3)
    return statistics.median(times)


def peak_memory_mb(fn, device: torch.device) -> float | None:
    """Peak device memory one call of fn() allocates beyond what was live before it (CUDA only)."""
    if device.type != "cuda":
        return None
    sync(device)
    torch.cuda.reset_peak_memory_stats(device)
    before = torch.cuda.memory_allocated(device)
    fn()
    sync(device)
    return (torch.cuda.max_memory_allocated(device) - before) / 2**20


def ceilings(device: torch.device) -> dict:
    """Measured memory bandwidth (copy, bytes read + written) and fp32 matmul rate of this device."""
    n = (256 if device.type == "cuda" else 32) * 2**20 // 4
    src = torch.randn(n, device=device)
    dst = torch.empty_like(src)
    copy_ms = time_ms(lambda: dst.copy_(src), device, warmup=2, repeat=5)
    m = 4096 if device.type == "cuda" else 1024
    a, b = torch.randn(m, m, device=device), torch.randn(m, m, device=device)
    mm_ms = time_ms(lambda: a @ b, device, warmup=2, repeat=5)
    out = {"copy_GBps": 2 * n * 4 / copy_ms / 1e6, "fp32_matmul_TFLOPs": 2 * m**3 / mm_ms / 1e9}
    if device.type == "cuda":
        a16, b16 = a.bfloat16(), b.bfloat16()
        out["bf16_matmul_TFLOPs"] = 2 * m**3 / time_ms(lambda: a16 @ b16, device, warmup=2, repeat=5) / 1e9
    return out


def floor_ms(flops: float, bytes_moved: float, ceil: dict, flop_key: str = "fp32_matmul_TFLOPs") -> float:
    """Roofline floor: the larger of compute time at the measured matmul rate and traffic time at copy bandwidth."""
    return max(flops / (ceil[flop_key] * 1e9), bytes_moved / (ceil["copy_GBps"] * 1e6))


def print_table(rows: list[dict], columns: list[str]) -> None:
    def fmt(v):
        if v is None:
            return "-"
        if isinstance(v, float):
            return f"{v:.4g}" if abs(v) < 1e5 else f"{v:.3e}"
        return str(v)

    cells = [[fmt(r.get(c)) for c in columns] for r in rows]
    widths = [max(len(c), *(len(row[i]) for row in cells)) for i, c in enumerate(columns)]
    print("  ".join(c.rjust(w) for c, w in zip(columns, widths)))
    for row in cells:
        print("  ".join(v.rjust(w) for v, w in zip(row, widths)))


def add_common_args(p, results_name: str) -> None:
    """Options every kernel benchmark takes (device, providers, repetitions, threads, seed, output)."""
    p.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"], help="auto: cuda if available")
    p.add_argument("--providers", nargs="+", choices=["eager", "compile", "triton"],
                   help="default: eager compile triton on GPU, eager compile on CPU")
    p.add_argument("--repeat", type=int, default=5, help="timed repetitions (CPU; GPU uses do_bench's own count)")
    p.add_argument("--threads", type=int, default=1,
                   help="torch CPU threads (default 1: on a shared machine, spinning OpenMP threads distort every number)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default=os.path.join(os.path.dirname(os.path.abspath(__file__)), "results", results_name))


def resolve_device_and_providers(args) -> tuple[torch.device, list[str]]:
    """The device asked for (checked), torch threads set, and the providers to time on it."""
    device = torch.device("cuda" if args.device == "auto" and torch.cuda.is_available() else
                          ("cpu" if args.device == "auto" else args.device))
    if device.type == "cuda" and not torch.cuda.is_available():
        raise SystemExit("--device cuda: no CUDA device here")
    gpu = device.type == "cuda"
    torch.set_num_threads(args.threads)
    providers = args.providers or (["eager", "compile", "triton"] if gpu else ["eager", "compile"])
    if "triton" in providers and not gpu:
        raise SystemExit("--providers triton needs --device cuda (the interpreter is for tests, not timing)")
    return device, providers
