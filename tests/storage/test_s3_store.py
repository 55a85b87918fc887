"""The result store against a real S3-speaking server (moto_server on 127.0.0.1)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from collections import Counter
from pathlib import Path

import pandas as pd
import pyarrow.fs as pafs
import pyarrow.parquet as pq
import pytest

from storage import ResultStore, StoreUnavailableError
from tests.fixtures_s3 import KEY_ID, SECRET, boto3_client, free_port

ROOT = Path(__file__).resolve().parents[2]


def plain_s3(endpoint: str) -> pafs.S3FileSystem:
    """A pyarrow S3 filesystem built here, without the project's code."""
    return pafs.S3FileSystem(
        access_key=KEY_ID, secret_key=SECRET, region="us-east-1", endpoint_override=endpoint.split("://")[1], scheme="http"
    )


def keys(endpoint: str, bucket: str) -> list[str]:
    listing = boto3_client(endpoint).list_objects_v2(Bucket=bucket)
    return sorted(item["Key"] for item in listing.get("Contents", []))


def visible_parquet(endpoint: str, bucket: str, folder: str) -> list[str]:
    return [
        k for k in keys(endpoint, bucket) if k.startswith(folder) and k.endswith(".parquet") and not k.rsplit("/", 1)[1].startswith(".")
    ]


def write_trials(store: ResultStore, study: str, count: int, start: int = 0) -> None:
    for i in range(start, start + count):
        trial_id = f"t{i:03d}"
        store.write_trial(
            study,
            trial_id,
            {
                "trials": [
                    {
                        "study": study,
                        "trial_id": trial_id,
                        "config_hash": trial_id,
                        "variant": f"v{i % 2}",
                        "seed": i,
                        "status": "completed",
                        "mAP": i / 100,
                    }
                ],
                "cameras": [
                    {"study": study, "trial_id": trial_id, "config_hash": trial_id, "camera": cam, "metric": metric, "value": i + cam / 10}
                    for cam in (1, 2, 3)
                    for metric in ("q_mAP", "g_mAP")
                ],
            },
        )


def row_multiset(rows: list[dict]) -> Counter:
    """Rows as a multiset, ignoring provenance and the order of keys."""
    return Counter(tuple(sorted((k, v) for k, v in row.items() if k != "source_part")) for row in rows)


def test_write_and_read_back_with_the_store_plain_pyarrow_pandas_and_duckdb(s3_env, s3_bucket, tmp_path):
    endpoint = s3_env["AWS_ENDPOINT_URL_S3"]
    store = ResultStore(f"s3://{s3_bucket}/results")
    store.check_writable()
    write_trials(store, "s", 3)

    assert sorted(r["config_hash"] for r in store.read_rows("trials", "s")) == ["t000", "t001", "t002"]
    assert len(store.read_rows("cameras", "s")) == 18
    assert store.studies() == ["s"] and store.completed_hashes("s") == {"t000", "t001", "t002"}
    # One object per finished trial and table; no probe or temporary object left behind.
    assert len(visible_parquet(endpoint, s3_bucket, "results/trials/s/")) == 3
    assert not [k for k in keys(endpoint, s3_bucket) if "/." in k]

    fs = plain_s3(endpoint)
    table = pq.read_table(f"{s3_bucket}/results/cameras/s", filesystem=fs)
    assert table.num_rows == 18 and set(table.column("metric").to_pylist()) == {"q_mAP", "g_mAP"}
    frame = pd.read_parquet(f"{s3_bucket}/results/trials/s", filesystem=fs)
    assert frame["mAP"].sum() == pytest.approx(0.03)

    duckdb = pytest.importorskip("duckdb")
    local = tmp_path / "copy"
    client = boto3_client(endpoint)
    for key in visible_parquet(endpoint, s3_bucket, "results/"):
        target = local / key
        target.parent.mkdir(parents=True, exist_ok=True)
        client.download_file(s3_bucket, key, str(target))
    query = f"select count(*), avg(value) from read_parquet('{local}/results/cameras/*/*.parquet', union_by_name=true)"
    assert duckdb.sql(query).fetchall() == [(18, pytest.approx(1.2))]


def test_compaction_on_s3_keeps_every_row_exactly_once(s3_env, s3_bucket):
    endpoint = s3_env["AWS_ENDPOINT_URL_S3"]
    store = ResultStore(f"s3://{s3_bucket}/r")
    write_trials(store, "s", 5)
    before = {table: store.read_rows(table, "s") for table in ("trials", "cameras")}

    results = {c.table: c for c in store.compact("s")}
    assert results["trials"].files_merged == 5 and results["trials"].rows == 5
    assert results["cameras"].files_merged == 5 and results["cameras"].rows == 30
    for table in ("trials", "cameras"):
        files = visible_parquet(endpoint, s3_bucket, f"r/{table}/s/")
        assert len(files) == 1 and files[0].rsplit("/", 1)[1].startswith("compact-")
        after = store.read_rows(table, "s")
        assert row_multiset(after) == row_multiset(before[table])
        assert [r["source_part"] for r in after] == [r["source_part"] for r in before[table]]
        # A plain reader sees the same rows.
        plain = pq.read_table(f"{s3_bucket}/r/{table}/s", filesystem=plain_s3(endpoint)).to_pylist()
        assert row_multiset(plain) == row_multiset(before[table])

    # New trials after a compaction, then a second compaction: still every row once.
    write_trials(store, "s", 2, start=5)
    store.compact("s")
    assert len(visible_parquet(endpoint, s3_bucket, "r/trials/s/")) == 1
    assert sorted(r["config_hash"] for r in store.read_rows("trials", "s")) == [f"t{i:03d}" for i in range(7)]


@pytest.mark.parametrize("deleted_before_crash", [0, 2])
def test_a_crash_between_compaction_steps_loses_and_duplicates_nothing(s3_env, s3_bucket, monkeypatch, deleted_before_crash):
    endpoint = s3_env["AWS_ENDPOINT_URL_S3"]
    store = ResultStore(f"s3://{s3_bucket}/r")
    write_trials(store, "s", 4)
    before = store.read_rows("cameras", "s")

    deleted = []
    real_delete = ResultStore._delete

    def dying_delete(self, path):
        if len(deleted) == deleted_before_crash:
            raise OSError("killed between compaction steps")
        deleted.append(path)
        real_delete(self, path)

    monkeypatch.setattr(ResultStore, "_delete", dying_delete)
    with pytest.raises(StoreUnavailableError, match="killed between compaction steps"):
        store.compact("s")
    monkeypatch.setattr(ResultStore, "_delete", real_delete)

    # The compacted file and the not-yet-deleted parts are both visible ...
    files = visible_parquet(endpoint, s3_bucket, "r/trials/s/")
    assert len(files) == 1 + 4 - deleted_before_crash
    # ... yet the store reads every row exactly once, in the same order.
    for table, expected in (("cameras", before),):
        assert row_multiset(store.read_rows(table, "s")) == row_multiset(expected)
    assert sorted(r["config_hash"] for r in store.read_rows("trials", "s")) == ["t000", "t001", "t002", "t003"]
    assert store.completed_hashes("s") == {"t000", "t001", "t002", "t003"}

    # Running the compaction again finishes the job.
    store.compact("s")
    assert len(visible_parquet(endpoint, s3_bucket, "r/trials/s/")) == 1
    assert row_multiset(store.read_rows("cameras", "s")) == row_multiset(before)


def test_a_failed_write_leaves_no_visible_object(s3_env, s3_bucket, monkeypatch):
    endpoint = s3_env["AWS_ENDPOINT_URL_S3"]
    store = ResultStore(f"s3://{s3_bucket}/r")

    def broken_publish(self, temporary, final):
        raise OSError("connection reset while publishing")

    monkeypatch.setattr(ResultStore, "_publish", broken_publish)
    with pytest.raises(StoreUnavailableError, match="connection reset"):
        write_trials(store, "s", 1)
    assert store.read_rows("trials", "s") == [] and store.read_rows("cameras", "s") == []
    assert not [k for k in keys(endpoint, s3_bucket) if k.endswith((".parquet", ".partial"))]


KILLED_WRITER = textwrap.dedent(
    """
    import io, os, sys, time
    import pyarrow as pa, pyarrow.parquet as pq
    import storage.result_store as rs

    stage, flag = sys.argv[1], sys.argv[2]

    def signal_and_hang():
        open(flag, "w").close()
        time.sleep(600)

    real_write_table = pq.write_table

    if stage == "upload":
        # Send half of a real Parquet file, then hang: the process is killed mid-upload.
        def half_write(table, where, filesystem=None, **kwargs):
            buffer = io.BytesIO()
            real_write_table(table, buffer)
            data = buffer.getvalue()
            stream = filesystem.open_output_stream(where)
            stream.write(data[: len(data) // 2])
            stream.flush()
            signal_and_hang()
        rs.pq.write_table = half_write
    else:
        # The upload completed; killed before the object is published under its final name.
        rs.ResultStore._publish = lambda self, temporary, final: signal_and_hang()

    store = rs.ResultStore(sys.argv[3])
    # Incompressible and larger than one multipart chunk, so parts really are uploaded.
    blob = os.urandom(12 << 20).hex() if stage == "upload" else "x"
    store.write_part("trials", "s", "killed", [{"config_hash": "killed", "status": "completed", "blob": blob}])
    """
)


@pytest.mark.parametrize("stage", ["upload", "publish"])
def test_a_writer_killed_mid_write_leaves_no_visible_partial_object(s3_env, s3_bucket, tmp_path, stage):
    endpoint = s3_env["AWS_ENDPOINT_URL_S3"]
    store = ResultStore(f"s3://{s3_bucket}/r")
    write_trials(store, "s", 1)
    flag = tmp_path / "reached"
    process = subprocess.Popen(
        [sys.executable, "-c", KILLED_WRITER, stage, str(flag), store.uri],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 60
        while not flag.exists():
            assert process.poll() is None, f"writer exited early with status {process.returncode}"
            assert time.monotonic() < deadline, "writer never reached the point to kill it"
            time.sleep(0.05)
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=30)

    assert [r["config_hash"] for r in store.read_rows("trials", "s")] == ["t000"]
    assert len(visible_parquet(endpoint, s3_bucket, "r/trials/s/")) == 1
    plain = pq.read_table(f"{s3_bucket}/r/trials/s", filesystem=plain_s3(endpoint))
    assert plain.column("config_hash").to_pylist() == ["t000"]
    hidden = [k for k in keys(endpoint, s3_bucket) if k.endswith(".partial")]
    # Killed mid-upload: the multipart upload never completes, so not even the temporary
    # object exists. Killed before publishing: only the hidden temporary object does.
    assert len(hidden) == (1 if stage == "publish" else 0)
    # A compaction keeps fresh temporary objects (a writer may still be busy) and sweeps stale ones.
    store.compact("s")
    assert len([k for k in keys(endpoint, s3_bucket) if k.endswith(".partial")]) == len(hidden)
    store.compact("s", stale_after=0)
    assert not [k for k in keys(endpoint, s3_bucket) if k.endswith(".partial")]


def test_a_missing_bucket_is_a_clear_error_naming_bucket_and_endpoint(s3_env):
    with pytest.raises(StoreUnavailableError) as caught:
        ResultStore("s3://no-such-bucket-here/results").check_writable()
    message = str(caught.value)
    assert "'no-such-bucket-here' does not exist" in message
    assert s3_env["AWS_ENDPOINT_URL_S3"] in message
    assert SECRET not in message and KEY_ID not in message


def test_an_unreachable_endpoint_is_a_clear_error_without_credentials(s3_env, monkeypatch):
    dead = f"http://127.0.0.1:{free_port()}"
    monkeypatch.setenv("AWS_ENDPOINT_URL_S3", dead)
    started = time.monotonic()
    with pytest.raises(StoreUnavailableError) as caught:
        ResultStore("s3://some-bucket/results").check_writable()
    message = str(caught.value)
    assert f"cannot reach the S3 endpoint {dead}" in message and "'some-bucket'" in message
    assert SECRET not in message and KEY_ID not in message
    assert time.monotonic() - started < 30


def test_the_cli_refuses_to_launch_on_a_missing_bucket(s3_env, tmp_path):
    spec = tmp_path / "s3.yaml"
    spec.write_text("study:\n  name: s3check\noutput:\n  store: s3://absent-bucket/results\n", encoding="utf-8")
    exe = Path(sys.executable).with_name("orchestrator")
    result = subprocess.run(
        [str(exe), "launch", str(spec)], capture_output=True, text=True, cwd=tmp_path, env=os.environ.copy(), timeout=300
    )
    assert result.returncode == 2, result.stdout + result.stderr
    assert "'absent-bucket' does not exist" in result.stderr
    assert SECRET not in result.stdout + result.stderr
