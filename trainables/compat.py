"""Checks that need the model libraries: does a trial config describe a buildable model?

Run by ``orchestrator validate`` and ``launch`` before anything starts, so a typo in a backbone
name or a module placed after a stage the backbone lacks fails in a second with the YAML line
rather than minutes later inside a worker.

Stage checks build the backbone on PyTorch's ``meta`` device (no memory, no weights, no
compute) and run one forward pass there at the dataset's image size to see what each stage
outputs: inserted modules (APRA, DRANet, a plugin's) need a ``(B, C, H, W)`` feature map,
not a token sequence.
"""

from __future__ import annotations

import difflib
from functools import lru_cache
from pathlib import Path

from search_spaces.trial_config import ROBUST_REID_BACKBONES, TrialConfig


@lru_cache(maxsize=64)
def _stage_report(backbone: str, backbone_kwargs: tuple[tuple[str, object], ...], height: int, width: int) -> tuple[tuple, str | None]:
    """``(stages, problem)``: ``stages`` as ``(index, module, channels, reduction, output ndim or
    None)`` tuples; ``problem`` says why the backbone has no usable stages (else None)."""
    import timm
    import torch

    import trainables.models.robust_reid  # noqa: F401  (registers the Robust-ReID backbones)
    from trainables.models.surgery import SurgeryError, feature_stages

    with torch.device("meta"):
        net = timm.create_model(backbone, pretrained=False, num_classes=0, global_pool="", **dict(backbone_kwargs))
    try:
        stages = feature_stages(net)
    except SurgeryError as err:
        return (), str(err)
    ndims: dict[str, int] = {}

    def record(name: str):
        def hook(_module, _inputs, output):
            ndims[name] = output.dim() if isinstance(output, torch.Tensor) else -1

        return hook

    handles = [net.get_submodule(s.module).register_forward_hook(record(s.module)) for s in stages]
    try:
        net.eval()
        net.forward_features(torch.empty(1, 3, height, width, device="meta"))
    except Exception:  # noqa: BLE001 -- a probe that cannot run must not block a valid config
        ndims.clear()
    finally:
        for handle in handles:
            handle.remove()
    return tuple((s.index, s.module, s.channels, s.reduction, ndims.get(s.module)) for s in stages), None


def _check_stage(path: str, what: str, stage: int, backbone: str, stages: tuple, problem: str | None) -> tuple[str, str] | None:
    if problem is not None:
        return path, f"{what} needs a backbone with feature stages: {problem}"
    available = ", ".join(f"{i} ({module}: {ch} ch, stride {red})" for i, module, ch, red, _ in stages)
    if stage >= len(stages):
        return path, f"backbone '{backbone}' has no stage {stage}; available stages: {available}"
    _, module, _, _, ndim = stages[stage]
    if ndim is not None and ndim != 4:
        shape = "a (B, N, C) token sequence" if ndim == 3 else f"a {ndim}-d output"
        return path, f"stage {stage} of '{backbone}' ({module}) gives {shape}, not a (B, C, H, W) feature map; {what} needs a CNN stage"
    return None


def check_trial_config(config: TrialConfig) -> list[tuple[str, str]]:
    """Problems as ``(dotted config path, message)``; empty when the config is buildable."""
    import timm

    import trainables.models.robust_reid  # noqa: F401  (registers the Robust-ReID backbones)

    problems: list[tuple[str, str]] = []
    model = config.model
    backbone = model.backbone
    if not timm.is_model(backbone):
        close = difflib.get_close_matches(backbone, timm.list_models(), n=4, cutoff=0.6)
        hint = f"; similar: {', '.join(close)}" if close else ""
        problems.append(("model.backbone", f"unknown timm backbone '{backbone}'{hint}"))
        return problems
    if model.pretrained_path and not Path(model.pretrained_path).expanduser().is_file():
        problems.append(("model.pretrained_path", f"weights file not found: {model.pretrained_path}"))

    problems.extend(_weights_and_stride_problems(config))

    placed: list[tuple[str, str, int]] = [
        (f"model.{name}.{section.PLACEMENT}", section.LABEL or name, stage)
        for name, section in model.active_inserts().items()
        for stage in section.placements()
    ]
    if placed:
        kwargs = (("shuffle_blocks", model.shuffle_blocks),) if backbone in ROBUST_REID_BACKBONES else ()
        stages, problem = _stage_report(backbone, kwargs, config.dataset.height, config.dataset.width)
        for path, what, stage in placed:
            found = _check_stage(path, what, stage, backbone, stages, problem)
            if found is not None and found not in problems:
                problems.append(found)
    return problems


def _weights_and_stride_problems(config: TrialConfig) -> list[tuple[str, str]]:
    """A weight tag timm knows (checked offline: the download happens in the trial) and a
    backbone whose last stride can be changed."""
    from trainables.models.pretrained import pretrained_cfg

    model = config.model
    problems: list[tuple[str, str]] = []
    if isinstance(model.pretrained, str) and pretrained_cfg(model.pretrained) is None:
        import timm

        known = timm.list_pretrained(f"{model.backbone}.*")
        problems.append(
            ("model.pretrained", f"unknown timm weight tag '{model.pretrained}'; tags of {model.backbone}: {', '.join(known) or 'none'}")
        )
    if model.last_stride is not None:
        problems.extend(_last_stride_problem(model.backbone, model.last_stride))
    return problems


@lru_cache(maxsize=32)
def _last_stride_problem(backbone: str, stride: int) -> tuple[tuple[str, str], ...]:
    import timm
    import torch

    from trainables.models.last_stride import set_last_stride
    from trainables.models.surgery import SurgeryError

    if backbone in ROBUST_REID_BACKBONES or backbone == "hacnn":
        return (("model.last_stride", f"'{backbone}' fixes its strides (Robust-ReID Table 1); last_stride applies to timm CNN backbones"),)
    with torch.device("meta"):
        net = timm.create_model(backbone, pretrained=False, num_classes=0, global_pool="")
    try:
        set_last_stride(net, stride)
    except SurgeryError as err:
        return (("model.last_stride", str(err)),)
    return ()
