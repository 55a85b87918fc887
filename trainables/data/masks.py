"""Person masks from a torchvision Mask R-CNN, precomputed once and stored beside the dataset.

The implicit-attention augmentation needs a binary person mask per training image; the paper
obtains them with Mask R-CNN (He et al., ICCV 2017) used as it is (section 4). Here the model is
torchvision's ``maskrcnn_resnet50_fpn`` built without any weights (``weights=None,
weights_backbone=None``) and loaded *strictly* from a local state-dict file: nothing is ever
downloaded, a missing file or a file that is not such a state dict is a clear
:class:`MaskWeightsError` (a :class:`~trainables.data.errors.DatasetError`, exit status 2 in the
CLI).

For each image the highest-scoring detection of the person class (COCO category 1) above
``score_threshold`` gives the mask (its soft mask thresholded at ``mask_threshold``); a ReID
crop is centred on its person, who is nearly always the most confident detection. Images where
no person is found get an all-zero mask, which the composite never uses. Masks are written as
single-channel PNG (0/255) at the image's own size, to ``<layout root>/masks/<path>.png`` (the
convention of :func:`trainables.data.market.mask_path_for`, shared with the synthetic dataset),
atomically, and an existing mask is reused unless ``overwrite`` is set.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from trainables.data.adapters import SPLITS, DatasetRecords
from trainables.data.errors import DatasetError, summarize_paths
from trainables.data.market import ImageRecord, mask_path_for

__all__ = [
    "PERSON_LABEL",
    "MaskRunSummary",
    "MaskWeightsError",
    "compute_masks",
    "load_mask_rcnn",
    "person_masks",
]

#: category id of "person" in torchvision's COCO detection models (0 is background)
PERSON_LABEL = 1

Progress = Callable[[str], None] | None


class MaskWeightsError(DatasetError):
    """The Mask R-CNN weights file is missing, unreadable or not the expected state dict."""


def _state_dict(path: Path) -> Mapping[str, Any]:
    import torch

    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # noqa: BLE001 - any failure to read is the same user error
        raise MaskWeightsError(f"cannot read Mask R-CNN weights {str(path)!r}: {type(err).__name__}: {err}") from None
    for wrapper in ("model", "state_dict"):  # training checkpoints wrap the state dict
        if isinstance(state, Mapping) and isinstance(state.get(wrapper), Mapping):
            state = state[wrapper]
    if not isinstance(state, Mapping) or not all(isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in state.items()):
        raise MaskWeightsError(
            f"{str(path)!r} does not hold a state dict (a mapping of parameter names to tensors); "
            "save one with torch.save(model.state_dict(), FILE)"
        )
    return state


def _keys(what: str, keys: Sequence[str], limit: int = 3) -> str:
    shown = f" (e.g. {', '.join(keys[:limit])})" if keys else ""
    return f"{len(keys)} {what} key(s){shown}"


def load_mask_rcnn(
    weights: str | Path,
    *,
    device: str = "cpu",
    min_size: int = 800,
    max_size: int = 1333,
    detections_per_img: int = 100,
    score_threshold: float = 0.05,
):
    """torchvision ``maskrcnn_resnet50_fpn`` with every parameter loaded from ``weights``.

    Args:
        weights: local ``.pth`` file: the state dict of ``maskrcnn_resnet50_fpn`` (e.g.
            torchvision's COCO release ``maskrcnn_resnet50_fpn_coco-bf2d0c1e.pth``), possibly
            wrapped in ``{"model": ...}``. The class count is read from it (91 for COCO).
        device: ``cpu``, ``cuda`` or ``auto`` (CUDA when available).
        min_size, max_size: the model's input resize range (torchvision defaults; ReID crops
            are small, so the default upsamples them as the paper's detector did).
        detections_per_img, score_threshold: the box head's output limits.

    Raises:
        MaskWeightsError: the file is missing, unreadable, or its keys or shapes do not match.
    """
    path = Path(weights).expanduser()
    if not path.is_file():
        raise MaskWeightsError(
            f"Mask R-CNN weights not found: {str(path)!r}; pass a local file holding the state "
            "dict of torchvision's maskrcnn_resnet50_fpn (weights are never downloaded)"
        )
    import torch
    from torchvision.models.detection import maskrcnn_resnet50_fpn

    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    state = _state_dict(path)
    classes = state.get("roi_heads.box_predictor.cls_score.weight")
    num_classes = int(classes.shape[0]) if isinstance(classes, torch.Tensor) and classes.ndim == 2 else 91
    model = maskrcnn_resnet50_fpn(
        weights=None,
        weights_backbone=None,
        num_classes=num_classes,
        min_size=min_size,
        max_size=max_size,
        box_detections_per_img=detections_per_img,
        box_score_thresh=score_threshold,
    )
    expected = model.state_dict()
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    if missing or unexpected:
        raise MaskWeightsError(
            f"{str(path)!r} is not a maskrcnn_resnet50_fpn state dict: {_keys('missing', missing)}, {_keys('unexpected', unexpected)}"
        )
    wrong = [k for k, v in state.items() if tuple(v.shape) != tuple(expected[k].shape)]
    if wrong:
        shapes = ", ".join(f"{k} {tuple(state[k].shape)} != {tuple(expected[k].shape)}" for k in wrong[:3])
        raise MaskWeightsError(f"{str(path)!r}: {len(wrong)} parameter(s) of the wrong shape: {shapes}")
    model.load_state_dict(state, strict=True)
    return model.eval().to(device)


def person_masks(model, images: Sequence[np.ndarray], *, score_threshold: float = 0.5, mask_threshold: float = 0.5) -> list[np.ndarray]:
    """One uint8 (H, W) mask (0/255) per RGB uint8 image: the top-scoring person detection."""
    import torch

    device = next(model.parameters()).device
    batch = [torch.from_numpy(np.ascontiguousarray(img)).to(device).permute(2, 0, 1).float().div_(255.0) for img in images]
    with torch.inference_mode():
        outputs = model(batch)
    masks = []
    for img, out in zip(images, outputs):
        mask = np.zeros(img.shape[:2], dtype=np.uint8)
        people = (out["labels"] == PERSON_LABEL) & (out["scores"] >= score_threshold)
        if bool(people.any()):
            best = int(torch.where(people, out["scores"], torch.full_like(out["scores"], -1.0)).argmax())
            mask = ((out["masks"][best, 0] >= mask_threshold).to(torch.uint8) * 255).cpu().numpy()
        masks.append(mask)
    return masks


@dataclass
class MaskRunSummary:
    """What :func:`compute_masks` did."""

    root: Path
    computed: int = 0
    reused: int = 0
    without_person: int = 0
    per_split: dict[str, int] = field(default_factory=dict)


def _write_png(path: Path, mask: np.ndarray) -> None:
    ok, png = cv2.imencode(".png", mask)
    if not ok:  # pragma: no cover - the encoder does not fail on a valid uint8 array
        raise DatasetError(f"could not encode mask {str(path)!r}")
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}-{uuid.uuid4().hex[:8]}.tmp")
    tmp.write_bytes(png.tobytes())
    os.replace(tmp, path)


def _read_rgb(path: Path) -> np.ndarray | None:
    data = np.fromfile(path, dtype=np.uint8)
    bgr = cv2.imdecode(data, cv2.IMREAD_COLOR) if data.size else None
    return None if bgr is None else cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)


def compute_masks(
    records: DatasetRecords,
    model,
    *,
    splits: Sequence[str] = ("train",),
    batch_size: int = 8,
    overwrite: bool = False,
    score_threshold: float = 0.5,
    progress: Progress = None,
) -> MaskRunSummary:
    """Write the person mask of every image of ``splits`` that has none yet (all with
    ``overwrite``), beside the dataset.

    Raises:
        DatasetError: unknown split, or images that cannot be decoded (all named at the end;
            the masks of the others are written).
    """
    unknown = [s for s in splits if s not in SPLITS]
    if unknown:
        raise DatasetError(f"unknown split(s) {unknown}: expected some of {list(SPLITS)}")
    summary = MaskRunSummary(root=records.root)
    todo: list[tuple[ImageRecord, Path]] = []
    for split in splits:
        chosen = records.split(split)
        summary.per_split[split] = len(chosen)
        for record in chosen:
            target = mask_path_for(records.root, record.path)
            if target.is_file() and not overwrite:
                summary.reused += 1
            else:
                todo.append((record, target))
    bad: list[Path] = []
    step = max(1, len(todo) // 20)
    for start in range(0, len(todo), batch_size):
        chunk = todo[start : start + batch_size]
        images, targets = [], []
        for record, target in chunk:
            img = _read_rgb(Path(record.path))
            if img is None:
                bad.append(Path(record.path))
            else:
                images.append(img)
                targets.append(target)
        if images:
            for target, mask in zip(targets, person_masks(model, images, score_threshold=score_threshold)):
                _write_png(target, mask)
                summary.computed += 1
                summary.without_person += int(not mask.any())
        done = min(start + batch_size, len(todo))
        if progress is not None and (done // step != (done - len(chunk)) // step or done == len(todo)):
            progress(f"masks: {done}/{len(todo)} images")
    if bad:
        raise DatasetError(f"cannot decode {summarize_paths(bad)} (no mask written for them): replace or remove them")
    return summary
