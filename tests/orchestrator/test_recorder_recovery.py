"""The recorder across a trial's restart: the epochs it reports again replace their first rows
in the curve and add no MLflow step; the Parquet rows are written once, at the end."""

from __future__ import annotations

from orchestrator.recorder import StudyRecorder
from search_spaces import AblationSpec, Recipe, expand
from storage import ResultStore


class Tracker:
    """MLflow's part of the recorder's contract, kept in lists."""

    def __init__(self):
        self.steps: list[int] = []  # of the trial's epoch reports
        self.compute: list[dict] = []  # the compute logged once the trial ended
        self.finished: list[str] = []

    def start_trial(self, planned, axes):
        return "run-1"

    def log_metrics(self, run_id, metrics, step):
        if "epoch" in metrics:
            self.steps.append(step)
        else:
            self.compute.append(dict(metrics))

    def finish_trial(self, run_id, status, error=None, outcome=None):
        self.finished.append(status)


class Trial:
    trial_id = "t-1"

    def __init__(self, digest: str):
        self.config = {"trial": {"hash": digest}}

    def get_error(self):
        return "ActorDiedError: The actor died unexpectedly before finishing this task."


def result(epoch: int, evaluated: bool = False, checkpoint: bool = False) -> dict:
    metrics = {"epoch": epoch, "loss": 10.0 - epoch, "epoch_seconds": 1.0}
    if evaluated:
        metrics.update({"mAP": epoch / 10, "rank1": epoch / 10, "eval_seconds": 0.5, "cam/c01/q_mAP": epoch / 20})
    if checkpoint:
        metrics["checkpoint_dir_name"] = f"checkpoint_{epoch:06d}"
    return metrics


def recorded(tmp_path, results: list[dict | None]):
    """Feed ``results`` (None: the trial fails and Tune starts it again) to a recorder of a
    study of one 5-epoch trial; returns its store's rows, the tracker and the printed lines."""
    trials = expand(Recipe.model_validate({"train": {"epochs": 5}}), AblationSpec(design="list", variants=[{"name": "a"}]))
    store, tracker, lines = ResultStore(str(tmp_path)), Tracker(), []
    recorder = StudyRecorder(study="s", trials=trials, variant_order=["a"], axes=[], store=store, tracker=tracker, echo=lines.append)
    trial = Trial(trials[0].config_hash)
    recorder.on_trial_start(0, [], trial)
    for item in results:
        if item is None:
            recorder.on_trial_recover(0, [], trial)
        else:
            recorder.on_trial_result(0, [], trial, item)
    recorder.on_trial_complete(0, [], trial)
    return store, tracker, lines


def test_a_trial_resumed_from_its_checkpoint_is_recorded_once(tmp_path):
    first = [result(1), result(2, evaluated=True, checkpoint=True), result(3), result(4, evaluated=True)]
    again = [result(3), result(4, evaluated=True), result(5, evaluated=True)]
    store, tracker, lines = recorded(tmp_path, [*first, None, *again])
    assert tracker.steps == [1, 2, 3, 4, 5] and tracker.finished == ["FINISHED"]
    assert [sorted(c) for c in tracker.compute] == [["cpu_seconds", "gpu_seconds", "wall_seconds"]]
    assert any("retrying a seed=0" in line and "from its checkpoint at epoch 2 after: ActorDiedError" in line for line in lines), lines
    (row,) = store.read_rows("trials", "s")
    assert row["status"] == "completed" and row["epochs_done"] == 5 and row["epochs_rerun"] == 2
    assert row["mAP"] == 0.5
    assert sorted(r["epoch"] for r in store.read_rows("curves", "s")) == [1, 2, 3, 4, 5]
    assert {r["value"] for r in store.read_rows("cameras", "s")} == {0.25}


def test_a_trial_restarted_without_a_checkpoint_keeps_only_its_second_run(tmp_path):
    store, tracker, _ = recorded(
        tmp_path, [result(1), result(2, evaluated=True), None, *(result(e, evaluated=e in (2, 5)) for e in range(1, 6))]
    )
    assert tracker.steps == [1, 2, 3, 4, 5]
    (row,) = store.read_rows("trials", "s")
    assert row["epochs_done"] == 5 and row["epochs_rerun"] == 2
    curves = store.read_rows("curves", "s")
    assert sorted(r["epoch"] for r in curves) == [1, 2, 3, 4, 5]


def test_a_rewind_drops_the_evaluations_after_the_resume_point(tmp_path):
    # The trial fails again after resuming: its failed row keeps the evaluation at epoch 2,
    # not the one at epoch 4 that the resumed run had not yet reproduced.
    trials = expand(Recipe.model_validate({"train": {"epochs": 5}}), AblationSpec(design="list", variants=[{"name": "a"}]))
    store = ResultStore(str(tmp_path))
    recorder = StudyRecorder(study="s", trials=trials, variant_order=["a"], axes=[], store=store, tracker=Tracker(), echo=lambda line: None)
    trial = Trial(trials[0].config_hash)
    for item in [result(1), result(2, evaluated=True, checkpoint=True), result(3), result(4, evaluated=True), None, result(3)]:
        if item is None:
            recorder.on_trial_recover(0, [], trial)
        else:
            recorder.on_trial_result(0, [], trial, item)
    recorder.on_trial_error(0, [], trial)
    (row,) = store.read_rows("trials", "s")
    assert row["status"] == "failed" and row["mAP"] == 0.2 and row["epochs_done"] == 3
