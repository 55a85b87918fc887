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


def forward_macs(model: nn.Module, height: int, width: int) -> int | None:
    """Multiply-accumulates of one retrieval forward pass (eval mode) on a ``height`` x ``width``
    image, counted by torch's ``FlopCounterMode`` (which counts 2 FLOPs per multiply-add; halved
    here). Papers quote this number as "FLOPs": Robust-ReID section 4.3 gives ResNet-50 4.1B at
    224x224, which is its multiply-add count. None when the model cannot be traced."""
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    was_training = model.training
    model.eval()
    try:
        with torch.no_grad(), FlopCounterMode(display=False) as counter:
            model(torch.zeros(1, 3, height, width))
        return counter.get_total_flops() // 2
    except Exception:  # noqa: BLE001 - a plugin's module the counter cannot follow: no figure
        return None
    finally:
        model.train(was_training)


def model_size(config, num_cameras: int = 6) -> tuple[int, int | None]:
    """(parameters without the identity classifier, multiply-adds of one forward pass) of the
    trial ``config``'s model at its input size. Built from random weights (no download, no
    weights file read): the size does not depend on them. ``num_cameras`` only sizes modules that
    need it (APRA's camera classifier, a few hundred parameters per camera)."""
    import torch

    from trainables.trial import build_model

    weightless = config.model_copy(update={"model": config.model.model_copy(update={"pretrained": None, "pretrained_path": None})})
    # One thread: a single small forward pass gains nothing from more, and on a busy machine
    # the intra-op threads' spinning made it 50x slower (13 s instead of 0.2 s, measured).
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        model = build_model(weightless, num_classes=2, num_cameras=num_cameras)
        return parameter_count(model), forward_macs(model, config.dataset.height, config.dataset.width)
    finally:
        torch.set_num_threads(threads)
