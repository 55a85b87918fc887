"""Where each interrupted trial of a study stands, so a relaunch resumes it from its checkpoint.

A trial checkpoints every ``resources.checkpoint_every`` epochs into Ray Tune's storage (the
study folder's ``ray/``, or ``<bucket>/_ray`` beside an S3 result store; see
:mod:`trainables.trial_checkpoint`). Tune itself resumes from there only while the driver that
started the trial lives. When the driver dies (killed, its machine lost, Ctrl-C), the next
``orchestrator launch``/``resume`` finds here, for each trial it is about to run, the latest
checkpoint an earlier launch left, and the trial trains on from there instead of from epoch 1.

The storage holds one folder per launch (``<study>-<YYYYmmdd-HHMMSS>``), one per Tune trial in
it (its ``params.json`` names the planned trial's config hash) and one per checkpoint
(``checkpoint_NNNNNN`` with ``trainer.pt`` and ``history.json``: the epoch and the reports up to
it). A trial is resumed when it left no row in the result store (it was interrupted), or when
its last row says it failed and a later attempt, interrupted in its turn, checkpointed after
that failure; a failed trial's own checkpoints are never used (it starts afresh), nor is any
checkpoint under ``--force``.
"""

from __future__ import annotations

import datetime as dt
import json
import posixpath
import re
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping

PARAMS_FILE = "params.json"  # Ray Tune's copy of a trial's config, in its trial folder
CHECKPOINT_FOLDER = re.compile(r"checkpoint_(\d+)")
PARALLEL_READS = 16


@dataclass(frozen=True)
class ResumePoint:
    """A planned trial's latest checkpoint in Tune's storage."""

    config_hash: str
    path: str  # the checkpoint folder: a local path, or ``bucket/key`` on S3
    epoch: int
    reports: list[dict[str, Any]] = field(default_factory=list, compare=False)  # epochs 1..epoch


def find_resume_points(
    storage_path: str,
    filesystem: Any,
    study: str,
    hashes: Mapping[str, dt.datetime | None],
    warn: Callable[[str], None] = print,
) -> dict[str, ResumePoint]:
    """The latest complete checkpoint of each config hash in ``hashes`` under ``storage_path``
    (Tune's storage: a local folder, or a path on ``filesystem``, a pyarrow filesystem), from any
    earlier launch of ``study``, written after ``hashes[hash]`` where that is a time (the trial
    failed then: only a later attempt's checkpoints count). A storage that cannot be read
    resumes nothing (with a warning)."""
    if not hashes:
        return {}
    from pyarrow import fs as pafs

    from trainables.trial_checkpoint import HISTORY_FILE, STATE_FILE, history_config_hash, parse_history

    filesystem = filesystem or pafs.LocalFileSystem()
    root = storage_path.rstrip("/")
    try:
        listing = launch_entries(filesystem, root, study)
    except OSError as err:
        warn(f"  cannot look for earlier checkpoints in {root} ({err}); interrupted trials start from epoch 1")
        return {}
    # {trial folder: {checkpoint index: set of file names}}
    trials: dict[str, dict[int, set[str]]] = {}
    written: dict[str, dt.datetime] = {}  # checkpoint folder -> when its history was written
    params: set[str] = set()
    for parts, info in listing:
        if len(parts) == 3 and parts[2] == PARAMS_FILE:
            params.add("/".join(parts[:2]))
        elif len(parts) == 4 and (index := CHECKPOINT_FOLDER.fullmatch(parts[2])):
            trials.setdefault("/".join(parts[:2]), {}).setdefault(int(index.group(1)), set()).add(parts[3])
            if parts[3] == HISTORY_FILE and info.mtime is not None:
                written[f"{root}/{'/'.join(parts[:3])}"] = info.mtime
    candidates = []  # (trial folder, its latest complete checkpoint folder)
    for trial, checkpoints in sorted(trials.items()):
        complete = [index for index, names in checkpoints.items() if {STATE_FILE, HISTORY_FILE} <= names]
        if complete:
            candidates.append((trial, f"{root}/{trial}/checkpoint_{max(complete):06d}"))

    def read(candidate: tuple[str, str]) -> ResumePoint | str | None:
        """The candidate's resume point, None when not wanted, or what made it unreadable."""
        trial, folder = candidate
        try:
            history = read_text(filesystem, f"{folder}/{HISTORY_FILE}")
            # The checkpoint names its trial; older ones only through Tune's params.json, which
            # the driver may not have synced before it died.
            config_hash = history_config_hash(history)
            if config_hash is None and trial in params:
                config_hash = planned_hash(read_text(filesystem, f"{root}/{trial}/{PARAMS_FILE}"))
            if config_hash not in hashes or not _after(written.get(folder), hashes[config_hash]):
                return None
            epoch, reports = parse_history(history)
        except (OSError, ValueError, KeyError, TypeError) as err:
            return f"skipping an unreadable checkpoint in {root}/{trial} ({err})"
        return ResumePoint(config_hash, folder, epoch, reports)

    # Every finished trial keeps its last checkpoint too: a study of a thousand trials on S3 is
    # a thousand small reads, done side by side.
    with ThreadPoolExecutor(max_workers=PARALLEL_READS) as pool:
        found = list(pool.map(read, candidates))
    best: dict[str, ResumePoint] = {}
    for point in found:
        if isinstance(point, str):
            warn(f"  {point}")
        elif point is not None and (point.config_hash not in best or point.epoch > best[point.config_hash].epoch):
            best[point.config_hash] = point
    return best


def _after(written: dt.datetime | None, failed_at: dt.datetime | None) -> bool:
    """Whether a checkpoint written at ``written`` belongs to an attempt after the failure at
    ``failed_at`` (None: no failure, any checkpoint counts). The failure time is kept to the
    second, so a checkpoint must be a whole second later."""
    if failed_at is None:
        return True
    if written is None:
        return False
    return written > failed_at + dt.timedelta(seconds=1)


def launch_entries(filesystem: Any, root: str, study: str) -> list[tuple[list[str], Any]]:
    """Every file and folder under ``study``'s launch folders (``<study>-<date>-<time>``) in
    Tune's storage at ``root`` on ``filesystem``: (its path parts below ``root``, its pyarrow
    file info). Raises OSError when the storage cannot be listed."""
    from pyarrow import fs as pafs

    launch_folder = re.compile(re.escape(study) + r"-\d{8}-\d{6}")
    entries = []
    for info in filesystem.get_file_info(pafs.FileSelector(root, recursive=True, allow_not_found=True)):
        parts = posixpath.relpath(info.path, root).split("/")
        if parts and launch_folder.fullmatch(parts[0]):
            entries.append((parts, info))
    return entries


def planned_hash(params_text: str) -> str | None:
    """The config hash of a planned trial's Tune config (a search sample has none)."""
    params = json.loads(params_text)
    trial = params.get("trial") if isinstance(params, dict) else None
    return trial.get("hash") if isinstance(trial, dict) else None


def read_text(filesystem: Any, path: str) -> str:
    with filesystem.open_input_stream(path) as stream:
        return stream.read().decode("utf-8")
