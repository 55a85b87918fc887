"""Append-only Parquet result store, local folder or ``s3://bucket/prefix``.

Layout (readable with plain pyarrow, pandas or DuckDB, no project code needed)::

    <root>/<table>/<study>/part-<trial_id>-<utc stamp>-<nonce>.parquet
    <root>/<table>/<study>/compact-<utc stamp>-<nonce>.parquet      (after ``compact``)

with tables ``trials`` (one row per finished trial), ``cameras`` (trial x camera x metric) and
``curves`` (trial x evaluation epoch). Each finished trial writes one part file per table.

Atomic writes. A file is first written under a hidden temporary name (``.tmp-<name>.partial``)
and then moved to its final name: a rename on a local disk, a server-side copy on S3 (an object
appears whole or not at all). Writing straight to the final S3 key would not do: pyarrow
completes a multipart upload when its stream is dropped, so an exception in the middle of a
write would publish half a file. Readers skip hidden names, so a crash never exposes half a
file; ``compact`` removes temporary leftovers older than an hour. New columns (a new ablation
axis) simply appear in newer part files; readers unify schemas, filling older rows with nulls.

Compaction (``ResultStore.compact(study)``) merges each table's files of a study into one
``compact-*.parquet`` file and then deletes the files it merged. Every row of a compacted file
carries ``source_part``: the name of the part file it was first written to. That provenance
makes the two steps safe in any interleaving with crashes, writers and other compactions:

* the compacted file is written atomically, *before* anything is deleted, so a row is always in
  at least one visible file (never lost);
* readers take each source part's rows from exactly one file (a compacted file if one holds
  them, the part file otherwise), so a row present both in a part and in a compacted file, or in
  two compacted files, is read once (never duplicated);
* a compaction that died before deleting everything leaves only such harmless copies; the next
  ``compact`` merges them away. Parts written while a compaction runs are not in its listing, so
  they are neither merged nor deleted.

Plain readers (DuckDB, pandas) that glob ``*.parquet`` see those copies twice only in the window
between the two steps, or after a compaction crashed there; run ``orchestrator compact`` again.

DuckDB, for example::

    SELECT variant, avg(mAP) FROM read_parquet('<root>/trials/*/*.parquet', union_by_name=true)
    GROUP BY variant
"""

from __future__ import annotations

import datetime as dt
import json
import os
import uuid
from dataclasses import dataclass
from typing import Any, Iterable
from urllib.parse import urlsplit

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.fs as pafs
import pyarrow.parquet as pq

from search_spaces.metrics import DONE_STATUSES
from storage.schemas import SCHEMA_VERSION, TABLES

PART_SUFFIX = ".parquet"
COMPACT_PREFIX = "compact-"
TEMP_PREFIX, TEMP_SUFFIX = ".tmp-", ".partial"
# The part file a row was first written to; filled in by compaction (see the module docstring).
SOURCE_COLUMN = "source_part"
STALE_TEMP_SECONDS = 3600


def rows_to_table(rows: list[dict[str, Any]]) -> pa.Table:
    """Rows -> Arrow table with the union of all rows' columns (in first-seen order).

    ``pa.Table.from_pylist`` infers columns from the first row only and would silently drop a
    column that appears later (e.g. evaluation metrics present on some epochs only).
    """
    columns: dict[str, None] = {}
    for row in rows:
        columns.update(dict.fromkeys(row))
    return pa.Table.from_pylist([{name: row.get(name) for name in columns} for row in rows])


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


def _s3_endpoint_for_messages() -> str:
    """The S3 endpoint in use, without any user:password part, for error messages."""
    endpoint = os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get("AWS_ENDPOINT_URL")
    if not endpoint:
        return "the default AWS S3 endpoint"
    parts = urlsplit(endpoint if "://" in endpoint else f"https://{endpoint}")
    return f"{parts.scheme}://{parts.hostname}" + (f":{parts.port}" if parts.port else "")


def check_s3_bucket(bucket: str) -> None:
    """Raise :class:`StoreUnavailableError` unless ``bucket`` exists and answers at the
    configured endpoint. Messages name the bucket and endpoint, never a credential."""
    import boto3
    import botocore.exceptions as bce
    from botocore.config import Config

    endpoint = os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get("AWS_ENDPOINT_URL") or None
    where = _s3_endpoint_for_messages()
    config = Config(connect_timeout=5, read_timeout=20, retries={"max_attempts": 2, "mode": "standard"})
    try:
        client = boto3.client("s3", endpoint_url=endpoint, config=config)
        client.head_bucket(Bucket=bucket)
    except bce.NoCredentialsError:
        raise StoreUnavailableError(
            f"no AWS credentials for bucket '{bucket}' at {where}: set AWS_ACCESS_KEY_ID and "
            "AWS_SECRET_ACCESS_KEY (or AWS_PROFILE) in the environment"
        ) from None
    except bce.ClientError as err:
        status = err.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
        code = str(err.response.get("Error", {}).get("Code", status))
        if status == 404 or code in ("404", "NoSuchBucket", "NotFound"):
            raise StoreUnavailableError(f"S3 bucket '{bucket}' does not exist at {where}; create it or fix the store URI") from None
        if status == 403 or code in ("403", "AccessDenied", "Forbidden"):
            raise StoreUnavailableError(
                f"access to S3 bucket '{bucket}' at {where} was denied (HTTP 403); check the AWS credentials in the environment"
            ) from None
        raise StoreUnavailableError(f"S3 bucket '{bucket}' at {where} answered with error {code}") from None
    except (bce.EndpointConnectionError, bce.ConnectTimeoutError, bce.ReadTimeoutError, bce.ConnectionClosedError):
        raise StoreUnavailableError(f"cannot reach the S3 endpoint {where} (bucket '{bucket}'); is the server up?") from None
    except (bce.BotoCoreError, ValueError) as err:
        raise StoreUnavailableError(f"S3 bucket '{bucket}' at {where}: {type(err).__name__}") from None


def _utc_stamp() -> str:
    return dt.datetime.now(dt.timezone.utc).strftime("%Y%m%dT%H%M%S%fZ")


class ResultStore:
    """Reads and appends the study result tables under one root URI."""

    def __init__(self, uri: str):
        self.uri = uri
        self._fs, self._root = _filesystem(uri)

    # -- writing --------------------------------------------------------------------------
    def check_writable(self) -> None:
        """Write and delete a probe file, so an unreachable store fails before any trial runs.

        For ``s3://`` the bucket is checked first with boto3, so a missing bucket or a dead
        endpoint gets its own message (naming bucket and endpoint, never a credential)."""
        if self.uri.startswith("s3://"):
            check_s3_bucket(self._root.split("/", 1)[0])
        probe = f"{self._root}/.probe-{uuid.uuid4().hex}"
        try:
            self._fs.create_dir(self._root, recursive=True)
            with self._fs.open_output_stream(probe) as stream:
                stream.write(b"ok")
            self._fs.delete_file(probe)
        except (OSError, pa.ArrowException) as err:
            raise StoreUnavailableError(f"result store '{self.uri}' is not writable: {err}") from None

    def check_readable(self) -> None:
        """The store exists and can be listed: a missing folder or bucket is an error here, where
        reading would see "no rows" (``status`` must not report an unreadable study as empty)."""
        if self.uri.startswith("s3://"):
            check_s3_bucket(self._root.split("/", 1)[0])
        try:
            if isinstance(self._fs, pafs.LocalFileSystem):
                info = self._fs.get_file_info(self._root)
                if info.type == pafs.FileType.NotFound:
                    raise StoreUnavailableError(f"result store '{self.uri}' does not exist")
                if info.type != pafs.FileType.Directory:
                    raise StoreUnavailableError(f"result store '{self.uri}' is not a folder")
            self._fs.get_file_info(pafs.FileSelector(self._root, recursive=False, allow_not_found=True))
        except (OSError, pa.ArrowException) as err:
            if isinstance(err, StoreUnavailableError):
                raise
            raise StoreUnavailableError(f"result store '{self.uri}' is not readable: {err}") from None

    def write_part(self, table: str, study: str, trial_id: str, rows: list[dict[str, Any]]) -> str | None:
        """Append ``rows`` to ``table`` as one atomically written part file; returns its path."""
        if table not in TABLES:
            raise ValueError(f"unknown table '{table}'; tables: {', '.join(TABLES)}")
        if not rows:
            return None
        rows = [{"schema_version": SCHEMA_VERSION, **row} for row in rows]
        arrow_table = rows_to_table(rows)
        folder = f"{self._root}/{table}/{study}"
        name = f"part-{trial_id}-{_utc_stamp()}-{uuid.uuid4().hex[:8]}{PART_SUFFIX}"
        final = f"{folder}/{name}"
        try:
            self._write_atomically(arrow_table, final)
        except (OSError, pa.ArrowException) as err:
            raise StoreUnavailableError(f"cannot write {table} to '{self.uri}': {err}") from None
        return final

    def _write_atomically(self, arrow_table: pa.Table, final: str) -> None:
        """Write to a hidden temporary name, then publish under ``final`` in one step."""
        folder, name = final.rsplit("/", 1)
        temporary = f"{folder}/{TEMP_PREFIX}{name}{TEMP_SUFFIX}"
        self._fs.create_dir(folder, recursive=True)
        try:
            pq.write_table(arrow_table, temporary, filesystem=self._fs)
            self._publish(temporary, final)
        except BaseException:
            self._delete_quietly(temporary)
            raise

    def _publish(self, temporary: str, final: str) -> None:
        """Rename locally; on S3 a server-side copy, so the final object appears whole. Once
        published, failing to remove the temporary object is no error (it is hidden, and
        ``compact`` sweeps it): reporting one would make the caller write the rows twice."""
        if isinstance(self._fs, pafs.LocalFileSystem):
            self._fs.move(temporary, final)
        else:
            self._fs.copy_file(temporary, final)
            self._delete_quietly(temporary)

    def _delete(self, path: str) -> None:
        self._fs.delete_file(path)

    def _delete_quietly(self, path: str) -> None:
        try:
            self._fs.delete_file(path)
        except (OSError, pa.ArrowException):
            pass

    def write_trial(self, study: str, trial_id: str, tables: dict[str, list[dict[str, Any]]]) -> None:
        """Write a finished trial's rows; ``trials`` goes last so it marks the trial complete."""
        for table in sorted(tables, key=lambda name: name == "trials"):
            self.write_part(table, study, trial_id, tables[table])

    # -- reading --------------------------------------------------------------------------
    def _file_infos(self, table: str, study: str | None) -> list[pafs.FileInfo]:
        folder = f"{self._root}/{table}" + (f"/{study}" if study else "")
        try:
            infos = self._fs.get_file_info(pafs.FileSelector(folder, recursive=True, allow_not_found=True))
        except (OSError, pa.ArrowException) as err:
            raise StoreUnavailableError(f"cannot list '{self.uri}': {err}") from None
        return [info for info in infos if info.type == pafs.FileType.File]

    def _part_files(self, table: str, study: str | None) -> list[str]:
        """Visible data files (parts and compacted files), sorted; hidden names are skipped."""
        return sorted(
            info.path
            for info in self._file_infos(table, study)
            if info.base_name.endswith(PART_SUFFIX) and not info.base_name.startswith(".")
        )

    def _read_files(self, paths: list[str]) -> pa.Table:
        """The rows of ``paths``, each source part's rows exactly once, ``source_part`` filled in,
        ordered by folder and source part (trial, then write time), as an uncompacted folder reads.

        Compacted files are read first, newest first; a part file whose rows one of them already
        holds is skipped unread. Raises FileNotFoundError if a file vanished after listing."""
        compacted = sorted((p for p in paths if _is_compacted(p)), reverse=True)
        parts = sorted(p for p in paths if not _is_compacted(p))
        taken: set[str] = set()
        pieces: list[pa.Table] = []
        order_keys: list[pa.Array] = []
        for path in [*compacted, *parts]:
            folder, name = path.rsplit("/", 1)
            if not _is_compacted(path) and f"{folder}/{name}" in taken:
                continue
            piece = _with_source(pq.read_table(path, filesystem=self._fs), name)
            sources = piece.column(SOURCE_COLUMN)
            names = set(pc.unique(sources).to_pylist())
            new = {source for source in names if f"{folder}/{source}" not in taken}
            if not new:
                continue
            if len(new) < len(names):
                piece = piece.filter(pc.is_in(sources, value_set=pa.array(sorted(new), pa.string())))
            taken.update(f"{folder}/{source}" for source in new)
            pieces.append(piece)
            order_keys.append(pc.binary_join_element_wise(folder, piece.column(SOURCE_COLUMN).combine_chunks(), "/"))
        if not pieces:
            return pa.table({})
        merged = pa.concat_tables(pieces, promote_options="permissive")
        order = pc.sort_indices(pa.chunked_array(order_keys))  # a stable sort: row order kept within a part
        return merged.take(order)

    def read_table(self, table: str, study: str | None = None) -> pa.Table:
        """All rows of ``table`` (optionally one study), schemas unified across part files.

        Every row is returned once, compacted or not; ``source_part`` names the part file each
        row was first written to."""
        for _ in range(5):
            paths = self._part_files(table, study)
            if not paths:
                return pa.table({})
            try:
                return self._read_files(paths)
            except FileNotFoundError:
                continue  # a compaction replaced a file after we listed it: list again
            except (OSError, pa.ArrowException) as err:
                raise StoreUnavailableError(f"cannot read {table} from '{self.uri}': {err}") from None
        raise StoreUnavailableError(f"cannot read {table} from '{self.uri}': files kept vanishing while reading")

    def read_rows(self, table: str, study: str | None = None) -> list[dict[str, Any]]:
        return self.read_table(table, study).to_pylist()

    def studies(self) -> list[str]:
        """Names of studies with at least one trial row."""
        return sorted({path.split("/")[-2] for path in self._part_files("trials", None)})

    def completed_hashes(self, study: str) -> set[str]:
        """Config hashes of the study's trials that are done: finished, or stopped early by a
        scheduler (``pruned``). Failed trials are not done and run again on relaunch."""
        return {row["config_hash"] for row in self.read_rows("trials", study) if row.get("status") in DONE_STATUSES}

    def last_outcomes(self, study: str) -> dict[str, tuple[str, str]]:
        """``{config hash: (status, finished_at)}`` of the latest row of each of the study's
        trials that ended (finished, pruned, failed); a trial interrupted with its driver has
        none. ``finished_at`` is UTC ISO 8601, to the second."""
        latest: dict[str, tuple[str, str]] = {}
        for row in self.read_rows("trials", study):
            seen = latest.get(row["config_hash"])
            if seen is None or str(row.get("finished_at") or "") >= seen[1]:
                latest[row["config_hash"]] = (str(row.get("status")), str(row.get("finished_at") or ""))
        return latest

    # -- compaction -----------------------------------------------------------------------
    def compact(self, study: str, *, stale_after: float = STALE_TEMP_SECONDS) -> list["Compaction"]:
        """Merge each table's files of ``study`` into one compacted file, then delete the merged
        files; also remove temporary leftovers older than ``stale_after`` seconds.

        Safe to interrupt at any point and to rerun: see the module docstring."""
        results = [self._compact_table(table, study) for table in TABLES]
        self._sweep_temporaries(study, stale_after)
        return results

    def _compact_table(self, table: str, study: str) -> "Compaction":
        for _ in range(5):
            paths = self._part_files(table, study)
            if len(paths) < 2:
                rows = self.read_table(table, study).num_rows if paths else 0
                return Compaction(table, 0, rows, paths[0] if paths else None)
            try:
                merged = self._read_files(paths)
                break
            except FileNotFoundError:
                continue  # another compaction got there first: list again
            except (OSError, pa.ArrowException) as err:
                raise StoreUnavailableError(f"cannot read {table} from '{self.uri}': {err}") from None
        else:
            raise StoreUnavailableError(f"cannot compact {table} in '{self.uri}': files kept vanishing while reading")
        folder = f"{self._root}/{table}/{study}"
        final = f"{folder}/{COMPACT_PREFIX}{_utc_stamp()}-{uuid.uuid4().hex[:8]}{PART_SUFFIX}"
        replaced = [path[len(folder) + 1 :] for path in paths]
        metadata = {**(merged.schema.metadata or {}), b"reid.compacted_from": json.dumps(replaced).encode()}
        try:
            # Step 1: the merged rows become visible in one atomic step ...
            self._write_atomically(merged.replace_schema_metadata(metadata), final)
            # ... step 2: only then are the files they came from removed.
            for path in paths:
                try:
                    self._delete(path)
                except FileNotFoundError:
                    pass  # a concurrent compaction removed it after merging it too
        except (OSError, pa.ArrowException) as err:
            raise StoreUnavailableError(f"cannot compact {table} in '{self.uri}': {err}") from None
        return Compaction(table, len(paths), merged.num_rows, final)

    def _sweep_temporaries(self, study: str, stale_after: float) -> None:
        now = dt.datetime.now(dt.timezone.utc)
        for table in TABLES:
            for info in self._file_infos(table, study):
                if not info.base_name.startswith(TEMP_PREFIX) or info.mtime is None:
                    continue
                mtime = info.mtime if info.mtime.tzinfo else info.mtime.replace(tzinfo=dt.timezone.utc)
                if (now - mtime).total_seconds() > stale_after:
                    self._delete_quietly(info.path)


@dataclass(frozen=True)
class Compaction:
    """What ``compact`` did to one table: files merged (0: nothing to do), rows, the file now."""

    table: str
    files_merged: int
    rows: int
    path: str | None


def _is_compacted(path: str) -> bool:
    return path.rsplit("/", 1)[-1].startswith(COMPACT_PREFIX)


def _with_source(table: pa.Table, name: str) -> pa.Table:
    """``table`` with its ``source_part`` column filled: rows of a plain part came from ``name``."""
    if SOURCE_COLUMN not in table.column_names:
        return table.append_column(SOURCE_COLUMN, pa.array([name] * table.num_rows, pa.string()))
    index = table.column_names.index(SOURCE_COLUMN)
    filled = pc.fill_null(table.column(index).cast(pa.string()), name)
    return table.set_column(index, SOURCE_COLUMN, filled)


def latest_per_config(rows: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    """Keep one row per config hash: the most recently finished one (a forced rerun wins)."""
    latest: dict[str, dict[str, Any]] = {}
    for row in rows:
        key = row["config_hash"]
        if key not in latest or str(row.get("finished_at", "")) >= str(latest[key].get("finished_at", "")):
            latest[key] = row
    return list(latest.values())
