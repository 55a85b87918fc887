"""Expansion validates only the sections a variant changes and shares the baseline's others
(search_spaces.expand.ValidatedRecipe): every planned config must equal, field for field and
hash for hash, the config validated whole from the recipe's dump, as expansion once did."""

from __future__ import annotations

import pytest

from orchestrator.preset_library import list_presets, preset_text
from orchestrator.spec import load_spec
from search_spaces.designs import Change
from search_spaces.expand import apply_changes
from search_spaces.hashing import config_hash
from search_spaces.trial_config import TrialConfig


def whole(loaded, trial) -> TrialConfig:
    tree = apply_changes(loaded.spec.baseline.model_dump(mode="python"), [Change(p, v, ()) for p, v in trial.changes.items()])
    return TrialConfig.model_validate({**tree, "seed": trial.seed})


@pytest.mark.parametrize("name", sorted(list_presets()))
def test_every_preset_plans_the_configs_whole_validation_gives(name, tmp_path):
    path = tmp_path / "spec.yaml"
    path.write_text(preset_text(name, str(tmp_path)), encoding="utf-8")
    loaded = load_spec(path)
    checked = 0
    for trial in loaded.trials:
        if trial.variant_meta.get("continues"):
            continue  # its init_from names the parent's hash: built on top of the parent, not from the recipe
        expected = whole(loaded, trial)
        assert trial.config.model_dump(mode="json") == expected.model_dump(mode="json"), trial.variant
        assert trial.config_hash == config_hash(expected)
        checked += 1
    assert checked > 0


def test_a_grid_over_a_module_switch_and_its_parameters(tmp_path):
    path = tmp_path / "spec.yaml"
    path.write_text(
        "study: {name: s}\n"
        "baseline:\n  model: {apra: {stages: [1], lam: 0.05}}\n"
        "ablation:\n  design: grid\n  seeds: [0, 3]\n  axes:\n"
        "    model.apra.stages: [[], [1], [2]]\n    model.apra.lam: [0.01, 0.05]\n    train.lr: [0.001, 0.002]\n",
        encoding="utf-8",
    )
    loaded = load_spec(path)
    # The off-row runs once per lr and seed (its lam is not a parameter), the on-rows once per lam too.
    assert len(loaded.trials) == (1 + 2 * 2) * 2 * 2
    for trial in loaded.trials:
        expected = whole(loaded, trial)
        assert trial.config.model_dump(mode="json") == expected.model_dump(mode="json")
        assert trial.config_hash == config_hash(expected)
    # Sections no variant changes are one object shared by every trial.
    assert len({id(trial.config.dataset) for trial in loaded.trials}) == 1
