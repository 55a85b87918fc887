"""Versioned trial identity: fields added after identity version 1 keep stored hashes valid.

``tests/fixtures/config_hashes_v1.jsonl`` holds 127 hashes computed before hashes were
versioned (every preset trial and hand-made configs touching every section); the config is
grown here with synthetic new fields of every kind the issue names (a leaf in an existing
section, a new section, a plugin's insert section held as an extra key, a field whose default
changes behaviour) to check that stored identities survive them.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any, ClassVar

import pytest
from pydantic import ConfigDict, Field, create_model

from search_spaces import TrialConfig, canonical_json, config_hash, flatten
from search_spaces.hashing import identity_json
from search_spaces.identity import IDENTITY_LEAVES, IDENTITY_VERSION, VERSION_KEY, Neutral, identity_tree
from search_spaces.identity_v1 import V1_LEAVES
from search_spaces.registry import forget_plugin, loading_plugin
from search_spaces.trial_config import InsertSection, LossConfig, ModelConfig, Section, TrainConfig, field_paths, register_insert_section

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"


def unflatten(flat: dict[str, Any]) -> dict[str, Any]:
    tree: dict[str, Any] = {}
    for path, value in flat.items():
        node = tree
        *parents, leaf = path.split(".")
        for part in parents:
            node = node.setdefault(part, {})
        node[leaf] = value
    return tree


def recorded_v1() -> list[tuple[str, dict[str, Any]]]:
    lines = (FIXTURES / "config_hashes_v1.jsonl").read_text(encoding="utf-8").splitlines()
    return [(record["hash"], unflatten(record["set"])) for record in map(json.loads, lines)]


# -- a config grown after version 1 (what other branches are adding) --------------------------
class CenterLossConfig(Section):
    """A new section whose defaults mean "off"."""

    weight: float = Field(0.0, ge=0.0)
    lr: float = 0.5


class SEConfig(InsertSection):
    """A plugin's inserted module: on iff ``stages`` is non-empty."""

    SWITCHES: ClassVar[tuple[str, ...]] = ("stages",)
    enabled: ClassVar[bool] = False
    stages: tuple[int, ...] = ()
    reduction: int = 16

    def is_active(self) -> bool:
        return bool(self.stages)


@pytest.fixture(autouse=True)
def se_plugin_section():
    """``model.se`` registered as a plugin's section would be, and forgotten afterwards."""
    with loading_plugin("identity_test_se"):
        register_insert_section("se")(SEConfig)
    yield
    forget_plugin("identity_test_se")

    def is_active(self) -> bool:
        return bool(self.stages)


class GrownModel(ModelConfig):
    # A plugin section arrives as an extra key of ``model`` (how a registry-built section may be held).
    model_config = ConfigDict(extra="allow", frozen=True)

    head_stride: Annotated[int, Neutral(2)] = Field(1, ge=1, le=2)  # the default changes behaviour
    warm_start: bool = False  # the default keeps behaviour: no marker needed


class GrownLoss(LossConfig):
    aux_center: CenterLossConfig = CenterLossConfig()


class GrownTrain(TrainConfig):
    grad_clip: float | None = None


class GrownTrialConfig(TrialConfig):
    model: GrownModel = GrownModel()
    loss: GrownLoss = GrownLoss()
    train: GrownTrain = GrownTrain()


def grown(tree: dict[str, Any], se: dict[str, Any] | None = None) -> GrownTrialConfig:
    """The grown config of ``tree``; ``head_stride`` at its neutral value (the v1 behaviour)
    unless the tree sets it; ``se`` adds the plugin's section."""
    tree = json.loads(json.dumps(tree))
    model = tree.setdefault("model", {})
    model.setdefault("head_stride", 2)
    if se is not None:
        model["se"] = SEConfig.model_validate(se)
    return GrownTrialConfig.model_validate(tree)


# -- version 1 itself ------------------------------------------------------------------------
def test_hashes_recorded_before_versioning_still_hold():
    records = recorded_v1()
    assert len(records) == 127
    wrong = [digest for digest, tree in records if config_hash(TrialConfig.model_validate(tree)) != digest]
    assert not wrong, f"{len(wrong)} stored identities changed; a v1 field was changed (see search_spaces/identity.py)"


def test_every_v1_field_is_still_a_config_field():
    # Removing or renaming one of them changes stored identities: a new identity version is needed.
    assert set(V1_LEAVES) <= set(field_paths(TrialConfig))
    assert IDENTITY_VERSION == 1 and IDENTITY_LEAVES[1] == frozenset(V1_LEAVES)


def test_a_v1_config_hashes_its_whole_resolved_config():
    config = TrialConfig.model_validate({"model": {"apra": {"stages": [2]}}, "seed": 4})
    # Every v1 field is hashed, and nothing else while the newer fields sit at their neutral values.
    v1_only = {path: value for path, value in flatten(json.loads(canonical_json(config))).items() if path in V1_LEAVES}
    assert json.loads(identity_json(config)) == unflatten(v1_only)
    assert set(v1_only) == set(V1_LEAVES)
    assert VERSION_KEY not in identity_tree(config)


# -- fields added after version 1 ------------------------------------------------------------
def test_new_fields_at_their_neutral_values_keep_every_stored_hash():
    records = recorded_v1()
    wrong = [digest for digest, tree in records if config_hash(grown(tree)) != digest]
    assert not wrong
    # the plugin's section, present but off (its defaults), does not count either
    wrong = [digest for digest, tree in records[:20] if config_hash(grown(tree, se={"reduction": 4})) != digest]
    assert not wrong


@pytest.mark.parametrize(
    "change",
    [
        {"model": {"head_stride": 1}},  # the new default: a different model
        {"model": {"warm_start": True}},
        {"loss": {"aux_center": {"weight": 0.0005}}},
        {"loss": {"aux_center": {"lr": 0.1}}},
        {"train": {"grad_clip": 5.0}},
    ],
)
def test_a_new_field_away_from_its_neutral_value_is_a_new_identity(change):
    base = grown({"seed": 1})
    assert config_hash(base) == config_hash(TrialConfig(seed=1))
    changed = grown({"seed": 1, **change})
    assert config_hash(changed) != config_hash(base)
    ((section, fields),) = change.items()
    assert identity_tree(changed)[section].items() >= fields.items()


def test_the_default_of_a_neutral_marked_field_is_not_neutral():
    # ``head_stride`` defaults to 1 where the code ran stride 2 before it existed.
    default = GrownTrialConfig()
    assert default.model.head_stride == 1
    assert config_hash(default) != config_hash(TrialConfig())
    assert config_hash(grown({})) == config_hash(TrialConfig())


def test_a_plugin_section_counts_only_where_it_is_used():
    off = grown({"seed": 2}, se={})
    on = grown({"seed": 2}, se={"stages": [1, 2]})
    on_again = grown({"seed": 2}, se={"stages": (1, 2), "reduction": 16})
    assert config_hash(off) == config_hash(TrialConfig(seed=2))
    assert config_hash(on) != config_hash(off)
    assert config_hash(on) == config_hash(on_again)  # written-out defaults do not count
    assert identity_tree(on)["model"]["se"] == {"stages": [1, 2]}
    # a parameter of the switched-off plugin is reset, so it changes nothing (conditional axes)
    assert config_hash(grown({"seed": 2}, se={"reduction": 4})) == config_hash(off)


def test_a_new_section_is_neutral_at_its_default_instance_not_its_fields_defaults():
    class Center(Section):
        weight: float = 0.0005  # the usual weight when on ...
        lr: float = 0.5

    loss = create_model("CenterLoss", __base__=LossConfig, aux_center=(Center, Center(weight=0.0)))  # ... but off by default
    config = create_model("CenterTrial", __base__=TrialConfig, loss=(loss, loss()))
    assert config_hash(config()) == config_hash(TrialConfig())
    on = config.model_validate({"loss": {"aux_center": {"weight": 0.0005}}})
    assert config_hash(on) != config_hash(TrialConfig())
    assert identity_tree(on)["loss"]["aux_center"] == {"weight": 0.0005}
    assert identity_tree(config.model_validate({"loss": {"aux_center": {"weight": 0.0, "lr": 0.1}}}))["loss"]["aux_center"] == {"lr": 0.1}


def test_hash_of_grown_configs_ignores_key_order_and_written_out_defaults():
    implicit = grown({"loss": {"aux_center": {"weight": 0.01}}, "seed": 3})
    explicit = grown(
        {"seed": 3, "train": {"grad_clip": None}, "loss": {"aux_center": {"lr": 0.5, "weight": 0.01}}, "model": {"warm_start": False}}
    )
    assert config_hash(implicit) == config_hash(explicit)


def test_an_optional_section_counts_whenever_it_is_set():
    class Warmup(Section):
        epochs: int = 5

    optional = create_model("OptionalTrain", __base__=TrainConfig, warmup=(Warmup | None, None))
    config = create_model("OptionalTrial", __base__=TrialConfig, train=(optional, optional()))
    assert config_hash(config()) == config_hash(TrialConfig())
    assert config_hash(config.model_validate({"train": {"warmup": {}}})) != config_hash(TrialConfig())


def test_canonical_json_keeps_every_field_and_round_trips():
    config = grown({"loss": {"aux_center": {"weight": 0.01}}})
    assert GrownTrialConfig.model_validate(json.loads(canonical_json(config))) == config
    assert '"head_stride":2' in canonical_json(config) and "head_stride" not in identity_json(config)


def test_a_later_identity_version_marks_its_hashes(monkeypatch):
    config = TrialConfig()
    with pytest.raises(ValueError, match="unknown identity version 2"):
        identity_tree(config, 2)
    monkeypatch.setitem(IDENTITY_LEAVES, 2, IDENTITY_LEAVES[1])
    assert identity_tree(config, 2)[VERSION_KEY] == 2
    assert config_hash(config, 2) != config_hash(config, 1)
