"""Run a study's trials in waves, so a trial that continues another runs after its parent.

Robust-ReID (Lawen et al.) section 4.2, Table 3: "+LR scheme" and "+SWAG" continue training
the converged "-" model. Such a trial carries its parent's config hash (``train.init_from``)
and starts from the parent's final model, saved in the study's checkpoint folder
(:func:`orchestrator.tune_runner.checkpoint_folder`). Hence:

- :func:`waves` orders the trials to run: wave 0 holds those that continue nothing or whose
  parent is not to be run now (done in the store by an earlier launch), wave ``k`` those whose
  parent is in wave ``k - 1``;
- :func:`run_waves` runs one wave after the other (through :mod:`orchestrator.tune_runner`,
  returning what they came to as a :class:`Tally`); before a wave it checks that the parent of
  each continued trial is done in the store and its checkpoint exists. A trial whose parent
  failed (or whose checkpoint is gone) is not run: it is recorded ``failed`` with the reason,
  in the store and in MLflow, and runs again on the next launch like any failed trial. After
  the waves, the final models in the study's own checkpoint folder that no child still needs
  are deleted (a folder named in ``output.checkpoints`` is kept whole).
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

from orchestrator import tune_runner
from orchestrator.tune_runner import StudyRun, Tally
from search_spaces import PlannedTrial
from search_spaces.metrics import FAILED


def waves(todo: list[PlannedTrial]) -> list[list[PlannedTrial]]:
    """``todo`` in waves: a trial goes one wave after its parent's when the parent is in
    ``todo``, else into the first wave; order within a wave is the plan's. (Expansion refuses
    cycles, so every trial gets a wave.)"""
    by_hash = {trial.config_hash: trial for trial in todo}
    depth: dict[str, int] = {}

    def wave_of(trial: PlannedTrial) -> int:
        if trial.config_hash not in depth:
            parent = by_hash.get(trial.config.train.init_from or "")
            depth[trial.config_hash] = 0 if parent is None else wave_of(parent) + 1
        return depth[trial.config_hash]

    ordered: list[list[PlannedTrial]] = []
    for trial in todo:
        index = wave_of(trial)
        while len(ordered) <= index:
            ordered.append([])
        ordered[index].append(trial)
    return ordered


def label(trial: PlannedTrial) -> str:
    return f"{trial.variant} seed={trial.seed} [{trial.config_hash[:8]}]"


def not_ready(trial: PlannedTrial, done: set[str], folder: Path | None, planned: dict[str, PlannedTrial]) -> str | None:
    """Why a continued trial cannot start now (its parent not done, or its checkpoint missing),
    or None when it can (or continues nothing)."""
    parent_hash = trial.config.train.init_from
    if parent_hash is None:
        return None
    parent = planned.get(parent_hash)
    name = label(parent) if parent is not None else f"[{parent_hash[:8]}]"
    if parent_hash not in done:
        return f"not run: it continues {name}, which did not complete (see its error); it runs on the next launch"
    checkpoint = folder / f"{parent_hash}.pt" if folder is not None else None
    if checkpoint is None or not checkpoint.is_file():
        return (
            f"not run: it continues {name}, whose checkpoint {checkpoint} is missing; restore the file, "
            "or rerun the parent (orchestrator launch --force)"
        )
    return None


def record_not_run(run: StudyRun, trial: PlannedTrial, reason: str, variant_order: tuple[str, ...]) -> None:
    """Record ``trial`` as failed with ``reason`` without running it (store row and MLflow run)."""
    from orchestrator.rows import trial_row

    study = run.loaded.name
    index = variant_order.index(trial.variant) if trial.variant in variant_order else -1
    now = dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")
    row = trial_row(study, trial, index, status=FAILED, error=reason, final={}, started_at=None, finished_at=now, extra={"epochs_done": 0})
    run.store.write_trial(study, trial.trial_id, {"trials": [row]})
    run_id = run.tracker.start_trial(trial, run.axes)
    run.tracker.finish_trial(run_id, "FAILED", error=reason, outcome=FAILED)
    run.echo(f"FAILED {label(trial)}: {reason}")


def run_waves(run: StudyRun, todo: list[PlannedTrial], datasets: dict, tally: Tally) -> Tally:
    """Run ``todo`` (its datasets decoded in ``datasets``) wave by wave (:func:`waves`); a
    continued trial whose parent is not done with its checkpoint in place is recorded failed
    instead of run. Returns ``tally`` with the waves' trials added."""
    from orchestrator.tune_runner import checkpoint_folder

    folder = checkpoint_folder(run.loaded)
    planned = {trial.config_hash: trial for trial in run.loaded.trials}
    if run.ray.address and folder is not None and not run.loaded.spec.output.checkpoints:
        # Another node's trial cannot read this node's study folder.
        run.echo(
            f"warning: continued trials load their parent's model from {folder}; on a cluster set output.checkpoints to a volume every node shares"
        )
    for wave in waves(todo):
        continued = any(trial.config.train.init_from for trial in wave)
        done = run.store.completed_hashes(run.loaded.name) if continued else set()
        ready = []
        for trial in wave:
            reason = not_ready(trial, done, folder, planned)
            if reason is None:
                ready.append(trial)
            else:
                record_not_run(run, trial, reason, tally.variant_order)
                tally = tally.then(Tally(failed=1))
        tally = tally.then(tune_runner.run_trials(run, ready, datasets, tally.variant_order))
    if folder is not None and not run.loaded.spec.output.checkpoints:
        drop_unneeded_models(run, folder, [*run.loaded.trials, *todo])
    return tally


def drop_unneeded_models(run: StudyRun, folder: Path, trials: list[PlannedTrial]) -> None:
    """Delete the final models in the study's own checkpoint folder that no child of ``trials``
    still needs (:func:`orchestrator.checkpoint_cleanup.drop_final_models`)."""
    from orchestrator.checkpoint_cleanup import drop_final_models

    done = run.store.completed_hashes(run.loaded.name)
    needed = {t.config.train.init_from for t in trials if t.config.train.init_from and t.config_hash not in done}
    drop_final_models(folder, {h for h in needed if h}, run.echo)
