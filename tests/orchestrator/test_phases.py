"""Continued trials run after their parents (orchestrator.phases); one whose parent did not
complete, or whose checkpoint is gone, is recorded failed instead of run."""

from __future__ import annotations

from pathlib import Path

from orchestrator.launch import study_axes
from orchestrator.phases import run_waves, waves
from orchestrator.rows import trial_row
from orchestrator.spec import load_spec
from orchestrator.tracking import StudyTracker
from orchestrator.tune_runner import RaySession, StudyRun, Tally, checkpoint_folder
from storage import ResultStore

SPEC = """\
study: {name: cont}
baseline:
  train: {epochs: 2, lr_steps: [], warmup_epochs: 0, swa: {cycles: 1, cycle_epochs: 1}}
ablation:
  design: list
  variants:
    - {name: "+c", continues: "-", set: {train.swa.enabled: true}}
    - {name: "-"}
  seeds: [0, 1]
output: {dir: %s}
"""


def loaded_spec(tmp_path: Path, extra: str = ""):
    path = tmp_path / "study.yaml"
    path.write_text(SPEC % (tmp_path / "study") + extra, encoding="utf-8")
    return load_spec(path)


def named(trials):
    return [(t.variant, t.seed) for t in trials]


def test_parents_run_in_an_earlier_wave(tmp_path):
    loaded = loaded_spec(tmp_path)
    assert named(loaded.trials) == [("+c", 0), ("+c", 1), ("-", 0), ("-", 1)]  # the plan's order
    assert [named(w) for w in waves(loaded.trials)] == [[("-", 0), ("-", 1)], [("+c", 0), ("+c", 1)]]
    # A parent done by an earlier launch is not in todo: its dependents run in the first wave.
    assert [named(w) for w in waves(loaded.trials[:2])] == [[("+c", 0), ("+c", 1)]]


def test_the_checkpoint_folder_defaults_to_the_study_folder_when_trials_continue(tmp_path):
    loaded = loaded_spec(tmp_path)
    assert checkpoint_folder(loaded) == (tmp_path / "study" / "checkpoints").resolve()
    path = tmp_path / "plain.yaml"
    path.write_text("study: {name: plain}\n", encoding="utf-8")
    assert checkpoint_folder(load_spec(path)) is None
    own = tmp_path / "own.yaml"
    own.write_text(SPEC.replace("output: {dir: %s}", f"output: {{checkpoints: {tmp_path / 'ckpt'}}}"), encoding="utf-8")
    assert checkpoint_folder(load_spec(own)) == tmp_path / "ckpt"


def test_a_dependent_of_a_failed_parent_is_recorded_failed_not_run(tmp_path, monkeypatch):
    loaded = loaded_spec(tmp_path)
    store = ResultStore(str(tmp_path / "results"))
    tracker = StudyTracker(f"sqlite:///{tmp_path / 'mlflow.db'}", "cont", artifact_location=(tmp_path / "art").as_uri())
    tracker.start_study(params={}, tags={})
    echo = lambda line: None  # noqa: E731
    run = StudyRun(loaded, store, tracker, RaySession(loaded, None, echo), study_axes(loaded), echo)
    folder = checkpoint_folder(loaded)
    ran: list[list[tuple[str, int]]] = []

    def run_trials(run, trials, datasets, variant_order):
        """Stands in for Ray Tune: seed 0 completes and saves its model, seed 1 fails."""
        ran.append(named(trials))
        for trial in trials:
            ok = trial.seed == 0
            row = trial_row(
                "cont", trial, 0, status="completed" if ok else "failed", error=None, final={}, started_at=None, finished_at="now"
            )
            store.write_trial("cont", trial.trial_id, {"trials": [row]})
            if ok:
                folder.mkdir(parents=True, exist_ok=True)
                (folder / f"{trial.config_hash}.pt").write_bytes(b"model")
        return Tally(variant_order=variant_order)

    monkeypatch.setattr("orchestrator.tune_runner.run_trials", run_trials)
    tally = run_waves(run, loaded.trials, {}, Tally(variant_order=("+c", "-")))
    assert ran == [[("-", 0), ("-", 1)], [("+c", 0)]]
    assert tally.failed == 1
    rows = {(r["variant"], r["seed"]): r for r in store.read_rows("trials", "cont")}
    skipped = rows[("+c", 1)]
    assert skipped["status"] == "failed" and "continues - seed=1" in skipped["error"] and "did not complete" in skipped["error"]
    runs = tracker.child_runs()
    assert [r.data.tags.get("reid.status") for r in runs] == ["failed"]

    # Seed 0's parent model was deleted once its only child completed (a child's own model too);
    # seed 1's parent failed and saved none.
    assert sorted(folder.glob("*.pt")) == []
    # The parent completed, but its checkpoint is gone: the dependent is not run either.
    ran.clear()
    assert run_waves(run, [loaded.trials[0]], {}, Tally()).failed == 1
    assert ran == [[]]
    error = {(r["variant"], r["seed"]): r for r in store.read_rows("trials", "cont")}[("+c", 0)]["error"]
    assert "whose checkpoint" in error and "is missing" in error
