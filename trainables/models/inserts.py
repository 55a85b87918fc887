"""Modules inserted between backbone stages, their registry and the side outputs they return.

An inserted module maps a ``(B, C, H, W)`` feature map to one of the same shape, so it can sit
after any stage (:mod:`trainables.models.surgery`). During training it may also produce side
outputs that the backbone's ``forward_features`` cannot return:

- *auxiliary logits* (APRA's camera classifier), read with :meth:`InsertedModule.aux_logits`;
- *hard examples* (DRANet): extra copies of the batch appended along dimension 0 so that they
  run through the rest of the backbone with shared weights. ``hard_example_names`` names the
  appended chunks in order; :class:`~trainables.models.reid_model.ReIDModel` splits them off.

Modules are registered by name with :func:`register_insert` and built with
:func:`build_insert`, which passes the stage's channel count and explicit keyword arguments.
"""

from __future__ import annotations

from typing import Any, Callable

import torch
from torch import nn

from trainables.models.registry import Registry


class InsertedModule(nn.Module):
    """Base of the modules placed after a backbone stage (shape-preserving)."""

    def __init__(self) -> None:
        super().__init__()
        self._aux: torch.Tensor | None = None

    @property
    def hard_example_names(self) -> tuple[str, ...]:
        """Names of the batch chunks this module appends in training (none by default)."""
        return ()

    def aux_logits(self) -> torch.Tensor | None:
        """Logits of this module's auxiliary classifier from the last training forward."""
        return self._aux

    def clear(self) -> None:
        self._aux = None


INSERTS: Registry[Callable[..., InsertedModule]] = Registry("inserted module")


def register_insert(name: str) -> Callable[[Callable[..., InsertedModule]], Callable[..., InsertedModule]]:
    """Decorator registering an :class:`InsertedModule` class under ``name``."""
    return INSERTS.register(name)


def build_insert(name: str, channels: int, kwargs: dict[str, Any]) -> InsertedModule:
    """The registered module ``name`` for a stage with ``channels`` channels."""
    return INSERTS.get(name)(channels=channels, **kwargs)
