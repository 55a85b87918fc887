"""MLflow bookkeeping across launches: one live run per trial, nothing deleted under a live trial."""

from __future__ import annotations

import pytest

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


def test_a_trial_resumed_after_its_driver_died_reopens_that_launchs_run(tmp_path):
    older = tracker(tmp_path)
    stale = older.start_trial(trial(), axes=[])
    older.finish_trial(stale, "FAILED")  # a still earlier attempt
    first = tracker(tmp_path)
    cut = first.start_trial(trial(), axes=[])
    for step in (1, 2, 3):
        first.log_metrics(cut, {"epoch": float(step), "loss": 1.0 / step}, step=step)
    second = tracker(tmp_path)  # the driver died; the next launch
    second.reconcile(done_hashes=set())
    run_id, logged = second.resume_trial(trial(), axes=[])
    assert (run_id, logged) == (cut, 3)
    run = second.client.get_run(cut)
    assert run.info.status == "RUNNING" and run.data.tags["reid.launch_id"] == second.launch_id
    assert second.client.get_run(stale).info.lifecycle_stage == "deleted"
    assert [r.info.run_id for r in second.child_runs()] == [cut]
    # Nothing earlier to reopen: a fresh run, from epoch 0.
    other = expand(Recipe(), AblationSpec(design="list", variants=[{"name": "a"}], seeds=[1]))[0]
    fresh, logged = second.resume_trial(other, axes=[])
    assert fresh != cut and logged == 0


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


def test_a_finished_trial_run_carries_its_outcome_and_error(tmp_path):
    t = tracker(tmp_path)
    ok, bad = t.start_trial(trial(), axes=[]), t.start_trial(trial(), axes=[])
    t.finish_trial(ok, "FINISHED", outcome="pruned")
    t.finish_trial(bad, "FAILED", error="NonFiniteLossError: loss became nan", outcome="failed")
    ok_run, bad_run = t.client.get_run(ok), t.client.get_run(bad)
    assert (ok_run.info.status, ok_run.data.tags["reid.status"]) == ("FINISHED", "pruned")
    assert "reid.error" not in ok_run.data.tags
    assert (bad_run.info.status, bad_run.data.tags["reid.status"]) == ("FAILED", "failed")
    assert bad_run.data.tags["reid.error"] == "NonFiniteLossError: loss became nan"


def test_tracking_uri_precedence(tmp_path, monkeypatch):
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    assert resolve_tracking_uri(None, None, tmp_path) == f"sqlite:///{tmp_path / 'mlflow.db'}"
    assert resolve_tracking_uri(None, "http://spec", tmp_path) == "http://spec"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://env")
    assert resolve_tracking_uri(None, "http://spec", tmp_path) == "http://env"
    assert resolve_tracking_uri("http://cli", "http://spec", tmp_path) == "http://cli"


def test_the_experiment_opens_in_the_model_training_view_with_a_grouped_by_variant_view(tmp_path):
    import json

    from orchestrator.tracking import EXPERIMENT_KIND_TAG, SHARED_VIEW_PREFIX, variant_view_key

    t = tracker(tmp_path)
    tags = t.client.get_experiment(t.experiment_id).tags
    assert tags[EXPERIMENT_KIND_TAG] == "custom_model_development"
    t.save_variant_view("mAP", cameras=[3, 1, 2])
    # The saved-view envelope MLflow 3's runs page reads for ?viewStateShareKey=<key>.
    envelope = json.loads(t.client.get_experiment(t.experiment_id).tags[SHARED_VIEW_PREFIX + variant_view_key()])
    assert isinstance(envelope["name"], str) and isinstance(envelope["createdAt"], int)
    state = json.loads(envelope["state"])
    assert state["groupBy"] == {"aggregateFunction": "average", "groupByKeys": [{"mode": "tag", "groupByData": "reid.variant"}]}
    assert state["useGroupedValuesInCharts"] is True and state["searchFilter"] == "tags.`reid.role` = 'trial'"
    assert state["runsHiddenMode"] == "SHOW_ALL"  # not only the first 10 groups
    # The sections in reading order, kept as given (not re-sorted by name)...
    assert state["isAccordionReordered"] is True
    names = [section["name"] for section in state["compareRunSections"]]
    assert names == ["Study metric: mAP, with rank1", "weakest_camera", "cam/c01", "cam/c02", "cam/c03", "Model metrics", "System metrics"]
    # ... each chart in its section: the answer first, as bars (the final value) and curves.
    by_section = {s["uuid"]: s["name"] for s in state["compareRunSections"]}
    charts = [(by_section[c["metricSectionId"]], c["type"], c["metricKey"]) for c in state["compareRunCharts"]]
    assert charts[:6] == [
        ("Study metric: mAP, with rank1", "BAR", "mAP"),
        ("Study metric: mAP, with rank1", "BAR", "rank1"),
        ("Study metric: mAP, with rank1", "LINE", "mAP"),
        ("Study metric: mAP, with rank1", "LINE", "rank1"),
        ("weakest_camera", "BAR", "weakest_camera/q_mAP"),
        ("weakest_camera", "BAR", "weakest_camera/g_mAP"),
    ]
    assert ("cam/c02", "LINE", "cam/c02/g_mAP") in charts and len(charts) == 6 + 3 * 3
    assert len({c["uuid"] for c in state["compareRunCharts"]}) == len(charts)
    # The filter is one MLflow's search accepts, and it finds the trial runs only.
    run = t.start_trial(trial(), axes=[])
    found = t.client.search_runs([t.experiment_id], filter_string=state["searchFilter"])
    assert [r.info.run_id for r in found] == [run]
    assert (
        t.view_path()
        == f"#/experiments/{t.experiment_id}/runs?workflowType=machine_learning&viewStateShareKey={variant_view_key()}&compareRunsMode=CHART"
    )
    assert t.experiment_path() == f"#/experiments/{t.experiment_id}?workflowType=machine_learning"
    again = tracker(tmp_path)  # a relaunch (or `status`) keeps the view and its key
    again.save_variant_view("rank1", cameras=[1])
    views = {k: v for k, v in again.client.get_experiment(again.experiment_id).tags.items() if k.startswith(SHARED_VIEW_PREFIX)}
    assert list(views) == [SHARED_VIEW_PREFIX + variant_view_key()]
    state = json.loads(json.loads(views[SHARED_VIEW_PREFIX + variant_view_key()])["state"])
    assert state["compareRunSections"][0]["name"] == "Study metric: rank1, with mAP"


def test_the_parent_run_carries_per_variant_numbers_as_a_table_not_as_metrics(tmp_path):
    import csv

    from analysis.summary import summarize

    def row(variant, seed, index, value):
        return {
            "study": "s",
            "variant": variant,
            "variant_index": index,
            "seed": seed,
            "config_hash": f"{variant}{seed}",
            "status": "completed",
            "finished_at": "x",
            "mAP": value,
        }

    rows = [row("baseline", s, 0, 0.3 + 0.01 * s) for s in range(3)] + [row("+apra", s, 1, 0.35 + 0.012 * s) for s in range(3)]
    # Camera 2 is the baseline's weakest; +apra seed 1's own weakest is camera 1.
    cameras = [
        {"config_hash": r["config_hash"], "camera": cam, "metric": metric, "value": value}
        for r in rows
        for cam, value in ((1, 0.2 if r["config_hash"] == "+apra1" else 0.5), (2, 0.3 + 0.01 * r["seed"]))
        for metric in ("q_mAP", "g_mAP")
    ]
    summary = summarize("s", rows, cameras, metrics=("mAP", "weakest_q_mAP"))
    t = tracker(tmp_path)
    children = {}
    for r in rows:  # the trial runs, as the recorder leaves them
        run = t.client.create_run(
            t.experiment_id, tags={"reid.role": "trial", "reid.study": "s", "reid.variant": r["variant"], "reid.seed": str(r["seed"])}
        )
        t.client.set_terminated(run.info.run_id, "FINISHED")
        children[r["config_hash"]] = run.info.run_id
    t.log_summary(summary)
    t.log_summary(summary)  # a relaunch's summary replaces the table, it does not append to it
    # Each trial run gets its value at the study's weakest camera (c2), whatever its own weakest.
    assert t.client.get_run(children["+apra1"]).data.metrics["weakest_camera/q_mAP"] == pytest.approx(0.31)
    assert t.client.get_run(children["baseline0"]).data.tags["reid.weakest_camera"] == "c2"
    # The parent run has no metrics (the chart view would draw them as an "Unassigned" group) ...
    assert t.client.get_run(t.parent_run_id).data.metrics == {}
    # ... but the numbers as a CSV table among its artifacts.
    folder = t.client.download_artifacts(t.parent_run_id, "summary", str(tmp_path / "down"))
    with open(f"{folder}/variant_numbers.csv", encoding="utf-8") as handle:
        table = list(csv.DictReader(handle))
    assert [(r["variant"], r["metric"]) for r in table] == [
        ("baseline", "mAP"),
        ("baseline", "weakest_q_mAP"),
        ("+apra", "mAP"),
        ("+apra", "weakest_q_mAP"),
    ]
    baseline_map, apra_map = table[0], table[2]
    assert float(baseline_map["mean"]) == pytest.approx(0.31) and baseline_map["delta"] == "" and baseline_map["seeds"] == "3"
    # +apra - baseline, seed by seed: 0.05, 0.052, 0.054.
    assert apra_map["contrast"] == "baseline" and float(apra_map["delta"]) == pytest.approx(0.052)
    assert float(apra_map["delta_low"]) < 0.052 < float(apra_map["delta_high"])
    assert 0 <= float(apra_map["p_holm"]) < 0.05


def test_a_trial_run_names_the_row_its_table_compares_it_with(tmp_path):
    t = tracker(tmp_path)
    trials = expand(Recipe(), AblationSpec(design="list", variants=[{"name": "a"}, {"name": "b", "set": {"loss.triplet.margin": 0.5}}]))
    runs = {trial.variant: t.start_trial(trial, axes=[]) for trial in trials}
    assert t.client.get_run(runs["b"]).data.tags["reid.compare_to"] == "a"
    assert t.client.get_run(runs["a"]).data.tags["reid.compare_to"] == ""
