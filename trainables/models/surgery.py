"""Model surgery: insert a module after a feature stage of any timm backbone.

A *stage* is an index into the backbone's timm ``feature_info`` list, whose entries name a
submodule (``module``), its output channels (``num_chs``) and its stride (``reduction``). So
"stage N" means the same thing for every family that timm describes, with no family-specific
code: for ResNets index 0 is the stem (``act1``, stride 2) and 1..4 are ``layer1..layer4``; for
EfficientNet/MobileNetV3 the indices pick blocks of stride 2, 4, 8, 16, 32; the Robust-ReID
network lists its stem and three stages. :func:`feature_stages` prints the list.

:func:`insert_after_stage` is a pure function: it returns a copy of the model in which the
stage's submodule is replaced by ``AfterStage(stage, inserted)``, computing
``inserted(stage(x))``. Inserted modules keep the feature shape, so everything downstream of the
stage (and ``feature_info``) stays valid. The copy's state-dict keys of the wrapped stage gain a
``.stage`` segment and the new module's keys live under ``.inserted``; load backbone weights
before surgery, and use :mod:`trainables.models.checkpoint` (which records the surgery) to
save and reload the result.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass

from torch import nn


class SurgeryError(ValueError):
    """A stage that the backbone lacks, or a backbone without feature stages."""


@dataclass(frozen=True)
class StageInfo:
    """One feature stage: its ``feature_info`` index, submodule name, channels and stride."""

    index: int
    module: str
    channels: int
    reduction: int

    def describe(self) -> str:
        return f"{self.index} ({self.module}: {self.channels} ch, stride {self.reduction})"


def _model_name(model: nn.Module) -> str:
    cfg = getattr(model, "pretrained_cfg", None) or {}
    return str(cfg.get("architecture") or type(model).__name__)


def feature_stages(model: nn.Module) -> list[StageInfo]:
    """The stages of a timm model from its ``feature_info``; raises :class:`SurgeryError` if none."""
    info = getattr(model, "feature_info", None)
    entries = list(getattr(info, "info", info) or [])
    stages = []
    for index, entry in enumerate(entries):
        if not isinstance(entry, dict) or not {"module", "num_chs", "reduction"} <= set(entry):
            entries = []
            break
        stages.append(StageInfo(index, str(entry["module"]), int(entry["num_chs"]), int(entry["reduction"])))
    if not entries:
        raise SurgeryError(
            f"backbone '{_model_name(model)}' exposes no feature stages (timm feature_info); "
            "modules can only be inserted after the stages of a backbone that lists them"
        )
    return stages


def stage_info(model: nn.Module, stage: int) -> StageInfo:
    """The stage at ``feature_info`` index ``stage``; an unknown index lists the available ones."""
    stages = feature_stages(model)
    if not isinstance(stage, int) or not 0 <= stage < len(stages):
        available = ", ".join(s.describe() for s in stages)
        raise SurgeryError(f"backbone '{_model_name(model)}' has no stage {stage}; available stages: {available}")
    return stages[stage]


class AfterStage(nn.Module):
    """``inserted(stage(x))``: a stage followed by an inserted module."""

    def __init__(self, stage: nn.Module, inserted: nn.Module):
        super().__init__()
        self.stage = stage
        self.inserted = inserted

    def forward(self, x):
        return self.inserted(self.stage(x))


def insert_after_stage(model: nn.Module, stage: int, module: nn.Module) -> nn.Module:
    """A copy of ``model`` with ``module`` applied to the output of feature stage ``stage``.

    ``model`` is left unchanged; ``module`` itself (not a copy) is placed in the result.
    Inserting twice after the same stage nests the wrappers: the later insert runs last.
    """
    info = stage_info(model, stage)
    result = copy.deepcopy(model)
    parent_name, _, child_name = info.module.rpartition(".")
    try:
        parent = result.get_submodule(parent_name) if parent_name else result
        target = parent.get_submodule(child_name)
    except AttributeError as err:
        raise SurgeryError(f"stage {stage} names module '{info.module}', which the backbone lacks: {err}") from None
    setattr(parent, child_name, AfterStage(target, module))
    return result
