"""Check a dataset as it ships: layout, names, decodable images; count what is there.

What ``orchestrator data check`` runs. :func:`check_dataset` reads the dataset with its adapter
(a missing folder or list file, a badly named file: a :class:`DatasetError` naming the first
offenders and their count), then makes sure every kept image and every mask present decodes,
and returns per split the identities, images and cameras. Needs no torch.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from trainables.data.adapters import SPLITS, DatasetRecords, read_dataset
from trainables.data.arrays import find_unreadable
from trainables.data.errors import DatasetError, summarize_paths
from trainables.data.market import DISTRACTOR_PID

__all__ = ["DatasetReport", "SplitSummary", "check_dataset", "format_report", "summarize_records"]


@dataclass(frozen=True)
class SplitSummary:
    split: str
    identities: int
    images: int
    cameras: tuple[int, ...]
    distractors: int
    dropped_junk: int
    dropped_distractors: int
    masks: int


@dataclass(frozen=True)
class DatasetReport:
    name: str
    root: Path
    splits: tuple[SplitSummary, ...]


def summarize_records(records: DatasetRecords) -> DatasetReport:
    """Counts per split: identities (distractors not counted), images, cameras, masks."""
    rows = []
    for split in SPLITS:
        chosen = records.split(split)
        dropped = records.dropped.get(split, {})
        rows.append(
            SplitSummary(
                split=split,
                identities=len({r.pid for r in chosen if r.pid != DISTRACTOR_PID}),
                images=len(chosen),
                cameras=tuple(sorted({r.camid for r in chosen})),
                distractors=sum(r.pid == DISTRACTOR_PID for r in chosen),
                dropped_junk=int(dropped.get("junk", 0)),
                dropped_distractors=int(dropped.get("distractors", 0)),
                masks=sum(r.mask_path is not None for r in chosen),
            )
        )
    return DatasetReport(records.name, records.root, tuple(rows))


def check_dataset(
    name: str, root: str | Path, *, decode: bool = True, progress: Callable[[str], None] | None = None, **options: Any
) -> DatasetReport:
    """Read dataset ``name`` at ``root`` and (with ``decode``) decode every kept image and mask.

    Raises:
        DatasetError: missing folders or list files, bad names, or undecodable files (the
            first few named, with their count).
    """
    records = read_dataset(name, root, **options)
    if decode:
        paths = [r.path for split in SPLITS for r in records.split(split)]
        paths += [r.mask_path for split in SPLITS for r in records.split(split) if r.mask_path is not None]
        bad = find_unreadable(paths, progress=progress)
        if bad:
            raise DatasetError(
                f"dataset {name!r} at {str(records.root)!r}: cannot decode {summarize_paths(bad)}; the "
                "files are empty, truncated or not images: replace or remove them"
            )
    return summarize_records(records)


def _cameras(cameras: tuple[int, ...]) -> str:
    if not cameras:
        return "-"
    if list(cameras) == list(range(cameras[0], cameras[-1] + 1)) and len(cameras) > 2:
        return f"{len(cameras)} (c{cameras[0]}-c{cameras[-1]})"
    return f"{len(cameras)} ({', '.join(f'c{c}' for c in cameras)})"


def format_report(report: DatasetReport) -> list[str]:
    """The report as printable lines (a table per split)."""
    lines = [f"dataset {report.name} at {report.root}"]
    header = f"{'split':<8} {'identities':>10} {'images':>8} {'distractors':>11} {'left out':>9} {'masks':>7}  cameras"
    lines.append(header)
    for row in report.splits:
        junk = row.dropped_junk + row.dropped_distractors
        lines.append(
            f"{row.split:<8} {row.identities:>10} {row.images:>8} {row.distractors:>11} {junk:>9} {row.masks:>7}  {_cameras(row.cameras)}"
        )
    return lines
