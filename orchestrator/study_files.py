"""What a launch leaves in the study folder so a study can be found, resumed and inspected.

``<study dir>/spec.yaml`` is a copy of the spec as launched and ``launch.json`` records where
results went (store URI, tracking URI, Ray address). A tracking URI that embeds a credential
is not recorded (it would put a secret on disk): resume then needs ``--tracking-uri`` or
``MLFLOW_TRACKING_URI`` again.
"""

from __future__ import annotations

import datetime as dt
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from orchestrator.errors import StudyNotFoundError
from orchestrator.redact import has_credentials

SPEC_COPY = "spec.yaml"
LAUNCH_RECORD = "launch.json"


def record_launch(
    study_dir: Path, spec_text: str, *, store_uri: str, tracking_uri: str, address: str | None, spec_dir: str | None = None
) -> None:
    """Write the spec copy and the launch record (atomically: temp file, then rename).
    ``spec_dir``: the original spec's folder, where its file plugins are found on resume."""
    study_dir.mkdir(parents=True, exist_ok=True)
    record = {
        "spec_dir": spec_dir,
        "store_uri": store_uri,
        "tracking_uri": None if has_credentials(tracking_uri) else tracking_uri,
        # Resume must then be given the URI again rather than fall back to a local store.
        "tracking_uri_withheld": has_credentials(tracking_uri),
        "address": address,
        "launched_at": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
    }
    for name, text in ((SPEC_COPY, spec_text), (LAUNCH_RECORD, json.dumps(record, indent=2) + "\n")):
        temporary = study_dir / f".{name}.tmp-{os.getpid()}"
        temporary.write_text(text, encoding="utf-8")
        os.replace(temporary, study_dir / name)


@dataclass(frozen=True)
class StudyLocation:
    """Where a study's files are: its name, folder (if local) and launch record."""

    name: str
    study_dir: Path | None
    record: dict[str, Any]

    @property
    def spec_copy(self) -> Path | None:
        if self.study_dir is None:
            return None
        path = self.study_dir / SPEC_COPY
        return path if path.is_file() else None

    def store_uri(self, override: str | None = None) -> str:
        if override:
            return override
        if self.record.get("store_uri"):
            return self.record["store_uri"]
        return str((self.study_dir or Path("studies") / self.name) / "results")


def locate_study(study: str) -> StudyLocation:
    """Find a study by folder path, spec file or name (``studies/<name>`` under the cwd)."""
    path = Path(study)
    if path.suffix in (".yaml", ".yml") and path.is_file():
        from orchestrator.spec import load_spec

        spec = load_spec(path).spec
        return _location(spec.study.name, spec.study_dir())
    if path.is_dir() and ((path / LAUNCH_RECORD).is_file() or (path / "results").is_dir()):
        return _location(path.resolve().name, path.resolve())
    return _location(study, (Path("studies") / study).resolve())


def _location(name: str, study_dir: Path) -> StudyLocation:
    record: dict[str, Any] = {}
    record_file = study_dir / LAUNCH_RECORD
    if record_file.is_file():
        try:
            record = json.loads(record_file.read_text(encoding="utf-8"))
        except (OSError, ValueError) as err:
            raise StudyNotFoundError(f"{record_file}: unreadable launch record ({err})") from None
    return StudyLocation(name, study_dir if study_dir.exists() else None, record)


def tune_storage(loaded: Any, study_dir: Path) -> tuple[str, Any]:
    """Where Ray Tune keeps its experiment state: beside an S3 result store (so every node of
    a cluster can reach it), else in the study folder. Returns (path, pyarrow filesystem|None)."""
    store = loaded.spec.store_uri()
    if store.startswith("s3://"):
        from storage.result_store import s3_filesystem

        return f"{store[len('s3://') :].rstrip('/')}/_ray", s3_filesystem()
    return str(study_dir / "ray"), None
