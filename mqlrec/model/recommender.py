"""Training objective: T5 cross-entropy on the target IDs + MACRec's implicit alignment loss.

Implicit alignment (MACRec): the encoder reads an item's text IDs (+eos) and, separately, its image
IDs (+eos); the states are mean-pooled and L2-normalised, and the two views of the items in the
batch are pulled together by in-batch InfoNCE (τ 0.1). The paper's loss is the sum of both
directions, so it is 2 × the symmetric `mqlrec.ops.info_nce` (which averages them). Weight 0 (the
MQL4GRec recipe) skips the extra encoder passes entirely.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from mqlrec.language import EOS_ID, PAD_ID
from mqlrec.ops import info_nce


def mean_pool(hidden: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    mask = mask.to(hidden.dtype).unsqueeze(-1)
    return (hidden * mask).sum(1) / mask.sum(1).clamp_min(1.0)


class GenerativeRecommender(nn.Module):
    """Wraps the T5 so one forward returns the full training loss (what DDP wraps)."""

    def __init__(self, t5, item_tokens: dict[str, np.ndarray] | None = None, implicit_weight: float = 0.0, tau: float = 0.1):
        super().__init__()
        self.t5 = t5
        self.implicit_weight = float(implicit_weight)
        self.tau = float(tau)
        if self.implicit_weight > 0:
            if not item_tokens or not {"text", "image"} <= set(item_tokens):
                raise ValueError("the implicit alignment loss needs both text and image IDs")
            for m in ("text", "image"):
                tok = torch.as_tensor(np.asarray(item_tokens[m]), dtype=torch.long)
                eos = torch.full((tok.shape[0], 1), EOS_ID, dtype=torch.long)
                self.register_buffer(f"{m}_ids", torch.cat([tok, eos], 1), persistent=False)

    def item_embeddings(self, modality: str, items: torch.Tensor) -> torch.Tensor:
        ids = getattr(self, f"{modality}_ids")[items]
        mask = (ids != PAD_ID).long()
        hidden = self.t5.encoder(input_ids=ids, attention_mask=mask).last_hidden_state
        return F.normalize(mean_pool(hidden, mask).float(), dim=-1)

    def implicit_alignment(self, items: torch.Tensor) -> torch.Tensor:
        items = torch.unique(items)  # duplicates would be false negatives of each other
        text, image = self.item_embeddings("text", items), self.item_embeddings("image", items)
        return 2.0 * info_nce(text, image, self.tau)

    def forward(self, input_ids, attention_mask, labels, items=None) -> tuple[torch.Tensor, dict]:
        out = self.t5(input_ids=input_ids, attention_mask=attention_mask, labels=labels)
        parts = {"ce": out.loss.detach()}
        loss = out.loss
        if self.implicit_weight > 0 and items is not None and items.numel() > 1:
            align = self.implicit_alignment(items)
            parts["implicit"] = align.detach()
            loss = loss + self.implicit_weight * align
        return loss, parts
