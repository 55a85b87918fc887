"""Errors raised while reading or generating ReID datasets.

One small exception type for every data problem (a missing folder, a file name that does not
follow the Market-1501 convention, an image that cannot be decoded). It subclasses
``ValueError`` so callers that only know about built-in errors still catch it; the CLI maps it
to exit status 2 ("bad dataset: nothing launched").
"""

from __future__ import annotations

from collections.abc import Sequence

__all__ = ["DatasetError", "summarize_paths"]


class DatasetError(ValueError):
    """A dataset on disk is missing, malformed or unreadable. The message names the place."""


def summarize_paths(paths: Sequence[object], limit: int = 5) -> str:
    """Name the first ``limit`` offending paths and say how many there are in total."""
    shown = ", ".join(str(p) for p in paths[:limit])
    more = len(paths) - limit
    suffix = f" (and {more} more)" if more > 0 else ""
    return f"{len(paths)} file(s): {shown}{suffix}"
