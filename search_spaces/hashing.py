"""Stable content hashes and flat views of trial configs.

The hash is taken over the config's *identity tree* (see :mod:`search_spaces.identity`): the
resolved config (every default filled in by validation) without the fields added after
identity version 1 that still have their behaviour-preserving value, encoded as canonical JSON
(sorted keys, no whitespace, tuples as lists). So it does not depend on key order in the YAML,
on whether a default was written out or left implicit, on the process (no Python ``hash()``
randomisation is involved), nor on fields added to the config since a trial was stored.

:func:`canonical_json` is the *whole* config in the same encoding: what the store keeps
(``config_json``), from which the config can be rebuilt.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

from pydantic import BaseModel

from search_spaces.identity import IDENTITY_VERSION, identity_tree

HASH_LENGTH = 16


def _dumps(tree: dict[str, Any]) -> str:
    return json.dumps(tree, sort_keys=True, separators=(",", ":"))


def canonical_json(config: BaseModel) -> str:
    """The whole resolved config as canonical JSON (round-trips through ``model_validate``)."""
    return _dumps(config.model_dump(mode="json"))


def identity_json(config: BaseModel, version: int = IDENTITY_VERSION) -> str:
    """The exact text the hash is computed over: the identity tree as canonical JSON."""
    return _dumps(identity_tree(config, version))


def config_hash(config: BaseModel, version: int = IDENTITY_VERSION) -> str:
    """Short SHA-256 content hash of a resolved trial config's identity (16 hex digits)."""
    return hashlib.sha256(identity_json(config, version).encode("utf-8")).hexdigest()[:HASH_LENGTH]


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


def flat_config(config: BaseModel) -> dict[str, Any]:
    """The config as ``{dotted path: JSON-compatible leaf}`` (tuples become lists)."""
    return flatten(config.model_dump(mode="json"))
