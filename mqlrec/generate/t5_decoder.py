"""Incremental T5 decoder for beam search, reading the weights of a transformers T5ForConditionalGeneration.

Why not call the HF decoder: with W beams per user HF expands the encoder states W times and
projects cross-attention keys/values for every beam. Here the encoder runs once per user, its
cross-attention K/V are projected once per user and every beam's query attends to them through a
batched matmul over [user, head] (no per-beam copy). The self-attention cache holds only the few
decoded positions and is reordered by parent beam after each step.

Numerics follow transformers' T5 (RMS layer norm in fp32, no 1/sqrt(d) attention scaling, relative
position bias from the first decoder layer, output scaled by d_model^-0.5 when embeddings are tied).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


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
    def encode(self, input_ids, attention_mask):
        """Encoder once per user -> state dict with cross-attention K/V [B, H, S, d_kv] per layer."""
        enc = self.model.encoder(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
        B, S, _ = enc.shape
        cross = []
        for b in self.blocks:
            att = b.layer[1].EncDecAttention
            k = F.linear(enc, att.k.weight).view(B, S, self.n_heads, self.d_kv).transpose(1, 2)
            v = F.linear(enc, att.v.weight).view(B, S, self.n_heads, self.d_kv).transpose(1, 2)
            cross.append((k, v))
        mask_bias = (1.0 - attention_mask.to(enc.dtype))[:, None, None, :] * torch.finfo(enc.dtype).min  # [B,1,1,S]
        return {"cross": cross, "mask_bias": mask_bias, "self": None, "t": 0}

    @torch.no_grad()
    def step(self, state, tokens, parent=None):
        """Feed tokens [B, W] at the next position; parent [B, W] (beam each one extends, None at the
        first step) reorders the self-attention cache. Returns the final hidden states [B, W, D],
        already scaled for the LM head."""
        B, W = tokens.shape
        t = state["t"]
        H, dk = self.n_heads, self.d_kv
        if state["self"] is not None and parent is not None:
            # One row gather over the flattened [B * W_prev] beams: take_along_dim would broadcast the
            # index to the whole cache and wrap it with a remainder, about 6x the cost of this copy.
            prev = state["self"][0][0].shape[1]
            rows = (parent.long().clamp(min=0) + prev * torch.arange(B, device=parent.device)[:, None]).reshape(-1)
            state["self"] = [
                tuple(c.reshape(B * prev, *c.shape[2:]).index_select(0, rows).view(B, W, *c.shape[2:]) for c in kv)
                for kv in state["self"]
            ]
        bias = self.rel_bias.compute_bias(t + 1, t + 1, device=tokens.device)[:, :, -1, :]  # [1, H, t+1]
        x = F.embedding(tokens, self.embed)  # [B, W, D]
        new_cache = []
        for i, blk in enumerate(self.blocks):
            sa = blk.layer[0]
            h = _rms(x, sa.layer_norm.weight, self.eps)
            q, k, v = F.linear(h, self.qkv[i]).view(B, W, 3, H, dk).unbind(2)  # each [B, W, H, dk]
            if state["self"] is not None:
                pk, pv = state["self"][i]
                if pk.shape[1] != W:  # first step ran with fewer beams: broadcast to all
                    pk, pv = pk.expand(B, W, *pk.shape[2:]), pv.expand(B, W, *pv.shape[2:])
                k = torch.cat([pk, k[:, :, :, None]], 3)  # [B, W, H, t+1, dk]
                v = torch.cat([pv, v[:, :, :, None]], 3)
            else:
                k, v = k[:, :, :, None], v[:, :, :, None]
            new_cache.append((k, v))
            scores = torch.einsum("bwhd,bwhtd->bwht", q, k) + bias
            att = torch.einsum("bwht,bwhtd->bwhd", scores.softmax(-1), v).reshape(B, W, H * dk)
            x = x + F.linear(att, sa.SelfAttention.o.weight)

            ca = blk.layer[1]
            h = _rms(x, ca.layer_norm.weight, self.eps)
            q = F.linear(h, ca.EncDecAttention.q.weight).view(B, W, H, dk).transpose(1, 2)  # [B, H, W, dk]
            ck, cv = state["cross"][i]
            scores = torch.matmul(q, ck.transpose(2, 3)) + state["mask_bias"]  # [B, H, W, S], K/V shared by beams
            att = torch.matmul(scores.softmax(-1), cv).transpose(1, 2).reshape(B, W, H * dk)
            x = x + F.linear(att, ca.EncDecAttention.o.weight)

            ff = blk.layer[2]
            x = x + ff.DenseReluDense(_rms(x, ff.layer_norm.weight, self.eps))
        state["self"] = new_cache
        state["t"] = t + 1
        return _rms(x, self.final_norm, self.eps) * self.scale_out

    @torch.no_grad()
    def last_hidden(self, state, prefixes, users):
        """Decode whole prefixes from scratch: prefixes [U, P, t] (decoder start first) of users
        [U] (indices into the encoded batch) -> final hidden states at the last position [U, P, D]."""
        fresh = {
            "cross": [(k[users], v[users]) for k, v in state["cross"]],
            "mask_bias": state["mask_bias"][users],
            "self": None,
            "t": 0,
        }
        for p in range(prefixes.shape[2]):
            hidden = self.step(fresh, prefixes[:, :, p])
        return hidden

    def logits(self, hidden, lo: int = 0, hi: int | None = None):
        """LM head restricted to token rows [lo, hi) (the whole vocabulary by default)."""
        w = self.lm_head if (lo == 0 and hi is None) else self.lm_head[lo:hi]
        return F.linear(hidden, w)
