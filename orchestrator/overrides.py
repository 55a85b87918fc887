"""Command-line overrides of a spec's values: ``orchestrator launch SPEC key=value ...``.

As in Hydra (``train.epochs=2``), each override is a dotted key into the spec and a value
parsed as YAML (``2`` is a number, ``[0, 1]`` a list, ``{p: 0.5}`` a mapping, ``l2norm`` a
string). A key starts with one of the spec's blocks (``baseline.train.epochs=2``,
``ablation.seeds=[0,1,2]``, ``resources.cpus_per_trial=2``) or, short form, with a section of
the recipe, which is then read under ``baseline`` (``train.epochs=2`` means
``baseline.train.epochs=2``). A number in the key indexes a list (``ablation.variants.0.name=x``).

The overridden spec is validated like the file: an error caused by an override names the
override instead of the file's line. A launch records the spec as overridden in the study's
copy (``studies/<name>/spec.yaml``), which ``resume`` and ``summarize`` read.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any, Iterable

import yaml

from orchestrator.errors import InputError
from orchestrator.yaml_source import YamlSource

# The spec's top-level blocks (orchestrator.spec.StudySpec) and the recipe's sections
# (search_spaces.Recipe); a test keeps them equal to the models' fields.
SPEC_BLOCKS = ("plugins", "study", "baseline", "ablation", "resources", "output", "report")
RECIPE_SECTIONS = ("dataset", "model", "loss", "augment", "train", "eval")


@dataclass(frozen=True)
class Override:
    text: str  # as given on the command line
    path: tuple[str | int, ...]
    value: Any


def parse_override(text: str) -> Override:
    """``key=value`` -> :class:`Override`; :class:`InputError` naming the override otherwise."""
    key, equals, raw = text.partition("=")
    key = key.strip()
    if not equals or not key:
        raise InputError(f"override '{text}': expected KEY=VALUE with a dotted key, e.g. baseline.train.epochs=2")
    parts = key.split(".")
    if any(not part for part in parts):
        raise InputError(f"override '{text}': '{key}' has an empty part; a key is dotted, e.g. baseline.train.epochs")
    if parts[0] not in SPEC_BLOCKS:
        if parts[0] not in RECIPE_SECTIONS:
            raise InputError(
                f"override '{text}': unknown key '{parts[0]}'; a key starts with a block of the spec "
                f"({', '.join(SPEC_BLOCKS)}) or a section of the recipe ({', '.join(RECIPE_SECTIONS)}, read under baseline)"
            )
        parts.insert(0, "baseline")
    try:
        value = yaml.safe_load(raw) if raw.strip() else ""
    except yaml.YAMLError as err:
        problem = getattr(err, "problem", None) or str(err).splitlines()[0]
        raise InputError(f"override '{text}': the value is not valid YAML ({problem})") from None
    path = tuple(int(part) if part.isdigit() else part for part in parts)
    return Override(text, path, value)


def apply_overrides(source: YamlSource, texts: Iterable[str]) -> YamlSource:
    """``source`` with the overrides set into a copy of its data; the copy remembers them, so
    that validation errors name the override (:meth:`YamlSource.override_for`)."""
    overrides = [parse_override(text) for text in texts]
    if not overrides:
        return source
    data = copy.deepcopy(source.data)
    for override in overrides:
        _set(data, override, source)
    return YamlSource(source.path, data, source.lines, overrides={o.path: o.text for o in overrides})


def _set(data: dict, override: Override, source: YamlSource) -> None:
    node: Any = data
    for depth, part in enumerate(override.path[:-1]):
        node = _child(node, part, override, override.path[: depth + 1], source)
    last = override.path[-1]
    if isinstance(node, list):
        if not isinstance(last, int) or last >= len(node):
            raise InputError(f"override '{override.text}': {_dotted(override.path[:-1])} is a list of {len(node)} items in {source.path}")
        node[last] = override.value
    else:
        node[last if isinstance(last, str) else str(last)] = override.value


def _child(node: Any, part: str | int, override: Override, where: tuple, source: YamlSource) -> Any:
    if isinstance(node, list):
        if isinstance(part, int) and part < len(node):
            return node[part]
        raise InputError(f"override '{override.text}': {_dotted(where[:-1])} is a list of {len(node)} items in {source.path}")
    if not isinstance(node, dict):
        raise InputError(f"override '{override.text}': {_dotted(where[:-1])} is a value, not a section, in {source.path}")
    key = part if isinstance(part, str) else str(part)
    child = node.get(key)
    if child is None:
        child = node[key] = {}
    elif not isinstance(child, (dict, list)):
        raise InputError(f"override '{override.text}': {_dotted(where)} is a value, not a section, in {source.path}")
    return child


def _dotted(path: tuple) -> str:
    return ".".join(str(part) for part in path)


def spec_text_with_overrides(source: YamlSource) -> str:
    """The spec as overridden, for the study folder's copy: a header naming the original file
    and the overrides, then the data as YAML (the original's comments are not kept)."""
    header = (
        f"# {source.path} as launched with the command-line overrides: {' '.join(source.overrides.values())}\n"
        "# (the original file's comments are not kept in this copy)\n"
    )
    return header + yaml.safe_dump(source.data, sort_keys=False, allow_unicode=True, default_flow_style=None)
