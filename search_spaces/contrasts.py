"""Each row's contrast: the row of the table it is compared with.

A paper compares each row of an ablation table with a particular other row, not always the
first: Robust-ReID (Lawen et al.) compares Table 2's SWAG-off columns b-g with column i and
column a with HA-CNN (section 4.1), and Table 3's "+LR scheme" and "+SWAG" rows each with the
"-" row of their own setup (section 4.2); implicit attention (Yaghoubi et al., Table 1) compares
each augmentation with the baseline trained with the same loss. So every variant names its
contrast (``compare_to:``), and every difference, interval, per-camera effect, figure and
reproduction verdict of the row is taken against it.

Resolution, in order: the variant's own ``compare_to`` (``null``: the row is a reference of its
own, compared with nothing); the block's ``ablation.compare_to``; the design's reference row
(:func:`reference_row`). The reference row itself has no contrast. A name that is no variant of
the study, a row compared with itself, or rows compared with each other in a cycle is a
:class:`~search_spaces.designs.DesignError` at the ``compare_to`` key.
"""

from __future__ import annotations

from typing import Mapping, Sequence

from search_spaces.designs import BASELINE, FULL, NO_CONTRAST, AblationSpec, DesignError, VariantPlan

LEAVE_ONE_OUT = "leave_one_out"


def reference_row(names: Sequence[str], design: str | None, switched_off: Mapping[str, Sequence[str]] | None = None) -> str | None:
    """The design's reference row among ``names`` (plan order): a variant named ``baseline`` or
    ``full``; in a leave-one-out table the variant that switches nothing off (Robust-ReID's
    Table 2 compares every column with its last); else the first variant."""
    named = next((name for name in (BASELINE, FULL) if name in names), None)
    if named is not None:
        return named
    if design == LEAVE_ONE_OUT and switched_off is not None:
        full = next((name for name in names if name in switched_off and not switched_off[name]), None)
        if full is not None:
            return full
    return names[0] if names else None


def resolve_contrasts(plans: Sequence[VariantPlan], ablation: AblationSpec) -> dict[str, str | None]:
    """Variant name -> the variant it is compared with (None: a reference row) for the planned
    rows of ``ablation``; raises :class:`DesignError` at the offending ``compare_to`` key."""
    names = [plan.name for plan in plans]
    off = {plan.name: plan.meta.get("off", []) for plan in plans if "off" in plan.meta}
    reference = reference_row(names, ablation.design, off)
    default = ablation.compare_to
    if default is not None and default not in names:
        raise DesignError(_unknown(default, names, "ablation.compare_to"), ("ablation", "compare_to"))
    contrasts: dict[str, str | None] = {}
    for plan in plans:
        origin = (*plan.origin, "compare_to") if len(plan.origin) > 1 else ("ablation", "compare_to")
        choice = plan.compare_to
        if choice == NO_CONTRAST:
            contrasts[plan.name] = None
        elif choice is not None:
            if choice not in names:
                raise DesignError(_unknown(choice, names, f"variant '{plan.name}': compare_to"), origin)
            if choice == plan.name:
                raise DesignError(f"variant '{plan.name}' is compared with itself; name another row, or null for none", origin)
            contrasts[plan.name] = choice
        else:
            fallback = default if default is not None else reference
            contrasts[plan.name] = None if fallback == plan.name else fallback
    _refuse_cycles(plans, contrasts)
    return contrasts


def _unknown(name: str, names: Sequence[str], where: str) -> str:
    return f"{where} names '{name}', which is no variant of this study; variants: {', '.join(names)}"


def _refuse_cycles(plans: Sequence[VariantPlan], contrasts: Mapping[str, str | None]) -> None:
    """Comparisons must end at a reference row: a -> b -> a compares nothing with a reference."""
    for plan in plans:
        seen = [plan.name]
        current = contrasts.get(plan.name)
        while current is not None:
            if current in seen:
                loop = [*seen[seen.index(current) :], current]
                origin = (*plan.origin, "compare_to") if len(plan.origin) > 1 else ("ablation", "compare_to")
                raise DesignError(
                    "rows are compared with each other in a cycle: "
                    + " -> ".join(f"'{n}'" for n in loop)
                    + "; one of them must be a reference (compare_to: null, or another row)",
                    origin,
                )
            seen.append(current)
            current = contrasts.get(current)
