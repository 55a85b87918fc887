"""Losses: identity cross entropy and metric-learning (triplet) losses."""

from trainables.losses.objective import LossTerms, ReIDObjective
from trainables.losses.triplet import batch_hard_triplet, pairwise_euclidean

__all__ = ["LossTerms", "ReIDObjective", "batch_hard_triplet", "pairwise_euclidean"]
