"""Finding where interrupted trials stand in Ray Tune's storage (a real folder laid out as Tune
lays it out), and the recorder picking such a trial up where its checkpoint left it."""

from __future__ import annotations

import datetime as dt
import json
import os
from pathlib import Path

from orchestrator.recorder import StudyRecorder
from orchestrator.resume_points import ResumePoint, find_resume_points
from search_spaces import AblationSpec, Recipe, expand
from storage import ResultStore
from tests.orchestrator.test_recorder_recovery import Trial, Tracker, result


def checkpoint(
    storage: Path, launch: str, trial: str, index: int, epoch: int | None, params: dict | None = None, state: bool = True
) -> Path:
    """One Tune checkpoint folder; ``epoch`` None leaves out the history (a copy cut short)."""
    trial_dir = storage / launch / trial
    folder = trial_dir / f"checkpoint_{index:06d}"
    folder.mkdir(parents=True, exist_ok=True)
    if params is not None:
        (trial_dir / "params.json").write_text(json.dumps(params), encoding="utf-8")
    if state:
        (folder / "trainer.pt").write_bytes(b"state")
    if epoch is not None:
        reports = [{"epoch": e, "loss": 10.0 - e} for e in range(1, epoch + 1)]
        (folder / "history.json").write_text(json.dumps({"epoch": epoch, "reports": reports}), encoding="utf-8")
    return folder


def planned(digest: str) -> dict:
    return {"trial": {"config": {}, "hash": digest}}


def test_the_latest_complete_checkpoint_of_each_wanted_trial_is_found(tmp_path):
    storage = tmp_path / "ray"
    checkpoint(storage, "s-20261130-100000", "tune_trainable_a_0", 0, 2, planned("h1"))
    checkpoint(storage, "s-20261130-100000", "tune_trainable_a_0", 1, 4)
    later = checkpoint(storage, "s-20261130-110000", "tune_trainable_b_0", 0, 6, planned("h1"))  # resumed once already
    checkpoint(storage, "s-20261130-110000", "tune_trainable_b_0", 1, None)  # cut short: no history
    checkpoint(storage, "s-20261130-110000", "tune_trainable_b_1", 0, 3, planned("h2"), state=False)  # no state
    checkpoint(storage, "s-20261130-110000", "tune_trainable_b_2", 0, 5, planned("h3"))  # not wanted
    checkpoint(storage, "s-20261130-110000", "tune_trainable_b_3", 0, 5, {"search": {"lr": 0.1}})  # a search sample
    checkpoint(storage, "s-2-20261130-110000", "tune_trainable_c_0", 0, 9, planned("h1"))  # study "s-2"
    (storage / "s-20261130-110000" / "experiment_state.json").write_text("{}", encoding="utf-8")

    points = find_resume_points(str(storage), None, "s", dict.fromkeys(["h1", "h2", "h4"]))
    assert set(points) == {"h1"}
    point = points["h1"]
    assert point == ResumePoint("h1", str(later), 6)
    assert [r["epoch"] for r in point.reports] == [1, 2, 3, 4, 5, 6]


def test_a_checkpoint_that_names_its_trial_is_found_before_tune_synced_params_json(tmp_path):
    """A driver killed soon after a trial's first checkpoint leaves no ``params.json`` (Tune's
    driver syncs it later); the checkpoint's own ``history.json`` names the planned hash."""
    from trainables.trial_checkpoint import CONFIG_HASH_KEY

    storage = tmp_path / "ray"
    folder = checkpoint(storage, "s-20261130-100000", "tune_trainable_a_0", 0, 2)
    history = json.loads((folder / "history.json").read_text(encoding="utf-8"))
    (folder / "history.json").write_text(json.dumps({**history, CONFIG_HASH_KEY: "h1"}), encoding="utf-8")
    checkpoint(storage, "s-20261130-100000", "tune_trainable_a_1", 0, 3)  # an older checkpoint, no name, no params.json

    points = find_resume_points(str(storage), None, "s", {"h1": None})
    assert points == {"h1": ResumePoint("h1", str(folder), 2)}
    assert [r["epoch"] for r in points["h1"].reports] == [1, 2]


def test_nothing_to_find_in_a_missing_storage_or_for_no_trials(tmp_path):
    assert find_resume_points(str(tmp_path / "none"), None, "s", {"h1": None}) == {}
    checkpoint(tmp_path / "ray", "s-20261130-100000", "t", 0, 2, planned("h1"))
    assert find_resume_points(str(tmp_path / "ray"), None, "s", {}) == {}


def test_an_unreadable_checkpoint_is_skipped_with_a_warning(tmp_path):
    folder = checkpoint(tmp_path / "ray", "s-20261130-100000", "t", 0, 2, planned("h1"))
    (folder / "history.json").write_text("{not json", encoding="utf-8")
    warnings: list[str] = []
    assert find_resume_points(str(tmp_path / "ray"), None, "s", {"h1": None}, warn=warnings.append) == {}
    assert len(warnings) == 1 and "skipping an unreadable checkpoint" in warnings[0]


def test_a_failed_trial_resumes_only_from_a_later_attempts_checkpoint(tmp_path):
    storage = tmp_path / "ray"
    before = checkpoint(storage, "s-20261130-100000", "t_0", 0, 4, planned("h1"))  # the attempt that failed
    failed_at = dt.datetime(2026, 11, 30, 10, 30, tzinfo=dt.timezone.utc)
    os.utime(before / "history.json", (failed_at.timestamp() - 600,) * 2)
    assert find_resume_points(str(storage), None, "s", {"h1": failed_at}) == {}
    after = checkpoint(storage, "s-20261130-110000", "t_0", 0, 2, planned("h1"))  # rerun, then interrupted
    os.utime(after / "history.json", (failed_at.timestamp() + 600,) * 2)
    assert find_resume_points(str(storage), None, "s", {"h1": failed_at})["h1"].path == str(after)
    # Never failed (interrupted only): the furthest checkpoint of any attempt.
    assert find_resume_points(str(storage), None, "s", {"h1": None})["h1"].path == str(before)


def test_the_last_outcome_of_each_trial_is_its_latest_row(tmp_path):
    store = ResultStore(str(tmp_path / "results"))
    rows = [
        ("a", "failed", "2026-11-30T10:00:00+00:00"),
        ("a", "completed", "2026-11-30T11:00:00+00:00"),
        ("b", "failed", "2026-11-30T09:00:00+00:00"),
    ]
    for index, (digest, status, finished) in enumerate(rows):
        store.write_trial("s", f"t{index}", {"trials": [{"study": "s", "config_hash": digest, "status": status, "finished_at": finished}]})
    assert store.last_outcomes("s") == {"a": ("completed", "2026-11-30T11:00:00+00:00"), "b": ("failed", "2026-11-30T09:00:00+00:00")}


class ResumingTracker(Tracker):
    """The fake tracker, plus the earlier launch's run: it has MLflow steps up to ``logged``."""

    def __init__(self, logged: int):
        super().__init__()
        self.logged = logged
        self.resumed: list[str] = []

    def resume_trial(self, planned, axes):
        self.resumed.append(planned.config_hash)
        return "run-0", self.logged


def test_a_resumed_trial_continues_its_curve_and_run_without_gaps_or_repeats(tmp_path):
    trials = expand(Recipe.model_validate({"train": {"epochs": 5}}), AblationSpec(design="list", variants=[{"name": "a"}]))
    digest = trials[0].config_hash
    # The earlier driver logged epochs 1-3 to MLflow and checkpointed at 2 before it died.
    reports = [result(1), result(2, evaluated=True)]
    store, tracker, lines = ResultStore(str(tmp_path)), ResumingTracker(logged=3), []
    recorder = StudyRecorder(
        study="s",
        trials=trials,
        variant_order=["a"],
        axes=[],
        store=store,
        tracker=tracker,
        echo=lines.append,
        resumed={digest: ResumePoint(digest, "ray/s-1/t/checkpoint_000000", 2, reports)},
    )
    trial = Trial(digest)
    recorder.on_trial_start(0, [], trial)
    for epoch in (3, 4, 5):
        recorder.on_trial_result(0, [], trial, result(epoch, evaluated=epoch in (4, 5)))
    recorder.on_trial_complete(0, [], trial)

    assert tracker.resumed == [digest]
    assert tracker.steps == [4, 5]  # MLflow had 1-3; epoch 3, trained again, is not logged twice
    assert any("from its checkpoint at epoch 2 (an earlier launch's)" in line for line in lines), lines
    (row,) = store.read_rows("trials", "s")
    assert row["status"] == "completed" and row["epochs_done"] == 5 and row["mAP"] == 0.5
    assert sorted(r["epoch"] for r in store.read_rows("curves", "s")) == [1, 2, 3, 4, 5]
    assert row["train_seconds"] == 5.0 and row["eval_seconds"] == 1.5  # the checkpoint's epochs count too


def test_checkpoints_beside_an_s3_store_are_found_and_loaded_from_there(tmp_path, s3_bucket, s3_env, tiny_market):
    """Tune keeps its storage on S3 beside an S3 result store: the driver lists it there and the
    trial's worker loads the state from there (a real S3 server on 127.0.0.1)."""
    import torch

    from storage.result_store import s3_filesystem
    from tests.fixtures_s3 import boto3_client
    from trainables.data.datasets import load_reid_data
    from trainables.trial import RuntimeOptions, build_trainer
    from trainables.trial_checkpoint import save_trainer
    from trainables.tune_entry import resume_earlier
    from tests.trainables.test_trial_checkpoint import config_for

    config = config_for(tiny_market)
    data = load_reid_data(config.dataset)
    runtime = RuntimeOptions(device="cpu", threads=1)
    local = tmp_path / "local"

    def report(metrics):
        if metrics["epoch"] == 2:
            save_trainer(trainer, local / "s-20261130-100000" / "t_0" / "checkpoint_000000")

    trainer = build_trainer(config, data, report=report, runtime=runtime)
    trainer.train()
    (local / "s-20261130-100000" / "t_0" / "params.json").write_text(json.dumps(planned("h1")), encoding="utf-8")
    client = boto3_client(s3_env["AWS_ENDPOINT_URL_S3"])
    for path in local.rglob("*"):
        if path.is_file():
            client.upload_file(str(path), s3_bucket, f"_ray/{path.relative_to(local).as_posix()}")

    points = find_resume_points(f"{s3_bucket}/_ray", s3_filesystem(), "s", {"h1": None})
    assert points["h1"].epoch == 2 and points["h1"].path == f"{s3_bucket}/_ray/s-20261130-100000/t_0/checkpoint_000000"

    torch.manual_seed(7)
    resumed = build_trainer(config, data, report=lambda m: None, runtime=runtime)
    assert resume_earlier(resumed, points["h1"].path, on_s3=True)
    assert resumed.epoch == 2 and [r["epoch"] for r in resumed.history] == [1, 2]
    assert not resume_earlier(resumed, f"{s3_bucket}/_ray/missing", on_s3=True)  # said, not raised
