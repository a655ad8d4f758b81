"""mqlrec.ops dispatch: MQLREC_OPS override, CPU fallback, and that the Triton branch really runs the kernels."""

import pytest
import torch

import mqlrec.ops as ops
from mqlrec.kernels import info_nce as info_nce_module
from mqlrec.kernels import rq_quantize as rq_module
from mqlrec.ops.reference import info_nce_reference, rq_quantize_reference


@pytest.fixture
def calls(monkeypatch):
    """Count the calls that reach each Triton entry point (still running the real kernels)."""
    seen = {"rq": 0, "nce": 0}
    real_rq, real_nce = rq_module.rq_quantize_triton, info_nce_module.info_nce_triton

    def rq(*args, **kw):
        seen["rq"] += 1
        return real_rq(*args, **kw)

    def nce(*args, **kw):
        seen["nce"] += 1
        return real_nce(*args, **kw)

    monkeypatch.setattr(rq_module, "rq_quantize_triton", rq)
    monkeypatch.setattr(info_nce_module, "info_nce_triton", nce)
    return seen


def test_cpu_defaults_to_torch(monkeypatch, calls):
    monkeypatch.delenv("MQLREC_OPS", raising=False)
    x = torch.randn(5, 8)
    assert ops.backend(x) == "torch"
    ops.rq_quantize(x, torch.randn(2, 7, 8))
    ops.info_nce(x, torch.randn(5, 8), 0.1)
    assert calls == {"rq": 0, "nce": 0}


def test_forced_torch(monkeypatch, calls):
    monkeypatch.setenv("MQLREC_OPS", "torch")
    assert ops.backend(torch.randn(2, 2)) == "torch"
    ops.rq_quantize(torch.randn(5, 8), torch.randn(2, 7, 8))
    assert calls["rq"] == 0


def test_forced_triton_on_cpu_under_the_interpreter(monkeypatch, calls):
    monkeypatch.setenv("MQLREC_OPS", "triton")
    monkeypatch.setenv("TRITON_INTERPRET", "1")
    g = torch.Generator().manual_seed(0)
    x, cb = torch.randn(50, 12, generator=g), torch.randn(3, 33, 12, generator=g)
    got = ops.rq_quantize(x, cb, return_residuals=True, topk=2)
    ref = rq_quantize_reference(x, cb, return_residuals=True, topk=2)
    assert calls["rq"] == 1
    assert torch.equal(got.codes, ref.codes) and torch.equal(got.topk_codes, ref.topk_codes)
    torch.testing.assert_close(got.quantized, ref.quantized)
    torch.testing.assert_close(got.residuals, ref.residuals)

    a = torch.randn(40, 12, generator=g, requires_grad=True)
    loss = ops.info_nce(a, a, 0.1)
    assert calls["nce"] == 1
    loss.backward()
    a_ref = a.detach().clone().requires_grad_()
    ref_loss = info_nce_reference(a_ref, a_ref, 0.1)
    ref_loss.backward()
    torch.testing.assert_close(loss, ref_loss, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(a.grad, a_ref.grad, rtol=1e-4, atol=2e-5)  # fp32 vs fp32, different sums


def test_learnable_temperature_uses_the_reference(monkeypatch, calls):
    monkeypatch.setenv("MQLREC_OPS", "triton")
    monkeypatch.setenv("TRITON_INTERPRET", "1")
    tau = torch.tensor(0.1, requires_grad=True)
    a, b = torch.randn(6, 4), torch.randn(6, 4)
    ops.info_nce(a, b, tau).backward()
    assert calls["nce"] == 0 and tau.grad is not None and torch.isfinite(tau.grad)


def test_forced_triton_needs_cuda_or_interpreter(monkeypatch):
    monkeypatch.setenv("MQLREC_OPS", "triton")
    monkeypatch.delenv("TRITON_INTERPRET", raising=False)
    with pytest.raises(RuntimeError, match="CUDA"):
        ops.backend(torch.randn(2, 2))


def test_missing_triton(monkeypatch):
    monkeypatch.setattr(ops, "_triton_available", lambda: False)
    monkeypatch.setenv("MQLREC_OPS", "auto")
    assert ops.backend(torch.randn(2, 2)) == "torch"
    monkeypatch.setenv("MQLREC_OPS", "triton")
    with pytest.raises(RuntimeError, match="Triton"):
        ops.backend(torch.randn(2, 2))


def test_bad_override_value(monkeypatch):
    monkeypatch.setenv("MQLREC_OPS", "cuda")
    with pytest.raises(ValueError, match="MQLREC_OPS"):
        ops.backend(torch.randn(2, 2))


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device (auto picks Triton only for CUDA tensors)")
def test_auto_picks_triton_on_cuda(monkeypatch, calls):
    monkeypatch.delenv("MQLREC_OPS", raising=False)
    x = torch.randn(64, 32, device="cuda")
    assert ops.backend(x) == "triton"
    ops.rq_quantize(x, torch.randn(2, 16, 32, device="cuda"))
    assert calls["rq"] == 1
