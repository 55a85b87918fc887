"""Stable content hashes and flat views of trial configs.

The hash is taken over the *resolved* config (every default filled in by validation), encoded
as canonical JSON (sorted keys, no whitespace, tuples as lists). So it does not depend on key
order in the YAML, on whether a default was written out or left implicit, or on the process
(no Python ``hash()`` randomisation is involved).
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

from search_spaces.trial_config import TrialConfig

HASH_LENGTH = 16


def canonical_json(config: TrialConfig) -> str:
    """The config as canonical JSON: the exact bytes the hash is computed over."""
    return json.dumps(config.model_dump(mode="json"), sort_keys=True, separators=(",", ":"))


def config_hash(config: TrialConfig) -> str:
    """Short SHA-256 content hash of a resolved trial config (16 hex digits)."""
    return hashlib.sha256(canonical_json(config).encode("utf-8")).hexdigest()[:HASH_LENGTH]


def flatten(tree: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """Nested dict -> ``{"a.b.c": leaf}``. Lists and tuples are leaves."""
    flat: dict[str, Any] = {}
    for key, value in tree.items():
        dotted = f"{prefix}{key}"
        if isinstance(value, dict):
            flat.update(flatten(value, dotted + "."))
        else:
            flat[dotted] = value
    return flat


def flat_config(config: TrialConfig) -> dict[str, Any]:
    """The config as ``{dotted path: JSON-compatible leaf}`` (tuples become lists)."""
    return flatten(config.model_dump(mode="json"))
