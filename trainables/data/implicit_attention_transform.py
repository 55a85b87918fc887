"""The implicit-attention composite as an albumentations transform, for per-sample CPU pipelines.

Kept apart from :mod:`trainables.data.implicit_attention` because albumentations takes seconds
to import and the trial's own pipeline (batch-wise torch, :mod:`trainables.data.augment`) does
not need it. Usage, first in the pipeline (the paper composites "in the first place before any
other augmentation", while image and ROI mask are still aligned)::

    pipeline = A.Compose([ImplicitAttention(bank, p=0.5), A.HorizontalFlip(), ...], seed=0)
    out = pipeline(image=train_images[i], sample_index=i)   # label of i is unchanged
"""

from __future__ import annotations

from typing import Any

import numpy as np
from albumentations.core.transforms_interface import ImageOnlyTransform

from trainables.data.implicit_attention import CompositeBank, composite

__all__ = ["ImplicitAttention"]


class ImplicitAttention(ImageOnlyTransform):
    """``S(i->j) = where(roi_i, image, background_j)`` for a random compatible partner j of i.

    Args:
        bank: precomputed ROI masks, backgrounds and partner lists of the training set.
        p: probability of compositing a sample (paper sweeps 0.1-0.9, best 0.3-0.5). A sample
            without compatible partner is always left as it is.

    The call needs ``sample_index=i`` (the index of ``image`` in the training set the bank was
    built from); ``image`` must be that training image, undistorted.
    """

    def __init__(self, bank: CompositeBank, p: float = 0.5):
        super().__init__(p=p)
        self.bank = bank

    @property
    def targets_as_params(self) -> list[str]:
        return ["sample_index"]

    def get_params_dependent_on_data(self, params: dict[str, Any], data: dict[str, Any]) -> dict[str, Any]:
        index = int(data["sample_index"])
        if not 0 <= index < len(self.bank):
            raise IndexError(f"sample_index {index} is outside the training set of {len(self.bank)} images")
        partners = self.bank.partners_of(index)
        partner = int(partners[self.py_random.randrange(len(partners))]) if len(partners) else -1
        return {"sample_index": index, "partner": partner}

    def apply(self, img: np.ndarray, sample_index: int = 0, partner: int = -1, **params: Any) -> np.ndarray:
        if partner < 0:
            return img
        roi = self.bank.roi_masks[sample_index]
        if img.shape[:2] != roi.shape:
            raise ValueError(
                f"image {img.shape[:2]} does not match the precomputed masks {roi.shape}: apply "
                "ImplicitAttention first, to the decoded training image"
            )
        return composite(img, roi, self.bank.backgrounds[partner])

    def get_transform_init_args_names(self) -> tuple[str, ...]:
        return ()
