"""Generation: trie-constrained beam search and exact top-K over item code paths."""

from mqlrec.generate.beam_search import beam_search
from mqlrec.generate.ranking import Ranking

__all__ = ["beam_search", "Ranking"]
