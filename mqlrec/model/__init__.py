"""The generative recommender: a T5 built from a config + MACRec's implicit alignment loss."""

from mqlrec.model.recommender import GenerativeRecommender, mean_pool
from mqlrec.model.t5 import ModelConfig, build_model, load_model

__all__ = ["GenerativeRecommender", "ModelConfig", "build_model", "load_model", "mean_pool"]
