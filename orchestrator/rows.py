"""Result rows for the Parquet tables, built from a planned trial and its reported metrics."""

from __future__ import annotations

import json
from typing import Any, Mapping

from search_spaces import PlannedTrial, canonical_json, flat_config
from search_spaces.identity import IDENTITY_VERSION
from search_spaces.metrics import EPOCH, parse_camera_key
from storage import CONFIG_PREFIX


def _scalars(metrics: Mapping[str, Any]) -> dict[str, Any]:
    """The metrics without the per-camera ones (those go to the ``cameras`` table)."""
    return {key: value for key, value in metrics.items() if parse_camera_key(key) is None}


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
    row.update(_scalars(final))
    row.update(extra or {})
    row["config_json"] = canonical_json(trial.config)
    # The rule config_hash was computed by (search_spaces.identity); rows without it are 1.
    row["identity_version"] = IDENTITY_VERSION
    return row


def camera_rows(study: str, trial: PlannedTrial, final: Mapping[str, float]) -> list[dict[str, Any]]:
    """The ``cameras`` rows: one per camera x metric of the final evaluation."""
    base = identity(study, trial)
    epoch = int(final.get(EPOCH, 0))
    rows = []
    for key, value in final.items():
        parsed = parse_camera_key(key)
        if parsed:
            camera, metric = parsed
            rows.append({**base, EPOCH: epoch, "camera": camera, "metric": metric, "value": float(value)})
    return rows


def curve_row(study: str, trial: PlannedTrial, metrics: Mapping[str, float]) -> dict[str, Any]:
    """A ``curves`` row: one reported epoch, per-camera metrics left to the cameras table."""
    row = identity(study, trial)
    row.update(_scalars(metrics))
    row[EPOCH] = int(metrics.get(EPOCH, 0))
    return row
