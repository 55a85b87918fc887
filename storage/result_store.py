"""Append-only Parquet result store, local folder or ``s3://bucket/prefix``.

Layout (readable with plain pyarrow, pandas or DuckDB, no project code needed)::

    <root>/<table>/<study>/part-<trial_id>-<utc stamp>-<nonce>.parquet

with tables ``trials`` (one row per finished trial), ``cameras`` (trial x camera x metric) and
``curves`` (trial x evaluation epoch). Each finished trial writes one part file per table.
A part file is written atomically: locally to a hidden temporary name, then renamed; on S3 as
one object that appears only when its upload completes. Readers skip hidden names, so a crash
never exposes half a file. New columns (a new ablation axis) simply appear in newer part files;
readers unify schemas, filling older rows with nulls.

DuckDB, for example::

    SELECT variant, avg(mAP) FROM read_parquet('<root>/trials/*/*.parquet', union_by_name=true)
    GROUP BY variant
"""

from __future__ import annotations

import datetime as dt
import os
import uuid
from typing import Any, Iterable

import pyarrow as pa
import pyarrow.fs as pafs
import pyarrow.parquet as pq

from storage.schemas import SCHEMA_VERSION, TABLES

PART_SUFFIX = ".parquet"


class StoreUnavailableError(OSError):
    """The store cannot be reached, read or written; the message names the URI."""


def _filesystem(uri: str) -> tuple[pafs.FileSystem, str]:
    """A pyarrow filesystem and the root path inside it for a folder path or ``s3://`` URI."""
    if uri.startswith("s3://"):
        bucket_and_prefix = uri[len("s3://") :].strip("/")
        if not bucket_and_prefix:
            raise StoreUnavailableError(f"result store URI '{uri}' names no bucket")
        return s3_filesystem(), bucket_and_prefix
    if "://" in uri and not uri.startswith("file://"):
        raise StoreUnavailableError(f"result store URI '{uri}': use a folder path or s3://bucket/prefix")
    path = uri[len("file://") :] if uri.startswith("file://") else uri
    return pafs.LocalFileSystem(), os.path.abspath(os.path.expanduser(path))


def s3_filesystem() -> pafs.S3FileSystem:
    """S3 filesystem configured from the environment only (credentials are never passed in).

    ``AWS_ENDPOINT_URL_S3`` or ``AWS_ENDPOINT_URL`` (e.g. ``http://127.0.0.1:9000`` for MinIO
    or a test server) overrides the endpoint; credentials and region come from the usual AWS
    environment variables or instance metadata, resolved by pyarrow itself.
    """
    endpoint = os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get("AWS_ENDPOINT_URL")
    kwargs: dict[str, Any] = {"region": os.environ.get("AWS_DEFAULT_REGION", os.environ.get("AWS_REGION", "us-east-1"))}
    if endpoint:
        scheme, _, host = endpoint.partition("://")
        kwargs.update(endpoint_override=host or scheme, scheme=scheme if host else "https")
    return pafs.S3FileSystem(**kwargs)


def _utc_stamp() -> str:
    return dt.datetime.now(dt.timezone.utc).strftime("%Y%m%dT%H%M%S%fZ")


class ResultStore:
    """Reads and appends the study result tables under one root URI."""

    def __init__(self, uri: str):
        self.uri = uri
        self._fs, self._root = _filesystem(uri)

    # -- writing --------------------------------------------------------------------------
    def check_writable(self) -> None:
        """Write and delete a probe file, so an unreachable store fails before any trial runs."""
        probe = f"{self._root}/.probe-{uuid.uuid4().hex}"
        try:
            self._fs.create_dir(self._root, recursive=True)
            with self._fs.open_output_stream(probe) as stream:
                stream.write(b"ok")
            self._fs.delete_file(probe)
        except (OSError, pa.ArrowException) as err:
            raise StoreUnavailableError(f"result store '{self.uri}' is not writable: {err}") from None

    def write_part(self, table: str, study: str, trial_id: str, rows: list[dict[str, Any]]) -> str | None:
        """Append ``rows`` to ``table`` as one atomically written part file; returns its path."""
        if table not in TABLES:
            raise ValueError(f"unknown table '{table}'; tables: {', '.join(TABLES)}")
        if not rows:
            return None
        rows = [{"schema_version": SCHEMA_VERSION, **row} for row in rows]
        arrow_table = pa.Table.from_pylist(rows)
        folder = f"{self._root}/{table}/{study}"
        name = f"part-{trial_id}-{_utc_stamp()}-{uuid.uuid4().hex[:8]}{PART_SUFFIX}"
        final = f"{folder}/{name}"
        try:
            self._fs.create_dir(folder, recursive=True)
            if isinstance(self._fs, pafs.LocalFileSystem):
                temporary = f"{folder}/.tmp-{name}"
                pq.write_table(arrow_table, temporary, filesystem=self._fs)
                self._fs.move(temporary, final)
            else:
                # One object store PUT: the object is invisible until the upload completes.
                pq.write_table(arrow_table, final, filesystem=self._fs)
        except (OSError, pa.ArrowException) as err:
            raise StoreUnavailableError(f"cannot write {table} to '{self.uri}': {err}") from None
        return final

    def write_trial(self, study: str, trial_id: str, tables: dict[str, list[dict[str, Any]]]) -> None:
        """Write a finished trial's rows; ``trials`` goes last so it marks the trial complete."""
        for table in sorted(tables, key=lambda name: name == "trials"):
            self.write_part(table, study, trial_id, tables[table])

    # -- reading --------------------------------------------------------------------------
    def _part_files(self, table: str, study: str | None) -> list[str]:
        folder = f"{self._root}/{table}" + (f"/{study}" if study else "")
        try:
            infos = self._fs.get_file_info(pafs.FileSelector(folder, recursive=True, allow_not_found=True))
        except (OSError, pa.ArrowException) as err:
            raise StoreUnavailableError(f"cannot list '{self.uri}': {err}") from None
        return sorted(
            info.path
            for info in infos
            if info.type == pafs.FileType.File
            and info.base_name.endswith(PART_SUFFIX)
            and not info.base_name.startswith(".")
        )

    def read_table(self, table: str, study: str | None = None) -> pa.Table:
        """All rows of ``table`` (optionally one study), schemas unified across part files."""
        parts = self._part_files(table, study)
        if not parts:
            return pa.table({})
        try:
            tables = [pq.read_table(path, filesystem=self._fs) for path in parts]
        except (OSError, pa.ArrowException) as err:
            raise StoreUnavailableError(f"cannot read {table} from '{self.uri}': {err}") from None
        return pa.concat_tables(tables, promote_options="permissive")

    def read_rows(self, table: str, study: str | None = None) -> list[dict[str, Any]]:
        return self.read_table(table, study).to_pylist()

    def studies(self) -> list[str]:
        """Names of studies with at least one trial row."""
        return sorted({path.split("/")[-2] for path in self._part_files("trials", None)})

    def completed_hashes(self, study: str) -> set[str]:
        """Config hashes of the study's trials that finished successfully."""
        return {
            row["config_hash"]
            for row in self.read_rows("trials", study)
            if row.get("status") == "completed"
        }


def latest_per_config(rows: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    """Keep one row per config hash: the most recently finished one (a forced rerun wins)."""
    latest: dict[str, dict[str, Any]] = {}
    for row in rows:
        key = row["config_hash"]
        if key not in latest or str(row.get("finished_at", "")) >= str(latest[key].get("finished_at", "")):
            latest[key] = row
    return list(latest.values())
