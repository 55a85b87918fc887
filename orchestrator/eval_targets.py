"""The driver's side of ``eval.targets`` (cross-dataset evaluation inside every trial).

Before anything starts, each target's folder must exist and read with its adapter, as the
training dataset's must (:func:`check_targets`, run by ``validate`` and ``launch``: one line at
the target's YAML key). At launch each distinct target (dataset, root, size) is decoded once,
query and gallery only, into the datasets dict that travels to the trials through Ray's object
store (:func:`decode_targets`); a trial finds it by :func:`trainables.data.datasets.eval_key`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable

from orchestrator.errors import DataError
from orchestrator.spec import LoadedSpec, spec_error
from search_spaces import PlannedTrial


def _target_origin(trial: PlannedTrial, index: int, key: str) -> tuple[str | int, ...]:
    """The YAML key path of one field of the trial's ``index``-th target."""
    return (*trial.origin_of("eval.targets"), index, key)


def check_targets(loaded: LoadedSpec, trials: list[PlannedTrial]) -> None:
    """Every target of ``trials`` names a folder that exists and reads with its adapter
    (layout and file names, no decoding), with query and gallery images."""
    from trainables.data.datasets import read_records
    from trainables.data.errors import DatasetError

    seen: set[str] = set()
    for trial in trials:
        for index, target in enumerate(trial.config.eval.targets):
            dataset = target.dataset_for(trial.config.dataset)
            key = dataset.model_dump_json()
            if key in seen:
                continue
            seen.add(key)
            where = f"evaluation target '{target.label}'"
            if dataset.name != "synthetic" and not Path(dataset.root or "").expanduser().is_dir():
                raise spec_error(
                    loaded.source,
                    _target_origin(trial, index, "root"),
                    f"{where}: dataset folder not found: {Path(dataset.root or '').expanduser().resolve()}",
                )
            try:
                records = read_records(dataset)
            except DatasetError as err:
                raise spec_error(loaded.source, _target_origin(trial, index, "root"), f"{where}: {err}") from None
            empty = [split for split in ("query", "gallery") if not records.split(split)]
            if empty:
                raise spec_error(
                    loaded.source,
                    _target_origin(trial, index, "root"),
                    f"{where}: dataset '{dataset.name}' at {records.root} has no {' and no '.join(empty)} images to evaluate on",
                )


def decode_targets(trials: list[PlannedTrial], echo: Callable[[str], None], datasets: dict) -> dict:
    """Decode the query and gallery of each distinct target of ``trials`` once into
    ``datasets`` (which caches earlier ones)."""
    from orchestrator.progress import CountedProgress
    from trainables.data.datasets import eval_key, load_eval_splits
    from trainables.data.errors import DatasetError

    for trial in trials:
        for target in trial.config.eval.targets:
            dataset = target.dataset_for(trial.config.dataset)
            key = eval_key(dataset)
            if key in datasets:
                continue
            echo(f"decoding evaluation target '{target.label}' ({dataset.name}, query and gallery) ...")
            progress = CountedProgress(echo)  # one line, as for the training dataset
            try:
                splits = load_eval_splits(dataset, progress=progress)
            except DatasetError as err:
                raise DataError(f"evaluation target '{target.label}': {err}") from None
            echo(f"  {progress.summary()}: {len(splits.query.images)} query, {len(splits.gallery.images)} gallery images")
            datasets[key] = splits
    return datasets
