"""The fused residual-quantization kernel against the torch reference (Triton interpreter on CPU).

Codes must match exactly, except where the two candidate codewords are equally near the residual
(within fp32 rounding); the check measures that gap in float64 for every disagreement. Outputs are
poisoned (NaN / -1) before each launch, so an element the kernel never wrote fails the comparison.
"""

import numpy as np
import pytest
import torch

from mqlrec.kernels import _common
from mqlrec.kernels.rq_quantize import rq_quantize_triton
from mqlrec.ops.reference import rq_quantize_reference

DEVICE = "cuda" if torch.cuda.is_available() else "cpu"


@pytest.fixture(autouse=True)
def poison_outputs(monkeypatch):
    monkeypatch.setattr(_common, "POISON_OUTPUTS", True)


def _distances64(r: torch.Tensor, cb: torch.Tensor) -> torch.Tensor:
    r, cb = r.double(), cb.double()
    return (r * r).sum(1, keepdim=True) - 2.0 * r @ cb.T + (cb * cb).sum(1)[None, :]


def assert_matches_reference(out, x, cb, topk=0, return_residuals=True, max_tie_rows=0.01):
    """Compare a kernel result with the reference level by level, allowing only genuine near-ties.

    A row whose code differs at some level (a tie) follows a different residual afterwards, so it
    is checked up to that level and dropped from the later, exact comparisons.
    """
    ref = rq_quantize_reference(x.cpu(), cb.cpu(), return_residuals=True, topk=topk)
    codes = out.codes.cpu()
    n, n_levels = ref.codes.shape
    assert codes.shape == (n, n_levels) and codes.dtype == torch.int64
    assert out.quantized.shape == x.shape and out.quantized.dtype == torch.float32
    assert ((codes >= 0) & (codes < cb.shape[1])).all()
    agree = torch.ones(n, dtype=torch.bool)
    for level in range(n_levels):
        residual = ref.residuals[level]
        d64 = _distances64(residual, cb[level].cpu())
        scale = 1.0 + d64.abs().max(1).values
        if return_residuals:
            got = out.residuals[level].cpu()
            torch.testing.assert_close(got[agree], residual[agree], rtol=1e-5, atol=1e-5)
        kernel, reference = codes[:, level], ref.codes[:, level]
        differ = agree & (kernel != reference)
        rows = differ.nonzero()[:, 0]
        gap = (d64[rows, kernel[rows]] - d64[rows, reference[rows]]).abs()
        assert (gap <= 1e-5 * scale[rows]).all(), f"level {level}: a code differs without a tie, gap {gap.max()}"
        if topk:
            t = min(topk, cb.shape[1])
            tc, td = out.topk_codes.cpu()[:, level], out.topk_dists.cpu()[:, level]
            assert tc.shape == (n, t) and td.shape == (n, t)
            ok = agree & ~differ
            torch.testing.assert_close(td[ok], ref.topk_dists[:, level][ok], rtol=1e-5, atol=1e-4)
            assert (tc[:, 0] == kernel).all(), "the first of the top-T codes is the chosen code"
            assert (torch.sort(tc, 1).values.diff(dim=1) > 0).all(), "top-T codes are distinct"
            # A position may hold a different code only if that code is (nearly) as near as the reference's.
            rows = ok.nonzero()[:, 0]
            kd = d64[rows[:, None], tc[rows]]
            rd = d64[rows[:, None], ref.topk_codes[:, level][rows]]
            assert ((kd - rd).abs() <= 1e-5 * scale[rows, None]).all()
        agree &= ~differ
    assert (~agree).float().mean() <= max_tie_rows, f"{int((~agree).sum())} rows hit ties"
    torch.testing.assert_close(out.quantized.cpu()[agree], ref.quantized[agree], rtol=1e-5, atol=1e-5)
    return agree


CASES = [
    # n, d, k, levels, topk, dtype, residuals
    (1, 32, 256, 1, 0, torch.float32, True),
    (1000, 48, 257, 4, 0, torch.float32, True),
    (333, 97, 256, 6, 0, torch.float32, False),
    (257, 32, 257, 2, 0, torch.bfloat16, True),
    (100, 97, 257, 3, 5, torch.float32, True),
    (64, 32, 256, 5, 3, torch.bfloat16, False),
]


@pytest.mark.parametrize("n,d,k,levels,topk,dtype,residuals", CASES)
def test_rq_kernel_matches_reference(n, d, k, levels, topk, dtype, residuals):
    g = torch.Generator().manual_seed(1000 * n + d + k + levels)
    x = torch.randn(n, d, generator=g).to(dtype)
    # Each level's codebook shrinks like real residuals do, so later levels still separate rows.
    cb = (torch.randn(levels, k, d, generator=g) * 0.6 ** torch.arange(levels)[:, None, None]).to(dtype)
    out = rq_quantize_triton(x.to(DEVICE), cb.to(DEVICE), return_residuals=residuals, topk=topk)
    assert (out.residuals is not None) == residuals
    assert (out.topk_codes is not None) == bool(topk)
    assert_matches_reference(out, x, cb, topk=topk, return_residuals=residuals)


def test_rq_kernel_small_tiles_cross_tile_merging():
    """Tiles far smaller than K and N: the running argmin and the top-T merge across many tiles."""
    g = torch.Generator().manual_seed(7)
    x, cb = torch.randn(70, 20, generator=g), torch.randn(3, 100, 20, generator=g) * 0.7
    out = rq_quantize_triton(x.to(DEVICE), cb.to(DEVICE), return_residuals=True, topk=9,
                             config=dict(BLOCK_N=16, BLOCK_K=16))
    assert_matches_reference(out, x, cb, topk=9)


def test_rq_kernel_full_sorted_code_list():
    """topk = K (and topk > K, clamped) gives every code of every level sorted by distance."""
    g = torch.Generator().manual_seed(3)
    x, cb = torch.randn(19, 24, generator=g), torch.randn(2, 37, 24, generator=g)
    for topk in (37, 50):
        out = rq_quantize_triton(x.to(DEVICE), cb.to(DEVICE), topk=topk)
        assert out.topk_codes.shape == (19, 2, 37)
        assert (torch.sort(out.topk_codes.cpu(), -1).values == torch.arange(37)).all()
        assert (out.topk_dists.cpu().diff(dim=-1) >= 0).all()
        assert_matches_reference(out, x, cb, topk=topk, return_residuals=False)


@pytest.mark.parametrize("topk", [0, 6])  # the running argmin and the top-T merge are separate paths
def test_rq_kernel_exact_ties_pick_lowest_index(topk):
    """Small integers make every distance exact, and duplicated codewords make ties certain:
    the kernel must pick the lowest index, exactly as a stable argsort in float64 does."""
    g = torch.Generator().manual_seed(11)
    n, d, k, levels = 300, 8, 257, 3
    x = torch.randint(-3, 4, (n, d), generator=g).float()
    cb = torch.randint(-1, 2, (levels, k, d), generator=g).float()
    cb[:, 128:256] = cb[:, :128]  # every codeword of the upper half duplicates one of the lower half
    cb[:, 256] = cb[:, 5]
    out = rq_quantize_triton(x.to(DEVICE), cb.to(DEVICE), return_residuals=True, topk=topk)
    residual = x.double().numpy()
    ties = 0
    for level in range(levels):
        c = cb[level].double().numpy()
        dist = ((residual[:, None, :] - c[None]) ** 2).sum(-1)
        order = np.argsort(dist, axis=1, kind="stable")
        ties += int((dist[np.arange(n), order[:, 0]] == dist[np.arange(n), order[:, 1]]).sum())
        np.testing.assert_array_equal(out.codes.cpu()[:, level].numpy(), order[:, 0])
        if topk:
            np.testing.assert_array_equal(out.topk_codes.cpu()[:, level].numpy(), order[:, :topk])
            np.testing.assert_array_equal(out.topk_dists.cpu()[:, level].double().numpy(),
                                          np.take_along_axis(dist, order[:, :topk], 1))
        np.testing.assert_array_equal(out.residuals.cpu()[level].double().numpy(), residual)
        residual = residual - c[order[:, 0]]
    assert (out.codes.cpu() < 128).all(), "a duplicate (higher index) codeword was chosen"
    assert ties >= n, "the construction was meant to produce ties on every row"
    np.testing.assert_array_equal(out.quantized.cpu().double().numpy(), x.double().numpy() - residual)


def test_rq_kernel_rejects_bad_arguments():
    x, cb = torch.randn(4, 8), torch.randn(2, 5, 8)
    with pytest.raises(ValueError, match="codebooks"):
        rq_quantize_triton(x, torch.randn(2, 5, 9))
    with pytest.raises(ValueError, match="topk"):
        rq_quantize_triton(x, cb, topk=-1)


def test_rq_kernel_degenerate_shapes():
    out = rq_quantize_triton(torch.randn(0, 8).to(DEVICE), torch.randn(2, 5, 8).to(DEVICE), return_residuals=True)
    assert out.codes.shape == (0, 2) and out.residuals.shape == (2, 0, 8)
    x = torch.randn(3, 8)
    out = rq_quantize_triton(x.to(DEVICE), torch.randn(0, 5, 8).to(DEVICE))
    assert out.codes.shape == (3, 0) and torch.equal(out.quantized.cpu(), torch.zeros(3, 8))
