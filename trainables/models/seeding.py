"""Per-module initialisation seeds, so two variants that share a seed are paired.

An ablation table compares variants seed by seed (paired differences): the variant with APRA
after stage 1 and the baseline, both at seed 3, should differ by the APRA module and nothing
else. With one global generator they differ in more: building APRA draws random numbers, so the
modules built after it (the classifier, later inserts) start from other weights. Here every
module gets an initialisation that depends only on the trial seed and its own name:

* the network without inserted modules (backbone, neck, classifier, in timm's and the model's
  own initialisation) is built under a generator seeded from ``(seed, "network")``;
* each inserted module is built alone under ``(seed, "<module>@stage<N>")``;
* their weights are copied into the trial's model (whose wrapped stages carry an extra
  ``.stage`` segment in their names, see :mod:`trainables.models.surgery`).

So a module both variants have starts from identical weights, whatever else either inserts.
The global generator is left as it was (:func:`torch.random.fork_rng`). Weights loaded from a
file (``pretrained_path``) stay what the file holds.

:func:`seeded_model` builds a model this way in one pass (what a trial uses);
:func:`seed_modules` re-initialises a model already built, through a second plain build (the
definition the first is tested against).
"""

from __future__ import annotations

import hashlib
from contextlib import contextmanager
from typing import Any, Iterator, Mapping

import torch
from torch import nn

from trainables.models.inserts import build_insert
from trainables.models.surgery import AfterStage, stage_info

NETWORK = "network"


def module_seed(seed: int, name: str) -> int:
    """A 63-bit generator seed from the trial seed and a module's name (SHA-256, so nearby
    seeds and names give unrelated streams)."""
    digest = hashlib.sha256(f"{int(seed)}/{name}".encode()).digest()
    return int.from_bytes(digest[:8], "big") & (2**63 - 1)


@contextmanager
def seeded(seed: int, name: str) -> Iterator[None]:
    """Run the block with the CPU generator seeded from ``(seed, name)``; restored afterwards."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(module_seed(seed, name))
        yield


def insert_name(spec: Mapping[str, Any]) -> str:
    return f"{spec['module']}@stage{spec['stage']}"


def _plain_key(model: nn.Module, key: str) -> str | None:
    """The state-dict key of ``key`` in the same network without inserts (``.stage`` segments
    of :class:`AfterStage` wrappers dropped); None for a parameter of an inserted module."""
    parts = key.split(".")
    out: list[str] = []
    module = model
    for part in parts[:-1]:
        if isinstance(module, AfterStage):
            if part == "inserted":
                return None
            module = module.stage  # part == "stage": the wrapped original, not in the plain names
            continue
        module = module._modules[part]
        out.append(part)
    return ".".join([*out, parts[-1]])


def seeded_model(kwargs: Mapping[str, Any], seed: int) -> nn.Module:
    """A :class:`trainables.models.reid_model.ReIDModel` built from ``kwargs`` with the weights
    :func:`seed_modules` gives it, in one build: the network under ``(seed, "network")``, each
    insert under its own generator nested inside it. ``fork_rng`` puts the network's generator
    back after each insert, so the modules built after the inserts (neck, classifier) draw what
    they draw in the network built without inserts."""
    from trainables.models.reid_model import ReIDModel

    def build_seeded_insert(spec: Mapping[str, Any], channels: int) -> nn.Module:
        with seeded(seed, insert_name(spec)):
            return build_insert(spec["module"], channels, dict(spec.get("kwargs") or {}))

    with seeded(seed, NETWORK):
        return ReIDModel(**kwargs, insert_factory=build_seeded_insert)


def seed_modules(model: nn.Module, seed: int) -> nn.Module:
    """Re-initialise ``model`` (a :class:`trainables.models.reid_model.ReIDModel`) so that each
    module's initial weights depend on ``seed`` and its own name only; returns ``model``."""
    from trainables.models.reid_model import ReIDModel

    kwargs = dict(model.build_kwargs)
    with seeded(seed, NETWORK):
        plain = ReIDModel(**{**kwargs, "inserts": []})
    reference = plain.state_dict()
    state: dict[str, torch.Tensor] = {}
    for key in model.state_dict():
        plain_key = _plain_key(model, key)
        if plain_key is not None:
            state[key] = reference[plain_key]
    for spec, module in zip(kwargs["inserts"], _inserted_in_build_order(model.backbone)):
        with seeded(seed, insert_name(spec)):
            channels = stage_info(plain.backbone, spec["stage"]).channels
            fresh = build_insert(spec["module"], channels, dict(spec.get("kwargs") or {}))
        module.load_state_dict(fresh.state_dict())
    model.load_state_dict(state, strict=False)
    return model


def _inserted_in_build_order(backbone: nn.Module) -> list[nn.Module]:
    """The inserted modules in the order they were inserted: stage by stage, and at one stage
    from the innermost wrapper out (a later insert wraps the earlier ones)."""
    found: list[nn.Module] = []
    for module in backbone.modules():  # pre-order: outer wrappers before inner ones
        if isinstance(module, AfterStage):
            depth = 0
            inner = module
            while isinstance(inner.stage, AfterStage):
                inner, depth = inner.stage, depth + 1
            found.append((id(inner), depth, module.inserted))
    ordered: list[nn.Module] = []
    for _, group in _group_by_stage(found):
        ordered += [inserted for _, _, inserted in sorted(group, key=lambda item: item[1])]
    return ordered


def _group_by_stage(found: list[tuple[int, int, nn.Module]]) -> list[tuple[int, list[tuple[int, int, nn.Module]]]]:
    groups: dict[int, list[tuple[int, int, nn.Module]]] = {}
    for item in found:
        groups.setdefault(item[0], []).append(item)
    return list(groups.items())
