"""A stored trial row's ``variant_meta``: the design's facts about the row it belongs to (parts
switched off, contrast, ``continues:`` parent, adaptive seed schedule), written as JSON by the
orchestrator (``orchestrator.rows``). Its own module so the table (:mod:`analysis.summary`) and
the adaptive decisions (:mod:`analysis.seed_decisions`) both read it without importing each other.
"""

from __future__ import annotations

import json
from typing import Any, Mapping


def variant_meta(row: Mapping[str, Any]) -> dict[str, Any]:
    """A trial row's ``variant_meta`` as a dict; empty when missing or unreadable (rows of
    stores older than the column)."""
    try:
        meta = json.loads(row.get("variant_meta") or "{}")
    except (TypeError, ValueError):
        return {}
    return meta if isinstance(meta, dict) else {}
