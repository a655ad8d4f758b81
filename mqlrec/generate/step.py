"""The trie-constrained beam step (DESIGN.md contract): torch reference, C++ and CUDA dispatch.

Inputs: logp [B, W_in, V] float32 (log-probs of the tokens token_offset .. token_offset + V - 1),
score [B, W_in] float32, node [B, W_in] int32 (-1 = dead beam). Candidates are (beam w, child edge e)
with score[b, w] + logp[b, w, child_token[e] - token_offset]; the best W_out are kept, ties broken by
lower parent beam, then lower token. A candidate scoring -inf (or NaN) is no candidate; missing
candidates give dead outputs (score -inf, node / parent / token -1).
Outputs: score', node', parent, token, each [B, W_out].
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from mqlrec.language import Trie

STEPS = ("torch", "cpp", "cuda")


@dataclass
class TrieTensors:
    """A trie's CSR arrays as int32 tensors on one device (what the step implementations read)."""

    child_ptr: torch.Tensor
    child_token: torch.Tensor
    child_node: torch.Tensor
    n_nodes: int

    @classmethod
    def of(cls, trie: Trie, device) -> "TrieTensors":
        def t(a):
            return torch.as_tensor(np.ascontiguousarray(a, dtype=np.int32), device=device)

        return cls(t(trie.child_ptr), t(trie.child_token), t(trie.child_node), trie.n_nodes)


def _native():
    try:
        from mqlrec import _C
    except ImportError:
        return None
    return _C if hasattr(_C, "beam_step") else None


def cuda_step_available() -> bool:
    native = _native()
    return native is not None and hasattr(native, "beam_step_cuda") and torch.cuda.is_available()


def resolve_step(step: str, device: torch.device) -> str:
    """'auto' -> cuda for CUDA tensors when built, else cpp when built, else torch."""
    if step not in STEPS + ("auto",):
        raise ValueError(f"step must be one of {STEPS + ('auto',)}, got {step!r}")
    if step == "auto":
        if device.type == "cuda":
            return "cuda" if cuda_step_available() else "torch"
        return "cpp" if _native() is not None else "torch"
    if step == "cpp" and (_native() is None or device.type != "cpu"):
        raise RuntimeError("step='cpp' needs the built extension mqlrec._C and CPU tensors")
    if step == "cuda" and (not cuda_step_available() or device.type != "cuda"):
        raise RuntimeError("step='cuda' needs mqlrec._C built with CUDA and CUDA tensors")
    return step


def beam_step_reference(logp, score, node, trie: TrieTensors, token_offset: int = 0, w_out: int | None = None):
    """Plain torch: dense candidate mask + stable descending sort (stable = lower flat index on ties)."""
    B, w_in, V = logp.shape
    w_out = w_in if w_out is None else w_out
    device = logp.device
    node = node.long()
    alive = node >= 0
    safe = node.clamp(min=0)
    lo = torch.where(alive, trie.child_ptr.long()[safe], 0)
    count = torch.where(alive, trie.child_ptr.long()[safe + 1] - lo, 0)
    # one entry per (row, beam, child edge)
    flat_beam = torch.arange(B * w_in, device=device).repeat_interleave(count.flatten())
    first = torch.cumsum(count.flatten(), 0) - count.flatten()
    edge = lo.flatten()[flat_beam] + torch.arange(len(flat_beam), device=device) - first[flat_beam]
    token = trie.child_token.long()[edge] - token_offset
    if len(token) and (token.min() < 0 or token.max() >= V):
        raise IndexError("beam_step_reference: a child token minus token_offset falls outside logp's last dim")
    mask = torch.zeros(B * w_in, V, dtype=torch.bool, device=device)
    mask[flat_beam, token] = True
    child = torch.full((B * w_in, V), -1, dtype=torch.long, device=device)
    child[flat_beam, token] = trie.child_node.long()[edge]
    cand = score.reshape(B * w_in, 1) + logp.reshape(B * w_in, V)
    cand = torch.where(mask & ~torch.isnan(cand), cand, torch.full_like(cand, -torch.inf)).reshape(B, w_in * V)
    if w_in * V < w_out:  # fewer slots than outputs: pad with impossible candidates
        cand = torch.cat([cand, cand.new_full((B, w_out - w_in * V), -torch.inf)], 1)
    values, order = torch.sort(cand, dim=1, descending=True, stable=True)
    values, order = values[:, :w_out], order[:, :w_out]
    dead = values == -torch.inf
    order = order.clamp(max=w_in * V - 1)
    parent = order // V
    tok = order % V
    new_node = child.reshape(B, w_in * V).gather(1, order)
    minus = torch.full_like(order, -1)
    return (
        torch.where(dead, torch.full_like(values, -torch.inf), values),
        torch.where(dead, minus, new_node).int(),
        torch.where(dead, minus, parent).int(),
        torch.where(dead, minus, tok + token_offset).int(),
    )


def beam_step_cpp(logp, score, node, trie: TrieTensors, token_offset: int = 0, w_out: int | None = None):
    B, w_in, _ = logp.shape
    w_out = w_in if w_out is None else w_out
    outs = _empty_outputs(B, w_out, logp.device)
    _native().beam_step(
        logp.float().contiguous().numpy(),
        score.float().contiguous().numpy(),
        node.int().contiguous().numpy(),
        trie.child_ptr.numpy(),
        trie.child_token.numpy(),
        trie.child_node.numpy(),
        int(token_offset),
        *[o.numpy() for o in outs],
    )
    return outs


def beam_step_cuda(logp, score, node, trie: TrieTensors, token_offset: int = 0, w_out: int | None = None):
    # The kernel skips (never reads) out-of-range tokens instead of raising: callers check the trie's
    # token range against logp once per search (see check_token_range).
    B, w_in, V = logp.shape
    w_out = w_in if w_out is None else w_out
    logp, score, node = logp.float().contiguous(), score.float().contiguous(), node.int().contiguous()
    outs = _empty_outputs(B, w_out, logp.device)
    _native().beam_step_cuda(
        logp.data_ptr(), score.data_ptr(), node.data_ptr(),
        trie.child_ptr.data_ptr(), trie.child_token.data_ptr(), trie.child_node.data_ptr(),
        trie.n_nodes, B, w_in, V, int(token_offset), w_out,
        *[o.data_ptr() for o in outs],
        torch.cuda.current_stream(logp.device).cuda_stream,
    )
    return outs


def check_token_range(trie: Trie, token_offset: int, vocab: int) -> None:
    lo, hi = int(trie.child_token.min()), int(trie.child_token.max())
    if lo - token_offset < 0 or hi - token_offset >= vocab:
        raise ValueError(f"trie tokens [{lo}, {hi}] fall outside the model's logits [{token_offset}, {token_offset + vocab})")


def _empty_outputs(B, w_out, device):
    return (
        torch.empty(B, w_out, dtype=torch.float32, device=device),
        torch.empty(B, w_out, dtype=torch.int32, device=device),
        torch.empty(B, w_out, dtype=torch.int32, device=device),
        torch.empty(B, w_out, dtype=torch.int32, device=device),
    )


_IMPLS = {"torch": beam_step_reference, "cpp": beam_step_cpp, "cuda": beam_step_cuda}


def beam_step(logp, score, node, trie: TrieTensors, token_offset: int = 0, w_out: int | None = None, step: str = "auto"):
    """Dispatch one beam step to the chosen implementation (see module docstring for the contract)."""
    return _IMPLS[resolve_step(step, logp.device)](logp, score, node, trie, token_offset, w_out)
