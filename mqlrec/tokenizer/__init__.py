"""Semantic-ID tokenizers: RQ-VAE per modality, MACRec cross-modal quantization, collision reallocation."""

from mqlrec.tokenizer.collisions import Reallocation, count_collisions, reallocate_collisions
from mqlrec.tokenizer.config import TokenizerConfig
from mqlrec.tokenizer.pipeline import TokenizeResult, tokenize_dataset
from mqlrec.tokenizer.rqvae import RQVAE

__all__ = [
    "RQVAE",
    "Reallocation",
    "TokenizeResult",
    "TokenizerConfig",
    "count_collisions",
    "reallocate_collisions",
    "tokenize_dataset",
]
