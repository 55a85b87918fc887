"""Losses: identity cross entropy, metric-learning (triplet) losses, the combined objective."""

from trainables.losses.objective import LossTerms, ReIDObjective
from trainables.losses.terms import LOSSES, LossTerm, register_loss
from trainables.losses.triplet import (
    TRIPLET_KINDS,
    batch_hard_triplet,
    batch_soft_triplet,
    pairwise_euclidean,
    register_triplet,
    triplet_loss,
)

__all__ = [
    "LOSSES",
    "LossTerm",
    "register_loss",
    "LossTerms",
    "ReIDObjective",
    "TRIPLET_KINDS",
    "batch_hard_triplet",
    "batch_soft_triplet",
    "pairwise_euclidean",
    "register_triplet",
    "triplet_loss",
]
