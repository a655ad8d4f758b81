"""Beam step: C++ == (CUDA when available) == torch reference == a plain-Python statement of the contract."""

import numpy as np
import pytest
import torch

from mqlrec.generate.step import TrieTensors, beam_step, beam_step_reference, cuda_step_available, resolve_step
from mqlrec.language import Trie


def random_trie(rng, levels, max_fanout, collisions=True):
    """Token paths with per-level fan-out up to max_fanout; some items share a path (collisions)."""
    k = int(rng.integers(1, max_fanout + 1))
    n = int(rng.integers(1, 400))
    codes = rng.integers(0, k, (n, levels))
    if collisions and n > 1:
        dup = rng.integers(0, n, n // 5)
        codes[dup] = codes[rng.integers(0, n, len(dup))]
    paths = 3 + np.arange(levels)[None, :] * k + codes  # token = offset of level + code
    return Trie.build(paths), k


def python_step(logp, score, node, trie, offset, w_out):
    """The DESIGN.md contract written as directly as possible."""
    B, w_in, V = logp.shape
    outs = [np.full((B, w_out), -np.inf, np.float32)] + [np.full((B, w_out), -1, np.int32) for _ in range(3)]
    for b in range(B):
        cand = []
        for w in range(w_in):
            if node[b, w] < 0:
                continue
            toks, kids = trie.children(node[b, w])
            for t, c in zip(toks, kids):
                s = np.float32(score[b, w]) + np.float32(logp[b, w, t - offset])
                if s > -np.inf:  # excludes -inf and NaN
                    cand.append((-s, w, t, c))
        cand.sort(key=lambda x: (x[0], x[1], x[2]))
        for j, (neg, w, t, c) in enumerate(cand[:w_out]):
            outs[0][b, j], outs[1][b, j], outs[2][b, j], outs[3][b, j] = -neg, c, w, t
    return outs


def random_state(rng, trie, k, levels, B, w_in, ties):
    """Random logp over the tokens of one level and beams at random nodes of the level above it."""
    depth = int(rng.integers(0, levels))
    # nodes at `depth`: walk breadth-first ranges
    start, end = 0, 1
    for _ in range(depth):
        start, end = int(trie.child_ptr[start]) + 1, int(trie.child_ptr[end]) + 1
    offset = 3 + depth * k
    V = k + int(rng.integers(0, 3))  # logp may be wider than the level
    logp = rng.standard_normal((B, w_in, V)).astype(np.float32)
    if ties:
        logp = np.round(logp * 2) / 2  # many equal values: exercises the tie rule
    score = rng.standard_normal((B, w_in)).astype(np.float32)
    if ties:
        score = np.round(score)
    node = rng.integers(start, end, (B, w_in)).astype(np.int32)
    node[rng.random((B, w_in)) < 0.2] = -1
    score[node < 0] = -np.inf
    logp[rng.random(logp.shape) < 0.05] = -np.inf
    logp[rng.random(logp.shape) < 0.01] = np.nan
    return logp, score, node, offset


def steps_to_check():
    steps = ["torch", "cpp"]
    if cuda_step_available():
        steps.append("cuda")
    return steps


@pytest.mark.parametrize("seed", range(40))
def test_step_implementations_agree_on_random_tries(seed):
    rng = np.random.default_rng(seed)
    levels = int(rng.integers(1, 6))
    max_fanout = [1, 3, 17, 300][seed % 4]
    trie, k = random_trie(rng, levels, max_fanout)
    B, w_in = int(rng.integers(1, 6)), int(rng.integers(1, 9))
    w_out = int(rng.integers(1, 12))
    logp, score, node, offset = random_state(rng, trie, k, levels, B, w_in, ties=seed % 2 == 0)
    want = python_step(logp, score, node, trie, offset, w_out)
    for step in steps_to_check():
        dev = "cuda" if step == "cuda" else "cpu"
        tt = TrieTensors.of(trie, dev)
        got = beam_step(torch.tensor(logp, device=dev), torch.tensor(score, device=dev),
                        torch.tensor(node, device=dev), tt, offset, w_out, step=step)
        got = [g.cpu().numpy() for g in got]
        np.testing.assert_array_equal(got[0], want[0], err_msg=f"{step} scores")
        for g, w, name in zip(got[1:], want[1:], ["node", "parent", "token"]):
            np.testing.assert_array_equal(g, w, err_msg=f"{step} {name}")


def test_step_zero_only_beam_zero_alive_and_dead_fill():
    # root with 2 children, 4 beams wanted: 2 alive outputs, 2 dead
    trie = Trie.build(np.array([[5, 9], [6, 9]]))
    logp = torch.log_softmax(torch.randn(1, 4, 10), -1)
    score = torch.tensor([[0.0, -torch.inf, -torch.inf, -torch.inf]])
    node = torch.tensor([[0, -1, -1, -1]], dtype=torch.int32)
    for step in steps_to_check():
        dev = "cuda" if step == "cuda" else "cpu"
        s, n, p, t = beam_step(logp.to(dev), score.to(dev), node.to(dev), TrieTensors.of(trie, dev), 0, 4, step=step)
        assert sorted(t[0, :2].tolist()) == [5, 6] and (p[0, :2] == 0).all()
        assert (n[0, 2:] == -1).all() and (p[0, 2:] == -1).all() and torch.isinf(s[0, 2:]).all()


def test_step_rejects_tokens_outside_logp():
    trie = Trie.build(np.array([[50]]))
    logp, score, node = torch.zeros(1, 1, 10), torch.zeros(1, 1), torch.zeros(1, 1, dtype=torch.int32)
    with pytest.raises(IndexError):
        beam_step_reference(logp, score, node, TrieTensors.of(trie, "cpu"), 0, 1)
    with pytest.raises(IndexError):  # pybind11 maps std::out_of_range to IndexError
        beam_step(logp, score, node, TrieTensors.of(trie, "cpu"), 0, 1, step="cpp")


def test_resolve_step():
    assert resolve_step("auto", torch.device("cpu")) == "cpp"
    with pytest.raises(ValueError):
        resolve_step("fast", torch.device("cpu"))
    with pytest.raises(RuntimeError):
        resolve_step("cuda", torch.device("cpu"))


@pytest.mark.skipif(not cuda_step_available(), reason="needs a GPU and mqlrec._C built with CUDA (this host has none)")
def test_cuda_step_large_fanout_many_beams():
    rng = np.random.default_rng(7)
    trie, k = random_trie(rng, 2, 300, collisions=False)
    k = int(trie.child_token.max()) + 1
    B, W = 33, 40
    logp = np.log(rng.dirichlet(np.ones(k), (B, W))).astype(np.float32)
    score = np.zeros((B, W), np.float32)
    node = np.zeros((B, W), np.int32)
    node[:, 1:] = -1
    score[:, 1:] = -np.inf
    want = beam_step(torch.tensor(logp), torch.tensor(score), torch.tensor(node), TrieTensors.of(trie, "cpu"), 0, W, step="cpp")
    got = beam_step(torch.tensor(logp, device="cuda"), torch.tensor(score, device="cuda"), torch.tensor(node, device="cuda"),
                    TrieTensors.of(trie, "cuda"), 0, W, step="cuda")
    for g, w in zip(got, want):
        np.testing.assert_array_equal(g.cpu().numpy(), w.numpy())
