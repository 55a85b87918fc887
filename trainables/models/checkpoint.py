"""Save a ReID model with the keyword arguments that build it, and rebuild it strictly.

A checkpoint is ``{"format": 1, "build_kwargs": {...}, "state_dict": {...}}`` written with
``torch.save``. The build kwargs are those of :class:`~trainables.models.reid_model.ReIDModel`,
including ``backbone_kwargs`` and the surgery spec (``inserts``: module, stage, kwargs), so
:func:`load_checkpoint` rebuilds the same architecture -- inserted modules in place -- and loads
the weights with ``strict=True``: a missing or unexpected key is an error, never a silent skip.
``pretrained_path`` is dropped on save (the weights are in the state dict). ``plugins`` names
the plugins whose modules the model holds (``{name: identity}``), loaded again on reload.
"""

from __future__ import annotations

import copy
import os
from pathlib import Path
from typing import Any, Mapping, Sequence

import torch

from search_spaces.plugins import components_record, load_recorded
from trainables.models.reid_model import ReIDModel

CHECKPOINT_FORMAT = 1


def save_checkpoint(path: str | os.PathLike[str], model: ReIDModel, build_kwargs: Mapping[str, Any] | None = None) -> Path:
    """Write ``model`` and its build kwargs (default: the model's own) to ``path`` atomically."""
    kwargs = copy.deepcopy(dict(build_kwargs if build_kwargs is not None else model.build_kwargs))
    kwargs["pretrained_path"] = None
    kwargs["pretrained"] = None  # the weights are in the state dict: rebuilding never downloads
    state = {k: v.detach().cpu() for k, v in model.state_dict().items()}
    target = Path(path).expanduser()
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_name(target.name + ".partial")
    # The plugins whose modules the model holds, so a reload can import them (and check they
    # are the same code): {plugin name: identity}; empty for built-in modules only.
    plugins = components_record([spec["module"] for spec in kwargs.get("inserts", [])], kwargs.get("backbone"))
    torch.save({"format": CHECKPOINT_FORMAT, "build_kwargs": kwargs, "state_dict": state, "plugins": plugins}, partial)
    partial.replace(target)
    return target


def load_checkpoint(
    path: str | os.PathLike[str], map_location: str | torch.device = "cpu", plugin_dirs: Sequence[str | os.PathLike[str]] = ()
) -> tuple[ReIDModel, dict[str, Any]]:
    """``(model, build_kwargs)``: the model rebuilt from its kwargs with the weights loaded strictly.

    The plugins it was saved with are loaded first (their ``.py`` files are looked for beside
    the checkpoint and in ``plugin_dirs``) and must be the same code (same identity)."""
    file = Path(path).expanduser()
    if not file.is_file():
        raise FileNotFoundError(f"checkpoint not found: {file}")
    payload = torch.load(file, map_location=map_location, weights_only=True)
    if not isinstance(payload, dict) or payload.get("format") != CHECKPOINT_FORMAT:
        raise ValueError(f"{file} is not a ReID checkpoint of format {CHECKPOINT_FORMAT}")
    kwargs = payload["build_kwargs"]
    load_recorded(payload.get("plugins") or {}, [file.parent, *plugin_dirs])
    model = ReIDModel(**kwargs)
    model.load_state_dict(payload["state_dict"], strict=True)
    return model, kwargs
