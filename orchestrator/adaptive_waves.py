"""Run an adaptive study's seeds in waves, each after the decisions of the last.

The first wave is the plan (``ablation.seeds``). After it, and after every later wave, the
study's decisions are recomputed from the result store (:func:`analysis.seed_decisions.replay`):
a comparison that is decided needs no more seeds; both rows of each open one get the next
look's seeds (pairs are by seed), with the parents of rows that ``continue`` another at those
seeds. Each wave runs through :func:`orchestrator.phases.run_waves`, the launch path of every
trial (resume points, locks, checkpoints, MLflow, Parquet).

Within one launch a trial runs at most once: a trial that failed counts as finished for the
look (its pair is missing), so a launch always ends. A later ``launch``/``resume`` recomputes
everything from the store, runs failed trials again as for any study, and goes on with the
waves where the study stood.
"""

from __future__ import annotations

from typing import Callable, Mapping

from orchestrator.phases import run_waves
from orchestrator.spec import LoadedSpec
from orchestrator.tune_runner import StudyRun, Tally
from search_spaces import PlannedTrial
from search_spaces.metrics import COMPLETED

Pair = tuple[str, int]


def schedule_trials(loaded: LoadedSpec) -> dict[Pair, PlannedTrial]:
    """Every trial an adaptive study may run, by (variant, seed): each row at each of the
    schedule's seeds, the same configs (and hashes) as a fixed study with those seeds."""
    from search_spaces import expand
    from search_spaces.adaptive import adaptive_meta, seed_schedule, with_meta

    spec = loaded.spec
    adaptive = spec.ablation.adaptive
    if adaptive is None:
        raise ValueError(f"study '{loaded.name}' has no ablation.adaptive block")
    schedule = seed_schedule(spec.ablation.seeds, adaptive)
    trials = expand(spec.baseline, spec.ablation.model_copy(update={"seeds": list(schedule.seeds)}))
    trials = with_meta(trials, adaptive_meta(schedule, adaptive, spec.study.metric))
    return {(t.variant, t.seed): t for t in trials}


def study_replay(
    loaded: LoadedSpec, rows: list[dict], trials: Mapping[Pair, PlannedTrial], tried: set[str] = frozenset(), fresh: bool = False
):
    """The study's :class:`~analysis.seed_decisions.Replay` from its store rows: the rows of the
    schedule's trials only (an earlier recipe's rows under the same names do not count); a trial
    is finished once completed, or once tried (``tried``: config hashes run in this launch;
    with ``fresh``, ``--force``, only those)."""
    from analysis.seed_decisions import AdaptivePlan, metric_values, replay
    from search_spaces.adaptive import META_KEY

    hashes = {t.config_hash: key for key, t in trials.items()}
    mine = [row for row in rows if row.get("config_hash") in hashes]
    finished = set() if fresh else {hashes[r["config_hash"]] for r in mine if r.get("status") == COMPLETED}
    finished |= {key for key, t in trials.items() if t.config_hash in tried}
    first = next(iter(trials.values()))
    plan = AdaptivePlan.from_meta(first.variant_meta[META_KEY])
    contrasts = {t.variant: t.contrast for t in trials.values() if t.contrast is not None}
    return replay(plan, contrasts, metric_values(mine, plan.metric), finished)


def wave_trials(needed: set[Pair], trials: Mapping[Pair, PlannedTrial]) -> list[PlannedTrial]:
    """The trials of ``needed`` (variant, seed) pairs and, for a row that continues another,
    its parent at the same seed; in the plan's order."""
    by_hash = {t.config_hash: t for t in trials.values()}
    chosen: dict[str, PlannedTrial] = {}
    for key in needed:
        trial: PlannedTrial | None = trials[key]
        while trial is not None and trial.config_hash not in chosen:
            chosen[trial.config_hash] = trial
            trial = by_hash.get(trial.config.train.init_from or "")
    order = {t.config_hash: i for i, t in enumerate(trials.values())}
    return sorted(chosen.values(), key=lambda t: order[t.config_hash])


def run_adaptive(
    run: StudyRun, todo: list[PlannedTrial], datasets: dict, tally: Tally, decode: Callable[[list[PlannedTrial]], None]
) -> Tally:
    """The first wave's trials still to run (``todo``), then wave after wave while a
    comparison is open and seeds are left; ``decode`` adds a wave's datasets to ``datasets``.
    Returns ``tally`` with every wave's trials added."""
    loaded, store, echo = run.loaded, run.store, run.echo
    trials = schedule_trials(loaded)
    tried: set[str] = set()
    while True:
        if todo:
            decode(todo)
            tally = run_waves(run, todo, datasets, tally)
            tried |= {t.config_hash for t in todo}
        rows = store.read_rows("trials", loaded.name)
        state = study_replay(loaded, rows, trials, tried, run.fresh)
        echo(progress_line(state))
        done = set() if run.fresh else {r["config_hash"] for r in rows if r.get("status") == COMPLETED}
        todo = [t for t in wave_trials(state.needed, trials) if t.config_hash not in done and t.config_hash not in tried]
        if not todo:
            return tally
        seeds = sorted({t.seed for t in todo})
        variants = sorted({t.variant for t in todo})
        echo(f"adaptive seeds: next wave, seeds {', '.join(map(str, seeds))} for {', '.join(variants)}: {len(todo)} trials")


def progress_line(state) -> str:
    """One line after a look: decided comparisons (how, at how many seeds) and open ones."""
    from analysis.seed_decisions import decision_text

    parts = [
        f"{variant} vs {state.contrasts[variant]}: {decision_text(decision, state.plan)}" for variant, decision in state.decisions.items()
    ]
    return f"adaptive seeds ({state.looks_taken} of {len(state.plan.looks)} looks): " + "; ".join(parts)
