"""The InfoNCE kernels (loss and both gradients) against the torch reference in float64.

Runs on CPU through the Triton interpreter; every kernel output is poisoned (NaN) before the launch.
"""

import pytest
import torch

from mqlrec.kernels import _common
from mqlrec.kernels.info_nce import info_nce_triton
from mqlrec.ops.reference import info_nce_reference

DEVICE = "cuda" if torch.cuda.is_available() else "cpu"
# fp32 tolerance: the interpreter multiplies in fp32; on a GPU fp32 dots run as tf32x3 (near fp32).
TOL = 1e-5 if DEVICE == "cpu" else 2e-4


@pytest.fixture(autouse=True)
def poison_outputs(monkeypatch):
    monkeypatch.setattr(_common, "POISON_OUTPUTS", True)


def _loss_and_grads(fn, a, b, tau, same=False, grad_scale=1.0, **kw):
    a = a.detach().clone().requires_grad_()
    b = a if same else b.detach().clone().requires_grad_()
    loss = fn(a, b, tau, **kw)
    (loss * grad_scale).backward()
    return loss.detach(), a.grad, (None if same else b.grad)


def _rel(x, ref):
    return ((x.double() - ref).norm() / ref.norm().clamp(min=1e-30)).item()


def assert_matches_reference(a, b, tau, same=False, grad_scale=1.0, config=None, tol=TOL, **kw):
    """Kernel on DEVICE vs the reference on float64 copies; relative errors of loss and gradients."""
    got = _loss_and_grads(lambda *args, **k: info_nce_triton(*args, config=config, **k),
                          a.to(DEVICE), b.to(DEVICE), tau, same, grad_scale, **kw)
    kw64 = {k: (v.cpu() if isinstance(v, torch.Tensor) else v) for k, v in kw.items()}
    ref = _loss_and_grads(info_nce_reference, a.double(), b.double(), tau, same, grad_scale, **kw64)
    assert torch.isfinite(got[0]) and abs(got[0].item() - ref[0].item()) <= tol * (1 + abs(ref[0].item()))
    assert got[1].dtype == a.dtype and got[1].shape == a.shape
    assert _rel(got[1].cpu(), ref[1]) <= tol, f"da relative error {_rel(got[1].cpu(), ref[1])}"
    if not same:
        assert got[2].dtype == b.dtype and got[2].shape == b.shape
        assert _rel(got[2].cpu(), ref[2]) <= tol, f"db relative error {_rel(got[2].cpu(), ref[2])}"
    return got


def _inputs(b, bp, d, seed, dtype=torch.float32):
    g = torch.Generator().manual_seed(seed)
    a, k = torch.randn(b, d, generator=g), torch.randn(bp, d, generator=g)
    a, k = torch.nn.functional.normalize(a, dim=1), torch.nn.functional.normalize(k, dim=1)
    return a.to(dtype), k.to(dtype), g


@pytest.mark.parametrize("b,d", [(1, 32), (3, 7), (1000, 97), (130, 48)])
def test_symmetric_matches_reference(b, d):
    a, k, _ = _inputs(b, b, d, seed=b + d)
    assert_matches_reference(a, k, 0.1)


def test_symmetric_bf16_inputs():
    a, k, _ = _inputs(257, 257, 32, seed=5, dtype=torch.bfloat16)
    # The reference upcasts bf16 to fp32 exactly as the kernel does; the gradient is rounded to bf16.
    assert_matches_reference(a, k, 0.07, tol=1e-2)


def test_same_tensor_for_both_sides():
    """b is a itself (MACRec's residual loss): autograd must add both gradient halves into a.grad."""
    a, _, _ = _inputs(300, 300, 32, seed=9)
    assert_matches_reference(a, a, 0.1, same=True)


@pytest.mark.parametrize("b,bp,d,mask_diagonal", [(200, 150, 48, False), (333, 333, 33, True), (1, 5, 16, False)])
def test_explicit_positives_match_reference(b, bp, d, mask_diagonal):
    a, k, g = _inputs(b, bp, d, seed=b * bp)
    positive = torch.randint(-1, bp, (b,), generator=g)  # -1: row ignored
    positive[0] = bp - 1
    if mask_diagonal:  # a masked-out positive would make that row's loss infinite
        positive = torch.where(positive == torch.arange(b), -1, positive)
    assert (positive >= 0).any()
    assert_matches_reference(a, k, 0.1, positive=positive.to(DEVICE), mask_diagonal=mask_diagonal)


def test_explicit_positives_with_same_tensor_and_mask():
    a, _, g = _inputs(120, 120, 24, seed=4)
    positive = (torch.arange(120) + torch.randint(1, 120, (120,), generator=g)) % 120
    positive[::7] = -1
    assert_matches_reference(a, a, 0.2, same=True, positive=positive.to(DEVICE), mask_diagonal=True)


def test_all_rows_ignored_gives_zero_loss_and_gradients():
    a, k, _ = _inputs(10, 10, 16, seed=1)
    loss, da, db = _loss_and_grads(info_nce_triton, a.to(DEVICE), k.to(DEVICE), 0.1,
                                   positive=torch.full((10,), -1, device=DEVICE))
    assert loss.item() == 0.0 and torch.equal(da.cpu(), torch.zeros_like(a)) and torch.equal(db.cpu(), torch.zeros_like(k))


def test_small_tiles_and_upstream_gradient():
    """Tiles much smaller than B (many column blocks, partial last blocks) and dL/dloss != 1."""
    a, k, g = _inputs(100, 100, 20, seed=2)
    config = dict(BLOCK_M=16, BLOCK_N=32)
    assert_matches_reference(a, k, 0.1, grad_scale=-3.7, config=config)
    positive = torch.randint(-1, 100, (100,), generator=g)
    positive = torch.where(positive == torch.arange(100), -1, positive)  # masked positive: infinite loss
    assert_matches_reference(a, k, 0.1, grad_scale=2.5, config=config, positive=positive.to(DEVICE), mask_diagonal=True)


def test_memory_stays_linear_in_batch(monkeypatch):
    """No kernel output (or saved tensor) is B x B: everything allocated is O(B * D)."""
    sizes = []
    real_empty = _common.empty

    def recording_empty(shape, dtype, device):
        sizes.append(int(torch.Size(shape).numel()))
        return real_empty(shape, dtype, device)

    monkeypatch.setattr(_common, "empty", recording_empty)
    b, d = 600, 16
    a, k, _ = _inputs(b, b, d, seed=3)
    _loss_and_grads(info_nce_triton, a.to(DEVICE), k.to(DEVICE), 0.1)
    assert sizes and max(sizes) <= b * d < b * b


def test_rejects_bad_arguments():
    a = torch.randn(4, 8)
    with pytest.raises(ValueError, match="tau"):
        info_nce_triton(a, a, 0.0)
    with pytest.raises(ValueError, match="symmetric"):
        info_nce_triton(a, torch.randn(5, 8), 0.1)
    with pytest.raises(ValueError, match="positive"):
        info_nce_triton(a, a, 0.1, positive=torch.zeros(3, dtype=torch.long))
