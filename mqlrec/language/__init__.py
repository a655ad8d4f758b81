"""Quantitative language: vocabulary of code/task tokens and per-modality tries."""

from mqlrec.language.trie import Trie
from mqlrec.language.vocabulary import EOS_ID, LEVEL_LETTERS, PAD_ID, UNK_ID, Language

__all__ = ["Trie", "Language", "PAD_ID", "EOS_ID", "UNK_ID", "LEVEL_LETTERS"]
