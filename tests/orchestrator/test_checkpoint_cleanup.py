"""Deleting checkpoints nothing reads any more (orchestrator.checkpoint_cleanup), in a folder and
on S3 (the moto server), and the study folder's size as status prints it."""

from __future__ import annotations

from pathlib import Path

from orchestrator.checkpoint_cleanup import drop_checkpoint_folders, drop_final_models, drop_trial_checkpoints, folder_size


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


def test_the_earlier_launchs_checkpoint_a_trial_resumed_from_goes_too(tmp_path):
    earlier = make_trial_folder(tmp_path / "old")
    now = make_trial_folder(tmp_path / "new")
    dropped = drop_trial_checkpoints(FakeTrial(str(now)), str(earlier / "checkpoint_000001"), print)
    assert dropped == 3
    assert [p.name for p in earlier.glob("checkpoint_*") if p.is_dir()] == ["checkpoint_000000"]  # only the one resumed from


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
