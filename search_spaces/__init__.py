"""Study designs, trial-config expansion and hashing. Imports no torch."""

from search_spaces.designs import BASELINE, DESIGNS, FULL, AblationSpec, Change, DesignError, VariantPlan, VariantSpec, register_design
from search_spaces.expand import ChangeError, PlannedTrial, expand, resolve_sample
from search_spaces.search import SearchSpec
from search_spaces.hashing import canonical_json, config_hash, flat_config, flatten
from search_spaces.trial_config import Recipe, TrialConfig, field_paths

__all__ = [
    "BASELINE",
    "DESIGNS",
    "FULL",
    "AblationSpec",
    "Change",
    "ChangeError",
    "DesignError",
    "PlannedTrial",
    "Recipe",
    "SearchSpec",
    "TrialConfig",
    "VariantPlan",
    "VariantSpec",
    "canonical_json",
    "config_hash",
    "expand",
    "resolve_sample",
    "field_paths",
    "flat_config",
    "flatten",
    "register_design",
]
