"""Relaunching: only configs not yet done in the result store run again."""

from pathlib import Path

from orchestrator.launch import best_points, pending_trials, search_history
from orchestrator.rows import trial_row
from orchestrator.spec import load_spec
from storage import ResultStore


def spec_with_margins(tmp_path: Path, margins: list[float]) -> Path:
    path = tmp_path / f"grid{len(margins)}.yaml"
    path.write_text(
        "study: {name: grow}\n"
        "ablation:\n  design: grid\n"
        f"  axes: {{loss.triplet.margin: {margins}, model.neck: [bnneck, l2norm]}}\n"
        "  seeds: [0, 1]\n",
        encoding="utf-8",
    )
    return path


def record(store: ResultStore, trial, status="completed", **metrics):
    row = trial_row("grow", trial, 0, status=status, error=None, final=metrics, started_at=None, finished_at="2026-01-01")
    store.write_trial("grow", trial.trial_id, {"trials": [row]})


def test_growing_a_grid_by_one_value_runs_only_the_new_trials(tmp_path):
    store = ResultStore(str(tmp_path / "results"))
    first = load_spec(spec_with_margins(tmp_path, [0.1, 0.3]))
    assert len(pending_trials(first, store)) == 8
    for trial in first.trials:
        record(store, trial)
    assert pending_trials(first, store) == []
    grown = load_spec(spec_with_margins(tmp_path, [0.1, 0.3, 0.5]))
    todo = pending_trials(grown, store)
    assert len(todo) == 4 and {t.config.loss.triplet.margin for t in todo} == {0.5}
    assert len(pending_trials(grown, store, force=True)) == 12


def test_failed_trials_run_again_but_pruned_ones_do_not(tmp_path):
    store = ResultStore(str(tmp_path / "results"))
    loaded = load_spec(spec_with_margins(tmp_path, [0.1]))
    failed, pruned, *rest = loaded.trials
    record(store, failed, status="failed")
    record(store, pruned, status="pruned")
    assert {t.config_hash for t in pending_trials(loaded, store)} == {failed.config_hash, *(t.config_hash for t in rest)}


def test_search_history_and_best_points(tmp_path):
    spec = tmp_path / "opt.yaml"
    spec.write_text(
        "study: {name: grow}\nablation:\n  design: optuna\n  seeds: [0, 1]\n"
        "  search:\n    num_samples: 3\n    space: {train.lr: {type: loguniform, low: 1.0e-4, high: 1.0e-2}}\n",
        encoding="utf-8",
    )
    loaded = load_spec(spec)
    assert loaded.trials == []
    from search_spaces import resolve_sample

    store = ResultStore(str(tmp_path / "results"))
    for lr, value in ((1e-3, 0.4), (2e-3, 0.6), (3e-3, 0.5)):
        record(store, resolve_sample(loaded.spec.baseline, {"train.lr": lr}, 0), mAP=value)
    record(store, resolve_sample(loaded.spec.baseline, {"train.lr": 5e-3}, 0), status="failed")
    history = search_history(store, "grow", "mAP", seed=0)
    assert sorted(value for _, value in history) == [0.4, 0.5, 0.6]
    assert best_points(history, 2, "max") == [{"train.lr": 2e-3}, {"train.lr": 3e-3}]
    assert best_points(history, 1, "min") == [{"train.lr": 1e-3}]
