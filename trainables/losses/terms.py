"""Registered loss terms: a plugin's own term added to the objective.

A term is a class registered with :func:`register_loss` under a name; its config section (a
:class:`search_spaces.trial_config.LossSection` subclass) is ``loss.<name>``: ``enabled``
switches it on, ``weight`` scales it (``L += weight * L_<name>``), the other fields are the
term's keyword arguments. The objective reports it as ``loss_<name>``.
"""

from __future__ import annotations

from typing import Callable

import torch

from search_spaces.registry import Registry
from search_spaces.trial_config import LOSS_SECTIONS, LossSection, register_loss_section, require_section
from trainables.models.inserts import LossTargets
from trainables.models.reid_model import ReIDOutput


class LossTerm:
    """Base of a registered loss term: the unweighted loss of one training batch."""

    def __call__(self, output: ReIDOutput, targets: LossTargets) -> torch.Tensor:
        raise NotImplementedError


LOSSES: Registry[Callable[..., LossTerm]] = Registry("loss")


def register_loss(name: str, config: type[LossSection] | None = None) -> Callable[[type], type]:
    """Decorator registering a :class:`LossTerm` under ``name``; ``config`` (its section model)
    is registered as ``loss.<name>`` in the same call (a plugin's one file)."""

    def decorate(term: type) -> type:
        require_section(name, config, LOSS_SECTIONS, register_loss_section, "register_loss")
        LOSSES.add(name, term)
        return term

    return decorate
