"""Incremental T5 decoder for beam search, reading the weights of a transformers T5ForConditionalGeneration.

Why not call the HF decoder: with W beams per user HF expands the encoder states W times and
projects cross-attention keys/values for every beam. Here the encoder runs once per user, its
cross-attention K/V are projected once per user and every beam's query attends to them through
scaled_dot_product_attention over [user, head] (no per-beam copy). The self-attention cache holds
only the few decoded positions, position-major, and is reordered by parent beam after each step.

Numerics follow transformers' T5 (RMS layer norm in fp32, no 1/sqrt(d) attention scaling, relative
position bias from the first decoder layer, output scaled by d_model^-0.5 when embeddings are tied).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
import torch.nn.functional as F


@dataclass
class DecoderState:
    """Per-batch decoding state: cross-attention K/V per layer [B, H, S, d_kv] (shared by a user's
    beams), the padding bias [B, 1, 1, S] (None without padding), and the self-attention cache per
    layer, (K, V) each [capacity, B * W, H, d_kv], of which positions [:t] are filled."""

    cross: list
    mask_bias: torch.Tensor | None
    capacity: int
    cache: list = field(default_factory=list)
    t: int = 0


def _rms(x, weight, eps):
    var = x.float().pow(2).mean(-1, keepdim=True)
    return weight * (x * torch.rsqrt(var + eps))


class T5BeamDecoder:
    def __init__(self, model):
        cfg = model.config
        self.model = model
        self.n_heads = cfg.num_heads
        self.d_kv = cfg.d_kv
        self.eps = cfg.layer_norm_epsilon
        self.embed = model.get_input_embeddings().weight
        dec = model.decoder
        self.blocks = list(dec.block)
        self.final_norm = dec.final_layer_norm.weight
        self.scale_out = model.model_dim**-0.5 if getattr(cfg, "scale_decoder_outputs", cfg.tie_word_embeddings) else 1.0
        self.lm_head = model.lm_head.weight  # [V, D]
        first = self.blocks[0].layer[0].SelfAttention
        self.rel_bias = first  # has compute_bias
        # fused q/k/v projection per layer for self-attention
        self.qkv = [
            torch.cat([b.layer[0].SelfAttention.q.weight, b.layer[0].SelfAttention.k.weight, b.layer[0].SelfAttention.v.weight], 0)
            for b in self.blocks
        ]

    @property
    def inner(self) -> int:
        return self.n_heads * self.d_kv

    @torch.no_grad()
    def encode(self, input_ids, attention_mask, capacity: int = 8):
        """Encoder once per user -> DecoderState with cross-attention K/V [B, H, S, d_kv] per layer.
        `capacity`: decoder positions the self-attention cache holds before it has to grow."""
        enc = self.model.encoder(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
        B, S, _ = enc.shape
        cross = []
        for b in self.blocks:
            att = b.layer[1].EncDecAttention
            k = F.linear(enc, att.k.weight).view(B, S, self.n_heads, self.d_kv).transpose(1, 2).contiguous()
            v = F.linear(enc, att.v.weight).view(B, S, self.n_heads, self.d_kv).transpose(1, 2).contiguous()
            cross.append((k, v))
        mask_bias = None  # no padding: attention needs no mask
        if not bool(attention_mask.all()):
            mask_bias = (1.0 - attention_mask.to(enc.dtype))[:, None, None, :] * torch.finfo(enc.dtype).min
        return DecoderState(cross, mask_bias, capacity)

    def _advance_cache(self, state, B, W, parent):
        """Make room for position t in every layer's cache, reordered to the new beams.

        The cache is position-major, [capacity, rows, H, d_kv], so the filled prefix [:t] is one
        contiguous block: a reorder is one index_select into a fresh buffer, and a step without reorder
        writes in place (no torch.cat copy per step)."""
        t, rows = state.t, B * W
        if t == 0:
            shape = (max(state.capacity, 1), rows, self.n_heads, self.d_kv)
            state.cache = [(self.embed.new_empty(shape), self.embed.new_empty(shape)) for _ in self.blocks]
            return
        prev = state.cache[0][0].shape[1]
        if parent is None and prev != rows:
            raise ValueError(f"{rows} beams follow {prev} without a parent index to reorder the cache by")
        cap = state.cache[0][0].shape[0]
        if parent is None and t < cap:
            return  # same beams, room left: write position t in place
        index = None
        if parent is not None:
            w_prev = prev // B
            index = (parent.long().clamp(min=0) + w_prev * torch.arange(B, device=parent.device)[:, None]).reshape(-1)
        if t >= cap:
            cap *= 2
        fresh = []
        for kv in state.cache:
            pair = []
            for c in kv:
                out = c.new_empty((cap, rows) + c.shape[2:])
                if index is None:
                    out[:t].copy_(c[:t])
                else:
                    torch.index_select(c[:t], 1, index, out=out[:t])
                pair.append(out)
            fresh.append(tuple(pair))
        state.cache = fresh

    @torch.no_grad()
    def step(self, state, tokens, parent=None):
        """Feed tokens [B, W] at the next position; parent [B, W] (beam each one extends, None while
        the beams stay the same) reorders the self-attention cache. Returns the final hidden states
        [B, W, D], already scaled for the LM head."""
        B, W = tokens.shape
        t = state.t
        H, dk = self.n_heads, self.d_kv
        self._advance_cache(state, B, W, parent)
        bias = self.rel_bias.compute_bias(t + 1, t + 1, device=tokens.device)[0, :, -1, :].T[:, None, :]  # [t+1, 1, H]
        x = F.embedding(tokens, self.embed)  # [B, W, D]
        for i, blk in enumerate(self.blocks):
            sa = blk.layer[0]
            h = _rms(x, sa.layer_norm.weight, self.eps)
            q, k, v = F.linear(h, self.qkv[i]).view(B * W, 3, H, dk).unbind(1)  # each [B*W, H, dk]
            ck, cv = state.cache[i]
            ck[t].copy_(k)
            cv[t].copy_(v)
            # t+1 <= L+1 keys per beam: broadcast multiply-and-sum beats a batched matmul of 1-row matrices
            scores = (q * ck[: t + 1]).sum(-1) + bias  # [t+1, B*W, H]
            att = (scores.softmax(0).unsqueeze(-1) * cv[: t + 1]).sum(0).view(B, W, H * dk)
            x = x + F.linear(att, sa.SelfAttention.o.weight)

            ca = blk.layer[1]
            h = _rms(x, ca.layer_norm.weight, self.eps)
            q = F.linear(h, ca.EncDecAttention.q.weight).view(B, W, H, dk).transpose(1, 2)  # [B, H, W, dk]
            xk, xv = state.cross[i]  # [B, H, S, dk], shared by the user's beams
            att = F.scaled_dot_product_attention(q, xk, xv, attn_mask=state.mask_bias, scale=1.0)
            x = x + F.linear(att.transpose(1, 2).reshape(B, W, H * dk), ca.EncDecAttention.o.weight)

            ff = blk.layer[2]
            x = x + ff.DenseReluDense(_rms(x, ff.layer_norm.weight, self.eps))
        state.t = t + 1
        return _rms(x, self.final_norm, self.eps) * self.scale_out

    @torch.no_grad()
    def last_hidden(self, state, prefixes, users):
        """Decode whole prefixes from scratch: prefixes [U, P, t] (decoder start first) of users
        [U] (indices into the encoded batch) -> final hidden states at the last position [U, P, D]."""
        mask = None if state.mask_bias is None else state.mask_bias[users]
        fresh = DecoderState([(k[users], v[users]) for k, v in state.cross], mask, prefixes.shape[2])
        for p in range(prefixes.shape[2]):
            hidden = self.step(fresh, prefixes[:, :, p])
        return hidden

    def logits(self, hidden, lo: int = 0, hi: int | None = None):
        """LM head restricted to token rows [lo, hi) (the whole vocabulary by default)."""
        w = self.lm_head if (lo == 0 and hi is None) else self.lm_head[lo:hi]
        return F.linear(hidden, w)
