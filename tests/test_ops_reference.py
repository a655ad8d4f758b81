"""The torch references against independent computations (numpy loops)."""

import numpy as np
import pytest
import torch

from mqlrec.ops import info_nce, rq_quantize


@pytest.mark.parametrize("n,d,k,levels", [(1, 3, 5, 1), (37, 8, 17, 3), (200, 32, 257, 4)])
def test_rq_quantize_reference_matches_numpy(n, d, k, levels):
    g = torch.Generator().manual_seed(n + d)
    x = torch.randn(n, d, generator=g)
    cb = torch.randn(levels, k, d, generator=g) * 0.5
    out = rq_quantize(x, cb, return_residuals=True, topk=3)
    r = x.double().numpy().copy()
    for level in range(levels):
        np.testing.assert_allclose(out.residuals[level].numpy(), r, rtol=1e-4, atol=1e-4)
        dist = ((r[:, None, :] - cb[level].double().numpy()[None]) ** 2).sum(-1)
        np.testing.assert_array_equal(out.codes[:, level].numpy(), dist.argmin(1))
        np.testing.assert_array_equal(out.topk_codes[:, level].numpy(), np.argsort(dist, 1, kind="stable")[:, :3])
        r = r - cb[level].double().numpy()[dist.argmin(1)]
    np.testing.assert_allclose(out.quantized.numpy(), x.numpy() - r, rtol=1e-4, atol=1e-4)


def _np_ce(logits, target):
    m = logits.max(1, keepdims=True)
    lse = np.log(np.exp(logits - m).sum(1)) + m[:, 0]
    return (lse - logits[np.arange(len(target)), target]).mean()


@pytest.mark.parametrize("b,d", [(1, 4), (3, 7), (64, 33)])
def test_info_nce_reference_matches_numpy(b, d):
    g = torch.Generator().manual_seed(b)
    a, k = torch.randn(b, d, generator=g), torch.randn(b, d, generator=g)
    logits = a.double().numpy() @ k.double().numpy().T / 0.1
    sym = 0.5 * (_np_ce(logits, np.arange(b)) + _np_ce(logits.T, np.arange(b)))
    assert info_nce(a, k, 0.1).item() == pytest.approx(sym, rel=1e-4)
    pos = torch.randint(-1, b, (b,), generator=g)
    pos[0] = 0 if b == 1 else 1
    masked = logits.copy()
    np.fill_diagonal(masked, -np.inf)
    valid = pos.numpy() >= 0
    if b > 1:
        expected = _np_ce(masked[valid], pos.numpy()[valid])
        assert info_nce(a, k, 0.1, positive=pos, mask_diagonal=True).item() == pytest.approx(expected, rel=1e-4)
    expected = _np_ce(logits[valid], pos.numpy()[valid])
    assert info_nce(a, k, 0.1, positive=pos).item() == pytest.approx(expected, rel=1e-4)
