"""MLflow bookkeeping across launches: one live run per trial, nothing deleted under a live trial."""

from __future__ import annotations

from orchestrator.tracking import StudyTracker, resolve_tracking_uri
from search_spaces import AblationSpec, Recipe, expand


def tracker(tmp_path) -> StudyTracker:
    t = StudyTracker(f"sqlite:///{tmp_path / 'mlflow.db'}", "s", artifact_location=(tmp_path / "art").as_uri())
    t.start_study(params={"design": "list"}, tags={})
    return t


def trial():
    return expand(Recipe(), AblationSpec(design="list", variants=[{"name": "a"}]))[0]


def test_a_killed_launch_leaves_no_duplicate_run(tmp_path):
    first = tracker(tmp_path)
    orphan = first.start_trial(trial(), axes=[])  # the driver dies: the run stays RUNNING
    second = tracker(tmp_path)
    assert second.reconcile(done_hashes=set()) == 1
    assert second.client.get_run(orphan).info.status == "KILLED"
    fresh = second.start_trial(trial(), axes=[])
    live = second.child_runs()
    assert [r.info.run_id for r in live] == [fresh]  # the orphan was deleted when the trial reran
    assert second.client.get_run(orphan).info.lifecycle_stage == "deleted"


def test_a_trial_done_in_the_store_is_closed_as_finished(tmp_path):
    first = tracker(tmp_path)
    run = first.start_trial(trial(), axes=[])
    second = tracker(tmp_path)
    second.reconcile(done_hashes={trial().config_hash})
    assert second.client.get_run(run).info.status == "FINISHED"


def test_two_live_runs_of_one_config_in_one_launch_are_both_kept(tmp_path):
    t = tracker(tmp_path)
    a = t.start_trial(trial(), axes=[])
    b = t.start_trial(trial(), axes=[])  # e.g. two search samples resolving to the same config
    t.log_metrics(a, {"mAP": 0.5}, step=1)
    t.finish_trial(a, "FINISHED")
    t.finish_trial(b, "FINISHED")
    assert {r.info.run_id for r in t.child_runs()} == {a, b}


def test_tracking_uri_precedence(tmp_path, monkeypatch):
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    assert resolve_tracking_uri(None, None, tmp_path) == f"sqlite:///{tmp_path / 'mlflow.db'}"
    assert resolve_tracking_uri(None, "http://spec", tmp_path) == "http://spec"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://env")
    assert resolve_tracking_uri(None, "http://spec", tmp_path) == "http://env"
    assert resolve_tracking_uri("http://cli", "http://spec", tmp_path) == "http://cli"
