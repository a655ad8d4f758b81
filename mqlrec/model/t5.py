"""The generative recommender's backbone: a small Hugging Face T5 built from a config, never downloaded."""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass

from mqlrec.language import EOS_ID, PAD_ID


@dataclass
class ModelConfig:
    """Official MQL4GRec / MACRec T5 sizes."""

    d_model: int = 128
    d_ff: int = 1024
    d_kv: int = 64
    num_heads: int = 6
    num_layers: int = 4
    num_decoder_layers: int = 4
    dropout_rate: float = 0.1
    relative_attention_num_buckets: int = 32
    feed_forward_proj: str = "relu"

    def to_dict(self) -> dict:
        return asdict(self)


def build_model(config: ModelConfig, vocab_size: int):
    """A freshly initialised T5ForConditionalGeneration over the language's vocabulary."""
    from transformers import T5Config, T5ForConditionalGeneration

    t5_config = T5Config(
        vocab_size=vocab_size,
        pad_token_id=PAD_ID,
        eos_token_id=EOS_ID,
        decoder_start_token_id=PAD_ID,
        **config.to_dict(),
    )
    return T5ForConditionalGeneration(t5_config)


def load_model(name_or_path: str):
    """Load a T5 checkpoint from a local directory, or a model name already in the local HF cache.

    Never downloads: mqlrec runs offline, so a missing model is a clear error, not a network call.
    """
    from transformers import T5ForConditionalGeneration
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()
    if not os.path.isdir(name_or_path) and os.path.sep in name_or_path:
        raise FileNotFoundError(f"{name_or_path}: no such checkpoint directory")
    try:
        return T5ForConditionalGeneration.from_pretrained(name_or_path, local_files_only=True)
    except (OSError, ValueError) as e:
        raise FileNotFoundError(
            f"{name_or_path}: not a local T5 checkpoint directory and not in the local Hugging Face cache "
            f"(mqlrec never downloads weights; pass a directory written by `python -m mqlrec.train`): {e}"
        ) from None
