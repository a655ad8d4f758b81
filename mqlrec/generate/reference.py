"""Plain references for the searches: simple and obviously right, used by tests and the benchmark.

- reference_beam_search: the HF model is re-run on the full decoder prefix at every step (encoder
  states copied per beam), dense-mask torch beam step; same scores as beam_search.
- score_all_leaves: teacher-forced score of every trie leaf (brute force); its top-K is the exact top-K.
"""

from __future__ import annotations

import numpy as np
import torch

from mqlrec.generate.beam_search import eos_id, level_token_ranges, validate_inputs
from mqlrec.generate.ranking import Ranking, ranking_from_leaves
from mqlrec.generate.step import TrieTensors, beam_step_reference
from mqlrec.language import EOS_ID, Trie


def _logp(logits, lo, hi, normalise):
    """Log-probs of tokens [lo, hi) under the chosen normalisation."""
    if normalise == "full":
        return logits.log_softmax(-1)[..., lo:hi]
    return logits[..., lo:hi].log_softmax(-1)


@torch.no_grad()
def reference_beam_search(model, input_ids, attention_mask, trie: Trie, beam_width: int = 20,
                          normalise: str = "full") -> Ranking:
    validate_inputs(model, input_ids, attention_mask, trie, beam_width, normalise)
    model.eval()
    B, W, L = input_ids.shape[0], int(beam_width), trie.depth
    tt = TrieTensors.of(trie, input_ids.device)
    enc = model.encoder(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
    enc = enc.repeat_interleave(W, 0)  # a copy per beam: simple, not fast
    mask = attention_mask.repeat_interleave(W, 0)
    start = model.config.decoder_start_token_id or 0
    seqs = torch.full((B, W, 1), start, dtype=torch.long, device=input_ids.device)
    score = torch.zeros(B, W, device=input_ids.device)
    score[:, 1:] = -torch.inf
    node = torch.full((B, W), -1, dtype=torch.int32, device=input_ids.device)
    node[:, 0] = 0  # at step 0 only beam 0 is alive

    def last_logits():
        out = model(encoder_outputs=(enc,), attention_mask=mask, decoder_input_ids=seqs.reshape(B * W, -1))
        return out.logits[:, -1].reshape(B, W, -1)

    for lo, hi in level_token_ranges(trie):
        logp = _logp(last_logits(), lo, hi, normalise)
        score, node, parent, tok = beam_step_reference(logp, score, node, tt, lo, W)
        seqs = torch.cat([seqs.gather(1, parent.long().clamp(min=0)[:, :, None].expand_as(seqs)),
                          tok.long().clamp(min=0)[:, :, None]], 2)
    if normalise == "full":
        final = (score + last_logits().log_softmax(-1)[..., eos_id(model)]) / (L + 1)
    else:
        final = score / L
    final = torch.where(node >= 0, final, torch.full_like(final, -torch.inf))
    order = torch.sort(final, dim=1, descending=True, stable=True).indices
    return ranking_from_leaves(trie, node.gather(1, order).cpu().numpy(), final.gather(1, order).cpu().numpy())


def leaf_paths(trie: Trie) -> tuple[np.ndarray, np.ndarray]:
    """(leaf node ids [N_leaves], their token paths [N_leaves, L]) by walking the CSR arrays."""
    paths = np.zeros((1, 0), dtype=np.int64)
    nodes = np.zeros(1, dtype=np.int64)
    for _ in range(trie.depth):
        counts = trie.child_ptr[nodes + 1] - trie.child_ptr[nodes]
        edges = np.concatenate([np.arange(trie.child_ptr[n], trie.child_ptr[n + 1]) for n in nodes])
        paths = np.concatenate([np.repeat(paths, counts, 0), trie.child_token[edges][:, None]], 1)
        nodes = trie.child_node[edges].astype(np.int64)
    return nodes, paths


@torch.no_grad()
def score_all_leaves(model, input_ids, attention_mask, trie: Trie, normalise: str = "full",
                     chunk: int = 4096) -> tuple[np.ndarray, np.ndarray]:
    """Teacher-forced score of every leaf for every user: (leaf ids [N], scores [B, N]) with the same
    definition as beam_search (full: (sum log p + log p(eos)) / (L + 1); level: mean)."""
    model.eval()
    leaves, paths = leaf_paths(trie)
    ranges = level_token_ranges(trie)
    L = trie.depth
    start = model.config.decoder_start_token_id or 0
    dev = input_ids.device
    enc = model.encoder(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
    out = np.zeros((input_ids.shape[0], len(leaves)), dtype=np.float32)
    path_t = torch.as_tensor(paths, device=dev)
    for b in range(input_ids.shape[0]):
        for s in range(0, len(leaves), chunk):
            p = path_t[s : s + chunk]
            n = p.shape[0]
            dec_in = torch.cat([torch.full((n, 1), start, dtype=torch.long, device=dev), p], 1)
            logits = model(encoder_outputs=(enc[b : b + 1].expand(n, -1, -1),),
                           attention_mask=attention_mask[b : b + 1].expand(n, -1), decoder_input_ids=dec_in).logits
            total = torch.zeros(n, device=dev)
            for d, (lo, hi) in enumerate(ranges):
                total += _logp(logits[:, d], lo, hi, normalise).gather(1, (p[:, d] - lo)[:, None])[:, 0]
            if normalise == "full":
                total = (total + logits[:, L].log_softmax(-1)[:, eos_id(model)]) / (L + 1)
            else:
                total = total / L
            out[b, s : s + n] = total.cpu().numpy()
    return leaves, out


def exact_from_scores(trie: Trie, leaves: np.ndarray, scores: np.ndarray, k: int) -> Ranking:
    """Top-k leaves per user from score_all_leaves (stable: lower leaf id first on ties) -> Ranking."""
    order = np.argsort(-scores, axis=1, kind="stable")[:, :k]
    return ranking_from_leaves(trie, leaves[order], np.take_along_axis(scores, order, 1))


def hf_prefix_allowed_tokens(trie: Trie, eos: int = EOS_ID):
    """`prefix_allowed_tokens_fn` for HF `generate` over the official trie: [decoder start] + code
    tokens + [eos]. The oracle our search is compared with in tests and benchmarks."""

    def allowed(batch_id, sent):
        toks = sent.tolist()[1:]
        if len(toks) == trie.depth:
            return [eos]
        node = trie.walk(toks)
        return trie.children(node)[0].tolist() if node >= 0 else []

    return allowed
