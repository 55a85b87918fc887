import json
import os

import pandas as pd
import pyarrow.parquet as pq
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from storage import ResultStore, StoreUnavailableError, latest_per_config


def trial(hash_, status="completed", **extra):
    return {"study": "s", "trial_id": hash_, "config_hash": hash_, "variant": "v", "seed": 0, "status": status, **extra}


def test_write_and_read_back(tmp_path):
    store = ResultStore(str(tmp_path))
    store.write_trial("s", "aaa", {"trials": [trial("aaa", mAP=0.5)], "cameras": [{"study": "s", "camera": 1, "value": 0.4}]})
    rows = store.read_rows("trials", "s")
    assert rows[0]["mAP"] == 0.5 and rows[0]["schema_version"] == 2
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
    rows = [
        trial("a", finished_at="2026-01-01", mAP=0.1),
        trial("a", finished_at="2026-02-01", mAP=0.2),
        trial("b", finished_at="2026-01-01"),
    ]
    latest = {r["config_hash"]: r for r in latest_per_config(rows)}
    assert latest["a"]["mAP"] == 0.2 and len(latest) == 2


# -- compaction ---------------------------------------------------------------------------
def camera_rows(hash_, count=3):
    return [{"study": "s", "trial_id": hash_, "config_hash": hash_, "camera": c, "value": float(c)} for c in range(count)]


def multiset(rows):
    from collections import Counter

    return Counter(tuple(sorted((k, v) for k, v in r.items() if k not in ("source_part", "schema_version"))) for r in rows)


def test_compaction_merges_parts_into_one_file_and_documents_what_it_replaced(tmp_path):
    store = ResultStore(str(tmp_path))
    for h in ("a", "b", "c"):
        store.write_trial("s", h, {"trials": [trial(h, mAP=0.1)], "cameras": camera_rows(h)})
    before = store.read_rows("cameras", "s")
    results = {c.table: c for c in store.compact("s")}
    assert (results["cameras"].files_merged, results["cameras"].rows) == (3, 9)
    assert results["curves"].files_merged == 0 and results["curves"].path is None
    files = sorted((tmp_path / "cameras" / "s").iterdir())
    assert [f.name.split("-")[0] for f in files] == ["compact"]
    metadata = pq.read_schema(files[0]).metadata
    assert len(json.loads(metadata[b"reid.compacted_from"])) == 3
    assert store.read_rows("cameras", "s") == before  # same rows, same order, same provenance
    assert store.completed_hashes("s") == {"a", "b", "c"}
    # Compacting a compacted study is a no-op.
    assert all(c.files_merged == 0 for c in store.compact("s"))


def test_a_part_written_while_compaction_runs_is_kept(tmp_path, monkeypatch):
    store = ResultStore(str(tmp_path))
    for h in ("a", "b"):
        store.write_trial("s", h, {"cameras": camera_rows(h)})
    real_read = ResultStore._read_files

    def read_then_another_trial_finishes(self, paths):
        table = real_read(self, paths)
        if not (tmp_path / "late").exists():
            (tmp_path / "late").touch()
            ResultStore(str(tmp_path)).write_trial("s", "late", {"cameras": camera_rows("late")})
        return table

    monkeypatch.setattr(ResultStore, "_read_files", read_then_another_trial_finishes)
    store.compact("s")
    monkeypatch.setattr(ResultStore, "_read_files", real_read)
    names = sorted(f.name.split("-")[0] for f in (tmp_path / "cameras" / "s").iterdir())
    assert names == ["compact", "part"]  # the late part was neither merged nor deleted
    assert multiset(store.read_rows("cameras", "s")) == multiset(camera_rows("a") + camera_rows("b") + camera_rows("late"))


def test_overlapping_compacted_files_are_read_once(tmp_path, monkeypatch):
    """Two compactions that both finished writing but not deleting (two processes, or crashes)."""
    store = ResultStore(str(tmp_path))
    monkeypatch.setattr(ResultStore, "_delete", lambda self, path: None)
    store.write_trial("s", "a", {"cameras": camera_rows("a")})
    store.write_trial("s", "b", {"cameras": camera_rows("b")})
    store.compact("s")
    store.write_trial("s", "c", {"cameras": camera_rows("c")})
    store.compact("s")
    files = sorted(f.name.split("-")[0] for f in (tmp_path / "cameras" / "s").iterdir())
    assert files == ["compact", "compact", "part", "part", "part"]
    expected = multiset(camera_rows("a") + camera_rows("b") + camera_rows("c"))
    assert multiset(store.read_rows("cameras", "s")) == expected
    monkeypatch.undo()
    store.compact("s")
    assert len(list((tmp_path / "cameras" / "s").iterdir())) == 1
    assert multiset(store.read_rows("cameras", "s")) == expected


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    steps=st.lists(
        st.one_of(st.tuples(st.just("write"), st.integers(1, 4)), st.tuples(st.just("compact"), st.integers(0, 6))),
        min_size=1,
        max_size=12,
    )
)
def test_any_interleaving_of_writes_and_crashing_compactions_keeps_every_row_once(tmp_path_factory, steps):
    """Property: whatever writes and compactions run, and wherever a compaction dies while
    deleting (after ``k`` deletions), the store reads exactly the rows that were written."""
    store = ResultStore(str(tmp_path_factory.mktemp("interleave")))
    written = []
    real_delete = ResultStore._delete
    for number, (action, arg) in enumerate(steps):
        if action == "write":
            rows = camera_rows(f"t{number}", count=arg)
            store.write_trial("s", f"t{number}", {"cameras": rows})
            written += rows
        else:
            deletions = []

            def dying_delete(self, path, limit=arg, done=deletions):
                if len(done) >= limit:
                    raise OSError("crash")
                done.append(path)
                real_delete(self, path)

            ResultStore._delete = dying_delete
            try:
                store.compact("s")
            except StoreUnavailableError:
                pass
            finally:
                ResultStore._delete = real_delete
        assert multiset(store.read_rows("cameras", "s")) == multiset(written)
    store.compact("s")
    assert multiset(store.read_rows("cameras", "s")) == multiset(written)
    assert len(store._part_files("cameras", "s")) <= 1


def test_columns_that_appear_in_later_rows_are_kept(tmp_path):
    # Curves: evaluation metrics exist only on evaluation epochs, not on the first row.
    store = ResultStore(str(tmp_path))
    rows = [{"study": "s", "epoch": 1, "loss": 2.0}, {"study": "s", "epoch": 2, "loss": 1.0, "mAP": 0.4}]
    store.write_part("curves", "s", "t", rows)
    read = sorted(store.read_rows("curves", "s"), key=lambda r: r["epoch"])
    assert [r["mAP"] for r in read] == [None, 0.4]
