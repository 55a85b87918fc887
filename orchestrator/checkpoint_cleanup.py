"""A study folder that stays small: checkpoints are deleted once nothing can read them.

Two kinds of files, two rules:

* **Ray Tune's kept checkpoint** of a trial (``checkpoint_NNNNNN/`` with ``trainer.pt``: the
  model, optimizer and random state every ``resources.checkpoint_every`` epochs, in Tune's
  storage: ``<study>/ray`` or ``<bucket>/_ray`` beside an S3 store) exists so that an
  interrupted trial resumes (:mod:`orchestrator.resume_points`). Once the trial's row is in the
  result store no command reads it (a failed trial's own checkpoints are never resumed from
  either), so :func:`drop_trial_checkpoints` deletes it right after the recorder has written
  the row, together with the earlier launch's checkpoint the trial resumed from. An
  interrupted trial has no row and keeps its checkpoints.
* **Final models** ``<config hash>.pt`` in ``<study>/checkpoints``, the default folder of a study
  whose rows ``continue`` another (a child starts from its parent's model):
  :func:`drop_final_models` deletes each once no planned child still needs it (every child of
  it is completed). A folder the spec names (``output.checkpoints``) is the user's: kept whole.

Deleting is best effort: a file that cannot be removed is left with a warning, the study goes on.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Callable

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
    """After a Tune ``trial`` is recorded: delete its checkpoints in Tune's storage and the
    earlier launch's checkpoint folder it resumed from (``resumed_from``), if any."""
    storage = getattr(trial, "storage", None)
    if storage is None:
        return 0
    filesystem = storage.storage_filesystem
    dropped = drop_checkpoint_folders(storage.trial_fs_path, filesystem, warn)
    if resumed_from:
        dropped += drop_folder(resumed_from, filesystem, warn)
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
