"""Config sections and the registries that build the config schema from what is registered.

:class:`Section` is the base of every part of a trial config (unknown keys are errors,
instances are immutable); :class:`ToggleSection` is an optional part a study switches on and off.
A registered component's parameter model is a section of one of these kinds, and becomes a key
of the config under its registry name:

- :class:`InsertSection` (``model.<name>``): a module inserted after backbone stages;
- :class:`AugmentSection` (``augment.<name>``): a batch augmentation;
- :class:`LossSection` (``loss.<name>``): a loss term.

:func:`validate_registered_sections` validates those keys like declared fields and leaves a
section out of the config while it is off, so registering a component never changes the
canonical JSON (and hash) of a config that does not use it. No torch import here.
"""

from __future__ import annotations

import types
import typing
from typing import Annotated, Any, Callable, ClassVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError, ValidationInfo, field_validator, model_validator
from pydantic_core import InitErrorDetails

from search_spaces.registry import Registry


def _numeric(annotation: Any) -> bool:
    """Whether a field holds numbers (int, float, optional or in a tuple), not booleans."""
    if annotation in (int, float):
        return True
    if typing.get_origin(annotation) in (typing.Union, types.UnionType, tuple):
        args = [arg for arg in typing.get_args(annotation) if arg not in (type(None), Ellipsis)]
        return bool(args) and bool not in args and all(_numeric(arg) for arg in args)
    return False


def _numeric_field(cls: type[BaseModel], name: str) -> bool:
    field = cls.model_fields.get(name)
    return field is not None and _numeric(field.annotation)


class Section(BaseModel):
    """Base of every config section: unknown keys are errors, instances are immutable.

    Numbers are strict where YAML is loose: ``epochs: true`` is not 1 and ``lr: .inf`` is not a
    learning rate (``allow_inf_nan=False``)."""

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)

    @field_validator("*", mode="before")
    @classmethod
    def _no_booleans_for_numbers(cls, value: Any, info: ValidationInfo) -> Any:
        # Runs for every field of every config a study plans (10^5 trials: millions of calls):
        # values that hold no boolean leave at once.
        if isinstance(value, (list, tuple)):
            if not any(isinstance(item, bool) for item in value):
                return value
        elif not isinstance(value, bool):
            return value
        if _numeric_field(cls, info.field_name or ""):
            raise ValueError(f"expected a number, got {str(value).lower()} (YAML reads true/false/yes/no/on/off as booleans)")
        return value


class ToggleSection(Section):
    """An optional module that a study switches on and off.

    Conditional axes: a module's parameters exist only where the module is on. When
    :meth:`is_active` is false, every field other than the switches in ``SWITCHES`` is reset
    to its default after validation, so two configs that differ only in the parameters of a
    switched-off module are the same config with the same hash (a grid over ``enabled`` x
    ``lam`` runs the "off" trial once, not once per ``lam``). Values are still validated first:
    a negative lambda is an error even with the module off.
    """

    SWITCHES: ClassVar[tuple[str, ...]] = ("enabled",)

    enabled: bool = False

    def is_active(self) -> bool:
        return self.enabled

    @model_validator(mode="after")
    def _reset_parameters_when_off(self) -> "ToggleSection":
        if not self.is_active():
            for name, info in type(self).model_fields.items():
                if name not in self.SWITCHES:
                    # The instance is frozen; this runs while it is being built.
                    object.__setattr__(self, name, info.get_default(call_default_factory=True))
        return self


StageIndex = Annotated[int, Field(ge=0)]


class InsertSection(ToggleSection):
    """The config section of a module inserted after backbone stages: ``model.<name>``.

    Its contract with the model builder (``trainables.trial.model_kwargs``), so that a module
    registered by a plugin is built, placed, checked and trained like APRA and DRANet:

    - ``PLACEMENT``: the field saying where the module goes (``stages``: a tuple of
      ``feature_info`` indices, or a single index); :meth:`placements` reads it;
    - ``LOSS_WEIGHTS``: loss term name -> the field weighting it, for the terms the module
      contributes (``{"loss_camera": "lam"}``: ``L += lam * L_cam``);
    - every other field is a keyword argument of the module (:meth:`module_kwargs`).
    """

    PLACEMENT: ClassVar[str] = "stages"
    LOSS_WEIGHTS: ClassVar[dict[str, str]] = {}
    LABEL: ClassVar[str] = ""  # how messages name the module (default: its registry name)

    @classmethod
    def placed_at(cls, stage: int) -> "InsertSection":
        """The section switched on after ``stage`` with its other defaults (for registry-wide checks)."""
        return cls.model_validate({cls.PLACEMENT: stage})

    def placements(self) -> tuple[int, ...]:
        """The stages the module is inserted after (empty while it is off)."""
        if not self.is_active():
            return ()
        where = getattr(self, self.PLACEMENT)
        return tuple(where) if isinstance(where, (tuple, list)) else (int(where),)

    def loss_weights(self) -> dict[str, float]:
        """Weight of each loss term the module contributes (while it is on)."""
        return {term: float(getattr(self, field)) for term, field in self.LOSS_WEIGHTS.items()} if self.is_active() else {}

    def module_kwargs(self) -> dict[str, Any]:
        """Keyword arguments of the module: the section's fields but the placement and the loss weights."""
        skip = {self.PLACEMENT, *self.LOSS_WEIGHTS.values()}
        return {name: value for name, value in self.model_dump(mode="python").items() if name not in skip}


class StagedInsert(InsertSection):
    """An inserted module that is on iff ``stages`` is non-empty: placement -- after which
    stage(s), or nowhere -- is one axis (``model.<name>.stages: [[], [1], [2], [1, 2]]``)."""

    SWITCHES: ClassVar[tuple[str, ...]] = ("stages",)
    enabled: ClassVar[bool] = False  # the switch is ``stages``, not an ``enabled`` key

    stages: tuple[StageIndex, ...] = Field(
        (), description="feature_info indices to insert the module after (empty: off). ResNets: 0 is the stem."
    )

    def is_active(self) -> bool:
        return bool(self.stages)

    @classmethod
    def placed_at(cls, stage: int) -> "StagedInsert":
        return cls.model_validate({"stages": [stage]})

    @model_validator(mode="after")
    def _stages_increase(self) -> "StagedInsert":
        if list(self.stages) != sorted(set(self.stages)):
            raise ValueError(f"stages must be strictly increasing, got {list(self.stages)}")
        return self


#: Dataset names ``dataset.name`` accepts: the package's readers, and each reader a plugin
#: registers (``trainables.data.adapters.register_adapter`` adds its name here). It lives here,
#: below both the config and the plugin loader, so neither has to import the other lazily.
DATASETS: Registry[str] = Registry("dataset")
for _name in ("synthetic", "market1501", "dukemtmc", "msmt17", "cuhk03np", "folder"):
    DATASETS.add(_name, _name)


#: Config sections of inserted modules, by name: each becomes ``model.<name>``. The torch
#: modules register separately (``trainables.models.inserts.register_insert``) under the same
#: name; a plugin registers both in one file with ``register_insert(name, config=...)``.
INSERT_SECTIONS: Registry[type[InsertSection]] = Registry("inserted module")


class AugmentSection(ToggleSection):
    """The config section of a registered batch augmentation: ``augment.<name>``, on with
    ``enabled: true``; its other fields are the augmentation's keyword arguments."""

    def augmentation_kwargs(self) -> dict[str, Any]:
        return {name: value for name, value in self.model_dump(mode="python").items() if name not in self.SWITCHES}


#: Config sections of registered batch augmentations (``augment.<name>``); the torch side
#: registers with ``trainables.data.augment.register_augmentation``.
AUGMENT_SECTIONS: Registry[type[AugmentSection]] = Registry("augmentation")


class LossSection(ToggleSection):
    """The config section of a registered loss term: ``loss.<name>``, on with ``enabled:
    true``; ``L += weight * L_<name>``. Its other fields are the term's keyword arguments."""

    weight: float = Field(1.0, ge=0.0, description="Weight of the term in the total loss.")

    def term_kwargs(self) -> dict[str, Any]:
        return {name: value for name, value in self.model_dump(mode="python").items() if name not in (*self.SWITCHES, "weight")}


#: Config sections of registered loss terms (``loss.<name>``); the torch side registers with
#: ``trainables.losses.register_loss``.
LOSS_SECTIONS: Registry[type[LossSection]] = Registry("loss")


def validate_registered_sections(cls: type[BaseModel], data: Any, handler: Any, registry: Registry) -> Any:
    """Wrap validator of a section with registered subsections (``model.<insert>``,
    ``augment.<augmentation>``) beyond its declared fields: each is validated by its registered
    model; any other unknown key is an ``extra_forbidden`` error at its own location, as
    elsewhere. A subsection that is off equals its default and is left out, so a config that
    does not use a registered component dumps (and hashes) as if it were not registered."""
    if not isinstance(data, dict):
        return handler(data)
    data = dict(data)
    sections: dict[str, ToggleSection] = {}
    errors: list[InitErrorDetails] = []
    for key in [k for k in data if k not in cls.model_fields]:
        value = data.pop(key)
        if key not in registry:
            errors.append(InitErrorDetails(type="extra_forbidden", loc=(key,), input=value))
            continue
        section_type = registry.get(key)
        try:
            section = value if isinstance(value, section_type) else section_type.model_validate(value)
        except ValidationError as err:
            errors.extend(
                InitErrorDetails(type=e["type"], loc=(key, *e["loc"]), input=e.get("input"), ctx=e.get("ctx", {})) for e in err.errors()
            )
            continue
        if section.is_active():
            sections[key] = section
    try:
        model = handler(data)
    except ValidationError as err:
        errors[:0] = [
            InitErrorDetails(type=e["type"], loc=tuple(e["loc"]), input=e.get("input"), ctx=e.get("ctx", {})) for e in err.errors()
        ]
    if errors:
        raise ValidationError.from_exception_data(cls.__name__, errors)
    model.__pydantic_extra__.update(sections)
    return model


def registered_sections(config: BaseModel, registry: Registry) -> dict[str, ToggleSection]:
    """Every registered subsection of ``config``, on or off, in registration order."""
    extra = config.__pydantic_extra__ or {}
    fields = type(config).model_fields
    return {name: getattr(config, name) if name in fields else extra.get(name, section()) for name, section in registry.items()}


def section_registrar(registry: Registry, base: type[ToggleSection], place: str, owner: Callable[[], type[BaseModel] | None]):
    """``register_<kind>_section``: a decorator factory registering a ``base`` subclass as the
    section ``<place>.<name>`` in ``registry``. A name that is a declared field of ``place``'s
    own config (``owner()``; read at registration, as the owner is declared after the built-in
    sections register) is refused, unless it is registered already (the registry then says so)."""

    def register(name: str) -> Callable[[type[ToggleSection]], type[ToggleSection]]:
        def decorate(section: type[ToggleSection]) -> type[ToggleSection]:
            if not (isinstance(section, type) and issubclass(section, base)):
                raise TypeError(f"the config of {registry.what} '{name}' must subclass {base.__name__}, got {section!r}")
            declared = owner()
            if declared is not None and name in declared.model_fields and name not in registry:
                raise ValueError(f"'{place}.{name}' is a built-in {place} option, not a free section name; pick another name")
            registry.add(name, section)
            return section

        return decorate

    return register


def require_section(name: str, config: type[ToggleSection] | None, sections: Registry, register_section: Callable, registrar: str) -> None:
    """The config half of a component's registration (``register_insert``, ``register_loss``,
    ``register_augmentation``): ``config`` registered now as its section (a plugin's one call),
    or, without it, a section registered already under ``name`` (the built-ins')."""
    if config is not None:
        register_section(name)(config)
    elif name not in sections:
        raise TypeError(f"{sections.what} '{name}' has no config section: pass {registrar}('{name}', config=...)")
