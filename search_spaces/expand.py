"""Expand a recipe and an ablation block into fully resolved, hashed trials.

``expand`` runs the chosen design, applies each variant's changes to the baseline recipe,
crosses the result with the seeds, validates every resulting :class:`TrialConfig` and hashes
it. A change that names an unknown path or yields an invalid config raises
:class:`ChangeError` carrying the spec location of the offending value, so the CLI can point
at the YAML line. Two variants that resolve to the same config are run once.

A variant that ``continues`` another (Robust-ReID section 4.2, Table 3: "+LR scheme" and
"+SWAG" train on from the converged "-" model) is resolved after its parent: at each seed its
``train.init_from`` is the parent trial's config hash at that seed, so the parent's identity is
part of its own (:func:`continued_config` states what it must share with the parent).
"""

from __future__ import annotations

import copy
import difflib
from dataclasses import dataclass, field
from typing import Any, Iterable

from pydantic import BaseModel, ValidationError
from pydantic_core import to_jsonable_python

from search_spaces.contrasts import resolve_contrasts
from search_spaces.designs import DESIGNS, SEARCH_DESIGNS, AblationSpec, Change, DesignError, VariantPlan, changes_name
from search_spaces.hashing import config_hash, flatten
from search_spaces.search import Uniform, probe_points, sample_name
from search_spaces.trial_config import Recipe, TrialConfig, section_fields


class ChangeError(ValueError):
    """A variant's change is unknown or invalid; ``origin`` is its key path in the spec."""

    def __init__(self, message: str, origin: tuple[str | int, ...]):
        super().__init__(message)
        self.origin = origin


@dataclass(frozen=True)
class PlannedTrial:
    """One trial to run: which variant and seed, the resolved config and its hash."""

    variant: str
    changes: dict[str, Any]
    seed: int
    config: TrialConfig
    config_hash: str
    origins: dict[str, tuple[str | int, ...]] = field(default_factory=dict, compare=False)
    variant_meta: dict[str, Any] = field(default_factory=dict, compare=False)
    # The variant this trial's row is compared with (None: a reference row; search_spaces.contrasts).
    contrast: str | None = field(default=None, compare=False)

    @property
    def trial_id(self) -> str:
        return self.config_hash

    def origin_of(self, path: str) -> tuple[str | int, ...]:
        """Spec key path that set config ``path`` in this trial (a change, else the baseline)."""
        for changed, origin in self.origins.items():
            if path == changed or path.startswith(changed + "."):
                return origin
        return ("baseline", *path.split("."))


def check_path(path: str, origin: tuple[str | int, ...]) -> None:
    """Raise :class:`ChangeError` unless ``path`` names a field (leaf or section) of a recipe."""
    model: type[BaseModel] = Recipe
    walked: list[str] = []
    for part in path.split("."):
        fields = section_fields(model)  # registered insert sections included
        if part not in fields:
            known = sorted(fields)
            hint = difflib.get_close_matches(part, known, n=1)
            where = ".".join(walked) or "the recipe"
            suggestion = f"; did you mean '{'.'.join([*walked, hint[0]])}'?" if hint else ""
            if not hint and len(walked) == 1:  # a section of a recipe section: perhaps a plugin's
                suggestion = f"; if '{part}' is a plugin's section, list the plugin under the spec's top-level plugins:"
            raise ChangeError(
                f"unknown axis '{path}': {where} has no field '{part}' (fields: {', '.join(known)}){suggestion}",
                origin,
            )
        walked.append(part)
        annotation = fields[part]
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            model = annotation
        elif part != path.split(".")[-1]:
            raise ChangeError(f"unknown axis '{path}': '{'.'.join(walked)}' is a value, not a section", origin)


def apply_changes(tree: dict[str, Any], changes: Iterable[Change]) -> dict[str, Any]:
    """``tree`` with each change's dotted path set to its value, ``tree`` itself untouched.

    Only the dicts on a changed path are copied; the rest is shared with ``tree`` (validation
    reads its input, never writes it): a deep copy per trial dominated planning a large grid."""
    for change in changes:
        check_path(change.path, change.origin)
    return _set_changes(tree, changes)


def _set_changes(tree: dict[str, Any], changes: Iterable[Change]) -> dict[str, Any]:
    result = dict(tree)
    for change in changes:
        node = result
        *parents, leaf = change.path.split(".")
        for part in parents:
            child = node.setdefault(part, {})
            if isinstance(child, dict):
                child = node[part] = dict(child)
            node = child
        node[leaf] = copy.deepcopy(change.value)
    return result


class ValidatedRecipe:
    """A recipe validated once, so that a variant validates only the sections it changes.

    Pydantic takes an instance of a field's own model class as it is (``revalidate_instances``
    is ``"never"``): a trial's tree holds the baseline's validated sections wherever no change
    reaches, and dicts, validated anew, along each changed path. The config-level validators
    run for every trial as before. A study of 10^5 trials plans in a fraction of the time and
    shares the unchanged sections between its trials (``benchmarks/plan_size.py``). A recipe
    that does not validate on its own is built the plain way, for the plain error messages.
    """

    def __init__(self, recipe_tree: dict[str, Any]):
        self.tree = recipe_tree
        self._checked: set[str] = set()  # paths known to name a field: a grid repeats each many times
        # Configs built at seed 0 (effective_plan's), by their Change objects: expand asks again.
        self._built: dict[tuple[int, ...], tuple[tuple[Change, ...], TrialConfig]] = {}
        try:
            self.base: TrialConfig | None = TrialConfig.model_validate({**recipe_tree, "seed": 0})
        except ValidationError:
            self.base = None

    def with_changes(self, changes: tuple[Change, ...]) -> dict[str, Any]:
        for change in changes:
            if change.path not in self._checked:
                check_path(change.path, change.origin)
                self._checked.add(change.path)
        if self.base is None:
            return _set_changes(self.tree, changes)
        tree = _shared_tree(self.base, [change.path.split(".") for change in changes])
        tree.pop("seed", None)
        tree.pop("plugins", None)  # computed from the trial's own components
        return _set_changes(tree, changes)

    def built(self, changes: tuple[Change, ...], seed: int) -> TrialConfig | None:
        """A config built before from the same changes at seed 0, handed out once."""
        held = self._built.pop(tuple(map(id, changes)), None) if seed == 0 else None
        return held[1] if held is not None and held[0] == changes else None

    def keep(self, changes: tuple[Change, ...], seed: int, config: TrialConfig) -> None:
        if seed == 0:
            self._built[tuple(map(id, changes))] = (changes, config)


_MISSING = object()


class ResolvedLeaves:
    """The leaves of a built config by dotted path, as its JSON dump flattened would hold them
    (a section or an absent key is no leaf), looked up without dumping the whole config."""

    def __init__(self, config: BaseModel):
        self.config = config

    def _leaf(self, path: str) -> Any:
        node: Any = self.config
        for part in path.split("."):
            if isinstance(node, BaseModel):
                extra = node.__pydantic_extra__ or {}
                node = getattr(node, part) if part in type(node).model_fields else extra.get(part, _MISSING)
            elif isinstance(node, dict):
                node = node.get(part, _MISSING)
            else:
                return _MISSING
        return _MISSING if node is _MISSING or isinstance(node, (BaseModel, dict)) else to_jsonable_python(node)

    def __contains__(self, path: str) -> bool:
        return self._leaf(path) is not _MISSING

    def __getitem__(self, path: str) -> Any:
        value = self._leaf(path)
        if value is _MISSING:
            raise KeyError(path)
        return value


def _shared_tree(config: BaseModel, paths: list[list[str]]) -> dict[str, Any]:
    """``config``'s fields (and registered sections) as a dict: sections on one of ``paths`` as
    dicts of their own, every other value the validated one ``config`` holds."""
    tree = {name: getattr(config, name) for name in type(config).model_fields}
    tree.update(config.__pydantic_extra__ or {})
    for name in {path[0] for path in paths if len(path) > 1}:
        child = tree.get(name)
        if isinstance(child, BaseModel):
            tree[name] = _shared_tree(child, [path[1:] for path in paths if len(path) > 1 and path[0] == name])
    return tree


def _origin_of_error(loc: tuple[Any, ...], changes: tuple[Change, ...]) -> tuple[str | int, ...]:
    """The spec location responsible for a validation error at ``loc`` in the trial config."""
    parts = tuple(str(p) for p in loc)
    for change in changes:
        path = tuple(change.path.split("."))
        if parts[: len(path)] == path or path[: len(parts)] == parts:
            return change.origin
    return ("baseline", *loc)


def build_config(recipe_tree: dict[str, Any] | ValidatedRecipe, plan: VariantPlan, seed: int) -> TrialConfig:
    """Validate one variant at one seed into a :class:`TrialConfig`."""
    if isinstance(recipe_tree, ValidatedRecipe):
        held = recipe_tree.built(plan.changes, seed)
        if held is not None:
            return held
        tree = recipe_tree.with_changes(plan.changes)
    else:
        tree = apply_changes(recipe_tree, plan.changes)
    tree["seed"] = seed
    try:
        config = TrialConfig.model_validate(tree)
    except ValidationError as err:
        first = err.errors()[0]
        loc = tuple(first["loc"])
        origin = _origin_of_error(loc, plan.changes)
        field = ".".join(str(p) for p in loc) or "config"
        raise ChangeError(f"variant '{plan.name}': {field}: {first['msg']}", origin) from None
    if isinstance(recipe_tree, ValidatedRecipe):
        recipe_tree.keep(plan.changes, seed, config)
    return config


def _plain(value: Any) -> Any:
    """Sampler values as plain Python (numpy scalars from a searcher become int/float/bool)."""
    if hasattr(value, "item") and callable(value.item):
        return value.item()
    return value


def resolve_sample(recipe: Recipe | dict[str, Any], sampled: dict[str, Any], seed: int) -> PlannedTrial:
    """A sampled point of a search design as a resolved, hashed trial."""
    tree = recipe.model_dump(mode="python") if isinstance(recipe, Recipe) else recipe
    point = {path: _plain(value) for path, value in sorted(sampled.items())}
    changes = tuple(Change(path, value, ("ablation", "search", "space", path)) for path, value in point.items())
    plan = VariantPlan(sample_name(point), changes, meta={"design": "optuna"})
    config = build_config(tree, plan, seed)
    origins = {change.path: change.origin for change in changes}
    return PlannedTrial(plan.name, point, seed, config, config_hash(config), origins, dict(plan.meta))


def leaf_annotation(path: str) -> Any:
    """The type annotation of the config field at dotted ``path`` (which must exist)."""
    model: type[BaseModel] = Recipe
    annotation: Any = None
    for part in path.split("."):
        annotation = section_fields(model)[part]
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            model = annotation
    return annotation


def validate_search(recipe: Recipe, ablation: AblationSpec) -> None:
    """Every axis names a field, continuous ranges sample float fields only, and every bound
    and choice yields a valid config (else ChangeError at the axis)."""
    assert ablation.search is not None
    for path, dist in ablation.search.space.items():
        origin = ("ablation", "search", "space", path)
        check_path(path, origin)
        if isinstance(dist, Uniform) and leaf_annotation(path) in (int, int | None):
            raise ChangeError(f"'{path}' takes integers; sample it with type: int, not {dist.type}", origin)
    for point in probe_points(ablation.search):
        resolve_sample(recipe, point, ablation.seeds[0])


def effective_plan(recipe_tree: dict[str, Any] | ValidatedRecipe, plan: VariantPlan) -> VariantPlan:
    """``plan`` without the changes its own other changes override (a parameter of a module
    the same variant switches off), named after the rest: the off-row of a grid over a module
    switch x its parameters is named by the switch alone."""
    resolved = ResolvedLeaves(build_config(recipe_tree, plan, 0))
    kept = tuple(change for change in plan.changes if change.path not in resolved or resolved[change.path] == _as_json(change.value))
    return VariantPlan(changes_name(kept), kept, plan.meta, auto_name=False, origin=plan.origin)


def _as_json(value: Any) -> Any:
    """Tuples as lists, as the resolved config dumps them."""
    if isinstance(value, (list, tuple)):
        return [_as_json(v) for v in value]
    return value


def expand(recipe: Recipe, ablation: AblationSpec) -> list[PlannedTrial]:
    """All trials of a study, variants in design order, seeds innermost, duplicates dropped.

    A variant that ``continues`` another resolves, at each seed, to a trial whose
    ``train.init_from`` is the parent's config hash at that seed (see :func:`continued_config`),
    so its identity includes its parent's.

    Search designs propose their trials while running: for them this validates the space and
    returns no trials.
    """
    if recipe.train.init_from is not None:
        raise ChangeError(HAND_SET_INIT_FROM, ("baseline", "train", "init_from"))
    if ablation.design in SEARCH_DESIGNS:
        validate_search(recipe, ablation)
        return []
    plans = DESIGNS[ablation.design](ablation)
    seen_names: set[str] = set()
    for plan in plans:
        if plan.name in seen_names:
            raise DesignError(f"two variants are named '{plan.name}'; names must be unique", ("ablation", "variants"))
        seen_names.add(plan.name)

    recipe_tree = ValidatedRecipe(recipe.model_dump(mode="python"))
    plans = [effective_plan(recipe_tree, plan) if plan.auto_name else plan for plan in plans]
    # Parents before the variants that continue them: a dependent needs its parent's hash.
    resolved: dict[tuple[str, int], TrialConfig] = {}
    for plan in continuation_order(plans):
        for seed in ablation.seeds:
            config = build_config(recipe_tree, plan, seed)
            if config.train.init_from is not None:
                raise ChangeError(HAND_SET_INIT_FROM, _origin_of_error(("train", "init_from"), plan.changes))
            if plan.continues is not None:
                config = continued_config(plan, config, resolved[(plan.continues, seed)])
            resolved[(plan.name, seed)] = config

    contrasts = resolve_contrasts(plans, ablation)
    trials: list[PlannedTrial] = []
    owner: dict[str, VariantPlan] = {}  # config hash -> the plan that first planned it
    for plan in plans:
        for seed in ablation.seeds:
            config = resolved[(plan.name, seed)]
            digest = config_hash(config)
            if digest in owner:
                _refuse_written_duplicate(plan, owner[digest])
                continue  # e.g. a one-at-a-time value equal to the baseline's
            owner[digest] = plan
            origins = {change.path: change.origin for change in plan.changes}
            contrast = contrasts.get(plan.name)
            meta = {
                "design": ablation.design,
                **plan.meta,
                **({"continues": plan.continues} if plan.continues else {}),
                "compare_to": contrast,
            }
            trials.append(PlannedTrial(plan.name, plan.changed, seed, config, digest, origins, meta, contrast))
    return trials


def _refuse_written_duplicate(plan: VariantPlan, first: VariantPlan) -> None:
    """A variant written by the user that resolves to another row's config would silently vanish
    from the table (its trials are the other row's): refuse it, naming both. Rows a design
    generates from ``axes`` may coincide (a one-at-a-time value equal to the baseline's, the
    parameters of a switched-off module in a grid) and run once."""
    if plan.name == first.name or (plan.auto_name or len(plan.origin) < 3) and (first.auto_name or len(first.origin) < 3):
        return
    written = plan if len(plan.origin) >= 3 else first
    other = first if written is plan else plan
    raise DesignError(
        f"variant '{written.name}' resolves to the same trial config as '{other.name}' (every value it sets is "
        "already the other's, e.g. a parameter of a module that is switched off): it would add no row; "
        "remove it, or change what it sets",
        written.origin,
    )


HAND_SET_INIT_FROM = "train.init_from is set by a variant's 'continues' (naming the variant it continues), not by hand"


def continuation_order(plans: list[VariantPlan]) -> list[VariantPlan]:
    """``plans`` with every parent before the variants that ``continue`` it (design order
    otherwise); a ``continues`` that names no variant, or a cycle, is a :class:`DesignError`
    at the ``continues`` key."""
    by_name = {plan.name: plan for plan in plans}
    for plan in plans:
        if plan.continues is not None and plan.continues not in by_name:
            raise DesignError(
                f"variant '{plan.name}' continues '{plan.continues}', which is no variant of this study; variants: {', '.join(by_name)}",
                plan.continues_origin,
            )
    ordered: list[VariantPlan] = []
    placed: set[str] = set()
    for plan in plans:
        chain: list[VariantPlan] = []
        current: VariantPlan | None = plan
        while current is not None and current.name not in placed:
            names = [link.name for link in chain]
            if current.name in names:
                loop = [*names[names.index(current.name) :], current.name]
                raise DesignError(
                    "variants continue each other in a cycle: " + " -> ".join(f"'{name}'" for name in loop),
                    current.continues_origin,
                )
            chain.append(current)
            current = by_name[current.continues] if current.continues is not None else None
        for link in reversed(chain):  # the chain's root first
            ordered.append(link)
            placed.add(link.name)
    return ordered


#: What a continued trial must share with its parent: it loads the parent's final model
#: strictly (same architecture, same number of identities).
SHARED_WITH_PARENT = ("model", "dataset")


def continued_config(plan: VariantPlan, config: TrialConfig, parent: TrialConfig) -> TrialConfig:
    """``config`` (the variant at one seed) continuing ``parent`` (its parent at that seed):
    ``train.init_from`` set to the parent's hash. The reading of ``init_from``: the main phase
    (``train.epochs``) is the parent's and is not run again; only the ``train.swa`` cycles run,
    numbered on from ``train.epochs``, which must therefore be the parent's last epoch."""
    origin, name = plan.continues_origin, f"variant '{plan.name}' continues '{plan.continues}'"
    if not config.train.swa.enabled:
        raise ChangeError(
            f"{name} but runs no continuation epochs: a continued trial runs only its train.swa cycles "
            "(the main schedule is its parent's); switch train.swa on",
            origin,
        )
    mine, theirs = config.model_dump(mode="json"), parent.model_dump(mode="json")
    for section in SHARED_WITH_PARENT:
        ours, parents = flatten(mine[section], section + "."), flatten(theirs[section], section + ".")
        for path in sorted(set(ours) | set(parents)):
            if ours.get(path) != parents.get(path):
                raise ChangeError(
                    f"{name} but sets {path} to {ours.get(path)!r} (parent: {parents.get(path)!r}); it trains on "
                    "the parent's final model, so its model and dataset must be the parent's",
                    origin,
                )
    last = parent.train.total_epochs
    if config.train.epochs != last:
        raise ChangeError(
            f"{name} from the parent's last epoch {last}, but its train.epochs is {config.train.epochs}: "
            f"a continued trial's train.epochs is its parent's last epoch; set it to {last}",
            origin,
        )
    tree = config.model_dump(mode="python")
    tree["train"]["init_from"] = config_hash(parent)
    return TrialConfig.model_validate(tree)
