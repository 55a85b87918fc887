"""Evaluation: Market-1501 CMC / mAP / mINP and APRA per-camera q-mAP / g-mAP, exact and chunked.

``evaluate`` ranks a distance matrix (numpy or torch, any device); ``evaluate_features`` computes
the distances chunk by chunk from features and evaluates each chunk, so the full matrix never
exists; ``pairwise_distance`` returns the full matrix when it is wanted.
"""

from trainables.evaluation.distance import evaluate_features, iter_distance_chunks, pairwise_distance
from trainables.evaluation.rank import RankingAccumulator, camera_summary, evaluate

__all__ = [
    "RankingAccumulator",
    "camera_summary",
    "evaluate",
    "evaluate_features",
    "iter_distance_chunks",
    "pairwise_distance",
]
