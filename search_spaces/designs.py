"""Ablation designs: how a study's ``ablation:`` block becomes a list of named variants.

A design is a function registered by name. It receives the block's ``axes`` (dotted path ->
values) and ``variants`` (named change sets) and returns :class:`VariantPlan` objects: a name
plus the changes relative to the baseline recipe. Seeds are crossed in afterwards by
:mod:`search_spaces.expand`, so every design repeats over seeds the same way.

Every change remembers where it came from in the spec (``origin``), so a value that fails
validation can be reported at its YAML key and line.
"""

from __future__ import annotations

import itertools
import json
from dataclasses import dataclass, field
from typing import Any, Callable

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from search_spaces.adaptive import AdaptiveSpec
from search_spaces.registry import Registry
from search_spaces.search import SearchSpec

BASELINE = "baseline"
#: ``compare_to: null`` in a plan: the row is a reference of its own (None there means unset).
NO_CONTRAST = "\x00none"


@dataclass(frozen=True)
class Change:
    """Set ``path`` (dotted, into the trial config) to ``value``; ``origin`` is the spec key path."""

    path: str
    value: Any
    origin: tuple[str | int, ...]


@dataclass(frozen=True)
class VariantPlan:
    """One row of the ablation table before seeds: a name and its changes to the baseline."""

    name: str
    changes: tuple[Change, ...] = field(default_factory=tuple)
    # Design-specific facts about the row, e.g. which parts a leave-one-out row turns off;
    # stored with the results so tables can be laid out the way papers print them.
    meta: dict[str, Any] = field(default_factory=dict, compare=False)
    # Named after its changes by the design (not by the user): expansion then names it by the
    # changes that take effect, so a grid row equal to the baseline is called "baseline".
    auto_name: bool = False
    # The variant whose final model this one continues (``continues:``), and where it was said.
    continues: str | None = None
    continues_origin: tuple[str | int, ...] = ("ablation", "variants")
    # The row this one is compared with (``compare_to:``): a variant name, NO_CONTRAST (the row is
    # a reference itself), or None (the design's default; see search_spaces.contrasts).
    compare_to: str | None = None
    # Where the variant was written in the spec (its list item), for errors about the whole row.
    origin: tuple[str | int, ...] = ("ablation",)

    @property
    def changed(self) -> dict[str, Any]:
        return {change.path: change.value for change in self.changes}


class VariantSpec(BaseModel):
    """An explicitly named variant: ``{name: +erasing, set: {augment.random_erasing.p: 0.5}}``.

    In a ``leave_one_out`` study with ``parts``, ``without`` names the parts the row switches off
    (any set of them, e.g. Robust-ReID Table 2's column b: soft triplet and soft margin).

    ``continues`` names another variant whose final model this one trains on (Robust-ReID
    section 4.2, Table 3: "+LR scheme" and "+SWAG" continue the converged "-" model): at each
    seed the trial starts from the parent trial's checkpoint at that seed and runs only its
    ``train.swa`` cycles (see ``TrainConfig.init_from``).

    ``compare_to`` names the row this one is compared with in the table (its *contrast*: every
    difference, interval, per-camera effect and reproduction verdict of the row is taken against
    it); ``compare_to: null`` makes the row a reference of its own (no difference shown);
    unset, the block's ``compare_to`` or the design's reference row applies
    (:mod:`search_spaces.contrasts`)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(min_length=1)
    set: dict[str, Any] = Field(default_factory=dict)
    # ``without``, not ``off``: YAML 1.1 reads a bare ``off`` key as the boolean false.
    without: list[str] = Field(default_factory=list, description="leave_one_out with parts: the parts this row switches off.")
    continues: str | None = Field(
        None,
        min_length=1,
        description="Name of the variant whose converged model this one continues training (at the "
        "same seed) instead of starting again: only its train.swa cycles run (Robust-ReID Table 3).",
    )
    compare_to: str | None = Field(
        None,
        min_length=1,
        description="Name of the variant this row is compared with in the table; null: the row is a "
        "reference itself; unset: ablation.compare_to, else the design's reference row.",
    )

    def contrast_choice(self) -> str | None:
        """``compare_to`` as a plan carries it: the name, :data:`NO_CONTRAST` for an explicit
        ``null``, None when unset."""
        if "compare_to" not in self.model_fields_set:
            return None
        return self.compare_to if self.compare_to is not None else NO_CONTRAST


class AblationSpec(BaseModel):
    """The spec's ``ablation:`` block."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    design: str = "one_at_a_time"
    axes: dict[str, list[Any]] = Field(default_factory=dict)
    variants: list[VariantSpec] = Field(default_factory=list)
    parts: list[VariantSpec] = Field(
        default_factory=list,
        description="leave_one_out: the recipe's parts, each with the 'set' that switches it off; "
        "then every variant names the parts it switches off ('without').",
    )
    seeds: list[int] = Field(default_factory=lambda: [0], min_length=1)
    search: SearchSpec | None = Field(None, description="The space and budget of the 'optuna' design.")
    adaptive: AdaptiveSpec | None = Field(
        None, description="Seeds in waves until each comparison is decided: 'seeds' is the first wave (search_spaces.adaptive)."
    )
    compare_to: str | None = Field(
        None,
        min_length=1,
        description="The row every variant without its own compare_to is compared with (default: the "
        "design's reference row: 'baseline', the full recipe of leave_one_out, else the first variant).",
    )

    @model_validator(mode="after")
    def _search_only_for_search_designs(self) -> "AblationSpec":
        if self.design in SEARCH_DESIGNS and self.search is None:
            raise ValueError(f"design '{self.design}' needs a 'search' block: space, num_samples")
        if self.design not in SEARCH_DESIGNS and self.search is not None:
            raise ValueError(f"'search' is for the {', '.join(sorted(SEARCH_DESIGNS))} design, not '{self.design}'")
        if self.design in SEARCH_DESIGNS and any(variant.continues for variant in self.variants):
            raise ValueError(f"'continues' needs a parent variant planned in advance; design '{self.design}' samples its trials")
        if self.design in SEARCH_DESIGNS and (self.axes or self.variants):
            raise ValueError(f"design '{self.design}' samples 'search.space'; remove 'axes' and 'variants'")
        if self.design in SEARCH_DESIGNS and self.compare_to is not None:
            raise ValueError(f"design '{self.design}' samples its rows, so none can be named in 'compare_to'")
        return self

    @model_validator(mode="after")
    def _parts_only_for_leave_one_out(self) -> "AblationSpec":
        if self.design != "leave_one_out":
            if self.parts:
                raise ValueError(f"'parts' belong to the leave_one_out design, not '{self.design}'")
            if any(variant.without for variant in self.variants):
                raise ValueError(f"a variant's 'without' names leave_one_out parts; design '{self.design}' has none")
        return self

    @field_validator("design")
    @classmethod
    def _design_is_registered(cls, name: str) -> str:
        known = sorted({*DESIGNS, *SEARCH_DESIGNS})
        if name not in known:
            raise ValueError(f"unknown design '{name}'; known designs: {', '.join(known)}")
        return name

    @field_validator("axes")
    @classmethod
    def _axes_have_values(cls, axes: dict[str, list[Any]]) -> dict[str, list[Any]]:
        for path, values in axes.items():
            if not values:
                raise ValueError(f"axis '{path}' has no values; give at least one")
        return axes

    @field_validator("seeds")
    @classmethod
    def _seeds_unique(cls, seeds: list[int]) -> list[int]:
        if len(set(seeds)) != len(seeds):
            raise ValueError(f"seeds must be unique, got {seeds}")
        if any(seed < 0 for seed in seeds):
            raise ValueError(f"seeds must be >= 0, got {seeds}")
        return seeds


class DesignError(ValueError):
    """The ablation block does not fit its design (e.g. a grid without axes)."""

    def __init__(self, message: str, origin: tuple[str | int, ...] = ("ablation",)):
        super().__init__(message)
        self.origin = origin


class DesignRegistryError(ValueError):
    """A duplicate or unknown design name."""


DesignFn = Callable[[AblationSpec], list[VariantPlan]]
DESIGNS: Registry[DesignFn] = Registry("design", error=DesignRegistryError)
# Designs whose trials are proposed while the study runs (see search_spaces.search).
SEARCH_DESIGNS = frozenset({"optuna"})


def register_design(name: str) -> Callable[[DesignFn], DesignFn]:
    """Register a design under ``name``; registering a name twice is an error."""
    return DESIGNS.register(name)


def changes_name(changes: tuple[Change, ...] | list[Change]) -> str:
    """``path=value, ...`` of a set of changes; the baseline's name when there are none."""
    return ", ".join(f"{c.path}={format_value(c.value)}" for c in changes) or BASELINE


def format_value(value: Any) -> str:
    """Compact, stable text for a value in a variant name (``0.5``, ``true``, ``[1,2]``)."""
    if isinstance(value, str):
        return value
    return json.dumps(value, separators=(",", ":"))


def axis_changes(spec: AblationSpec) -> list[list[Change]]:
    """Per axis, one change per value, each tagged with its spec location."""
    return [
        [Change(path, value, ("ablation", "axes", path, index)) for index, value in enumerate(values)] for path, values in spec.axes.items()
    ]


def named_variants(spec: AblationSpec) -> list[VariantPlan]:
    """The explicit ``variants:`` list as plans."""
    return [
        VariantPlan(
            variant.name,
            tuple(Change(path, value, ("ablation", "variants", index, "set", path)) for path, value in variant.set.items()),
            **continuation(variant, index),
        )
        for index, variant in enumerate(spec.variants)
    ]


def continuation(variant: VariantSpec, index: int) -> dict[str, Any]:
    """The plan fields a written variant carries besides its changes: its ``continues``
    (resolved to the parent's trials by :func:`search_spaces.expand.expand`), its
    ``compare_to`` (resolved by :mod:`search_spaces.contrasts`) and where it was written."""
    return {
        "continues": variant.continues,
        "continues_origin": ("ablation", "variants", index, "continues"),
        "compare_to": variant.contrast_choice(),
        "origin": ("ablation", "variants", index),
    }


def _require(condition: bool, message: str, origin: tuple[str | int, ...]) -> None:
    if not condition:
        raise DesignError(message, origin)


@register_design("grid")
def grid(spec: AblationSpec) -> list[VariantPlan]:
    """Full factorial over ``axes``: every combination of values is a variant."""
    _require(bool(spec.axes), "design 'grid' needs 'axes': {dotted.path: [values]}", ("ablation", "design"))
    _require(not spec.variants, "design 'grid' takes 'axes', not 'variants'", ("ablation", "variants"))
    plans = []
    for combo in itertools.product(*axis_changes(spec)):
        name = changes_name(combo)
        plans.append(VariantPlan(name, tuple(combo), auto_name=True))
    return plans


@register_design("one_at_a_time")
def one_at_a_time(spec: AblationSpec) -> list[VariantPlan]:
    """The baseline, then each axis value alone and each named variant alone."""
    _require(
        bool(spec.axes or spec.variants),
        "design 'one_at_a_time' needs 'axes' or 'variants' to vary",
        ("ablation", "design"),
    )
    plans = [VariantPlan(BASELINE)]
    for changes in axis_changes(spec):
        plans.extend(VariantPlan(f"{c.path}={format_value(c.value)}", (c,), auto_name=True) for c in changes)
    plans.extend(named_variants(spec))
    return plans


@register_design("list")
def explicit_list(spec: AblationSpec) -> list[VariantPlan]:
    """Exactly the named ``variants``; one with an empty ``set`` is the baseline row."""
    _require(bool(spec.variants), "design 'list' needs 'variants': [{name, set}]", ("ablation", "design"))
    _require(not spec.axes, "design 'list' takes 'variants', not 'axes'", ("ablation", "axes"))
    return named_variants(spec)


FULL = "full"


@register_design("leave_one_out")
def leave_one_out(spec: AblationSpec) -> list[VariantPlan]:
    """Rows that switch parts of the full recipe (the baseline) off: the layout of Robust-ReID
    Table 2, one check mark per part and row.

    Two forms. Without ``parts``: the full recipe, then each variant's part turned off alone
    (its ``set`` switches it off), named ``w/o <part>``. With ``parts`` (each a name and the
    ``set`` that switches it off): exactly the listed variants, each switching off the parts
    named in its ``without`` -- any set of them, none for the full recipe -- then applying its own
    ``set`` (which wins over the parts', e.g. another backbone for a baseline column). Two
    parts that set one key to different values cannot be off together.
    """
    _require(not spec.axes, "design 'leave_one_out' takes 'variants', not 'axes'", ("ablation", "axes"))
    if spec.parts:
        return _part_set_rows(spec)
    _require(
        bool(spec.variants),
        "design 'leave_one_out' needs 'variants': one per part, whose 'set' turns that part off",
        ("ablation", "design"),
    )
    for index, variant in enumerate(spec.variants):
        _require(not variant.without, "'without' names parts: list the recipe's 'parts' first", ("ablation", "variants", index, "without"))
    parts = [variant.name for variant in spec.variants]
    plans = [VariantPlan(FULL, meta={"design": "leave_one_out", "parts": parts, "off": []})]
    for plan in named_variants(spec):
        plans.append(
            VariantPlan(
                f"w/o {plan.name}",
                plan.changes,
                meta={"design": "leave_one_out", "parts": parts, "off": [plan.name]},
                continues=plan.continues,
                continues_origin=plan.continues_origin,
                compare_to=plan.compare_to,
                origin=plan.origin,
            )
        )
    return plans


def _part_set_rows(spec: AblationSpec) -> list[VariantPlan]:
    """``leave_one_out`` with ``parts``: one row per variant, switching off its ``off`` parts."""
    _require(
        bool(spec.variants),
        "design 'leave_one_out' with 'parts' needs 'variants', each naming the parts it switches off ('without')",
        ("ablation", "variants"),
    )
    parts = [part.name for part in spec.parts]
    _require(len(set(parts)) == len(parts), f"part names must be unique, got {parts}", ("ablation", "parts"))
    part_changes = {
        part.name: [Change(path, value, ("ablation", "parts", index, "set", path)) for path, value in part.set.items()]
        for index, part in enumerate(spec.parts)
    }
    for index, part in enumerate(spec.parts):
        _require(bool(part.set), f"part '{part.name}' needs a 'set' that switches it off", ("ablation", "parts", index, "set"))
        _require(not part.without, "a part has no 'without'; variants do", ("ablation", "parts", index, "without"))
        _require(not part.continues, "a part has no 'continues'; variants do", ("ablation", "parts", index, "continues"))
        _require(
            "compare_to" not in part.model_fields_set, "a part has no 'compare_to'; variants do", ("ablation", "parts", index, "compare_to")
        )
    plans = []
    for index, variant in enumerate(spec.variants):
        origin = ("ablation", "variants", index, "without")
        unknown = [name for name in variant.without if name not in part_changes]
        _require(
            not unknown,
            f"variant '{variant.name}' switches off unknown part '{unknown[0] if unknown else ''}'; parts: {', '.join(parts)}",
            origin,
        )
        off = [name for name in parts if name in variant.without]  # in the parts' order
        changes: dict[str, Change] = {}
        for name in off:
            for change in part_changes[name]:
                earlier = changes.get(change.path)
                _require(
                    earlier is None or earlier.value == change.value,
                    f"variant '{variant.name}': parts switched off together set '{change.path}' to "
                    f"{format_value(earlier.value) if earlier else ''} and {format_value(change.value)}",
                    origin,
                )
                changes[change.path] = change
        for path, value in variant.set.items():
            changes[path] = Change(path, value, ("ablation", "variants", index, "set", path))
        meta = {"design": "leave_one_out", "parts": parts, "off": off}
        plans.append(VariantPlan(variant.name, tuple(changes.values()), meta=meta, **continuation(variant, index)))
    return plans


#: The ``ablation:`` block of a spec that has none: the baseline recipe alone.
DEFAULT_ABLATION = AblationSpec(design="list", variants=[{"name": "baseline"}])
