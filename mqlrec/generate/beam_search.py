"""Fast trie-constrained beam search over the L code steps of a T5 recommender.

Scores (normalise="full", the default) are exactly Hugging Face's `sequences_scores` as the official
MQL4GRec test script gets them from `generate(num_beams=W, prefix_allowed_tokens_fn=trie of
[0] + codes + [eos], length_penalty=1.0)`: per step log-softmax over the FULL vocabulary, one extra
decoder step for the forced eos, and (sum of the L code log-probs + log p(eos)) / (L + 1). The beams
kept after each code step are the same as HF's; the final list is sorted by that score.

normalise="level" normalises each step over the code tokens of the current level only (the LM head
is projected onto those rows only) and skips the eos step; its score is the mean code log-prob
(sum / L). It ranks slightly differently from HF and is a little cheaper; see docs/generate.md.
"""

from __future__ import annotations

import nvtx
import torch

from mqlrec.generate.batching import run_in_chunks
from mqlrec.generate.ranking import Ranking, ranking_from_leaves
from mqlrec.generate.step import TrieTensors, beam_step, check_token_range, resolve_step
from mqlrec.generate.t5_decoder import T5BeamDecoder
from mqlrec.language import EOS_ID, Trie

NORMALISE = ("full", "level")


def level_token_ranges(trie: Trie) -> list[tuple[int, int]]:
    """Per depth d (0-based), the token range [lo, hi) of the edges leaving depth-d nodes.

    Nodes are numbered breadth-first, so the nodes of one depth form a contiguous id range."""
    ranges = []
    start, end = 0, 1
    for _ in range(trie.depth):
        e0, e1 = int(trie.child_ptr[start]), int(trie.child_ptr[end])
        toks = trie.child_token[e0:e1]
        ranges.append((int(toks.min()), int(toks.max()) + 1))
        start, end = e0 + 1, e1 + 1
    return ranges


def eos_id(model) -> int:
    eos = model.config.eos_token_id
    return EOS_ID if eos is None else int(eos if isinstance(eos, int) else eos[0])


def validate_inputs(model, input_ids, attention_mask, trie, beam_width, normalise):
    if not isinstance(trie, Trie):
        raise TypeError(f"trie must be a mqlrec.language.Trie, got {type(trie).__name__}")
    if input_ids.ndim != 2 or attention_mask.shape != input_ids.shape:
        raise ValueError(f"input_ids and attention_mask must both be [B, S], got {tuple(input_ids.shape)} and {tuple(attention_mask.shape)}")
    if int(beam_width) < 1:
        raise ValueError(f"beam_width must be >= 1, got {beam_width}")
    if normalise not in NORMALISE:
        raise ValueError(f"normalise must be one of {NORMALISE}, got {normalise!r}")
    check_token_range(trie, 0, model.config.vocab_size)


def beam_search(
    model,
    input_ids: torch.Tensor,
    attention_mask: torch.Tensor,
    trie: Trie,
    beam_width: int = 20,
    search: str = "beam",
    step: str = "auto",
    normalise: str = "full",
    batch_size: int | None = None,
    progress: bool = False,
) -> Ranking:
    """Top items per user under `model`, best first (see module docstring for the score).

    search="beam": beam search with `beam_width` beams; search="exact": the provably best
    `beam_width` leaves (mqlrec.generate.exact). step: "torch" | "cpp" | "cuda" | "auto".
    A beam width above the number of reachable leaves is fine: the missing beams are dead and rows
    are padded (items -1, scores -inf). Users are processed in chunks of `batch_size` (default: 32
    on CPU, 256 on CUDA), grouped by source length (mqlrec.generate.batching).
    """
    validate_inputs(model, input_ids, attention_mask, trie, beam_width, normalise)
    if search == "exact":
        from mqlrec.generate.exact import exact_search

        return exact_search(model, input_ids, attention_mask, trie, beam_width, normalise=normalise,
                            batch_size=batch_size, progress=progress)
    if search != "beam":
        raise ValueError(f"search must be 'beam' or 'exact', got {search!r}")
    model.eval()
    impl = resolve_step(step, input_ids.device)
    tt = TrieTensors.of(trie, input_ids.device)
    ranges = level_token_ranges(trie)
    W = int(beam_width)
    leaves, scores = run_in_chunks(
        lambda ids, mask: _search_chunk(model, ids, mask, tt, ranges, W, impl, normalise),
        input_ids, attention_mask, batch_size, W, "beam search", progress)
    return ranking_from_leaves(trie, leaves, scores)


@torch.no_grad()
def _search_chunk(model, input_ids, attention_mask, tt, ranges, W, impl, normalise):
    dec = T5BeamDecoder(model)
    with nvtx.annotate("encode"):
        state = dec.encode(input_ids, attention_mask, capacity=len(ranges) + 1)
    B = input_ids.shape[0]
    device = input_ids.device
    start = model.config.decoder_start_token_id
    tokens = torch.full((B, 1), 0 if start is None else start, dtype=torch.long, device=device)
    score = torch.zeros(B, 1, device=device)
    node = torch.zeros(B, 1, dtype=torch.int32, device=device)
    parent = None  # at step 0 only beam 0 is alive: run the decoder for that one beam
    for lo, hi in ranges:
        with nvtx.annotate("decoder step"):
            hidden = dec.step(state, tokens, parent)
        with nvtx.annotate("log-softmax"):
            if normalise == "full":
                logp = dec.logits(hidden).log_softmax(-1)[..., lo:hi]
            else:
                logp = dec.logits(hidden, lo, hi).log_softmax(-1)
        with nvtx.annotate("beam step"):
            score, node, parent, tok = beam_step(logp, score, node, tt, lo, W, impl)
        tokens = tok.long().clamp(min=0)  # dead beams feed a pad token; they have no candidates anyway
    if normalise == "full":
        with nvtx.annotate("eos step"):
            hidden = dec.step(state, tokens, parent)
            final = (score + dec.logits(hidden).log_softmax(-1)[..., eos_id(model)]) / (len(ranges) + 1)
    else:
        final = score / len(ranges)
    final = torch.where(node >= 0, final, torch.full_like(final, -torch.inf))
    order = torch.sort(final, dim=1, descending=True, stable=True).indices
    return node.gather(1, order).cpu().numpy(), final.gather(1, order).float().cpu().numpy()
