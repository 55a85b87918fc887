"""leave_one_out with parts: rows that switch off any set of parts (Robust-ReID Table 2)."""

from __future__ import annotations

import pytest

from search_spaces import AblationSpec, Recipe, expand
from search_spaces.designs import DesignError

PARTS = [
    {"name": "soft triplet", "set": {"loss.triplet.kind": "batch_all"}},
    {"name": "soft margin", "set": {"loss.triplet.soft_margin": False, "loss.triplet.margin": 0.3}},
    {"name": "GeM", "set": {"model.pooling": "avg"}},
]
RECIPE = Recipe.model_validate({"model": {"pooling": "gem"}, "loss": {"triplet": {"kind": "batch_soft", "soft_margin": True}}})


def plan(variants, parts=PARTS, seeds=(0,)):
    return expand(
        RECIPE, AblationSpec.model_validate({"design": "leave_one_out", "parts": parts, "variants": variants, "seeds": list(seeds)})
    )


def test_a_row_switches_off_several_parts_at_once():
    trials = plan(
        [{"name": "full"}, {"name": "b", "without": ["soft margin", "soft triplet"]}, {"name": "f", "without": ["GeM"]}], seeds=(0, 1)
    )
    assert [t.variant for t in trials] == ["full", "full", "b", "b", "f", "f"]
    b = trials[2]
    assert (b.config.loss.triplet.kind, b.config.loss.triplet.soft_margin, b.config.model.pooling) == ("batch_all", False, "gem")
    assert b.variant_meta["off"] == ["soft triplet", "soft margin"]  # in the parts' order: one check per part
    assert b.variant_meta["parts"] == ["soft triplet", "soft margin", "GeM"]
    assert trials[0].variant_meta["off"] == [] and trials[0].changes == {}
    assert trials[4].config.model.pooling == "avg" and trials[4].config.loss.triplet.kind == "batch_soft"


def test_a_rows_own_set_wins_over_its_parts():
    trials = plan([{"name": "HA-CNN", "without": ["soft triplet", "GeM"], "set": {"loss.triplet.kind": "none"}}])
    assert trials[0].config.loss.triplet.kind == "none" and trials[0].config.model.pooling == "avg"


def test_parts_that_disagree_cannot_be_off_together():
    parts = [*PARTS, {"name": "hard triplet", "set": {"loss.triplet.kind": "batch_hard"}}]
    with pytest.raises(DesignError, match="set 'loss.triplet.kind' to batch_all and batch_hard") as err:
        plan([{"name": "x", "without": ["soft triplet", "hard triplet"]}], parts=parts)
    assert err.value.origin == ("ablation", "variants", 0, "without")


def test_unknown_and_misplaced_parts_are_errors():
    with pytest.raises(DesignError, match="unknown part 'gem'; parts: soft triplet, soft margin, GeM"):
        plan([{"name": "x", "without": ["gem"]}])
    with pytest.raises(ValueError, match="'parts' belong to the leave_one_out design"):
        AblationSpec.model_validate({"design": "list", "parts": PARTS, "variants": [{"name": "a"}]})
    with pytest.raises(ValueError, match="'without' names leave_one_out parts"):
        AblationSpec.model_validate({"design": "list", "variants": [{"name": "a", "without": ["GeM"]}]})
    with pytest.raises(DesignError, match="list the recipe's 'parts' first"):
        expand(RECIPE, AblationSpec.model_validate({"design": "leave_one_out", "variants": [{"name": "a", "without": ["GeM"]}]}))


def test_one_part_per_row_still_works_without_parts():
    trials = expand(
        RECIPE, AblationSpec.model_validate({"design": "leave_one_out", "variants": [{"name": "GeM", "set": {"model.pooling": "avg"}}]})
    )
    assert [t.variant for t in trials] == ["full", "w/o GeM"] and trials[1].variant_meta["off"] == ["GeM"]
