"""Warnings about a valid spec that probably does not ask what its author means.

Not errors: the study runs. ``validate`` and ``launch`` print them, one line each, naming the
YAML key and line.

- A ResNet-50-sized backbone (more than ``LARGE_BACKBONE_PARAMS`` parameters) trained from
  random weights on a real dataset: every paper here starts such backbones from ImageNet
  (Bag of Tricks, APRA, DRANet, implicit attention), and from scratch they reach a fraction of
  the reported accuracy. Robust-ReID's small networks are meant to train from scratch.
- ImageNet weights named by tag (``model.pretrained``) that are not in this machine's Hugging
  Face cache while the hub does not answer: the trials would fail. A warning, not an error,
  because on a cluster the workers, not the driver, fetch them.
"""

from __future__ import annotations

from functools import lru_cache

from orchestrator.spec import LoadedSpec, spec_error

#: Backbones above this many parameters (ResNet-50: 23.5M without its classifier) are "large".
LARGE_BACKBONE_PARAMS = 20_000_000


@lru_cache(maxsize=32)
def backbone_parameters(backbone: str) -> int | None:
    """Parameters of a timm backbone without its classifier, counted on the meta device (no
    memory, no weights); None when timm does not know the name (the model checks report it)."""
    import timm
    import torch

    import trainables.models.robust_reid  # noqa: F401  (registers the Robust-ReID backbones)

    if not timm.is_model(backbone):
        return None
    with torch.device("meta"):
        net = timm.create_model(backbone, pretrained=False, num_classes=0)
    return sum(p.numel() for p in net.parameters())


def scratch_training_warnings(loaded: LoadedSpec) -> list[str]:
    """One line per distinct large backbone that a trial trains from scratch on a real dataset."""
    lines: list[str] = []
    seen: set[tuple[str, str]] = set()
    for trial in loaded.trials:
        model, dataset = trial.config.model, trial.config.dataset
        if dataset.name == "synthetic" or model.pretrained or model.pretrained_path:
            continue
        if (model.backbone, dataset.name) in seen:
            continue
        seen.add((model.backbone, dataset.name))
        count = backbone_parameters(model.backbone)
        if count is None or count <= LARGE_BACKBONE_PARAMS:
            continue
        origin = trial.origin_of("model.pretrained")
        if origin == ("baseline", "model", "pretrained") and "pretrained" not in (
            loaded.source.data.get("baseline", {}).get("model") or {}
        ):
            origin = trial.origin_of("model.backbone")
        message = (
            f"{model.backbone} ({count / 1e6:.1f}M parameters) trains from random weights on {dataset.name}; "
            "the papers start it from ImageNet: set model.pretrained (e.g. true, or a timm tag such as "
            f"resnet50.tv_in1k) or model.pretrained_path"
        )
        lines.append("warning: " + str(spec_error(loaded.source, origin, message)))
    return lines


def weights_warnings(loaded: LoadedSpec) -> list[str]:
    """One line per weight tag neither cached here nor downloadable from here."""
    from trainables.models import pretrained

    lines: list[str] = []
    seen: set[str] = set()
    for trial in loaded.trials:
        tag = trial.config.model.pretrained
        if not tag or tag in seen:
            continue
        seen.add(tag)
        try:
            if pretrained.cached_file(pretrained.hub_repo(tag)) is not None:
                continue
        except pretrained.PretrainedWeightsError:
            continue  # an unknown tag is the model checks' error
        problem = pretrained.hub_answers(pretrained.hub_url(), pretrained.CONNECT_TIMEOUT)
        if problem is not None:
            message = (
                f"ImageNet weights '{tag}' are not in the Hugging Face cache and {pretrained.hub_url()} does not answer "
                f"from here ({problem}); trials that need them will fail unless the workers can fetch them"
            )
            lines.append("warning: " + str(spec_error(loaded.source, trial.origin_of("model.pretrained"), message)))
    return lines
