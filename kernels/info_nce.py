"""In-batch InfoNCE, forward and backward, without ever holding the B x B logits.

Logits s_ij = a_i . b_j / tau. Two kernels, each used for both sides of the matrix by swapping the
roles of a and b (the logits of b against a are the transpose):

* `_lse_kernel(x, y)`: one program per block of x rows streams y in column blocks and keeps an
  online log-sum-exp (running max + rescaled sum, in base 2), plus the logit of each row's target
  column. Symmetric loss: run it on (a, b) and on (b, a).
* `_grad_kernel(x, y)`: the backward by recomputation, flash-attention style. For a block of x rows
  it streams y again, rebuilds the logits, forms dL/ds from the saved log-sum-exps, and accumulates
  dx += dL/ds @ y in registers. The same kernel on (b, a) gives db.

dL/ds_ij is a sum of up to two softmax terms, one normalised along the x side (weight w_x, target
column tgt_x) and one along the y side (weight w_y, target row tgt_y):
    dL/ds_ij = w_x[i] (softmax_j(s_i.)_j - [j = tgt_x[i]]) + w_y[j] (softmax_i(s_.j)_i - [i = tgt_y[j]])
Symmetric CLIP loss: both terms with w = 1/(2B), diagonal targets. Explicit positives: only the a-side
term, w = valid/n_valid, targets = positive (and the diagonal masked out of the softmax if asked).
Memory beyond the inputs and gradients: a few [B] vectors.
"""

from __future__ import annotations

import contextlib
import math

import torch
import triton
import triton.language as tl

from mqlrec.kernels import _common

_LOG2E = 1.4426950408889634
_LN2 = 0.6931471805599453


@triton.jit
def _lse_kernel(
    x_ptr, y_ptr,  # [M, D], [NY, D] contiguous
    tgt_ptr,  # [M] int32, target column per row (-1: none)
    lse_ptr, tgt_logit_ptr,  # [M] fp32 outputs, base-2 units (logit * log2(e))
    M, NY, D,
    scale2,  # log2(e) / tau
    MASK_DIAG: tl.constexpr,
    UPCAST: tl.constexpr,
    PRECISION: tl.constexpr,
    BLOCK_M: tl.constexpr,
    BLOCK_N: tl.constexpr,
    BLOCK_D: tl.constexpr,
):
    pid = tl.program_id(0)
    rows = pid * BLOCK_M + tl.arange(0, BLOCK_M)
    row_ok = rows < M
    dims = tl.arange(0, BLOCK_D)
    dim_ok = dims < D
    x = tl.load(x_ptr + rows.to(tl.int64)[:, None] * D + dims[None, :], mask=row_ok[:, None] & dim_ok[None, :], other=0.0)
    if UPCAST:
        x = x.to(tl.float32)
    tgt = tl.load(tgt_ptr + rows, mask=row_ok, other=-1)
    run_max = tl.full([BLOCK_M], float("-inf"), dtype=tl.float32)
    run_sum = tl.zeros([BLOCK_M], dtype=tl.float32)
    tgt_logit = tl.zeros([BLOCK_M], dtype=tl.float32)
    for n0 in tl.range(0, NY, BLOCK_N):
        cols = n0 + tl.arange(0, BLOCK_N)
        col_ok = cols < NY
        y = tl.load(y_ptr + cols.to(tl.int64)[:, None] * D + dims[None, :], mask=col_ok[:, None] & dim_ok[None, :], other=0.0)
        if UPCAST:
            y = y.to(tl.float32)
        s = tl.dot(x, tl.trans(y), input_precision=PRECISION) * scale2
        s = tl.where(col_ok[None, :], s, float("-inf"))
        if MASK_DIAG:
            s = tl.where(cols[None, :] == rows[:, None], float("-inf"), s)
        tgt_logit += tl.sum(tl.where(cols[None, :] == tgt[:, None], s, 0.0), axis=1)
        # The first tile always holds an unmasked column (unless NY = 1 with mask_diagonal, a loss the
        # reference makes NaN too), so new_max is finite from the first tile on: no inf - inf here.
        new_max = tl.maximum(run_max, tl.max(s, axis=1))
        run_sum = run_sum * tl.exp2(run_max - new_max) + tl.sum(tl.exp2(s - new_max[:, None]), axis=1)
        run_max = new_max
    tl.store(lse_ptr + rows, run_max + tl.log2(run_sum), mask=row_ok)
    tl.store(tgt_logit_ptr + rows, tgt_logit, mask=row_ok)


@triton.jit
def _grad_kernel(
    x_ptr, y_ptr,  # [M, D], [NY, D]
    dx_ptr,  # [M, D] output, dtype of x
    lse_x_ptr, w_x_ptr, tgt_x_ptr,  # [M]: softmax along the x side (row-normalised) term
    lse_y_ptr, w_y_ptr, tgt_y_ptr,  # [NY]: softmax along the y side (column-normalised) term
    M, NY, D,
    scale2,  # log2(e) / tau: logits in base-2 units, so exp2(s - lse) is the softmax
    scale,  # 1 / tau: ds/dx = y / tau
    X_TERM: tl.constexpr,
    Y_TERM: tl.constexpr,
    MASK_DIAG: tl.constexpr,
    UPCAST: tl.constexpr,
    PRECISION: tl.constexpr,
    BLOCK_M: tl.constexpr,
    BLOCK_N: tl.constexpr,
    BLOCK_D: tl.constexpr,
):
    pid = tl.program_id(0)
    rows = pid * BLOCK_M + tl.arange(0, BLOCK_M)
    row_ok = rows < M
    dims = tl.arange(0, BLOCK_D)
    dim_ok = dims < D
    x_off = rows.to(tl.int64)[:, None] * D + dims[None, :]
    x_ok = row_ok[:, None] & dim_ok[None, :]
    x = tl.load(x_ptr + x_off, mask=x_ok, other=0.0)
    if UPCAST:
        x = x.to(tl.float32)
    if X_TERM:
        lse_x = tl.load(lse_x_ptr + rows, mask=row_ok, other=0.0)
        w_x = tl.load(w_x_ptr + rows, mask=row_ok, other=0.0)
        tgt_x = tl.load(tgt_x_ptr + rows, mask=row_ok, other=-1)
    acc = tl.zeros([BLOCK_M, BLOCK_D], dtype=tl.float32)
    for n0 in tl.range(0, NY, BLOCK_N):
        cols = n0 + tl.arange(0, BLOCK_N)
        col_ok = cols < NY
        y = tl.load(y_ptr + cols.to(tl.int64)[:, None] * D + dims[None, :], mask=col_ok[:, None] & dim_ok[None, :], other=0.0)
        if UPCAST:
            y = y.to(tl.float32)
        s = tl.dot(x, tl.trans(y), input_precision=PRECISION) * scale2
        ds = tl.zeros([BLOCK_M, BLOCK_N], dtype=tl.float32)
        if X_TERM:
            ds += w_x[:, None] * tl.exp2(s - lse_x[:, None])
        if Y_TERM:
            lse_y = tl.load(lse_y_ptr + cols, mask=col_ok, other=0.0)
            w_y = tl.load(w_y_ptr + cols, mask=col_ok, other=0.0)
            ds += w_y[None, :] * tl.exp2(s - lse_y[None, :])
        if MASK_DIAG:
            ds = tl.where(cols[None, :] == rows[:, None], 0.0, ds)
        if X_TERM:
            ds -= tl.where(cols[None, :] == tgt_x[:, None], w_x[:, None], 0.0)
        if Y_TERM:
            tgt_y = tl.load(tgt_y_ptr + cols, mask=col_ok, other=-1)
            ds -= tl.where(rows[:, None] == tgt_y[None, :], w_y[None, :], 0.0)
        # Padded columns get a finite ds, but their y rows load as 0: they add nothing to acc.
        acc += tl.dot(ds.to(y.dtype), y, input_precision=PRECISION)
    tl.store(dx_ptr + x_off, (acc * scale).to(dx_ptr.dtype.element_ty), mask=x_ok)


def _launch_config(m: int, d: int, sixteen_bit: bool) -> dict:
    """Launch parameters of the two kernels, {"lse": {...}, "grad": {...}}, from the shape (no autotuning:
    the interpreter cannot time configs).

    Chosen from the sm_90 compile report (bench/kernel_report.py; no GPU was available to time them):
    16-bit inputs feed the tensor cores directly and run spill-free at these sizes; fp32 inputs go
    through tf32x3 (operands split in two), which doubles shared memory and registers, so the tiles
    are smaller and must stay under the 227 KB of shared memory a block may use.
    Interpreter: big tiles, few Python round trips.
    """
    block_d = max(16, _common.next_pow2(d))
    if _common.interpreting():
        block = max(16, min(256, _common.next_pow2(m)))
        cfg = dict(BLOCK_M=block, BLOCK_N=block, BLOCK_D=block_d, num_warps=4)
        return {"lse": cfg, "grad": cfg}
    if block_d <= 128 and sixteen_bit:
        return {"lse": dict(BLOCK_M=128, BLOCK_N=64, BLOCK_D=block_d, num_warps=8, num_stages=2),
                "grad": dict(BLOCK_M=64, BLOCK_N=32, BLOCK_D=block_d, num_warps=8, num_stages=2)}
    if block_d <= 128:
        return {"lse": dict(BLOCK_M=64, BLOCK_N=64, BLOCK_D=block_d, num_warps=4, num_stages=2),
                "grad": dict(BLOCK_M=64, BLOCK_N=32, BLOCK_D=block_d, num_warps=4, num_stages=2)}
    # Wider rows: wgmma needs 64-row tiles; shrink the column tile instead (fp32 at D = 256 still spills).
    cfg = dict(BLOCK_M=64, BLOCK_N=16, BLOCK_D=block_d, num_warps=4, num_stages=1)
    return {"lse": cfg, "grad": cfg}


def _device(t: torch.Tensor):
    return torch.cuda.device(t.device) if t.device.type == "cuda" else contextlib.nullcontext()


def _row_lse(x, y, tgt, tau, mask_diagonal, upcast, config):
    """(lse, target logit) per row of x against all rows of y, base-2 units, fp32 [M]."""
    m, d = x.shape
    lse = _common.empty((m,), torch.float32, x.device)
    tgt_logit = _common.empty((m,), torch.float32, x.device)
    config = config["lse"]
    grid = (triton.cdiv(m, config["BLOCK_M"]),)
    with _device(x):
        _lse_kernel[grid](
            x, y, tgt, lse, tgt_logit, m, y.shape[0], d, _LOG2E / tau,
            MASK_DIAG=mask_diagonal, UPCAST=upcast, PRECISION=_common.dot_precision(), **config,
        )
    return lse, tgt_logit


def _grad(x, y, x_side, y_side, tau, mask_diagonal, upcast, out_dtype, config):
    """dL/dx for the loss whose dL/ds has the given x-side / y-side terms (each (lse, w, tgt) or None)."""
    m, d = x.shape
    dx = _common.empty((m, d), out_dtype, x.device)
    unused = (dx, dx, dx)  # pointer arguments of a term the kernel skips
    config = config["grad"]
    grid = (triton.cdiv(m, config["BLOCK_M"]),)
    with _device(x):
        _grad_kernel[grid](
            x, y, dx, *(x_side or unused), *(y_side or unused), m, y.shape[0], d, _LOG2E / tau, 1.0 / tau,
            X_TERM=x_side is not None, Y_TERM=y_side is not None, MASK_DIAG=mask_diagonal,
            UPCAST=upcast, PRECISION=_common.dot_precision(), **config,
        )
    return dx


class _InfoNCE(torch.autograd.Function):
    @staticmethod
    def forward(ctx, a, b, tau, positive, mask_diagonal, config):
        ctx.dtypes = (a.dtype, b.dtype)
        if a.dtype != b.dtype or _common.interpreting():
            a, b = a.float(), b.float()  # one operand dtype for tl.dot; the interpreter mis-multiplies bf16
        a, b = a.contiguous(), b.contiguous()
        upcast = _common.compute_in_fp32(a.dtype)
        launch = _launch_config(max(a.shape[0], b.shape[0]), a.shape[1], not upcast)
        for kernel_config in launch.values():
            kernel_config.update(config or {})
        n = a.shape[0]
        if positive is None:
            tgt = torch.arange(n, dtype=torch.int32, device=a.device)
            lse_a, t_a = _row_lse(a, b, tgt, tau, False, upcast, launch)
            lse_b, t_b = _row_lse(b, a, tgt, tau, False, upcast, launch)
            loss = 0.5 * _LN2 * ((lse_a - t_a).mean() + (lse_b - t_b).mean())
            weight = torch.full((n,), 0.5 / n, dtype=torch.float32, device=a.device)
            ctx.save_for_backward(a, b, lse_a, lse_b, tgt, weight)
        else:
            tgt = positive.to(device=a.device, dtype=torch.int32).contiguous()
            valid = tgt >= 0
            n_valid = valid.sum()
            lse_a, t_a = _row_lse(a, b, tgt, tau, mask_diagonal, upcast, launch)
            per_row = torch.where(valid, lse_a - t_a, torch.zeros_like(lse_a))
            loss = _LN2 * per_row.sum() / n_valid.clamp(min=1)
            weight = valid.float() / n_valid.clamp(min=1)
            ctx.save_for_backward(a, b, lse_a, tgt, weight)
        ctx.symmetric = positive is None
        ctx.tau, ctx.mask_diagonal, ctx.upcast, ctx.launch = tau, mask_diagonal, upcast, launch
        return loss

    @staticmethod
    def backward(ctx, grad_loss):
        tau, mask, upcast, launch = ctx.tau, ctx.mask_diagonal, ctx.upcast, ctx.launch
        if ctx.symmetric:
            a, b, lse_a, lse_b, tgt, weight = ctx.saved_tensors
            w = (weight * grad_loss).contiguous()
            side_a, side_b = (lse_a, w, tgt), (lse_b, w, tgt)
            da = _grad(a, b, side_a, side_b, tau, False, upcast, ctx.dtypes[0], launch)
            db = _grad(b, a, side_b, side_a, tau, False, upcast, ctx.dtypes[1], launch)
        else:
            a, b, lse_a, tgt, weight = ctx.saved_tensors
            side_a = (lse_a, (weight * grad_loss).contiguous(), tgt)
            da = _grad(a, b, side_a, None, tau, mask, upcast, ctx.dtypes[0], launch)
            db = _grad(b, a, None, side_a, tau, mask, upcast, ctx.dtypes[1], launch)
        return da, db, None, None, None, None


def info_nce_triton(
    a: torch.Tensor,
    b: torch.Tensor,
    tau: float,
    positive: torch.Tensor | None = None,
    mask_diagonal: bool = False,
    config: dict | None = None,
) -> torch.Tensor:
    """Same loss as `info_nce_reference`, differentiable w.r.t. a and b (b may be a itself).

    tau is a plain number (no gradient). config overrides the launch parameters, for tuning.
    """
    if a.ndim != 2 or b.ndim != 2 or a.shape[1] != b.shape[1]:
        raise ValueError(f"info_nce_triton: a [B, D] and b [B', D], got {tuple(a.shape)} and {tuple(b.shape)}")
    if positive is None and a.shape[0] != b.shape[0]:
        raise ValueError("info_nce_triton: the symmetric loss needs as many rows in a as in b")
    if positive is not None and (positive.ndim != 1 or positive.shape[0] != a.shape[0]):
        raise ValueError(f"info_nce_triton: positive must be [B] = [{a.shape[0]}], got {tuple(positive.shape)}")
    tau = float(tau)
    if not (tau > 0 and math.isfinite(tau)):
        raise ValueError(f"info_nce_triton: tau must be a positive number, got {tau}")
    if a.shape[0] == 0 or a.shape[1] == 0:
        from mqlrec.ops.reference import info_nce_reference  # nothing to launch

        return info_nce_reference(a, b, tau, positive=positive, mask_diagonal=mask_diagonal)
    return _InfoNCE.apply(a, b, tau, positive, mask_diagonal, config)
