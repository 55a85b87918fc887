"""The registry every component kind uses, re-exported for the model code.

The class lives in :mod:`search_spaces.registry` (no torch) so that config sections and torch
modules share one style: decorator registration, duplicate names are errors, unknown names list
the known ones, and each entry remembers which plugin (if any) registered it.
"""

from search_spaces.registry import Entry, Registry, RegistryError, current_plugin, loading_plugin

__all__ = ["Entry", "Registry", "RegistryError", "current_plugin", "loading_plugin"]
