"""The config schema built from the insert registry: a registered section is ``model.<name>``,
validated like every other key, an ablation axis, and absent from configs that leave it off."""

from __future__ import annotations

import json
from typing import ClassVar

import pytest
from pydantic import Field, ValidationError

from search_spaces import AblationSpec, Recipe, TrialConfig, canonical_json, expand
from search_spaces.registry import Registry, RegistryError, forget_plugin, loading_plugin
from search_spaces.trial_config import INSERT_SECTIONS, StagedInsert, field_paths, register_insert_section


class GateConfig(StagedInsert):
    """A test insert: a gate with a width and a loss weight."""

    LOSS_WEIGHTS: ClassVar[dict[str, str]] = {"loss_gate": "weight"}
    width: int = Field(4, ge=1)
    weight: float = Field(0.1, ge=0.0)


@pytest.fixture
def gate():
    with loading_plugin("gate_plugin"):
        register_insert_section("gate")(GateConfig)
    yield
    forget_plugin("gate_plugin")


def test_registry_rejects_duplicates_and_lists_known_names():
    registry: Registry[int] = Registry("widget")
    registry.add("a", 1)
    with pytest.raises(RegistryError, match="widget 'a' is already registered \\(by the package"):
        registry.add("a", 2)
    with pytest.raises(RegistryError, match="unknown widget 'b'; known: a"):
        registry.get("b")
    with loading_plugin("mine"):
        registry.add("c", 3)
    assert registry.origin("a") is None and registry.origin("c") == "mine"
    forget_plugin("mine")
    assert "c" not in registry


def test_builtin_inserts_are_registered_sections():
    assert INSERT_SECTIONS.names() == ["apra", "dranet"]
    assert INSERT_SECTIONS.origin("apra") is None  # built-ins count for nothing in identity


def test_registered_section_is_validated_and_dumped_only_when_on(gate):
    on = TrialConfig.model_validate({"model": {"gate": {"stages": [1, 2], "width": 8}}})
    assert on.model.active_inserts()["gate"].placements() == (1, 2)
    assert json.loads(canonical_json(on))["model"]["gate"] == {"stages": [1, 2], "width": 8, "weight": 0.1}
    assert TrialConfig.model_validate(on.model_dump(mode="json")) == on
    off = TrialConfig.model_validate({"model": {"gate": {"stages": [], "width": 8}}})
    assert canonical_json(off) == canonical_json(TrialConfig())  # off = absent: today's bytes
    assert "model.gate.width" in field_paths()


@pytest.mark.parametrize(
    ("tree", "loc", "kind"),
    [
        ({"model": {"gate": {"stages": [1], "colour": 1}}}, ("model", "gate", "colour"), "extra_forbidden"),
        ({"model": {"gate": {"stages": [1], "width": 0}}}, ("model", "gate", "width"), "greater_than_equal"),
        ({"model": {"gate": {"stages": [2, 1]}}}, ("model", "gate"), "value_error"),
        ({"model": {"gaet": {"stages": [1]}}}, ("model", "gaet"), "extra_forbidden"),
    ],
)
def test_bad_section_values_are_errors_at_their_key(gate, tree, loc, kind):
    with pytest.raises(ValidationError) as caught:
        TrialConfig.model_validate(tree)
    first = caught.value.errors()[0]
    assert (tuple(first["loc"]), first["type"]) == (loc, kind)


def test_registered_section_is_an_ablation_axis(gate):
    ablation = AblationSpec(design="grid", axes={"model.gate.stages": [[], [1], [2]], "model.gate.width": [2, 4]})
    trials = expand(Recipe(), ablation)
    placements = sorted({t.config.model.active_inserts().get("gate", GateConfig()).stages for t in trials})
    assert placements == [(), (1,), (2,)]
    assert len(trials) == 5  # the off trial runs once, not once per width


def test_unknown_axis_of_a_section_names_its_fields(gate):
    from search_spaces import ChangeError

    with pytest.raises(ChangeError, match="model.gate has no field 'widht'.*did you mean 'model.gate.width'"):
        expand(Recipe(), AblationSpec(design="grid", axes={"model.gate.widht": [1]}))


@pytest.mark.parametrize(
    "place, name",
    [
        ("model", "backbone"),
        ("model", "pooling"),
        ("loss", "triplet"),
        ("loss", "id_weight"),
        ("augment", "flip"),
        ("augment", "random_erasing"),
    ],
)
def test_a_section_may_not_take_the_name_of_a_declared_option(place, name):
    from search_spaces import trial_config as tc

    register, registry, base = {
        "model": (tc.register_insert_section, tc.INSERT_SECTIONS, tc.InsertSection),
        "loss": (tc.register_loss_section, tc.LOSS_SECTIONS, tc.LossSection),
        "augment": (tc.register_augment_section, tc.AUGMENT_SECTIONS, tc.AugmentSection),
    }[place]
    before = registry.names()
    with pytest.raises(ValueError, match=f"'{place}.{name}' is a built-in {place} option"):
        register(name)(type("Clash", (base,), {}))
    with pytest.raises(TypeError, match=f"must subclass {base.__name__}"):
        register("fresh_name")(GateConfig if base is not tc.InsertSection else dict)
    assert registry.names() == before
