"""pytest-benchmark regression checks of the fused ops on small fixed shapes.

They time `mqlrec.ops` as this machine dispatches it (torch reference on CPU, Triton on a GPU) and
assert the timed result is right. Compare runs with
    pytest -m benchmark tests/test_bench_kernels.py --benchmark-enable --benchmark-autosave
    pytest -m benchmark tests/test_bench_kernels.py --benchmark-enable --benchmark-compare --benchmark-compare-fail=median:20%
(pyproject's addopts disables timing by default; then each runs once, as a plain test.)
"""

import numpy as np
import pytest
import torch

import mqlrec.ops as ops
from mqlrec.ops.reference import info_nce_reference

DEVICE = "cuda" if torch.cuda.is_available() else "cpu"
pytestmark = pytest.mark.benchmark


def _sync():
    if DEVICE == "cuda":
        torch.cuda.synchronize()


def test_bench_rq_quantize(benchmark):
    g = torch.Generator().manual_seed(0)
    n, d, k, levels = 4096, 32, 256, 4
    x = torch.randn(n, d, generator=g)
    cb = torch.randn(levels, k, d, generator=g) * 0.6 ** torch.arange(levels)[:, None, None]
    xd, cbd = x.to(DEVICE), cb.to(DEVICE)

    def run():
        out = ops.rq_quantize(xd, cbd)
        _sync()
        return out

    benchmark.extra_info["backend"] = ops.backend(xd)
    out = benchmark(run)
    # Independent float64 check; a code may differ only on a genuine near-tie.
    residual = x.double().numpy()
    codes = out.codes.cpu().numpy()
    for level in range(levels):
        c = cb[level].double().numpy()
        dist = (residual**2).sum(1)[:, None] - 2 * residual @ c.T + (c**2).sum(1)[None]
        best = dist.argmin(1)
        gap = dist[np.arange(n), codes[:, level]] - dist[np.arange(n), best]
        assert (gap <= 1e-5 * (1 + np.abs(dist).max(1))).all() and (codes[:, level] == best).mean() > 0.999
        residual = residual - c[codes[:, level]]
    np.testing.assert_allclose(out.quantized.cpu().numpy(), x.numpy() - residual, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("form", ["symmetric", "positive"])
def test_bench_info_nce_forward_backward(benchmark, form):
    g = torch.Generator().manual_seed(1)
    b, d = 1024, 64
    a = torch.nn.functional.normalize(torch.randn(b, d, generator=g), dim=1)
    k = torch.nn.functional.normalize(torch.randn(b, d, generator=g), dim=1)
    kw = {}
    if form == "positive":
        pos = torch.randint(-1, b, (b,), generator=g)
        kw = {"positive": torch.where(pos == torch.arange(b), -1, pos), "mask_diagonal": True}

    def step(fn, a, k, kw):
        a = a.detach().requires_grad_()
        k = k.detach().requires_grad_()
        loss = fn(a, k, 0.1, **kw)
        loss.backward()
        _sync()
        return loss.detach(), a.grad, k.grad

    ad, kd = a.to(DEVICE), k.to(DEVICE)
    kwd = {key: (v.to(DEVICE) if isinstance(v, torch.Tensor) else v) for key, v in kw.items()}
    benchmark.extra_info["backend"] = ops.backend(ad)
    got = benchmark(step, ops.info_nce, ad, kd, kwd)
    ref = step(info_nce_reference, a.double(), k.double(), kw)
    for g_, r in zip(got, ref):
        assert ((g_.cpu().double() - r).norm() / r.norm()).item() < 1e-4
