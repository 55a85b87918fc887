"""Deleting checkpoints nothing reads any more (orchestrator.checkpoint_cleanup), in a folder and
on S3 (the moto server), and the study folder's size as status prints it."""

from __future__ import annotations

import json
from pathlib import Path

from orchestrator.checkpoint_cleanup import (
    drop_checkpoint_folders,
    drop_final_models,
    drop_trial_checkpoints,
    folder_size,
    sweep_finished_checkpoints,
)


def make_trial_folder(root: Path) -> Path:
    trial = root / "ray" / "study-20261205-101010" / "trial_a"
    for name in ("checkpoint_000000", "checkpoint_000001"):
        (trial / name).mkdir(parents=True)
        (trial / name / "trainer.pt").write_bytes(b"x" * 1000)
        (trial / name / "history.json").write_text("{}", encoding="utf-8")
    (trial / "params.json").write_text("{}", encoding="utf-8")
    (trial / "result.json").write_text("{}", encoding="utf-8")
    (trial / "checkpoint_notes").write_text("a file, not a checkpoint folder", encoding="utf-8")
    return trial


def test_a_trials_checkpoint_folders_go_and_its_records_stay(tmp_path):
    trial = make_trial_folder(tmp_path)
    before = folder_size(tmp_path)
    warnings: list[str] = []
    assert drop_checkpoint_folders(str(trial), None, warnings.append) == 2
    assert sorted(p.name for p in trial.iterdir()) == ["checkpoint_notes", "params.json", "result.json"]
    assert before - folder_size(tmp_path) == 2 * (1000 + 2)
    assert warnings == []
    assert drop_checkpoint_folders(str(tmp_path / "missing"), None, warnings.append) == 0  # nothing there: nothing to do


class FakeStorage:
    def __init__(self, path: str, filesystem=None):
        self.trial_fs_path, self.storage_filesystem = path, filesystem


class FakeTrial:
    def __init__(self, path: str, filesystem=None):
        self.storage = FakeStorage(path, filesystem)


def test_the_earlier_launchs_checkpoints_a_trial_resumed_from_go_too(tmp_path):
    # A driver killed right after a checkpoint leaves the one before it too.
    earlier = make_trial_folder(tmp_path / "old")
    now = make_trial_folder(tmp_path / "new")
    dropped = drop_trial_checkpoints(FakeTrial(str(now)), str(earlier / "checkpoint_000001"), print)
    assert dropped == 4
    assert [p.name for p in earlier.iterdir() if p.is_dir()] == []


def test_a_sweep_deletes_the_checkpoints_of_trials_done_and_keeps_the_others(tmp_path):
    ray = tmp_path / "ray"
    for launch, trial, config_hash in (
        ("s-20261201-101010", "t1", "done1"),
        ("s-20261202-101010", "t2", "open2"),
        ("other-20261202-101010", "t3", "done1"),
    ):
        folder = ray / launch / trial
        (folder / "checkpoint_000003").mkdir(parents=True)
        (folder / "checkpoint_000003" / "trainer.pt").write_bytes(b"m")
        (folder / "params.json").write_text(json.dumps({"trial": {"hash": config_hash}}), encoding="utf-8")
    assert sweep_finished_checkpoints(str(ray), None, "s", {"done1"}, print) == 1
    assert sorted(str(p.relative_to(ray)) for p in ray.rglob("checkpoint_*")) == [
        "other-20261202-101010/t3/checkpoint_000003",  # another study's
        "s-20261202-101010/t2/checkpoint_000003",  # not done: the next launch resumes from it
    ]


def test_on_s3_the_same(s3_bucket):
    import os

    from storage.result_store import s3_filesystem
    from tests.fixtures_s3 import boto3_client

    client = boto3_client(os.environ["AWS_ENDPOINT_URL_S3"])
    prefix = "results/_ray/study-20261205-101010/trial_a"
    for key in (
        "checkpoint_000000/trainer.pt",
        "checkpoint_000000/history.json",
        "checkpoint_000003/trainer.pt",
        "params.json",
        "result.json",
    ):
        client.put_object(Bucket=s3_bucket, Key=f"{prefix}/{key}", Body=b"data")
    dropped = drop_trial_checkpoints(FakeTrial(f"{s3_bucket}/{prefix}", s3_filesystem()), None, print)
    assert dropped == 2
    objects = client.list_objects_v2(Bucket=s3_bucket, Prefix="results/").get("Contents", [])
    # pyarrow leaves an empty marker object for the parent folder ("trial_a/"): no data.
    assert sorted(o["Key"] for o in objects if o["Size"]) == [f"{prefix}/params.json", f"{prefix}/result.json"]


def test_final_models_go_but_those_a_child_still_needs(tmp_path):
    folder = tmp_path / "checkpoints"
    folder.mkdir()
    for name in ("parent", "child", "other"):
        (folder / f"{name}.pt").write_bytes(b"model")
    assert drop_final_models(folder, {"parent"}, print) == 2
    assert [p.name for p in folder.iterdir()] == ["parent.pt"]
    assert drop_final_models(tmp_path / "none", set(), print) == 0
