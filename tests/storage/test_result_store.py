import os

import pandas as pd
import pyarrow.parquet as pq
import pytest

from storage import ResultStore, StoreUnavailableError, latest_per_config


def trial(hash_, status="completed", **extra):
    return {"study": "s", "trial_id": hash_, "config_hash": hash_, "variant": "v", "seed": 0, "status": status, **extra}


def test_write_and_read_back(tmp_path):
    store = ResultStore(str(tmp_path))
    store.write_trial("s", "aaa", {"trials": [trial("aaa", mAP=0.5)], "cameras": [{"study": "s", "camera": 1, "value": 0.4}]})
    rows = store.read_rows("trials", "s")
    assert rows[0]["mAP"] == 0.5 and rows[0]["schema_version"] == 1
    assert store.read_rows("cameras", "s")[0]["camera"] == 1
    assert store.studies() == ["s"]
    assert store.completed_hashes("s") == {"aaa"}


def test_one_part_file_per_trial_and_table_readable_by_plain_pyarrow_and_pandas(tmp_path):
    store = ResultStore(str(tmp_path))
    for h in ("a1", "b2", "c3"):
        store.write_trial("s", h, {"trials": [trial(h, mAP=0.1)]})
    files = sorted((tmp_path / "trials" / "s").iterdir())
    assert len(files) == 3 and all(f.name.startswith("part-") and f.suffix == ".parquet" for f in files)
    assert pq.read_table(files[0]).num_rows == 1
    frame = pd.concat(pd.read_parquet(f) for f in files)
    assert sorted(frame["config_hash"]) == ["a1", "b2", "c3"]


def test_readable_by_duckdb_without_the_project(tmp_path):
    duckdb = pytest.importorskip("duckdb")
    store = ResultStore(str(tmp_path))
    store.write_trial("s", "a", {"trials": [trial("a", mAP=0.25)]})
    store.write_trial("s", "b", {"trials": [trial("b", mAP=0.75, new_axis=3)]})
    query = f"select avg(mAP), count(new_axis) from read_parquet('{tmp_path}/trials/*/*.parquet', union_by_name=true)"
    assert duckdb.sql(query).fetchall() == [(0.5, 1)]


def test_new_columns_unify_with_old_files(tmp_path):
    store = ResultStore(str(tmp_path))
    store.write_trial("s", "old", {"trials": [trial("old", error=None)]})
    store.write_trial("s", "new", {"trials": [trial("new", error="boom", extra_axis=0.5)]})
    rows = {r["config_hash"]: r for r in store.read_rows("trials", "s")}
    assert rows["old"]["extra_axis"] is None and rows["new"]["extra_axis"] == 0.5
    assert rows["new"]["error"] == "boom"


def test_failed_trials_are_not_completed(tmp_path):
    store = ResultStore(str(tmp_path))
    store.write_trial("s", "x", {"trials": [trial("x", status="failed", error="NaN")]})
    assert store.completed_hashes("s") == set()


def test_hidden_temporary_files_are_never_read(tmp_path):
    store = ResultStore(str(tmp_path))
    store.write_trial("s", "a", {"trials": [trial("a")]})
    folder = tmp_path / "trials" / "s"
    (folder / ".tmp-part-b.parquet").write_bytes(b"half a file")
    assert [r["config_hash"] for r in store.read_rows("trials", "s")] == ["a"]
    assert not any(name.startswith(".tmp") for name in os.listdir(folder) if name != ".tmp-part-b.parquet")


def test_a_crash_during_write_leaves_no_visible_part(tmp_path, monkeypatch):
    store = ResultStore(str(tmp_path))

    def explode(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr("storage.result_store.pq.write_table", explode)
    with pytest.raises(StoreUnavailableError, match="disk full"):
        store.write_part("trials", "s", "a", [trial("a")])
    assert store.read_rows("trials", "s") == []


def test_unwritable_store_is_reported(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    with pytest.raises(StoreUnavailableError, match="not writable"):
        ResultStore(str(blocker / "sub")).check_writable()
    with pytest.raises(StoreUnavailableError, match="use a folder path or s3://"):
        ResultStore("gs://bucket/x")


def test_latest_per_config_prefers_the_newest_row():
    rows = [trial("a", finished_at="2026-01-01", mAP=0.1), trial("a", finished_at="2026-02-01", mAP=0.2), trial("b", finished_at="2026-01-01")]
    latest = {r["config_hash"]: r for r in latest_per_config(rows)}
    assert latest["a"]["mAP"] == 0.2 and len(latest) == 2
