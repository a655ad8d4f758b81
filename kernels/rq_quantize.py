"""Residual quantization, all levels in one launch.

One program owns BLOCK_N rows. Their running residual [BLOCK_N, D] stays in registers across the L
levels; per level the program streams the level's codebook in tiles of BLOCK_K codewords, gets the
distance tile from one tl.dot (||r||^2 - 2 r.c + ||c||^2, the reference's formula), and keeps a
running argmin (strict < across tiles and tl.min's left tie-break inside one, so ties go to the
lowest index). The chosen codeword is gathered (the codebook is small and stays in L1/L2), added to
the quantized sum and subtracted from the residual. Nothing of size N x K ever reaches memory:
per row the kernel reads D inputs and writes L codes + D outputs (+ L*D residuals if asked).

With topk=T the program also keeps, per row, the T nearest codes of each level in a sorted list
that is merged with every distance tile (T selection steps per tile); that path is for the one-off
collision reallocation, not for the training loop.
"""

from __future__ import annotations

import contextlib

import torch
import triton
import triton.language as tl

from mqlrec.kernels import _common
from mqlrec.ops.reference import RQResult, rq_quantize_reference


@triton.jit
def _rq_kernel(
    x_ptr,  # [N, D] fp32 / bf16 / fp16, contiguous
    cb_ptr,  # [L, K, D], contiguous
    codes_ptr,  # [N, L] int64
    quant_ptr,  # [N, D] fp32
    resid_ptr,  # [L, N, D] fp32 (only touched when STORE_RESID)
    topc_ptr,  # [N, L, T] int64 (only touched when T > 0)
    topd_ptr,  # [N, L, T] fp32
    N,
    D,
    K,
    L: tl.constexpr,
    T: tl.constexpr,
    BLOCK_T: tl.constexpr,
    BLOCK_N: tl.constexpr,
    BLOCK_K: tl.constexpr,
    BLOCK_D: tl.constexpr,
    STORE_RESID: tl.constexpr,
    PRECISION: tl.constexpr,
):
    pid = tl.program_id(0)
    rows = pid * BLOCK_N + tl.arange(0, BLOCK_N)
    row_ok = rows < N
    rows64 = rows.to(tl.int64)  # N * D and L * N * D can pass 2^31
    dims = tl.arange(0, BLOCK_D)
    dim_ok = dims < D
    tile_ok = row_ok[:, None] & dim_ok[None, :]
    row_dim = rows64[:, None] * D + dims[None, :]
    kk = tl.arange(0, BLOCK_K)
    tpos = tl.arange(0, BLOCK_T)

    # Padded dimensions load as 0 and stay 0: they add nothing to norms or dot products.
    r = tl.load(x_ptr + row_dim, mask=tile_ok, other=0.0).to(tl.float32)
    q = tl.zeros([BLOCK_N, BLOCK_D], dtype=tl.float32)
    for level in tl.static_range(L):
        cb_level = cb_ptr + level * K * D
        if STORE_RESID:
            tl.store(resid_ptr + level * N * D + row_dim, r, mask=tile_ok)
        rr = tl.sum(r * r, axis=1)
        best_d = tl.full([BLOCK_N], float("inf"), dtype=tl.float32)
        best_i = tl.zeros([BLOCK_N], dtype=tl.int32)
        top_d = tl.full([BLOCK_N, BLOCK_T], float("inf"), dtype=tl.float32)
        top_i = tl.zeros([BLOCK_N, BLOCK_T], dtype=tl.int32)
        for k0 in tl.range(0, K, BLOCK_K):
            cols = k0 + kk
            col_ok = cols < K
            c = tl.load(
                cb_level + cols[:, None] * D + dims[None, :],
                mask=col_ok[:, None] & dim_ok[None, :],
                other=0.0,
            ).to(tl.float32)
            cc = tl.sum(c * c, axis=1)
            dot = tl.dot(r, tl.trans(c), input_precision=PRECISION)
            dist = rr[:, None] - 2.0 * dot + cc[None, :]
            dist = tl.where(col_ok[None, :], dist, float("inf"))
            if T == 0:
                tile_d, tile_i = tl.min(dist, axis=1, return_indices=True, return_indices_tie_break_left=True)
                better = tile_d < best_d  # strict: an earlier tile (lower index) keeps a tie
                best_d = tl.where(better, tile_d, best_d)
                best_i = tl.where(better, tile_i + k0, best_i)
            else:
                # Merge the sorted list (lower indices, so it wins ties) with this tile, T picks.
                list_d = top_d
                new_d = tl.full([BLOCK_N, BLOCK_T], float("inf"), dtype=tl.float32)
                new_i = tl.zeros([BLOCK_N, BLOCK_T], dtype=tl.int32)
                for t in tl.range(0, T):
                    lm, li = tl.min(list_d, axis=1, return_indices=True, return_indices_tie_break_left=True)
                    dm, di = tl.min(dist, axis=1, return_indices=True, return_indices_tie_break_left=True)
                    from_list = lm <= dm
                    list_hit = tpos[None, :] == li[:, None]
                    tile_hit = kk[None, :] == di[:, None]
                    list_code = tl.sum(tl.where(list_hit, top_i, 0), axis=1)
                    pick_d = tl.where(from_list, lm, dm)
                    pick_i = tl.where(from_list, list_code, di + k0)
                    list_d = tl.where(from_list[:, None] & list_hit, float("inf"), list_d)
                    dist = tl.where((~from_list)[:, None] & tile_hit, float("inf"), dist)
                    slot = tpos[None, :] == t
                    new_d = tl.where(slot, pick_d[:, None], new_d)
                    new_i = tl.where(slot, pick_i[:, None], new_i)
                top_d = new_d
                top_i = new_i
        if T > 0:
            best_i = tl.sum(tl.where(tpos[None, :] == 0, top_i, 0), axis=1)
            top_off = (rows64[:, None] * L + level) * T + tpos[None, :]
            top_ok = row_ok[:, None] & (tpos[None, :] < T)
            tl.store(topc_ptr + top_off, top_i.to(tl.int64), mask=top_ok)
            tl.store(topd_ptr + top_off, top_d, mask=top_ok)
        chosen = tl.load(cb_level + best_i[:, None] * D + dims[None, :], mask=tile_ok, other=0.0).to(tl.float32)
        q = q + chosen
        r = r - chosen
        tl.store(codes_ptr + rows64 * L + level, best_i.to(tl.int64), mask=row_ok)
    tl.store(quant_ptr + row_dim, q, mask=tile_ok)


def _launch_config(n: int, k: int, d: int, topk: int) -> dict:
    """Block sizes picked from the shape (no autotuning: the interpreter cannot time configs).

    GPU (from the sm_90 compile report, bench/kernel_report.py; not yet timed): 128 rows x 64
    codewords per tile with 8 warps keeps the tf32x3 distance tile in registers without spills
    (236 registers at D = 32, 234 with 64 rows at D = 64); wider rows shrink the tiles (D = 128
    still spills some). The top-T merge holds two more [rows, T] lists, so it uses small tiles. Interpreter: large tiles, because every tile operation
    costs a Python round trip there.
    """
    block_d = max(16, _common.next_pow2(d))
    if _common.interpreting():
        return dict(BLOCK_N=max(16, min(256, _common.next_pow2(n))), BLOCK_K=max(16, min(256, _common.next_pow2(k))),
                    BLOCK_D=block_d, num_warps=4)
    if topk:
        return dict(BLOCK_N=32 if block_d <= 32 else 16, BLOCK_K=32, BLOCK_D=block_d, num_warps=4,
                    num_stages=2 if block_d <= 32 else 1)
    block_n = 128 if block_d <= 32 else (64 if block_d <= 128 else 32)
    block_n = min(block_n, max(16, _common.next_pow2(n)))  # tiny N: do not pad 1 row to 128
    block_k = max(16, min(64 if block_d <= 64 else 32, _common.next_pow2(k)))
    return dict(BLOCK_N=block_n, BLOCK_K=block_k, BLOCK_D=block_d, num_warps=8, num_stages=2)


def rq_quantize_triton(
    x: torch.Tensor,
    codebooks: torch.Tensor,
    return_residuals: bool = False,
    topk: int = 0,
    config: dict | None = None,
) -> RQResult:
    """Same result as `rq_quantize_reference` (codes int64; ties -> lowest index), one kernel launch.

    config overrides the launch parameters (BLOCK_N, BLOCK_K, num_warps, num_stages), for tuning.
    """
    if x.ndim != 2 or codebooks.ndim != 3 or codebooks.shape[2] != x.shape[1]:
        raise ValueError(f"rq_quantize_triton: x [N, D] and codebooks [L, K, D], got {tuple(x.shape)} and {tuple(codebooks.shape)}")
    if x.device != codebooks.device:
        raise ValueError(f"rq_quantize_triton: x on {x.device} but codebooks on {codebooks.device}")
    if topk < 0:
        raise ValueError(f"rq_quantize_triton: topk must be >= 0, got {topk}")
    n, d = x.shape
    n_levels, k, _ = codebooks.shape
    if n == 0 or d == 0 or n_levels == 0 or k == 0:  # degenerate shapes: nothing to launch
        return rq_quantize_reference(x, codebooks, return_residuals=return_residuals, topk=topk)
    t = min(int(topk), k)
    dev = x.device
    codes = _common.empty((n, n_levels), torch.int64, dev)
    quantized = _common.empty((n, d), torch.float32, dev)
    residuals = _common.empty((n_levels, n, d), torch.float32, dev) if return_residuals else None
    top_codes = _common.empty((n, n_levels, t), torch.int64, dev) if t else None
    top_dists = _common.empty((n, n_levels, t), torch.float32, dev) if t else None
    x = x.contiguous()
    codebooks = codebooks.contiguous()
    if _common.interpreting():
        x, codebooks = x.float(), codebooks.float()
    launch = _launch_config(n, k, d, t)
    launch.update(config or {})
    dummy = codes  # pointer arguments the kernel never touches in this mode
    grid = (triton.cdiv(n, launch["BLOCK_N"]),)
    with torch.cuda.device(dev) if dev.type == "cuda" else contextlib.nullcontext():
        _rq_kernel[grid](
            x, codebooks, codes, quantized,
            residuals if residuals is not None else dummy,
            top_codes if t else dummy,
            top_dists if t else dummy,
            n, d, k,
            L=n_levels, T=t, BLOCK_T=max(2, _common.next_pow2(t)),
            STORE_RESID=bool(return_residuals), PRECISION=_common.dot_precision(),
            **launch,
        )
    return RQResult(codes=codes, quantized=quantized, residuals=residuals, topk_codes=top_codes, topk_dists=top_dists)
