"""What a study costs and where it stands, for ``orchestrator plan`` and ``orchestrator status``.

* ``plan`` estimates a study's cost before it runs from trials of the same recipe already in
  its result store (the same resolved config but for the seed, in any study of the store): each
  planned trial is costed at the mean wall time of its recipe's earlier trials times the CPUs
  and GPUs it will hold; a trial whose recipe never ran has no estimate, and plan says so.
* ``status`` gives the compute spent (the rows' ``cpu_seconds``/``gpu_seconds``) and an estimate
  of what is left (the pending trials at the mean of the finished ones), an adaptive study's
  comparisons (decided, or open and what runs next) and the study folder's size.
"""

from __future__ import annotations

import json
import statistics
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Mapping

from analysis.compute_cost import Compute, study_compute
from orchestrator.spec import LoadedSpec
from search_spaces import PlannedTrial
from search_spaces.metrics import COMPLETED, WALL_SECONDS


def recipe_key(config: Mapping[str, Any]) -> str:
    """A resolved config without its seed, as canonical JSON: trials of one recipe share it."""
    return json.dumps({k: v for k, v in config.items() if k != "seed"}, sort_keys=True, separators=(",", ":"))


def recipe_seconds(rows: Iterable[Mapping[str, Any]]) -> dict[str, list[float]]:
    """recipe key -> wall seconds of each completed trial of it that recorded its compute."""
    out: dict[str, list[float]] = {}
    for row in rows:
        wall, text = row.get(WALL_SECONDS), row.get("config_json")
        if row.get("status") != COMPLETED or wall is None or not text or wall != wall:
            continue
        try:
            config = json.loads(text)
        except (TypeError, ValueError):
            continue
        out.setdefault(recipe_key(config), []).append(float(wall))
    return out


@dataclass(frozen=True)
class Estimate:
    """Compute estimated for ``known`` of ``total`` trials (the others' recipes never ran)."""

    compute: Compute
    known: int
    total: int
    basis: int  # earlier trials the estimate rests on


def estimate(trials: Iterable[PlannedTrial], seconds: Mapping[str, list[float]], cpus: float, gpus: float) -> Estimate:
    """Each trial at the mean wall time of its recipe's earlier trials, times ``cpus``/``gpus``."""
    total = known = basis = 0
    wall = 0.0
    used: set[str] = set()
    for trial in trials:
        total += 1
        key = recipe_key(trial.config.model_dump(mode="json"))
        if key in seconds:
            known += 1
            wall += statistics.fmean(seconds[key])
            if key not in used:
                used.add(key)
                basis += len(seconds[key])
    return Estimate(Compute(wall * gpus / 3600, wall * cpus / 3600, trials=known), known, total, basis)


def estimate_text(label: str, result: Estimate) -> str:
    if result.known == 0:
        return f"{label}: cannot estimate, no trial of these recipes in the store yet"
    text = f"{label}: about {result.compute.text()} (from {result.basis} earlier trial(s) of the same recipes"
    if result.known < result.total:
        text += f"; {result.total - result.known} of {result.total} trials have no earlier trial of their recipe and are not counted"
    return text + ")"


def plan_cost_lines(loaded: LoadedSpec) -> list[str]:
    """``plan``'s cost lines: the study (an adaptive one: its first wave and its most), or why
    no estimate can be made."""
    from storage import ResultStore, StoreUnavailableError

    uri = loaded.spec.store_uri()
    if "://" not in uri and not Path(uri).is_dir():
        return [f"cost: cannot estimate, no result store yet at {uri} (a launch records each trial's compute)"]
    try:
        store = ResultStore(uri)
        store.check_readable()
        seconds = recipe_seconds(store.read_rows("trials"))
    except StoreUnavailableError as err:
        return [f"cost: cannot estimate ({err})"]
    resources = loaded.spec.resources
    cpus, gpus = resources.cpus_per_trial, resources.gpus_per_trial
    if loaded.spec.ablation.adaptive is None:
        return [estimate_text("cost", estimate(loaded.trials, seconds, cpus, gpus))]
    from orchestrator.adaptive_waves import schedule_trials

    return [
        estimate_text("cost of the first wave", estimate(loaded.trials, seconds, cpus, gpus)),
        estimate_text("cost at most", estimate(schedule_trials(loaded).values(), seconds, cpus, gpus)),
    ]


def adaptive_lines(loaded: LoadedSpec) -> list[str]:
    """``plan``'s account of an adaptive study: first wave, looks, the most it can run."""
    from search_spaces.adaptive import seed_schedule

    adaptive = loaded.spec.ablation.adaptive
    if adaptive is None:
        return []
    schedule = seed_schedule(loaded.spec.ablation.seeds, adaptive)
    rows = len({t.variant for t in loaded.trials})
    first = len(loaded.trials)
    most = first + rows * (schedule.max_seeds - len(loaded.spec.ablation.seeds))
    return [
        f"adaptive seeds: the {first} trials above are the first wave (seeds {', '.join(map(str, loaded.spec.ablation.seeds))}); "
        f"then each open comparison gets {adaptive.seeds_per_wave} more seeds a wave (looks at {', '.join(map(str, schedule.looks))} seeds, "
        f"seeds {', '.join(map(str, schedule.seeds[len(loaded.spec.ablation.seeds) :]))}) until decided on {loaded.spec.study.metric} "
        f"(an effect, or none larger than {adaptive.smallest_effect:g} points)",
        f"at most {most} trials ({schedule.max_seeds} seeds x {rows} rows)",
    ]


def status_lines(loaded: LoadedSpec, rows: list[dict[str, Any]], pending: int, study_dir: Path) -> list[str]:
    """``status``'s extra lines: adaptive comparisons, compute spent and left, folder size."""
    lines, most = _adaptive_status(loaded, rows)
    spent = study_compute(rows)
    if spent.trials:
        walls = [float(r[WALL_SECONDS]) for r in rows if r.get("status") == COMPLETED and r.get(WALL_SECONDS) is not None]
        resources = loaded.spec.resources

        def cost(trials: int) -> str:
            per_trial = statistics.fmean(walls) / 3600
            return Compute(
                per_trial * resources.gpus_per_trial * trials, per_trial * resources.cpus_per_trial * trials, trials=trials
            ).text()

        line = f"  compute: {spent.text()} spent"
        if walls and pending:
            line += f", about {cost(pending)} left ({pending} trials at the mean of the finished)"
        if walls and most > pending:
            line += f"; at most {cost(most)} ({most} trials) if every open comparison runs to its last seed"
        lines.append(line)
    lines.append(folder_line(study_dir))
    return lines


def _adaptive_status(loaded: LoadedSpec, rows: list[dict[str, Any]]) -> tuple[list[str], int]:
    """Lines on the comparisons, and the most trials still to run (every open comparison to N)."""
    if loaded.spec.ablation.adaptive is None:
        return [], 0
    from analysis.seed_decisions import decision_text
    from orchestrator.adaptive_waves import schedule_trials, study_replay

    trials = schedule_trials(loaded)
    state = study_replay(loaded, rows, trials)
    lines = [
        f"  adaptive seeds: {state.looks_taken} of {len(state.plan.looks)} looks taken ({', '.join(map(str, state.plan.looks))} seeds)"
    ]
    for variant, decision in state.decisions.items():
        lines.append(f"    {variant} vs {state.contrasts[variant]}: {decision_text(decision, state.plan)}")
    if state.open and state.needed:
        seeds = sorted({seed for _, seed in state.needed})
        lines.append(f"    still open: {', '.join(state.open)}; next: {len(state.needed)} trials at seeds {', '.join(map(str, seeds))}")
    elif state.open:
        lines.append(f"    still open: {', '.join(state.open)}")
    completed = {row.get("config_hash") for row in rows if row.get("status") == COMPLETED}
    sides = {side for variant in state.open for side in (variant, state.contrasts[variant])}
    most = sum(1 for (variant, _), trial in trials.items() if variant in sides and trial.config_hash not in completed)
    return lines, most


def adaptive_planned(loaded: LoadedSpec, rows: list[dict[str, Any]]) -> int:
    """An adaptive study's trials so far: those recorded, and those its next look needs that
    have no row yet (none once every comparison is decided or at N)."""
    from orchestrator.adaptive_waves import schedule_trials, study_replay

    trials = schedule_trials(loaded)
    recorded = {row.get("config_hash") for row in rows}
    state = study_replay(loaded, rows, trials)
    waiting = sum(1 for key in state.needed if trials[key].config_hash not in recorded)
    return len(recorded & {t.config_hash for t in trials.values()}) + waiting


def folder_line(study_dir: Path) -> str:
    from orchestrator.checkpoint_cleanup import folder_size

    size = folder_size(study_dir)
    checkpoints = (
        sum(1 for _ in study_dir.rglob("trainer.pt")) + sum(1 for _ in (study_dir / "checkpoints").glob("*.pt"))
        if study_dir.is_dir()
        else 0
    )
    kept = f", {checkpoints} checkpoint file(s)" if checkpoints else ", no checkpoint files"
    return f"  study folder: {megabytes(size)}{kept} ({study_dir})"


def megabytes(size: int) -> str:
    return f"{size / 1e6:.1f} MB" if size < 1e9 else f"{size / 1e9:.2f} GB"
