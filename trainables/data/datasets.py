"""Turn a dataset config into decoded arrays: the train, query and gallery splits.

Decoding happens once per dataset key (:func:`dataset_key`); the orchestrator shares the result
with all trials on a node through Ray's object store, and a standalone trial decodes it itself.
Trials that use the implicit-attention augmentation also need the training masks and the
precomputed composite bank (:mod:`trainables.data.implicit_attention`): their key says so, and
:func:`load_reid_data` loads those only for them, so plain studies do not pay for it.

Within one process, two keys of the same dataset and size (plain and with the composite)
share the decoded image arrays, so the object store holds the pixels once.

An evaluation target (``eval.targets``) needs only its query and gallery: :func:`load_eval_splits`
decodes those two under :func:`eval_key`, beside the training datasets in the same dict, and
shares their pixels when the same dataset at the same size is also decoded whole.
"""

from __future__ import annotations

import dataclasses
import hashlib
import weakref
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np

from search_spaces.trial_config import AugmentConfig, DatasetConfig, TrialConfig
from trainables.data.adapters import DatasetRecords, read_dataset
from trainables.data.arrays import SplitArrays, load_masks, load_split
from trainables.data.errors import DatasetError
from trainables.data.implicit_attention import (
    CompositeBank,
    CompositeParams,
    dataset_fingerprint,
    load_or_build_bank,
    read_viewpoints,
)
from trainables.data.synthetic import ensure_synthetic_dataset

__all__ = [
    "EvalSplits",
    "ReIDData",
    "adapter_options",
    "composite_params",
    "dataset_key",
    "ensure_composite",
    "eval_key",
    "load_eval_splits",
    "load_targets",
    "load_reid_data",
    "masks_command",
    "read_records",
    "resolve_dataset_root",
]

Progress = Callable[[str], None] | None


@dataclass
class ReIDData:
    """Decoded splits of one dataset at one image size.

    ``composite`` is set when the data was loaded for the implicit-attention augmentation (the
    training masks are then in ``train.masks``).
    """

    train: SplitArrays
    query: SplitArrays
    gallery: SplitArrays
    composite: CompositeBank | None = None


def composite_params(augment: AugmentConfig | None) -> CompositeParams | None:
    """The precomputation parameters of an active implicit-attention section, else None."""
    if augment is None or not augment.implicit_attention.is_active():
        return None
    ia = augment.implicit_attention
    return CompositeParams(
        roi=ia.roi,
        upper_fraction=ia.upper_fraction,
        area_ratio=ia.area_ratio,
        mask_iou=ia.mask_iou,
        same_viewpoint=ia.same_viewpoint,
        dilation=ia.dilation,
        inpaint_radius=ia.inpaint_radius,
        max_partners=ia.max_partners,
    )


def dataset_key(config: DatasetConfig, augment: AugmentConfig | None = None) -> str:
    """Identifies a decoded dataset: trials with the same key share the same arrays.

    Pass the trial's ``augment`` section so that trials using the implicit-attention composite
    get arrays with its precomputed inputs (one key per set of precomputation parameters; the
    probability ``p`` is not one of them). Without it the key names the plain arrays.
    """
    key = f"{config.name}|{config.root or ''}|{config.height}x{config.width}"
    options = adapter_options(config)
    if options:
        key += "|" + ",".join(f"{k}={v}" for k, v in sorted(options.items()))
    params = composite_params(augment)
    if params is not None:
        key += f"|implicit_attention={params.key()}"
    return key


def adapter_options(config: DatasetConfig) -> dict[str, Any]:
    """The dataset-specific keyword arguments of the config's adapter."""
    if config.name == "cuhk03np":
        return {"subset": config.cuhk03_subset}
    if config.name == "msmt17":
        return {"with_val": config.msmt17_with_val}
    return {}


def masks_command(config: DatasetConfig) -> str:
    """The CLI command that precomputes the person masks of this dataset."""
    extra = {"cuhk03np": f" --subset {config.cuhk03_subset}", "msmt17": " --with-val" if config.msmt17_with_val else ""}
    return f"orchestrator data masks --dataset {config.name} --root {config.root}{extra.get(config.name, '')} --weights FILE"


def resolve_dataset_root(config: DatasetConfig, progress: Progress = None) -> Path:
    """The folder holding the dataset; generates the synthetic one on first use."""
    if config.name == "synthetic":
        return ensure_synthetic_dataset(cache_dir=config.root, progress=progress)
    root = Path(config.root or "").expanduser()
    if not root.is_dir():
        raise DatasetError(f"dataset '{config.name}': folder not found: {root}")
    return root


def read_records(config: DatasetConfig, progress: Progress = None) -> DatasetRecords:
    """The dataset's train/query/gallery records (no decoding)."""
    return read_dataset(config.name, resolve_dataset_root(config, progress), **adapter_options(config))


# Decoded image arrays by (base key, split, file stamp), alive as long as something uses them.
_decoded: "weakref.WeakValueDictionary[tuple[str, str, str], np.ndarray]" = weakref.WeakValueDictionary()


def _stamp(records: list) -> str:
    """Changes when any file of ``records`` is added, removed or rewritten."""
    h = hashlib.sha256()
    for record in records:
        try:
            stat = Path(record.path).stat()
            h.update(f"{record.path}:{stat.st_size}:{stat.st_mtime_ns};".encode())
        except OSError:
            h.update(f"{record.path}:missing;".encode())
    return h.hexdigest()


def _decode(base_key: str, split: str, records: DatasetRecords, config: DatasetConfig, progress: Progress) -> SplitArrays:
    chosen = records.split(split)
    key = (base_key, split, _stamp(chosen))
    images = _decoded.get(key)
    if images is not None:
        return SplitArrays.from_records(chosen, images)
    arrays = load_split(chosen, config.height, config.width, progress=progress)
    _decoded[key] = arrays.images
    return arrays


def load_reid_data(config: DatasetConfig, progress: Progress = None, augment: AugmentConfig | None = None) -> ReIDData:
    """Decode all three splits at the configured size.

    With ``augment`` whose implicit-attention section is on, also decode the training masks
    and load (or compute once and cache beside the dataset) the composite bank.
    """
    records = read_records(config, progress)
    base_key = dataset_key(config)
    train, query, gallery = (_decode(base_key, split, records, config, progress) for split in ("train", "query", "gallery"))
    data = ReIDData(train=train, query=query, gallery=gallery)
    params = composite_params(augment)
    if params is None:
        return data
    return _with_composite(data, records, config, params, progress)


def _with_composite(
    data: ReIDData, records: DatasetRecords, config: DatasetConfig, params: CompositeParams, progress: Progress
) -> ReIDData:
    if data.train.paths != [str(r.path) for r in records.train]:
        raise DatasetError(
            f"the decoded training set does not match the files of dataset '{config.name}' at "
            f"{records.root} (changed on disk?); decode it again"
        )
    masks = data.train.masks
    if masks is None:
        try:
            masks = load_masks(records.train, config.height, config.width)
        except DatasetError as err:
            raise DatasetError(
                f"implicit attention needs person masks of the training images of dataset "
                f"'{config.name}' at {records.root}: {err} (e.g. `{masks_command(config)}`)"
            ) from None
    viewpoints = None
    if params.same_viewpoint:
        viewpoints = read_viewpoints(records.train, records.root, synthetic=config.name == "synthetic")
    bank = load_or_build_bank(
        data.train.images,
        masks,
        params,
        root=records.root,
        fingerprint=dataset_fingerprint(records.train, records.root, (config.height, config.width)),
        viewpoints=viewpoints,
        progress=progress,
    )
    train = dataclasses.replace(data.train, masks=masks)
    return ReIDData(train=train, query=data.query, gallery=data.gallery, composite=bank)


def ensure_composite(data: ReIDData, config: DatasetConfig, augment: AugmentConfig, progress: Progress = None) -> CompositeBank | None:
    """The composite bank a trial needs: ``data.composite`` when it was loaded with the same
    parameters, else loaded now (from the on-disk cache when present). None when the trial's
    implicit-attention section is off."""
    params = composite_params(augment)
    if params is None:
        return None
    if data.composite is not None and data.composite.params == params:
        return data.composite
    return _with_composite(data, read_records(config, progress), config, params, progress).composite


@dataclass
class EvalSplits:
    """The query and gallery of a dataset a trial only evaluates on (an ``eval.targets`` entry)."""

    query: SplitArrays
    gallery: SplitArrays


EVAL_KEY_PREFIX = "eval|"


def eval_key(config: DatasetConfig) -> str:
    """Identifies a decoded evaluation target (query and gallery only) in the datasets dict."""
    return EVAL_KEY_PREFIX + dataset_key(config)


def load_eval_splits(config: DatasetConfig, progress: Progress = None) -> EvalSplits:
    """Decode the query and gallery of ``config`` (no training split)."""
    records = read_records(config, progress)
    base_key = dataset_key(config)
    return EvalSplits(*(_decode(base_key, split, records, config, progress) for split in ("query", "gallery")))


def load_targets(config: TrialConfig, datasets: dict[str, Any] | None = None, progress: Progress = None) -> dict[str, EvalSplits]:
    """The trial's ``eval.targets`` by label: from ``datasets`` (decoded once by the driver and
    shared through the object store) where there, else decoded now."""
    targets = {}
    for target in config.eval.targets:
        dataset = target.dataset_for(config.dataset)
        found = (datasets or {}).get(eval_key(dataset))
        targets[target.label] = found if found is not None else load_eval_splits(dataset, progress)
    return targets
