"""Finished trials' rows that the result store refused mid-run, kept beside the study until it
takes them again.

A store can break while a study runs (its folder replaced by a file, a bucket's permissions
changed, a disk full). The trials that finish from then on have results worth hours of compute:
the recorder keeps each one's rows here, in the study folder, as one JSON file per trial
(``<study dir>/unsaved-rows/<trial id>.json``, written to a temporary name and renamed, so a
crash never leaves half a file). The next ``launch`` or ``resume`` on a writable store writes
them first, as the recorder would have, so those trials count as done and do not run again.
"""

from __future__ import annotations

import json
import os
import uuid
from pathlib import Path
from typing import Any, Callable

from storage import ResultStore

UNSAVED_FOLDER = "unsaved-rows"


def unsaved_dir(study_dir: Path) -> Path:
    return study_dir / UNSAVED_FOLDER


def keep_unsaved(folder: Path, study: str, trial_id: str, tables: dict[str, list[dict[str, Any]]]) -> Path:
    """Write a trial's rows (as :meth:`ResultStore.write_trial` takes them) to ``folder``."""
    folder.mkdir(parents=True, exist_ok=True)
    target = folder / f"{trial_id}.json"
    temporary = folder / f".{trial_id}.{uuid.uuid4().hex[:8]}.partial"
    text = json.dumps({"study": study, "trial_id": trial_id, "tables": tables}, default=_plain)
    temporary.write_text(text, encoding="utf-8")
    os.replace(temporary, target)
    return target


def _plain(value: Any) -> Any:
    """numpy scalars as Python numbers (a float32 metric stays a number), anything else as text."""
    return value.item() if hasattr(value, "item") else str(value)


def unsaved_trials(folder: Path) -> list[Path]:
    """The kept trials' files, oldest name first."""
    if not folder.is_dir():
        return []
    return sorted(path for path in folder.glob("*.json") if not path.name.startswith("."))


def store_unsaved(folder: Path, store: ResultStore, study: str, echo: Callable[[str], None] = print) -> int:
    """Write the kept rows of ``study`` to ``store`` (each trial's file removed once its rows are
    in); returns how many trials were stored. A store that still refuses raises as it does."""
    stored = 0
    for path in unsaved_trials(folder):
        kept = json.loads(path.read_text(encoding="utf-8"))
        if kept.get("study") != study:
            continue
        store.write_trial(study, kept["trial_id"], kept["tables"])
        path.unlink()
        stored += 1
    if stored:
        echo(f"  stored the rows of {stored} trial(s) that finished while the result store refused them ({folder})")
    return stored
