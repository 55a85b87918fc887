"""Last stride 1 (Luo et al., Bag of Tricks, section 3.3, after Sun et al.'s PCB): the stride of
the backbone's last downsampling stage is set to 1, doubling the final feature map's height and
width (16 x 8 instead of 8 x 4 at 256 x 128 for ResNet-50) at no cost in parameters. No
dilation is added: BoT only changes the stride.

Generic surgery on timm's ``feature_info`` contract, not a ResNet special case: the last stage
whose reduction exceeds the previous stage's is the one that downsamples last; every strided
convolution and pooling inside it gets the new stride. A stride-2 average pool of an
``avg_down`` shortcut (ResNet-D/-T) becomes an identity at stride 1, as timm builds such a
shortcut when the block has no stride. ``feature_info`` is updated to the new reductions.
"""

from __future__ import annotations

from torch import nn

from trainables.models.surgery import StageInfo, SurgeryError, _model_name, feature_stages


def _as_pair(value) -> tuple[int, int]:
    return tuple(value) if isinstance(value, (tuple, list)) else (value, value)  # type: ignore[return-value]


def last_downsampling_stage(model: nn.Module) -> StageInfo:
    """The last feature stage whose reduction is larger than its predecessor's."""
    stages = feature_stages(model)
    for index in range(len(stages) - 1, 0, -1):
        if stages[index].reduction > stages[index - 1].reduction:
            return stages[index]
    raise SurgeryError(f"backbone '{_model_name(model)}' has no downsampling stage after its first; cannot set a last stride")


def set_last_stride(model: nn.Module, stride: int) -> StageInfo:
    """Set the stride of the last downsampling stage of ``model`` (in place) to ``stride``.

    Returns the stage changed. Raises :class:`SurgeryError` when that stage holds no strided
    convolution or pooling (e.g. a backbone that downsamples between its feature stages).
    """
    if stride not in (1, 2):
        raise ValueError(f"last_stride must be 1 or 2, got {stride}")
    stage = last_downsampling_stage(model)
    module = model.get_submodule(stage.module)
    strided = [
        (name, child)
        for name, child in module.named_modules()
        if isinstance(child, (nn.Conv2d, nn.AvgPool2d, nn.MaxPool2d)) and max(_as_pair(child.stride)) > 1
    ]
    if not strided:
        raise SurgeryError(
            f"stage {stage.index} ({stage.module}) of '{_model_name(model)}' holds no strided convolution or pooling; "
            "last_stride needs a backbone that downsamples inside its last stage (e.g. a ResNet)"
        )
    old = max(_as_pair(strided[0][1].stride))
    for name, child in strided:
        if isinstance(child, nn.Conv2d):
            child.stride = (stride, stride)
        elif stride == 1:
            parent_name, _, child_name = name.rpartition(".")
            parent = module.get_submodule(parent_name) if parent_name else module
            setattr(parent, child_name, nn.Identity())
        else:
            child.stride = stride
    info = getattr(model, "feature_info", None)
    entries = list(getattr(info, "info", info) or [])
    for entry in entries[stage.index :]:
        entry["reduction"] = entry["reduction"] * stride // old
    return stage
