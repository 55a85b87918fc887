"""Checks that need the model libraries: does a trial config describe a buildable model?

Run by ``orchestrator validate`` and ``launch`` before anything starts, so a typo in a backbone
name fails in a second with the YAML line rather than minutes later inside a worker.
"""

from __future__ import annotations

import difflib
from pathlib import Path

from search_spaces.trial_config import TrialConfig


def check_trial_config(config: TrialConfig) -> list[tuple[str, str]]:
    """Problems as ``(dotted config path, message)``; empty when the config is buildable."""
    import timm

    problems: list[tuple[str, str]] = []
    backbone = config.model.backbone
    if not timm.is_model(backbone):
        close = difflib.get_close_matches(backbone, timm.list_models(), n=4, cutoff=0.6)
        hint = f"; similar: {', '.join(close)}" if close else ""
        problems.append(("model.backbone", f"unknown timm backbone '{backbone}'{hint}"))
    if config.model.pretrained_path and not Path(config.model.pretrained_path).expanduser().is_file():
        problems.append(("model.pretrained_path", f"weights file not found: {config.model.pretrained_path}"))
    return problems
