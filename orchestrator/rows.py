"""Result rows for the Parquet tables, built from a planned trial and its reported metrics."""

from __future__ import annotations

import json
import re
from typing import Any, Mapping

from search_spaces import PlannedTrial, canonical_json, flat_config
from storage import CONFIG_PREFIX

CAMERA_KEY = re.compile(r"^cam/c(\d+)/(.+)$")
def identity(study: str, trial: PlannedTrial) -> dict[str, Any]:
    """Columns every table shares."""
    return {
        "study": study,
        "trial_id": trial.trial_id,
        "config_hash": trial.config_hash,
        "variant": trial.variant,
        "seed": trial.seed,
    }


def trial_row(
    study: str,
    trial: PlannedTrial,
    variant_index: int,
    *,
    status: str,
    error: str | None,
    final: Mapping[str, float],
    started_at: str | None,
    finished_at: str,
    extra: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """The ``trials`` row: identity, status, every config field, final non-camera metrics."""
    row = identity(study, trial)
    row.update(
        variant_index=variant_index,
        changes=json.dumps(trial.changes, sort_keys=True),
        design=trial.variant_meta.get("design"),
        variant_meta=json.dumps(trial.variant_meta, sort_keys=True),
        status=status,
        error=error,
        started_at=started_at,
        finished_at=finished_at,
    )
    for path, value in flat_config(trial.config).items():
        row[CONFIG_PREFIX + path] = json.dumps(value) if isinstance(value, (list, dict)) else value
    row.update({key: value for key, value in final.items() if not CAMERA_KEY.match(key)})
    row.update(extra or {})
    row["config_json"] = canonical_json(trial.config)
    return row


def camera_rows(study: str, trial: PlannedTrial, final: Mapping[str, float]) -> list[dict[str, Any]]:
    """The ``cameras`` rows: one per camera x metric of the final evaluation."""
    base = identity(study, trial)
    epoch = int(final.get("epoch", 0))
    rows = []
    for key, value in final.items():
        match = CAMERA_KEY.match(key)
        if match:
            rows.append({**base, "epoch": epoch, "camera": int(match.group(1)), "metric": match.group(2), "value": float(value)})
    return rows


def curve_row(study: str, trial: PlannedTrial, metrics: Mapping[str, float]) -> dict[str, Any]:
    """A ``curves`` row: one reported epoch, per-camera metrics left to the cameras table."""
    row = identity(study, trial)
    row.update({key: value for key, value in metrics.items() if not CAMERA_KEY.match(key)})
    row["epoch"] = int(metrics.get("epoch", 0))
    return row
