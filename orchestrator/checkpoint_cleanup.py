"""A study folder that stays small: checkpoints are deleted once nothing can read them.

Two kinds of files, two rules:

* **Ray Tune's kept checkpoint** of a trial (``checkpoint_NNNNNN/`` with ``trainer.pt``: the
  model, optimizer and random state every ``resources.checkpoint_every`` epochs, in Tune's
  storage: ``<study>/ray`` or ``<bucket>/_ray`` beside an S3 store) exists so that an
  interrupted trial resumes (:mod:`orchestrator.resume_points`). Once the trial's row is in the
  result store no command reads it (a failed trial's own checkpoints are never resumed from
  either), so :func:`drop_trial_checkpoints` deletes it right after the recorder has written
  the row, together with the earlier launch's checkpoints the trial resumed from; at the end of
  every launch :func:`sweep_finished_checkpoints` deletes any other checkpoint of a trial that
  is done (an older interruption's, or a study's from before this rule). An interrupted trial
  has no row and keeps its checkpoints.
* **Final models** ``<config hash>.pt`` in ``<study>/checkpoints``, the default folder of a study
  whose rows ``continue`` another (a child starts from its parent's model):
  :func:`drop_final_models` deletes each once no planned child still needs it (every child of
  it is completed). A folder the spec names (``output.checkpoints``) is the user's: kept whole.

Deleting is best effort: a file that cannot be removed is left with a warning, the study goes on.
"""

from __future__ import annotations

import posixpath
import re
from pathlib import Path
from typing import Any, Callable

from orchestrator.study_files import tune_storage

CHECKPOINT_FOLDER = re.compile(r"checkpoint_\d+")

Warn = Callable[[str], None]


def _filesystem(filesystem: Any):
    if filesystem is not None:
        return filesystem
    from pyarrow import fs as pafs

    return pafs.LocalFileSystem()


def drop_checkpoint_folders(trial_path: str, filesystem: Any, warn: Warn) -> int:
    """Delete every ``checkpoint_*`` folder directly under ``trial_path`` (a Tune trial folder
    on ``filesystem``, a pyarrow filesystem; None: local). Returns how many went."""
    from pyarrow import fs as pafs

    filesystem = _filesystem(filesystem)
    try:
        entries = filesystem.get_file_info(pafs.FileSelector(trial_path.rstrip("/"), allow_not_found=True))
    except OSError as err:
        warn(f"  could not list {trial_path} to delete its checkpoints ({err})")
        return 0
    dropped = 0
    for entry in entries:
        if entry.type == pafs.FileType.Directory and CHECKPOINT_FOLDER.fullmatch(entry.base_name):
            dropped += drop_folder(entry.path, filesystem, warn)
    return dropped


def drop_folder(path: str, filesystem: Any, warn: Warn) -> int:
    """Delete one folder (1), or warn and keep it (0)."""
    try:
        _filesystem(filesystem).delete_dir(path)
    except FileNotFoundError:
        return 0
    except OSError as err:
        warn(f"  could not delete the checkpoint {path} ({err}); delete it by hand")
        return 0
    return 1


def drop_trial_checkpoints(trial: Any, resumed_from: str | None, warn: Warn) -> int:
    """After a Tune ``trial`` is recorded: delete its checkpoints in Tune's storage and those of
    the earlier launch's trial folder it resumed from (``resumed_from``: one checkpoint folder
    of it; a driver killed between two checkpoints leaves both), if any."""
    storage = getattr(trial, "storage", None)
    try:
        path = storage.trial_fs_path if storage is not None else None
    except RuntimeError:  # Tune never gave the trial a folder: it wrote no checkpoint
        path = None
    if path is None:
        return 0
    filesystem = storage.storage_filesystem
    dropped = drop_checkpoint_folders(path, filesystem, warn)
    if resumed_from:
        dropped += drop_checkpoint_folders(posixpath.dirname(resumed_from.rstrip("/")), filesystem, warn)
    return dropped


def sweep_finished_checkpoints(storage_path: str, filesystem: Any, study: str, done: set[str], warn: Warn) -> int:
    """Delete every checkpoint left in Tune's storage (``storage_path`` on ``filesystem``) by any
    launch of ``study`` for a trial now done in the store (``done``: config hashes): those of an
    older interruption, or of a study run before checkpoints were deleted. A trial not done
    keeps its checkpoints (the next launch resumes from them)."""
    from orchestrator.resume_points import PARAMS_FILE, launch_entries, planned_hash, read_text

    filesystem = _filesystem(filesystem)
    root = storage_path.rstrip("/")
    try:
        listing = launch_entries(filesystem, root, study)
    except OSError as err:
        warn(f"  could not list {root} to delete finished trials' checkpoints ({err})")
        return 0
    holding = {f"{root}/{parts[0]}/{parts[1]}" for parts, _ in listing if len(parts) == 3 and CHECKPOINT_FOLDER.fullmatch(parts[2])}
    dropped = 0
    for folder in sorted(holding):
        try:
            config_hash = planned_hash(read_text(filesystem, f"{folder}/{PARAMS_FILE}"))
        except (OSError, ValueError, KeyError, TypeError):
            continue  # no readable record of which trial it was: leave it
        if config_hash in done:
            dropped += drop_checkpoint_folders(folder, filesystem, warn)
    return dropped


def drop_final_models(folder: Path, parents_needed: set[str], warn: Warn) -> int:
    """Delete the ``<hash>.pt`` final models in ``folder`` but those of ``parents_needed``
    (config hashes a child still has to start from). Returns how many went."""
    dropped = 0
    for path in sorted(folder.glob("*.pt")) if folder.is_dir() else []:
        if path.stem in parents_needed:
            continue
        try:
            path.unlink()
            dropped += 1
        except OSError as err:
            warn(f"  could not delete the final model {path} ({err})")
    return dropped


def folder_size(path: Path) -> int:
    """Bytes under ``path`` (0 when it does not exist); files that vanish meanwhile are skipped."""
    total = 0
    for item in path.rglob("*") if path.is_dir() else []:
        try:
            if item.is_file() and not item.is_symlink():
                total += item.stat().st_size
        except OSError:
            continue
    return total


def sweep_study(loaded: Any, store: Any, warn: Warn) -> int:
    """:func:`sweep_finished_checkpoints` for a launched study (its Tune storage, its store)."""
    path, filesystem = tune_storage(loaded, loaded.spec.study_dir())
    try:
        done = store.completed_hashes(loaded.name)
    except Exception as err:  # noqa: BLE001 - best effort: the study's results are already safe
        warn(f"  could not read the store to delete finished trials' checkpoints ({err})")
        return 0
    return sweep_finished_checkpoints(path, filesystem, loaded.name, done, warn)
