"""An adaptive study's decisions, recomputed from its trial rows: which comparisons are decided
(an effect, or no effect larger than D), at how many seeds, and which still need seeds.

Every row of an adaptive study carries its seed schedule (``variant_meta["adaptive"]``: the
metric, every seed in order, the seeds seen at each look, D in points, alpha) and its contrast
(``variant_meta["compare_to"]``). :func:`replay` goes through the looks in order, as the study
ran them: a look is *taken* once every trial it needs (both rows of every comparison still open,
at each seed so far) is finished; the comparisons are then tested on their pairs at those seeds
(:class:`analysis.sequential.SequentialTests`). The first look not taken yet says which
(variant, seed) trials the study needs next.

The same function serves the launch (what to run next: a trial counts as finished once
completed, or once tried in this launch), ``orchestrator status`` (what is open) and the table
(per row, "decided at n seeds" or "undecided at N", :func:`decision_texts`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Iterable, Mapping

from analysis.sequential import EFFECT, NO_EFFECT, OPEN, UNDECIDED, Decision, SequentialTests
from analysis.row_meta import variant_meta
from search_spaces.adaptive import META_KEY
from search_spaces.metrics import COMPLETED

Pair = tuple[str, int]  # (variant, seed)


@dataclass(frozen=True)
class AdaptivePlan:
    """The seed schedule of an adaptive study, as its rows carry it."""

    metric: str
    seeds: tuple[int, ...]
    looks: tuple[int, ...]
    smallest_effect: float  # points of the metric (percent)
    alpha: float

    @property
    def max_seeds(self) -> int:
        return len(self.seeds)

    @classmethod
    def from_meta(cls, meta: Mapping[str, Any]) -> "AdaptivePlan":
        return cls(
            str(meta["metric"]),
            tuple(int(s) for s in meta["seeds"]),
            tuple(int(n) for n in meta["looks"]),
            float(meta["smallest_effect"]),
            float(meta["alpha"]),
        )


@dataclass
class Replay:
    """Where an adaptive study stands: each compared variant's :class:`Decision`, the looks
    taken, and the (variant, seed) trials the next look still needs (empty: nothing to run)."""

    plan: AdaptivePlan
    contrasts: dict[str, str]
    decisions: dict[str, Decision]
    looks_taken: int = 0
    needed: set[Pair] = field(default_factory=set)

    @property
    def open(self) -> list[str]:
        return [variant for variant, decision in self.decisions.items() if decision.outcome == OPEN]


def adaptive_plan(rows: Iterable[Mapping[str, Any]]) -> AdaptivePlan | None:
    """The schedule the rows carry (the latest row's), or None for a study with fixed seeds."""
    plan = None
    for row in sorted(rows, key=lambda r: str(r.get("finished_at") or "")):
        meta = variant_meta(row).get(META_KEY)
        if isinstance(meta, dict):
            plan = AdaptivePlan.from_meta(meta)
    return plan


def contrasts_of(rows: Iterable[Mapping[str, Any]]) -> dict[str, str]:
    """variant -> the variant it is compared with, for the rows that have a contrast."""
    out: dict[str, str] = {}
    for row in rows:
        contrast = variant_meta(row).get("compare_to")
        if contrast:
            out[str(row["variant"])] = str(contrast)
    return out


def metric_values(rows: Iterable[Mapping[str, Any]], metric: str) -> dict[str, dict[int, float]]:
    """variant -> {seed: metric} of the completed rows (the latest per variant and seed)."""
    latest: dict[Pair, Mapping[str, Any]] = {}
    for row in rows:
        key = (str(row["variant"]), int(row["seed"]))
        if key not in latest or str(row.get("finished_at") or "") >= str(latest[key].get("finished_at") or ""):
            latest[key] = row
    out: dict[str, dict[int, float]] = {}
    for (variant, seed), row in latest.items():
        value = row.get(metric)
        if row.get("status") == COMPLETED and value is not None and not math.isnan(float(value)):
            out.setdefault(variant, {})[seed] = float(value)
    return out


def replay(plan: AdaptivePlan, contrasts: Mapping[str, str], values: Mapping[str, Mapping[int, float]], finished: set[Pair]) -> Replay:
    """The study's looks, in order, on ``values`` (variant -> {seed: metric}, in the store's
    fractions); a look is taken once every (variant, seed) it needs is in ``finished``."""
    variants = list(contrasts)
    tests = SequentialTests(variants, plan.max_seeds, plan.smallest_effect / 100, plan.alpha)
    result = Replay(plan, dict(contrasts), tests.decisions)
    for index, seen in enumerate(plan.looks):
        seeds = plan.seeds[:seen]
        needed = {(side, seed) for variant in tests.open for side in (variant, contrasts[variant]) for seed in seeds}
        missing = needed - finished
        if missing:
            result.needed = missing
            return result
        differences = {}
        for variant in tests.open:
            mine, theirs = values.get(variant, {}), values.get(contrasts[variant], {})
            differences[variant] = [mine[s] - theirs[s] for s in seeds if s in mine and s in theirs]
        tests.look(differences, final=index == len(plan.looks) - 1)
        result.looks_taken = index + 1
        if not tests.open:
            break
    return result


def replay_rows(rows: list[Mapping[str, Any]], finished: set[Pair] | None = None) -> Replay | None:
    """:func:`replay` of a study's trial rows (None when they carry no adaptive schedule);
    ``finished`` defaults to every (variant, seed) with a row, whatever its status."""
    plan = adaptive_plan(rows)
    if plan is None:
        return None
    if finished is None:
        finished = {(str(r["variant"]), int(r["seed"])) for r in rows}
    return replay(plan, contrasts_of(rows), metric_values(rows, plan.metric), finished)


def decision_text(decision: Decision, plan: AdaptivePlan) -> str:
    """How the table states a comparison's decision."""
    if decision.outcome == EFFECT:
        return f"effect, decided at {decision.pairs} seeds"
    if decision.outcome == NO_EFFECT:
        return f"no effect > {plan.smallest_effect:g}, decided at {decision.pairs} seeds"
    if decision.outcome == UNDECIDED:
        return f"undecided at {plan.max_seeds}"
    return f"open after {decision.pairs} seeds"


def decision_texts(rows: list[Mapping[str, Any]]) -> dict[str, str]:
    """variant -> its decision's text, for every compared row of an adaptive study (empty for a
    study with fixed seeds). What the table shows per row."""
    result = replay_rows(rows)
    if result is None:
        return {}
    return {variant: decision_text(decision, result.plan) for variant, decision in result.decisions.items()}


def decisions_note(rows: list[Mapping[str, Any]]) -> str | None:
    """The footnote of an adaptive study's table, or None for fixed seeds."""
    plan = adaptive_plan(rows)
    if plan is None:
        return None
    looks = ", ".join(map(str, plan.looks))
    return (
        f"Adaptive seeds: looks at {looks} seeds (at most {plan.max_seeds}); at each, a comparison on {plan.metric} "
        f"stopped as an effect when its repeated {100 * (1 - plan.alpha):.0f}% interval excluded 0, or as no effect "
        f"larger than {plan.smallest_effect:g} point{'' if plan.smallest_effect == 1 else 's'} when it lay inside ±{plan.smallest_effect:g} "
        "(O'Brien-Fleming-type error spending, Holm's graph across comparisons: analysis.sequential)."
    )
