"""ReID models: a timm backbone with pooling, neck and identity classifier, the modules that
can be inserted after its stages (APRA, DRANet), the Robust-ReID/HA-CNN backbones, surgery
and checkpoints."""

from trainables.models.checkpoint import load_checkpoint, save_checkpoint
from trainables.models.inserts import INSERTS, InsertedModule, build_insert, register_insert
from trainables.models.reid_model import ReIDModel, ReIDOutput
from trainables.models.surgery import StageInfo, SurgeryError, feature_stages, insert_after_stage, stage_info

__all__ = [
    "INSERTS",
    "InsertedModule",
    "ReIDModel",
    "ReIDOutput",
    "StageInfo",
    "SurgeryError",
    "build_insert",
    "feature_stages",
    "insert_after_stage",
    "load_checkpoint",
    "register_insert",
    "save_checkpoint",
    "stage_info",
]
