"""Modules inserted between backbone stages: their registry and their contract with the model
builder and the objective.

An inserted module maps a ``(B, C, H, W)`` feature map to one of the same shape, so it can sit
after any stage (:mod:`trainables.models.surgery`). What it needs and gives beyond that is
declared on the class, so a module from a plugin is built and trained like APRA and DRANet
without a special case anywhere:

- ``needs``: facts about the training data it takes as constructor arguments, e.g.
  ``("num_cameras",)`` (APRA's camera classifier); the builder passes them
  (:func:`trainables.trial.model_kwargs`);
- an *auxiliary output* set in a training forward (``self._aux``, e.g. APRA's camera logits);
- *hard examples* (DRANet): extra copies of the batch appended along dimension 0, run through
  the rest of the backbone with shared weights; ``hard_example_names`` names the appended
  chunks in order and :class:`~trainables.models.reid_model.ReIDModel` returns their identity
  logits;
- :meth:`InsertedModule.loss_terms`: the module's own loss terms from those outputs; the
  objective weights each term by the section's ``LOSS_WEIGHTS`` and averages a term over the
  modules contributing it (``L += lambda * mean_modules(L_cam)``).

Register a module with :func:`register_insert`. Its config section (a
:class:`search_spaces.trial_config.InsertSection` subclass, torch-free) becomes ``model.<name>``;
a plugin passes it as ``register_insert(name, config=Section)`` so one file holds both, the
package's own sections are registered in ``search_spaces.trial_config``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, ClassVar

import torch
from torch import nn

from search_spaces.trial_config import INSERT_SECTIONS, InsertSection, register_insert_section, require_section
from trainables.models.registry import Registry


@dataclass
class LossTargets:
    """What a module's loss terms may compare its outputs with (one training batch).

    ``labels``: (B,) identity labels; ``cameras``: (B,) camera labels relabelled 0..C-1 (or
    None when the caller has none); ``label_smoothing``: of the identity cross entropy.
    """

    labels: torch.Tensor
    cameras: torch.Tensor | None = None
    label_smoothing: float = 0.0


@dataclass
class ModuleOutput:
    """A module's side outputs of one training forward: its auxiliary tensor (first B rows)
    and the identity logits of the hard examples it appended, by name."""

    name: str
    module: "InsertedModule"
    aux: torch.Tensor | None = None
    hard_logits: dict[str, torch.Tensor] = field(default_factory=dict)

    def loss_terms(self, targets: LossTargets) -> dict[str, torch.Tensor]:
        return self.module.loss_terms(self, targets)


class InsertedModule(nn.Module):
    """Base of the modules placed after a backbone stage (shape-preserving)."""

    #: Data facts the constructor takes (keyword arguments), e.g. ``("num_cameras",)``.
    needs: ClassVar[tuple[str, ...]] = ()
    #: Registry name, set by :func:`register_insert`.
    insert_name: ClassVar[str] = ""

    def __init__(self) -> None:
        super().__init__()
        self._aux: torch.Tensor | None = None

    @property
    def hard_example_names(self) -> tuple[str, ...]:
        """Names of the batch chunks this module appends in training (none by default)."""
        return ()

    def aux_logits(self) -> torch.Tensor | None:
        """The auxiliary output of the last training forward (e.g. APRA's camera logits)."""
        return self._aux

    def clear(self) -> None:
        self._aux = None

    def loss_terms(self, output: ModuleOutput, targets: LossTargets) -> dict[str, torch.Tensor]:
        """Unweighted loss terms of this module for one batch (none by default)."""
        return {}


INSERTS: Registry[Callable[..., InsertedModule]] = Registry("inserted module")


def register_insert(name: str, config: type[InsertSection] | None = None) -> Callable[[type[InsertedModule]], type[InsertedModule]]:
    """Decorator registering an :class:`InsertedModule` class under ``name``.

    ``config``: its section model, registered as ``model.<name>`` (a plugin's one-file
    registration); without it the section must be registered already (the built-ins').
    """

    def decorate(module: type[InsertedModule]) -> type[InsertedModule]:
        require_section(name, config, INSERT_SECTIONS, register_insert_section, "register_insert")
        INSERTS.add(name, module)
        module.insert_name = name
        return module

    return decorate


def build_insert(name: str, channels: int, kwargs: dict[str, Any]) -> InsertedModule:
    """The registered module ``name`` for a stage with ``channels`` channels."""
    return INSERTS.get(name)(channels=channels, **kwargs)
