"""A variant that continues another (Robust-ReID Table 3): expansion and its errors."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from search_spaces import AblationSpec, ChangeError, DesignError, Recipe, expand
from search_spaces.hashing import config_hash
from search_spaces.trial_config import TrialConfig

RECIPE = Recipe.model_validate({"train": {"epochs": 4, "lr_steps": [2]}})
# The cycles are reset while SWA is off (a conditional axis), so a variant sets them with the switch.
SWA_ON = {"train.swa.enabled": True, "train.swa.cycles": 2, "train.swa.cycle_epochs": 3}


def ablation(variants, design="list", **extra) -> AblationSpec:
    return AblationSpec.model_validate({"design": design, "variants": variants, "seeds": [0, 1], **extra})


def by_variant(trials):
    return {(t.variant, t.seed): t for t in trials}


def test_a_dependent_resolves_to_its_parent_at_the_same_seed():
    trials = expand(
        RECIPE,
        ablation(
            [
                {"name": "-"},
                {"name": "+LR scheme", "continues": "-", "set": {**SWA_ON, "train.swa.average": False}},
                {"name": "+SWAG", "continues": "-", "set": {**SWA_ON, "train.swa.swag": True}},
            ]
        ),
    )
    rows = by_variant(trials)
    assert [(t.variant, t.seed) for t in trials] == [("-", 0), ("-", 1), ("+LR scheme", 0), ("+LR scheme", 1), ("+SWAG", 0), ("+SWAG", 1)]
    for seed in (0, 1):
        parent = rows[("-", seed)]
        assert parent.config.train.init_from is None
        for name in ("+LR scheme", "+SWAG"):
            child = rows[(name, seed)]
            assert child.config.train.init_from == parent.config_hash
            assert child.variant_meta["continues"] == "-"
            # Its main phase is the parent's: it runs epochs 5..10 only.
            assert (child.config.train.first_epoch, child.config.train.total_epochs) == (5, 10)
    # The parent's identity is part of the dependent's: another parent seed, another hash.
    assert rows[("+SWAG", 0)].config_hash != rows[("+SWAG", 1)].config_hash
    alone = TrialConfig.model_validate(
        {
            **rows[("+SWAG", 0)].config.model_dump(mode="python"),
            "train": {**rows[("+SWAG", 0)].config.train.model_dump(mode="python"), "init_from": None},
        }
    )
    assert config_hash(alone) != rows[("+SWAG", 0)].config_hash


def test_a_parent_keeps_its_hash_and_chains_resolve_in_order():
    plain = expand(RECIPE, ablation([{"name": "-"}]))
    trials = expand(
        RECIPE,
        ablation(
            [
                # Listed before its parent, which is itself continued: resolved parent-first.
                {"name": "again", "continues": "more", "set": {**SWA_ON, "train.epochs": 10}},
                {"name": "more", "continues": "-", "set": SWA_ON},
                {"name": "-"},
            ]
        ),
    )
    rows = by_variant(trials)
    assert rows[("-", 0)].config_hash == plain[0].config_hash  # no field added to the parent's identity
    assert rows[("more", 0)].config.train.init_from == rows[("-", 0)].config_hash
    assert rows[("again", 0)].config.train.init_from == rows[("more", 0)].config_hash
    assert rows[("again", 0)].config.train.first_epoch == 11


def test_leave_one_out_parts_rows_continue():
    spec = AblationSpec.model_validate(
        {
            "design": "leave_one_out",
            "parts": [{"name": "cyclic LR", "set": {"train.swa.enabled": False}}],
            "variants": [{"name": "-", "without": ["cyclic LR"]}, {"name": "+LR", "continues": "-", "without": []}],
        }
    )
    rows = by_variant(expand(Recipe.model_validate({"train": {"epochs": 4, "lr_steps": [2], "swa": {"enabled": True}}}), spec))
    assert rows[("+LR", 0)].config.train.init_from == rows[("-", 0)].config_hash
    assert rows[("+LR", 0)].variant_meta["off"] == [] and rows[("+LR", 0)].variant_meta["continues"] == "-"


@pytest.mark.parametrize(
    ("variants", "message", "origin"),
    [
        (
            [{"name": "a"}, {"name": "b", "continues": "nope", "set": SWA_ON}],
            "continues 'nope', which is no variant",
            ("ablation", "variants", 1, "continues"),
        ),
        ([{"name": "a", "continues": "a", "set": SWA_ON}], "cycle: 'a' -> 'a'", ("ablation", "variants", 0, "continues")),
        (
            [{"name": "a", "continues": "b", "set": SWA_ON}, {"name": "b", "continues": "a", "set": SWA_ON}],
            "cycle: 'a' -> 'b' -> 'a'",
            ("ablation", "variants", 0, "continues"),
        ),
        ([{"name": "a"}, {"name": "b", "continues": "a"}], "runs no continuation epochs", ("ablation", "variants", 1, "continues")),
        (
            [{"name": "a"}, {"name": "b", "continues": "a", "set": {**SWA_ON, "model.neck": "l2norm"}}],
            "sets model.neck to 'l2norm' (parent: 'bnneck')",
            ("ablation", "variants", 1, "continues"),
        ),
        (
            [{"name": "a"}, {"name": "b", "continues": "a", "set": {**SWA_ON, "train.epochs": 6}}],
            "from the parent's last epoch 4, but its train.epochs is 6",
            ("ablation", "variants", 1, "continues"),
        ),
        (
            [{"name": "a", "set": {"train.init_from": "0123456789abcdef", **SWA_ON}}],
            "train.init_from is set by a variant's 'continues'",
            ("ablation", "variants", 0, "set", "train.init_from"),
        ),
    ],
)
def test_bad_continuations_name_their_key(variants, message, origin):
    with pytest.raises((DesignError, ChangeError)) as err:
        expand(RECIPE, ablation(variants))
    assert message in str(err.value)
    assert err.value.origin == origin


def test_a_part_or_a_search_design_cannot_continue():
    with pytest.raises(ValidationError, match="'continues' needs a parent variant planned in advance"):
        ablation(
            [{"name": "a", "continues": "b"}],
            design="optuna",
            search={"num_samples": 2, "space": {"train.lr": {"type": "loguniform", "low": 1e-4, "high": 1e-2}}},
        )
    spec = AblationSpec.model_validate(
        {"design": "leave_one_out", "parts": [{"name": "p", "set": {"model.neck": "none"}, "continues": "x"}], "variants": [{"name": "x"}]}
    )
    with pytest.raises(DesignError, match="a part has no 'continues'") as err:
        expand(RECIPE, spec)
    assert err.value.origin == ("ablation", "parts", 0, "continues")


def test_init_from_in_the_baseline_or_without_cycles_is_refused():
    with pytest.raises(ChangeError) as err:
        expand(Recipe.model_validate({"train": {"init_from": "0123456789abcdef", "swa": {"enabled": True}}}), ablation([{"name": "a"}]))
    assert err.value.origin == ("baseline", "train", "init_from")
    with pytest.raises(ValidationError, match="switch train.swa on"):
        TrialConfig.model_validate({"train": {"init_from": "0123456789abcdef"}})
    with pytest.raises(ValidationError, match="pattern"):
        TrialConfig.model_validate({"train": {"init_from": "not a hash", "swa": {"enabled": True}}})
