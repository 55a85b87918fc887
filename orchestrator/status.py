"""``orchestrator status``: where a study stands, from its result store and MLflow.

Done, failed and pruned trials come from the store (the source of truth); running trials are
the study's MLflow child runs still RUNNING without a store row, counted as running only while
the study's driver is alive (its lock in the store has a fresh heartbeat and, on this host, a
live pid): runs a killed driver left RUNNING are shown as interrupted. Pending is the rest of the
plan. The time left is estimated from the durations of finished trials and the study's
concurrency.
"""

from __future__ import annotations

import datetime as dt
import statistics
from dataclasses import dataclass, field
from typing import Any

from orchestrator.progress import format_duration
from orchestrator.spec import LoadedSpec
from search_spaces.metrics import COMPLETED, DONE_STATUSES, EPOCH, FAILED, MAP, PRUNED
from storage import ResultStore, latest_per_config
from storage.lock import LockHolder


@dataclass
class StudyStatus:
    study: str
    planned: int
    done: int = 0
    failed: int = 0
    pruned: int = 0
    running: list[str] = field(default_factory=list)
    best: tuple[str, float] | None = None  # (variant and seed, metric value)
    metric: str = MAP
    seconds_per_trial: float | None = None
    concurrency: int = 1
    driver: LockHolder | None = None  # the lock's holder, if the study is locked
    driver_gone: str | None = None  # why that holder is not running any more (None: alive)
    interrupted: list[str] = field(default_factory=list)  # runs left RUNNING by a dead driver
    unplanned: int = 0  # stored trials of configs the spec no longer plans (it was edited since)

    @property
    def driver_alive(self) -> bool:
        return self.driver is not None and self.driver_gone is None

    @property
    def pending(self) -> int:
        return max(0, self.planned - self.done - self.pruned - self.failed - len(self.running))

    @property
    def seconds_left(self) -> float | None:
        """Rough time to finish: remaining trial-slots x mean duration / concurrency."""
        if self.seconds_per_trial is None:
            return None
        remaining = self.pending + 0.5 * len(self.running)
        return remaining * self.seconds_per_trial / max(1, self.concurrency)


def _duration(row: dict[str, Any]) -> float | None:
    try:
        started = dt.datetime.fromisoformat(row["started_at"])
        finished = dt.datetime.fromisoformat(row["finished_at"])
    except (KeyError, TypeError, ValueError):
        return None
    return (finished - started).total_seconds()


def _concurrency(loaded: LoadedSpec) -> int:
    import os

    resources = loaded.spec.resources
    by_cpu = max(1, int(int(os.environ.get("REID_ORCH_NUM_CPUS", os.cpu_count() or 1)) // resources.cpus_per_trial))
    limits = [by_cpu, resources.max_concurrent_trials or by_cpu]
    if loaded.spec.ablation.search is not None:
        limits.append(loaded.spec.ablation.search.max_concurrent)
    return min(limits)


def study_status(
    loaded: LoadedSpec, store: ResultStore, running_runs: list[Any] | None = None, driver: LockHolder | None = None
) -> StudyStatus:
    """Status of ``loaded`` from its store rows, its driver's lock (``driver``, None when no
    lock) and (optionally) its MLflow child runs."""
    study = loaded.name
    metric = loaded.spec.study.metric
    search = loaded.spec.ablation.search
    planned = len(loaded.trials)
    if search is not None:
        planned = search.num_samples + search.repeat_best * (len(loaded.spec.ablation.seeds) - 1)
    rows = latest_per_config(store.read_rows("trials", study))
    if loaded.spec.ablation.adaptive is not None:  # waves decided as the study runs
        from orchestrator.study_costs import adaptive_planned

        planned = adaptive_planned(loaded, rows)
    if search is None and loaded.spec.ablation.adaptive is None:
        # A relaunch of an edited spec leaves rows of configs it no longer plans: they are not
        # part of this plan's progress (nor its best so far). (An adaptive study plans its later
        # waves from the store, so all its rows count.)
        wanted = {trial.config_hash for trial in loaded.trials}
        kept = [row for row in rows if row["config_hash"] in wanted]
        unplanned = len(rows) - len(kept)
        rows = kept
    else:
        unplanned = 0
    status = StudyStatus(study, planned, metric=metric, concurrency=_concurrency(loaded), driver=driver, unplanned=unplanned)
    if driver is not None:
        status.driver_gone = driver.dead_reason()
    for row in rows:
        kind = row.get("status")
        status.done += kind == COMPLETED
        status.failed += kind == FAILED
        status.pruned += kind == PRUNED
        value = row.get(metric)
        if kind == COMPLETED and value is not None and (status.best is None or value > status.best[1]):
            status.best = (f"{row['variant']} seed={row['seed']}", float(value))
    recorded = {row["config_hash"] for row in rows}
    epochs = {trial.config_hash: trial.config.train.total_epochs for trial in loaded.trials}
    for run in running_runs or []:
        if run.info.status == "RUNNING" and run.data.tags.get("reid.config_hash") not in recorded:
            name = run.info.run_name or run.data.tags.get("reid.variant", "?")
            (status.running if status.driver_alive else status.interrupted).append(name + _epoch_note(run, epochs))
    durations = [d for d in (_duration(r) for r in rows if r.get("status") in DONE_STATUSES) if d is not None]
    if durations:
        status.seconds_per_trial = statistics.fmean(durations)
    return status


def _epoch_note(run: Any, epochs: dict[str, int]) -> str:
    """`` (epoch 7/15)``: the run's latest logged epoch (the recorder logs every epoch's report)
    and the trial's total where the plan knows it (a search sample's is the run's parameter)."""
    epoch = run.data.metrics.get(EPOCH)
    if epoch is None:
        return " (starting)"
    total = epochs.get(run.data.tags.get("reid.config_hash", "")) or run.data.params.get("train.epochs")
    return f" (epoch {int(epoch)}{f'/{total}' if total else ''})"


def format_status(status: StudyStatus) -> str:
    lines = [
        f"study '{status.study}': {status.planned} trials planned",
        f"  done {status.done}, running {len(status.running)}, failed {status.failed}, pruned {status.pruned}, pending {status.pending}",
    ]
    if status.unplanned:
        lines.append(f"  (and {status.unplanned} stored trial(s) of configs the spec no longer plans, not counted)")
    lines.append(_driver_line(status))
    for name in status.running:
        lines.append(f"  running: {name}")
    for name in status.interrupted:
        lines.append(f"  interrupted: {name} (its driver is gone; it runs again on resume)")
    if status.best:
        lines.append(f"  best {status.metric} so far: {100 * status.best[1]:.1f}% ({status.best[0]})")
    left = status.seconds_left
    if (status.pending or status.interrupted) and not status.driver_alive:
        lines.append(f"  not running: continue with `orchestrator resume {status.study}`")
    elif status.pending or status.running:
        lines.append(f"  time left: about {format_duration(left)}" if left is not None else "  time left: unknown until a trial finishes")
    elif status.failed:
        lines.append(f"  {status.failed} failed trial(s) run again on 'orchestrator resume {status.study}'")
    else:
        lines.append("  finished")
    return "\n".join(lines)


def _driver_line(status: StudyStatus) -> str:
    driver = status.driver
    if driver is None:
        return "  driver: none running"
    if status.driver_gone is None:
        return f"  driver: running ({driver.describe()}; heartbeat {driver.heartbeat_age():.0f} s ago)"
    return f"  driver: gone ({driver.describe()}; {status.driver_gone})"
