"""Model size, counted one way for every model.

The rule: every parameter of the :class:`~trainables.models.reid_model.ReIDModel` except its
identity classifier -- the backbone (with any inserted modules), the pooling (GeM's p) and the
neck. The identity classifier is left out because its size is the number of training
identities (751 on Market-1501, 702 on DukeMTMC-reID), not a property of the network, and it
is not used at retrieval time.

The papers' figures compared in ``tests/trainables/test_model_sizes.py``: Robust-ReID Table 1
(1x 2.9M, 2x 6.4M) and HA-CNN (Li et al.: 2.7M); the gaps and the reading of Table 1 that
causes them are stated in :mod:`trainables.models.robust_reid`.
"""

from __future__ import annotations

from torch import nn


def parameter_count(model: nn.Module) -> int:
    """Parameters of a ReID model without its identity classifier (``model.classifier``)."""
    classifier = getattr(model, "classifier", None)
    skipped = {id(p) for p in classifier.parameters()} if isinstance(classifier, nn.Module) else set()
    return sum(p.numel() for p in model.parameters() if id(p) not in skipped)
