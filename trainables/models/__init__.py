"""ReID models: a timm backbone with pooling, neck and identity classifier."""

from trainables.models.reid_model import ReIDModel, ReIDOutput

__all__ = ["ReIDModel", "ReIDOutput"]
