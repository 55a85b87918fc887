"""The config sections of the papers' modules: dotted names, value rules, conditional axes."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from search_spaces import TrialConfig, field_paths
from search_spaces.hashing import config_hash


def test_the_new_axes_have_stable_dotted_names():
    paths = set(field_paths())
    assert {
        "model.apra.stages",
        "model.apra.lam",
        "model.apra.grl_scale",
        "model.apra.reduction",
        "model.dranet.rcam",
        "model.dranet.rsam",
        "model.dranet.alpha_c",
        "model.dranet.alpha_s",
        "model.dranet.stage",
        "model.shuffle_blocks",
        "loss.triplet.kind",
        "loss.triplet.soft_margin",
        "train.swa.enabled",
        "train.swa.cycles",
        "train.swa.cycle_epochs",
        "train.swa.decay",
        "train.swa.swag",
        "train.swa.swag_samples",
    } <= paths
    assert "model.apra.enabled" not in paths  # APRA is on iff it has stages


def test_defaults_keep_every_new_module_off():
    config = TrialConfig()
    assert config.model.apra.stages == () and not config.model.apra.is_active()
    assert not config.model.dranet.is_active() and not config.train.swa.enabled
    assert (config.loss.triplet.kind, config.loss.triplet.soft_margin) == ("batch_hard", False)


@pytest.mark.parametrize(
    "tree, message",
    [
        ({"model": {"apra": {"stages": [1], "lam": -0.1}}}, "greater than or equal to 0"),
        ({"model": {"apra": {"lam": -0.1}}}, "greater than or equal to 0"),  # validated even while off
        ({"model": {"apra": {"stages": [1], "grl_scale": -1}}}, "greater than or equal to 0"),
        ({"model": {"apra": {"stages": [-1]}}}, "greater than or equal to 0"),
        ({"model": {"apra": {"stages": [2, 1]}}}, "stages must be strictly increasing"),
        ({"model": {"apra": {"stages": [1], "spatial_kernel": 4}}}, "spatial_kernel must be odd"),
        ({"model": {"apra": {"enabled": True}}}, "Extra inputs are not permitted"),
        ({"model": {"dranet": {"rcam": True, "alpha_c": -1}}}, "greater than or equal to 0"),
        ({"model": {"dranet": {"rsam": True, "alpha_s": -0.5}}}, "greater than or equal to 0"),
        ({"loss": {"triplet": {"kind": "batch_softt"}}}, "batch_hard', 'batch_soft', 'batch_all' or 'none'"),
    ],
)
def test_invalid_values_fail_validation_with_the_rule(tree, message):
    with pytest.raises(ValidationError, match=message):
        TrialConfig.model_validate(tree)


def test_conditional_axes_ignore_parameters_that_do_not_matter():
    same = [
        ({"model": {"apra": {"lam": 0.5}}}, {}),
        ({"model": {"dranet": {"rsam": True, "alpha_c": 4.0}}}, {"model": {"dranet": {"rsam": True}}}),
        ({"loss": {"triplet": {"soft_margin": True, "margin": 0.9}}}, {"loss": {"triplet": {"soft_margin": True}}}),
        ({"loss": {"triplet": {"kind": "none", "margin": 0.9, "weight": 2}}}, {"loss": {"triplet": {"kind": "none"}}}),
    ]
    for a, b in same:
        assert config_hash(TrialConfig.model_validate(a)) == config_hash(TrialConfig.model_validate(b))
    on = TrialConfig.model_validate({"model": {"apra": {"stages": [1], "lam": 0.5}, "dranet": {"rcam": True, "alpha_c": 4.0}}})
    assert on.model.apra.lam == 0.5 and on.model.dranet.alpha_c == 4.0 and on.model.dranet.alpha_s == 1.0
