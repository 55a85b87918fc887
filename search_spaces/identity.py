"""Versioned trial identity: which part of a resolved config its hash is taken over.

A trial's identity (its ``config_hash``) decides whether a relaunch reruns it: a stored trial
whose hash is in the plan is done. Hashing the whole resolved config would make every field
added to :class:`~search_spaces.trial_config.TrialConfig` change every hash, so every stored
study would run again after each such change. Instead the hash is taken over the *identity
tree*, built by one rule per identity version.

Identity version 1 (the current one)
------------------------------------
:data:`~search_spaces.identity_v1.V1_LEAVES` freezes, as data, the dotted path of every leaf
the config had when hashes were first versioned. The identity tree of a config is its resolved
JSON dump (``model_dump(mode="json")``) with every field that is *not* in that list left out
while it equals its **neutral value** -- the value that reproduces the behaviour from before
the field existed. A section that is not in the list (a new section such as ``loss.center``, or
a plugin's section such as ``model.<insert name>``, declared or held as an extra key) is left
out whole while it equals its neutral value (the dump of its default instance); otherwise it
is walked field by field against that instance's values, keeping only the fields that differ.
A section's default must therefore mean "off, as before" (the convention of every toggled
module here). A field typed ``Section | None`` counts as one value: ``None`` is its neutral
value, any section is not. Hence:

* a config that uses no post-v1 field (or leaves it at its neutral value) has exactly the tree,
  the bytes and the hash it had before: every store written earlier is recognised as is, and
  no ``migrate`` step is needed;
* a config that sets a post-v1 field to anything else hashes differently (the field is in its
  tree), so it runs as a new trial;
* as before, the hash ignores key order and whether defaults were written out (it is taken over
  the resolved config), and configs that differ only in the parameters of a switched-off module
  (reset by validation, see ``ToggleSection``) have one hash.

Adding a field: nothing to register. The neutral value of a field is its declared default, so
a new field whose default keeps today's behaviour needs no marker at all. Only when the
default does *not* reproduce the old behaviour (e.g. a new ``model.last_stride`` defaulting to
1 where the code used to run stride 2) does the field need one declarative marker giving the
value that does::

    from typing import Annotated
    from search_spaces.identity import Neutral

    last_stride: Annotated[int, Neutral(2)] = Field(1, description="...")

Trials stored before the field existed then match configs with ``last_stride: 2``, and the
default (stride 1) is a new identity, as it must be: it trains a different model. A field with
no default is always part of the identity.

What version 1 forbids: removing or renaming a v1 leaf, turning it into a section, or changing
its default or the meaning of its values. Each changes the identity of stored trials and needs
a new identity version (a :class:`Neutral` marker on a v1 field has no effect).
``tests/search_spaces/test_identity.py`` checks 127 hashes recorded before versioning
(``tests/fixtures/config_hashes_v1.jsonl``) and ``tests/orchestrator/test_store_v1.py`` a study
stored then (``tests/fixtures/store_v1``), so such a change cannot go unnoticed.

Later versions
--------------
The version is recorded with every stored trial (the ``identity_version`` column of the
``trials`` table; rows without it are version 1). A future version N > 1 freezes its own leaf
list and, so that its hashes can never be mistaken for another version's, puts
``"__identity_version__": N`` into the hashed tree (version 1 trees carry no marker: that is
what keeps the hashes of old stores). Recognising older stores then means hashing the planned
configs by the older version's rule (:func:`identity_tree` takes the version) or rewriting the
stored hashes once.

Pure Python on pydantic: no torch, and no import of the config module (any pydantic model
tree can be hashed, which the tests use to grow a config with synthetic fields).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel
from pydantic.fields import FieldInfo
from pydantic_core import PydanticUndefined, to_jsonable_python

from search_spaces.identity_v1 import V1_LEAVES

#: The identity version new trials are stored with.
IDENTITY_VERSION = 1

#: The frozen leaf paths of each identity version.
IDENTITY_LEAVES: dict[int, frozenset[str]] = {1: frozenset(V1_LEAVES)}

#: The key a version > 1 adds to its hashed tree (absent in version 1).
VERSION_KEY = "__identity_version__"

_NO_NEUTRAL = object()


@dataclass(frozen=True)
class Neutral:
    """Marks a field added after identity version 1 whose declared default does not reproduce
    the behaviour from before it existed: ``value`` does. Use it as ``Annotated`` metadata,
    ``Annotated[int, Neutral(2)]``; the field is left out of the identity while it equals
    ``value``."""

    value: Any


# Field infos live as long as their model classes: their neutral values are computed once each
# (a study of 10^5 trials asks for them millions of times) and shared, so callers only read them.
# Keyed by id, holding the info itself so the id cannot be reused while the entry exists.
_MARKERS: dict[int, tuple[FieldInfo, Any]] = {}
_NEUTRALS: dict[int, tuple[FieldInfo, Any]] = {}


def _marker(info: FieldInfo | None) -> Any:
    if info is None:
        return _NO_NEUTRAL
    cached = _MARKERS.get(id(info))
    if cached is None or cached[0] is not info:
        found = next((to_jsonable_python(item.value) for item in info.metadata if isinstance(item, Neutral)), _NO_NEUTRAL)
        cached = _MARKERS[id(info)] = (info, found)
    return cached[1]


def neutral_value(info: FieldInfo) -> Any:
    """The JSON value of a post-v1 field that keeps the old behaviour: its :class:`Neutral`
    marker, else its declared default (for a section, the dump of its default instance; none
    for a required field)."""
    marker = _marker(info)
    if marker is not _NO_NEUTRAL:
        return marker
    cached = _NEUTRALS.get(id(info))
    if cached is None or cached[0] is not info:
        if info.default is PydanticUndefined and info.default_factory is None:
            value = _NO_NEUTRAL
        else:
            value = to_jsonable_python(info.get_default(call_default_factory=True))
        cached = _NEUTRALS[id(info)] = (info, value)
    return cached[1]


def _declared_section(info: FieldInfo | None) -> bool:
    """Whether a field is declared as a section (a model class, not optional)."""
    annotation = info.annotation if info is not None else None
    return isinstance(annotation, type) and issubclass(annotation, BaseModel)


def _child(node: Any, name: str) -> Any:
    """The value of ``name`` in a config node: a field, or an extra key (a plugin's section)."""
    if isinstance(node, BaseModel):
        if name in type(node).model_fields:
            return getattr(node, name)
        return (node.model_extra or {}).get(name)
    return None


@functools.lru_cache(maxsize=None)  # one leaf list per identity version
def _prefixes(leaves: frozenset[str]) -> frozenset[str]:
    """Every section path of a leaf list (``model``, ``model.apra`` for ``model.apra.lam``)."""
    return frozenset(".".join(leaf.split(".")[:i]) for leaf in leaves for i in range(1, leaf.count(".") + 1))


def _walk(
    node: Any,
    tree: dict[str, Any],
    prefix: str,
    leaves: frozenset[str],
    sections: frozenset[str],
    neutral: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """``tree`` (the JSON dump of ``node``) without the post-v1 fields at their neutral value.

    ``neutral``: the neutral values of a post-v1 section's fields, from the section's own
    neutral value (its default instance), which may differ from its fields' defaults."""
    fields = type(node).model_fields if isinstance(node, BaseModel) else {}
    kept: dict[str, Any] = {}
    for name, value in tree.items():
        path = prefix + name
        if path in leaves:
            kept[name] = value  # a field of the frozen version: always part of the identity
            continue
        info = fields.get(name)
        child = _child(node, name)
        # The neutral value: the field's marker, else what its section's neutral value holds,
        # else its declared default; a v1 section is never left out.
        target = _marker(info)
        if target is _NO_NEUTRAL and neutral is not None and name in neutral:
            target = neutral[name]
        elif target is _NO_NEUTRAL and info is not None:
            target = neutral_value(info)
        if path not in sections and value == target:
            continue  # a newer field (or a whole newer section) at its neutral value
        if isinstance(value, dict) and (path in sections or _declared_section(info) or (info is None and isinstance(child, BaseModel))):
            inner = _walk_section(
                child, value, path + ".", leaves, sections, None if path in sections or not isinstance(target, dict) else target
            )
            if inner or path in sections:
                kept[name] = inner  # a section: left out when nothing in it is away from neutral
        else:
            kept[name] = value  # away from its neutral value (or one that cannot be told)
    return kept


# The walk of a section object at a path is the same whichever config holds it: the trials of a
# large grid share their unchanged sections (search_spaces.expand.ValidatedRecipe), walked once.
# Keyed by ids, holding the objects so the ids cannot be reused while an entry exists.
_SECTION_WALKS: dict[tuple[int, str, int], tuple[Any, frozenset[str], dict[str, Any]]] = {}
_SECTION_WALKS_LIMIT = 4096  # enough for the shared sections; the rest come and go


def _walk_section(
    node: Any, tree: dict[str, Any], prefix: str, leaves: frozenset[str], sections: frozenset[str], neutral: dict[str, Any] | None
) -> dict[str, Any]:
    if not isinstance(node, BaseModel):
        return _walk(node, tree, prefix, leaves, sections, neutral)
    key = (id(node), prefix, id(leaves))
    held = _SECTION_WALKS.get(key)
    if held is not None and held[0] is node and held[1] is leaves:
        return held[2]
    if len(_SECTION_WALKS) >= _SECTION_WALKS_LIMIT:
        _SECTION_WALKS.clear()
    walked = _walk(node, tree, prefix, leaves, sections, neutral)
    _SECTION_WALKS[key] = (node, leaves, walked)
    return walked


def identity_tree(config: BaseModel, version: int = IDENTITY_VERSION) -> dict[str, Any]:
    """The part of ``config`` (resolved, as JSON) that its hash is taken over, by the rule of
    identity ``version``; see the module docstring."""
    if version not in IDENTITY_LEAVES:
        raise ValueError(f"unknown identity version {version}; known: {', '.join(map(str, sorted(IDENTITY_LEAVES)))}")
    leaves = IDENTITY_LEAVES[version]
    tree = _walk(config, config.model_dump(mode="json"), "", leaves, _prefixes(leaves))
    if version > 1:
        tree[VERSION_KEY] = version
    return tree
