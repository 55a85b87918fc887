"""One driver per study: a lock object in the result store, with a heartbeat.

A driver that launches or resumes a study first creates ``<store>/_locks/<study>.json`` holding
who it is (host, pid, start time, a random token) and a heartbeat timestamp that a background
thread refreshes every ``heartbeat_seconds``. A second driver finds the object and is refused,
the message naming the first. The lock lives beside the results, so it works for every driver
that can reach the store: several processes on one machine, or a laptop and a cluster head on
one S3 bucket.

Creating the object is atomic:

- local folder: ``open(O_CREAT | O_EXCL)``;
- S3: ``PutObject`` with ``If-None-Match: *`` (S3's conditional write; MinIO and moto honour it
  too). A server that ignores the header would let two creators both "succeed", so every create
  is read back and the token compared (create-then-verify): of two racing creators the one whose
  write landed last wins, the other sees a foreign token and is refused.

Stale locks: a driver killed with SIGKILL or a lost machine leaves its lock behind. A lock whose
heartbeat is older than ``stale_after_beats`` heartbeat intervals, or whose pid is dead on this
same host, is taken over with a warning. Takeover moves the stale object out of the way first
(a rename locally, a conditional overwrite on the ETag on S3), so two drivers taking over the
same stale lock cannot both win.

pyarrow/boto3 only: no torch, no project imports above ``storage``.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
import socket
import threading
import uuid
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Callable

LOCK_FOLDER = "_locks"
HEARTBEAT_SECONDS = float(os.environ.get("REID_ORCH_LOCK_HEARTBEAT", "15"))
STALE_AFTER_BEATS = 4


class LockHeldError(RuntimeError):
    """Another live driver holds the study's lock; ``holder`` says who."""

    def __init__(self, study: str, holder: "LockHolder"):
        self.study, self.holder = study, holder
        super().__init__(
            f"study '{study}' is being run by another driver ({holder.describe()}, last heartbeat "
            f"{holder.heartbeat_age():.0f} s ago); wait for it to finish, or stop it (Ctrl-C) and run "
            f"`orchestrator resume {study}`"
        )


class LockUnavailableError(OSError):
    """The lock object cannot be read or written (the store is unreachable)."""


def _now() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc)


@dataclass(frozen=True)
class LockHolder:
    """The content of a lock object."""

    token: str
    host: str
    pid: int
    started_at: str
    heartbeat_at: str
    heartbeat_seconds: float = HEARTBEAT_SECONDS
    command: str = ""

    @classmethod
    def from_json(cls, text: str | bytes) -> "LockHolder":
        data = json.loads(text)
        known = {name: data[name] for name in cls.__dataclass_fields__ if name in data}
        return cls(**known)

    def to_json(self) -> bytes:
        return json.dumps(asdict(self), indent=2).encode()

    def describe(self) -> str:
        return f"pid {self.pid} on host {self.host}, started {self.started_at}"

    def heartbeat_age(self, now: dt.datetime | None = None) -> float:
        try:
            beat = dt.datetime.fromisoformat(self.heartbeat_at)
        except ValueError:
            return float("inf")
        return ((now or _now()) - beat).total_seconds()

    def dead_reason(self, stale_after_beats: int = STALE_AFTER_BEATS) -> str | None:
        """Why this holder is no longer running (None: it is alive, as far as can be told)."""
        if self.host == socket.gethostname() and not _pid_alive(self.pid):
            return f"its process {self.pid} on this host is gone"
        age = self.heartbeat_age()
        if age > stale_after_beats * self.heartbeat_seconds:
            return f"its last heartbeat is {age:.0f} s old (more than {stale_after_beats} x {self.heartbeat_seconds:.0f} s)"
        return None


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # exists, owned by someone else
    return True


class _LocalBackend:
    def __init__(self, folder: str):
        self.folder = Path(os.path.expanduser(folder)).resolve()

    def path(self, name: str) -> Path:
        return self.folder / LOCK_FOLDER / name

    def create(self, name: str, body: bytes) -> bool:
        """Create the lock with its whole body in one step, or return False if it exists. The
        body is written to a temporary file first and hard-linked into place (``link`` fails
        when the name exists): a lock created empty and written afterwards could be read empty
        by a racing driver, taken for a dead one's (no heartbeat) and moved aside while its
        owner goes on, letting a third driver in beside it."""
        path = self.path(name)
        temporary = path.with_name(f".{path.name}.new-{uuid.uuid4().hex[:8]}")
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            temporary.write_bytes(body)
            os.link(temporary, path)
        except FileExistsError:
            return False
        except OSError as err:
            raise LockUnavailableError(f"cannot create the study lock {path}: {err}") from None
        finally:
            temporary.unlink(missing_ok=True)
        return True

    def read(self, name: str) -> tuple[bytes, str] | None:
        try:
            body = self.path(name).read_bytes()
        except FileNotFoundError:
            return None
        except OSError as err:
            raise LockUnavailableError(f"cannot read the study lock {self.path(name)}: {err}") from None
        return body, hashlib.sha1(body).hexdigest()

    def replace(self, name: str, body: bytes, expected_version: str) -> bool:
        """Overwrite when the object still has ``expected_version`` (write a temp file, rename)."""
        current = self.read(name)
        if current is None or current[1] != expected_version:
            return False
        path = self.path(name)
        temporary = path.with_name(f".{path.name}.{uuid.uuid4().hex[:8]}")
        temporary.write_bytes(body)
        os.replace(temporary, path)
        return True

    def take_over(self, name: str, expected_version: str) -> bool:
        """Move a stale lock out of the way; only one of several racing callers succeeds."""
        path = self.path(name)
        aside = path.with_name(f".{path.name}.stale-{uuid.uuid4().hex[:8]}")
        try:
            os.rename(path, aside)
        except FileNotFoundError:
            return True  # already gone: creation decides
        body = aside.read_bytes()
        if hashlib.sha1(body).hexdigest() != expected_version:
            # Someone replaced the stale lock with a fresh one meanwhile: put it back.
            try:
                os.link(aside, path)
            except FileExistsError:
                pass
            aside.unlink()
            return False
        aside.unlink()
        return True

    def delete(self, name: str) -> None:
        try:
            self.path(name).unlink()
        except FileNotFoundError:
            pass
        try:
            self.path(name).parent.rmdir()  # leave no empty _locks folder behind
        except OSError:
            pass


class _S3Backend:
    def __init__(self, uri: str):
        import boto3
        from botocore.config import Config

        bucket_and_prefix = uri[len("s3://") :].strip("/")
        self.bucket, _, prefix = bucket_and_prefix.partition("/")
        self.prefix = f"{prefix}/{LOCK_FOLDER}" if prefix else LOCK_FOLDER
        endpoint = os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get("AWS_ENDPOINT_URL") or None
        config = Config(connect_timeout=5, read_timeout=20, retries={"max_attempts": 2, "mode": "standard"})
        self.client = boto3.client("s3", endpoint_url=endpoint, config=config)

    def key(self, name: str) -> str:
        return f"{self.prefix}/{name}"

    def _call(self, what: str, fn: Callable[[], Any]) -> Any:
        import botocore.exceptions as bce

        try:
            return fn()
        except bce.ClientError:
            raise
        except (bce.BotoCoreError, OSError) as err:
            raise LockUnavailableError(f"cannot {what} the study lock s3://{self.bucket}/{self.prefix}: {type(err).__name__}") from None

    @staticmethod
    def _precondition_failed(err: Exception) -> bool:
        response = getattr(err, "response", {}) or {}
        code = str(response.get("Error", {}).get("Code", ""))
        status = response.get("ResponseMetadata", {}).get("HTTPStatusCode")
        return status in (409, 412) or code in ("PreconditionFailed", "ConditionalRequestConflict")

    def create(self, name: str, body: bytes) -> bool:
        import botocore.exceptions as bce

        try:
            self._call("create", lambda: self.client.put_object(Bucket=self.bucket, Key=self.key(name), Body=body, IfNoneMatch="*"))
        except bce.ClientError as err:
            if self._precondition_failed(err):
                return False
            raise LockUnavailableError(f"cannot create the study lock s3://{self.bucket}/{self.key(name)}: {err}") from None
        return True

    def read(self, name: str) -> tuple[bytes, str] | None:
        import botocore.exceptions as bce

        try:
            response = self._call("read", lambda: self.client.get_object(Bucket=self.bucket, Key=self.key(name)))
        except bce.ClientError as err:
            if str(err.response.get("Error", {}).get("Code")) in ("NoSuchKey", "404"):
                return None
            raise LockUnavailableError(f"cannot read the study lock s3://{self.bucket}/{self.key(name)}: {err}") from None
        return response["Body"].read(), response["ETag"]

    def replace(self, name: str, body: bytes, expected_version: str) -> bool:
        import botocore.exceptions as bce

        try:
            self._call(
                "refresh",
                lambda: self.client.put_object(Bucket=self.bucket, Key=self.key(name), Body=body, IfMatch=expected_version),
            )
        except bce.ClientError as err:
            if self._precondition_failed(err) or str(err.response.get("Error", {}).get("Code")) in ("NoSuchKey", "404"):
                return False
            raise LockUnavailableError(f"cannot refresh the study lock s3://{self.bucket}/{self.key(name)}: {err}") from None
        return True

    def delete(self, name: str) -> None:
        import botocore.exceptions as bce

        try:
            self._call("delete", lambda: self.client.delete_object(Bucket=self.bucket, Key=self.key(name)))
        except bce.ClientError:
            pass


class StudyLock:
    """The lock of one study in one result store. Use :meth:`acquire` / :meth:`release`, or
    ``with StudyLock(...)``; :meth:`read` (for ``status``) needs neither."""

    def __init__(
        self,
        store_uri: str,
        study: str,
        *,
        heartbeat_seconds: float | None = None,
        stale_after_beats: int = STALE_AFTER_BEATS,
        warn: Callable[[str], None] = print,
        command: str = "",
    ):
        self.study = study
        self.name = f"{study}.json"
        self.heartbeat_seconds = heartbeat_seconds if heartbeat_seconds is not None else HEARTBEAT_SECONDS
        self.stale_after_beats = stale_after_beats
        self.warn = warn
        self.command = command
        if store_uri.startswith("s3://"):
            self.backend: _LocalBackend | _S3Backend = _S3Backend(store_uri)
        else:
            self.backend = _LocalBackend(store_uri[len("file://") :] if store_uri.startswith("file://") else store_uri)
        self.holder: LockHolder | None = None
        self._version: str | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.lost = False

    # -- reading --------------------------------------------------------------------------
    def read(self) -> LockHolder | None:
        """The current holder, or None when the study is not locked."""
        found = self.backend.read(self.name)
        if found is None:
            return None
        try:
            return LockHolder.from_json(found[0])
        except (ValueError, TypeError):
            # Unreadable content: treat as a holder that never beat, so it is taken over.
            return LockHolder("?", "?", -1, "?", "1970-01-01T00:00:00+00:00")

    # -- holding --------------------------------------------------------------------------
    def _body(self, token: str, started_at: str) -> LockHolder:
        return LockHolder(
            token=token,
            host=socket.gethostname(),
            pid=os.getpid(),
            started_at=started_at,
            heartbeat_at=_now().isoformat(timespec="seconds"),
            heartbeat_seconds=self.heartbeat_seconds,
            command=self.command,
        )

    def acquire(self) -> LockHolder:
        """Take the lock, taking over a stale one with a warning; raise :class:`LockHeldError`
        when a live driver holds it."""
        mine = self._body(uuid.uuid4().hex, _now().isoformat(timespec="seconds"))
        for _ in range(3):
            if self.backend.create(self.name, mine.to_json()):
                if self._verify(mine):
                    return self._start(mine)
            found = self.backend.read(self.name)
            if found is None:
                continue  # released meanwhile: try again
            body, version = found
            try:
                holder = LockHolder.from_json(body)
            except (ValueError, TypeError):
                holder = LockHolder("?", "?", -1, "?", "1970-01-01T00:00:00+00:00")
            if holder.token == mine.token:
                return self._start(mine)
            reason = holder.dead_reason(self.stale_after_beats)
            if reason is None:
                raise LockHeldError(self.study, holder)
            self.warn(f"warning: taking over the lock of study '{self.study}' from a driver that is gone ({holder.describe()}): {reason}")
            if isinstance(self.backend, _S3Backend):
                # Overwrite the stale object only while it is still that object (If-Match on the
                # ETag just read), then read back: of two drivers taking over, one wins.
                if self.backend.replace(self.name, mine.to_json(), version) and self._verify(mine):
                    return self._start(mine)
            elif self.backend.take_over(self.name, version):
                continue  # the stale lock is out of the way: create ours
        holder = self.read()
        raise LockHeldError(self.study, holder) if holder else LockUnavailableError(f"could not take the lock of study '{self.study}'")

    def _verify(self, mine: LockHolder) -> bool:
        """Read back: our token must be there (guards servers that ignore If-None-Match)."""
        found = self.backend.read(self.name)
        if found is None:
            return False
        try:
            current = LockHolder.from_json(found[0])
        except (ValueError, TypeError):
            return False
        if current.token == mine.token:
            self._version = found[1]
            return True
        return False

    def _start(self, mine: LockHolder) -> LockHolder:
        self.holder = mine
        self._stop.clear()
        self._thread = threading.Thread(target=self._beat, name=f"study-lock-{self.study}", daemon=True)
        self._thread.start()
        return mine

    def _beat(self) -> None:
        while not self._stop.wait(self.heartbeat_seconds):
            try:
                self.refresh()
            except LockUnavailableError as err:
                self.warn(f"warning: study lock heartbeat failed: {err}")

    def refresh(self) -> None:
        """Write a fresh heartbeat (the background thread calls this)."""
        if self.holder is None or self.lost:
            return
        fresh = self._body(self.holder.token, self.holder.started_at)
        if self._version is None or not self.backend.replace(self.name, fresh.to_json(), self._version):
            self.lost = True
            self.warn(f"warning: the lock of study '{self.study}' was taken over by another driver")
            return
        found = self.backend.read(self.name)
        self._version = found[1] if found else None
        self.holder = fresh

    def release(self) -> None:
        """Stop the heartbeat and delete the lock, if it is still ours."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None
        if self.holder is None:
            return
        try:
            found = self.backend.read(self.name)
            if found is not None and LockHolder.from_json(found[0]).token == self.holder.token:
                self.backend.delete(self.name)
        except (LockUnavailableError, ValueError, TypeError):
            pass  # a lock we cannot remove goes stale and is taken over later
        self.holder = None

    def __enter__(self) -> "StudyLock":
        self.acquire()
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()
