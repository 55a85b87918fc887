"""MSMT17 (Wei et al., "Person Transfer GAN", CVPR 2018): splits given by list files.

Layout as the archives unpack (``root`` may be the version folder or a parent of it)::

    MSMT17_V1/train/0000/0000_000_01_0303morning_0015_0.jpg     V1 folders: train/, test/
    MSMT17_V1/test/...
    MSMT17_V1/list_train.txt   list_val.txt   list_query.txt   list_gallery.txt
    MSMT17_V2/mask_train_v2/...  mask_test_v2/...              V2 folders (faces blurred)

Each list line is ``<path relative to the split folder> <pid>``: train and val images live in
the train folder, query and gallery images in the test folder. The camera is the third
``_``-separated field of the file name (``0000_000_01_...`` -> camera 1; 15 cameras).

Identities are numbered from 0 in the list files, but pid 0 means "distractor" everywhere in
this project (DESIGN.md "Metrics"), so the adapter adds 1 to every pid. MSMT17 has no junk and
no distractors; every listed image is kept. The conventional protocol trains on
``list_train.txt`` only; ``with_val`` adds ``list_val.txt`` (torchreid's ``combineall``).
"""

from __future__ import annotations

import os
from pathlib import Path

from trainables.data.adapters._registry import DatasetRecords, find_layout_root, make_records, register_adapter
from trainables.data.errors import DatasetError, summarize_paths
from trainables.data.market import ImageRecord

__all__ = ["MSMT17_CAMERAS", "MSMT17_VERSIONS", "parse_msmt17_camera", "read_msmt17"]

MSMT17_CAMERAS = 15

#: version folder -> (train folder, test folder)
MSMT17_VERSIONS: dict[str, tuple[str, str]] = {
    "MSMT17_V1": ("train", "test"),
    "MSMT17_V2": ("mask_train_v2", "mask_test_v2"),
}

_LISTS = {"train": "list_train.txt", "val": "list_val.txt", "query": "list_query.txt", "gallery": "list_gallery.txt"}
_EXPECTED_LINE = "'<path under the split folder> <pid>' such as '0000/0000_000_01_0303morning_0015_0.jpg 0'"


def parse_msmt17_camera(filename: str) -> int:
    """The 1-based camera of an MSMT17 file name (its third ``_`` field); DatasetError if absent."""
    parts = Path(filename).name.split("_")
    if len(parts) < 3 or not parts[2].isdigit() or not 1 <= int(parts[2]) <= MSMT17_CAMERAS:
        raise DatasetError(
            f"bad MSMT17 file name {filename!r}: expected '<pid>_<index>_<camera 01-15>_...' such as '0000_000_01_0303morning_0015_0.jpg'"
        )
    return int(parts[2])


def _is_msmt_root(path: Path) -> bool:
    return (path / "list_train.txt").is_file() or any((path / d).is_dir() for dirs in MSMT17_VERSIONS.values() for d in dirs)


def _split_folders(layout: Path) -> tuple[Path, Path]:
    for train, test in MSMT17_VERSIONS.values():
        if (layout / train).is_dir() or (layout / test).is_dir():
            return layout / train, layout / test
    return layout / "train", layout / "test"


def _files_under(folder: Path) -> set[str]:
    found: set[str] = set()
    if folder.is_dir():
        for current, _, files in os.walk(folder):
            rel = Path(current).relative_to(folder)
            found.update((rel / name).as_posix() for name in files)
    return found


@register_adapter("msmt17", description="MSMT17 V1/V2 (list files, 15 cameras)", options=("with_val",))
def read_msmt17(root: Path, with_val: bool = False) -> DatasetRecords:
    layout = find_layout_root(
        root,
        "msmt17",
        _is_msmt_root,
        (*MSMT17_VERSIONS, "msmt17", *(f"msmt17/{v}" for v in MSMT17_VERSIONS), "MSMT17"),
        "no MSMT17 layout (list_train.txt, list_query.txt, list_gallery.txt with train/ and test/ or mask_train_v2/ and mask_test_v2/)",
    )
    train_dir, test_dir = _split_folders(layout)
    wanted = ["train", "query", "gallery"] + (["val"] if with_val else [])
    missing = [str(layout / _LISTS[s]) for s in wanted if not (layout / _LISTS[s]).is_file()]
    missing += [str(d) for d in (train_dir, test_dir) if not d.is_dir()]
    if missing:
        raise DatasetError(f"dataset 'msmt17': missing {summarize_paths(missing)} in {str(layout)!r}")

    present = {train_dir: _files_under(train_dir), test_dir: _files_under(test_dir)}
    bad_lines: list[str] = []
    absent: list[Path] = []
    scanned: dict[str, list[ImageRecord]] = {"train": [], "query": [], "gallery": []}
    for split in wanted:
        folder = train_dir if split in ("train", "val") else test_dir
        list_path = layout / _LISTS[split]
        with open(list_path, encoding="utf-8", errors="replace") as handle:
            for number, line in enumerate(handle, start=1):
                text = line.strip()
                if not text:
                    continue
                fields = text.split()
                try:
                    if len(fields) != 2 or not fields[1].lstrip("-").isdigit() or int(fields[1]) < 0:
                        raise DatasetError("bad line")
                    camid = parse_msmt17_camera(fields[0])
                except DatasetError:
                    bad_lines.append(f"{list_path.name}:{number} {text[:80]!r}")
                    continue
                rel = Path(fields[0]).as_posix()
                if rel not in present[folder]:
                    absent.append(folder / rel)
                    continue
                target = "train" if split == "val" else split
                scanned[target].append(ImageRecord(folder / rel, int(fields[1]) + 1, camid))
    problems = []
    if bad_lines:
        problems.append(f"bad list line(s), {summarize_paths(bad_lines)}; expected {_EXPECTED_LINE}")
    if absent:
        problems.append(f"listed image(s) missing, {summarize_paths(absent)}")
    if problems:
        raise DatasetError(f"dataset 'msmt17' at {str(layout)!r}: " + "; ".join(problems))
    return make_records("msmt17", layout, scanned, apply_protocol=False)
