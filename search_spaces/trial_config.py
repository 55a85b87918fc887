"""The trial config: the one contract between ``search_spaces`` and ``trainables``.

A :class:`TrialConfig` is frozen, fully resolved (every default written out once validated)
and hashable. Everything that can change what a trial learns lives here; everything that only
changes *where* or *how fast* it runs (device, threads, Ray resources) does not, so the same
config run on a laptop or a GPU node has the same content hash.

Sections mirror the YAML spec's ``baseline:`` block; an ablation axis is a dotted path into
this tree (``model.neck``, ``loss.triplet.margin``, ``augment.random_erasing.p``).

No torch import here: the orchestrator validates and expands studies without it.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_serializer, model_validator

from search_spaces.metrics import target_label_problem
from search_spaces.plugins import plugin_record
from search_spaces.sections import (  # noqa: F401 -- re-exported: sections are part of the config's API
    AUGMENT_SECTIONS,
    DATASETS,
    INSERT_SECTIONS,
    LOSS_SECTIONS,
    AugmentSection,
    InsertSection,
    LossSection,
    Section,
    StagedInsert,
    StageIndex,
    ToggleSection,
    registered_sections,
    require_section,
    section_registrar,
    validate_registered_sections,
)


class DatasetConfig(Section):
    """Which images a trial trains and evaluates on, and the size they are resized to."""

    name: str = Field(
        "synthetic",
        description="'synthetic' is the embedded default generated on first use; "
        "'market1501' (6 cameras) and 'dukemtmc' (8) read their Market-layout folders, "
        "'msmt17' its list files (V1 or V2), 'cuhk03np' the detected/ or labeled/ half of "
        "CUHK03-NP, 'folder' any folder in Market-1501 layout and naming; or the name of a "
        "reader a plugin registered. The names match the adapters registered in "
        "trainables.data.adapters.",
    )
    root: str | None = Field(
        None,
        description="Dataset folder. Required for real datasets; for 'synthetic' it defaults "
        "to the cache folder ($REID_ORCH_CACHE or ~/.cache/reid-orchestrator).",
    )
    height: int = Field(128, ge=16, le=1024)
    width: int = Field(64, ge=8, le=1024)
    cuhk03_subset: Literal["detected", "labeled"] = Field(
        "detected", description="cuhk03np only: which boxes, detector-cut or hand-labelled."
    )
    msmt17_with_val: bool = Field(False, description="msmt17 only: train on list_train + list_val (off: the usual protocol).")

    #: dataset-specific fields -> the dataset they apply to; elsewhere they reset to default
    #: (conditional axes, as in ToggleSection), so they never split the hash of other datasets.
    DATASET_OPTIONS: ClassVar[dict[str, str]] = {"cuhk03_subset": "cuhk03np", "msmt17_with_val": "msmt17"}

    @field_validator("name")
    @classmethod
    def _registered_name(cls, name: str) -> str:
        if name not in DATASETS:
            raise ValueError(f"unknown dataset '{name}'; known: {', '.join(DATASETS.names())}")
        return name

    @model_validator(mode="after")
    def _real_datasets_need_a_root(self) -> "DatasetConfig":
        if self.name != "synthetic" and not self.root:
            raise ValueError(f"dataset '{self.name}' needs 'root': the folder that holds it")
        for option, dataset in self.DATASET_OPTIONS.items():
            if self.name != dataset:
                object.__setattr__(self, option, type(self).model_fields[option].get_default())
        return self


# Backbones of the Robust-ReID family (trainables/models/robust_reid.py). ``model.shuffle_blocks``
# only means something for them; search_spaces imports no torch, so the names are listed here.
ROBUST_REID_BACKBONES: tuple[str, ...] = ("robust_reid_1x", "robust_reid_2x")

#: ``model.pretrained: true`` -> the pinned timm weight tag of the backbone. The ResNets are
#: pinned to torchvision's ImageNet weights (``tv_in1k``), the ones Bag of Tricks and the papers
#: built on it start from; timm's untagged default (``a1_in1k``) is a different training.
PINNED_WEIGHTS: dict[str, str] = {
    "resnet18": "resnet18.tv_in1k",
    "resnet34": "resnet34.tv_in1k",
    "resnet50": "resnet50.tv_in1k",
    "resnet101": "resnet101.tv_in1k",
    "resnet152": "resnet152.tv_in1k",
}

_SHA256_CACHE: dict[tuple[str, int, int], str] = {}


def file_sha256(path: str) -> str | None:
    """SHA-256 hex digest of a file's bytes, or None when it cannot be read here (the model
    checks report a missing file at its YAML line). Cached by (path, size, mtime)."""
    file = Path(path).expanduser()
    try:
        stat = file.stat()
        key = (str(file.resolve()), stat.st_size, stat.st_mtime_ns)
        if key not in _SHA256_CACHE:
            digest = hashlib.sha256()
            with file.open("rb") as handle:
                for chunk in iter(lambda: handle.read(1 << 20), b""):
                    digest.update(chunk)
            _SHA256_CACHE[key] = digest.hexdigest()
        return _SHA256_CACHE[key]
    except OSError:
        return None


#: Decorator factory registering an :class:`InsertSection` subclass as ``model.<name>``.
register_insert_section = section_registrar(INSERT_SECTIONS, InsertSection, "model", lambda: globals().get("ModelConfig"))


@register_insert_section("apra")
class APRAConfig(StagedInsert):
    """APRA (Ang et al., section 5.1): pairwise reverse attention with a gradient-reversed
    camera classifier, inserted after backbone stages.

    On iff ``stages`` is non-empty, so placement -- after which stage(s), or nowhere -- is one
    axis: ``model.apra.stages: [[], [1], [2], [1, 2]]``. A stage is an index into the backbone's
    timm ``feature_info`` (for ResNets 0 is the stem, 1..4 are ``layer1..layer4``). When off,
    the other fields reset to their defaults (conditional axes).
    """

    LOSS_WEIGHTS: ClassVar[dict[str, str]] = {"loss_camera": "lam"}
    LABEL: ClassVar[str] = "APRA"

    stages: tuple[StageIndex, ...] = Field(
        (), description="feature_info indices to insert APRA after (empty: APRA off). Paper: early stages."
    )
    lam: float = Field(0.01, ge=0.0, description="lambda of L = L_id + L_tri + lambda * L_cam (paper: 0.01).")
    grl_scale: float = Field(1.0, ge=0.0, description="Gradient reversal: the camera loss's gradient is multiplied by -grl_scale.")
    reduction: int = Field(16, ge=1, description="Channel-attention MLP reduction ratio (CBAM).")
    spatial_kernel: int = Field(7, ge=1, le=15, description="Spatial-attention conv kernel (CBAM: 7); odd.")

    @model_validator(mode="after")
    def _kernel_is_odd(self) -> "APRAConfig":
        if self.spatial_kernel % 2 == 0:
            raise ValueError(f"spatial_kernel must be odd, got {self.spatial_kernel}")
        return self


@register_insert_section("dranet")
class DRANetConfig(InsertSection):
    """DRANet (Liu et al.): reverse channel (RCAM) and spatial (RSAM) attention generating hard
    examples in feature space, inserted after one backbone stage.

    On iff ``rcam`` or ``rsam``. ``alpha_c`` only matters with RCAM on and ``alpha_s`` only with
    RSAM on: each resets to its default while its module is off.
    """

    SWITCHES: ClassVar[tuple[str, ...]] = ("rcam", "rsam")
    enabled: ClassVar[bool] = False  # the switches are ``rcam`` and ``rsam``
    PLACEMENT: ClassVar[str] = "stage"
    LOSS_WEIGHTS: ClassVar[dict[str, str]] = {"loss_hard": "hard_weight"}
    LABEL: ClassVar[str] = "DRANet"

    rcam: bool = Field(False, description="Reverse channel attention: hard example C = A * (1 - m)^alpha_c.")
    rsam: bool = Field(False, description="Reverse spatial attention: hard example D = B * (1 - H)^alpha_s.")
    alpha_c: float = Field(1.0, ge=0.0, description="Exponent of the reversed channel map (0: C = A).")
    alpha_s: float = Field(1.0, ge=0.0, description="Exponent of the reversed spatial map (0: D = B).")
    stage: StageIndex = Field(3, description="feature_info index to insert DRANet after (ResNet: 3 = layer3).")
    reduction: int = Field(16, ge=1, description="Reduction ratio of the RCAM MLP and the RSAM 3x3 conv.")
    hard_weight: float = Field(1.0, ge=0.0, description="Weight of the ID loss on the hard examples.")

    def is_active(self) -> bool:
        return self.rcam or self.rsam

    @classmethod
    def placed_at(cls, stage: int) -> "DRANetConfig":
        return cls(rcam=True, rsam=True, stage=stage)

    @model_validator(mode="after")
    def _reset_exponent_of_an_off_module(self) -> "DRANetConfig":
        fields = type(self).model_fields
        if not self.rcam:
            object.__setattr__(self, "alpha_c", fields["alpha_c"].get_default())
        if not self.rsam:
            object.__setattr__(self, "alpha_s", fields["alpha_s"].get_default())
        return self


class ModelConfig(Section):
    """A timm backbone with a ReID head (pooling, neck, identity classifier) and optional
    attention modules inserted after backbone stages.

    The inserted modules of the first schema (``apra``, ``dranet``) are fields, always written
    out; every section registered since (a plugin's) is validated by ``_registered_sections``
    and written out only while it is on, so a config that does not use it keeps its canonical
    JSON and hash.
    """

    model_config = ConfigDict(extra="allow", frozen=True)  # extras: registered sections only

    backbone: str = Field(
        "resnet10t",
        description="Any timm model name with feature stages (small default for CPUs), or the "
        "Robust-ReID network: robust_reid_1x (2.9M params) / robust_reid_2x ('deeper & wider', 6.4M); "
        "hacnn is the original HA-CNN.",
    )
    pretrained: bool | str | None = Field(
        None,
        description="ImageNet weights through timm's own loading: a pinned timm tag "
        "('resnet50.tv_in1k', downloaded once into the Hugging Face cache), or true for the pinned "
        "tag of the backbone (PINNED_WEIGHTS); resolved to the tag at validation, so the tag is "
        "part of the trial's identity. false/null: no download (pretrained_path or random init); "
        "resolves to null, so the stored column is a string or null.",
    )
    pretrained_path: str | None = Field(
        None, description="Local weights file for the backbone; its content hash joins the config (pretrained_sha256)."
    )
    pretrained_sha256: str | None = Field(
        None,
        description="SHA-256 of pretrained_path's bytes, filled in at validation when the file is "
        "readable (the weights' identity is part of the trial's); a given value must match the file.",
    )
    last_stride: int | None = Field(
        None,
        ge=1,
        le=2,
        description="Stride of the backbone's last stage (Bag of Tricks section 3.3: 1 doubles the "
        "final feature map, no dilation); null keeps the backbone's own (2 for ResNets).",
    )
    pooling: Literal["avg", "gem"] = "avg"
    neck: Literal["bnneck", "l2norm", "none"] = Field(
        "bnneck",
        description="bnneck: BatchNorm between embedding and classifier (Bag of Tricks); "
        "l2norm: L2-normalised embedding (Robust-ReID); none: raw pooled features.",
    )
    classifier_bias: bool = False
    shuffle_blocks: bool = Field(
        True,
        description="robust_reid_* backbones only: ShuffleNet-v2 blocks (Robust-ReID section 3.2); "
        "false uses the original HA-CNN inception blocks. Reset to true for other backbones.",
    )
    apra: APRAConfig = APRAConfig()
    dranet: DRANetConfig = DRANetConfig()

    @model_validator(mode="after")
    def _shuffle_blocks_only_for_robust_reid(self) -> "ModelConfig":
        if self.backbone not in ROBUST_REID_BACKBONES and not self.shuffle_blocks:
            object.__setattr__(self, "shuffle_blocks", True)  # conditional axis: no effect here
        return self

    @model_validator(mode="after")
    def _resolve_weights_identity(self) -> "ModelConfig":
        if self.pretrained is False:
            object.__setattr__(self, "pretrained", None)
        elif self.pretrained is True:
            tag = PINNED_WEIGHTS.get(self.backbone)
            if tag is None:
                raise ValueError(
                    f"pretrained: true has no pinned weight tag for backbone '{self.backbone}'; "
                    f"name one, e.g. pretrained: {self.backbone}.<tag> (pinned: {', '.join(sorted(PINNED_WEIGHTS))})"
                )
            object.__setattr__(self, "pretrained", tag)
        elif isinstance(self.pretrained, str):
            if not self.pretrained.startswith(self.backbone + ".") or self.pretrained == self.backbone + ".":
                raise ValueError(
                    f"pretrained: '{self.pretrained}' must be a weight tag of the backbone, "
                    f"'{self.backbone}.<tag>' (e.g. {PINNED_WEIGHTS.get(self.backbone, self.backbone + '.tv_in1k')})"
                )
        if self.pretrained and self.pretrained_path:
            raise ValueError("give either pretrained (a timm weight tag) or pretrained_path (a local file), not both")
        if not self.pretrained_path:
            object.__setattr__(self, "pretrained_sha256", None)
        else:
            digest = file_sha256(self.pretrained_path)
            if digest is not None and self.pretrained_sha256 not in (None, digest):
                raise ValueError(
                    f"pretrained_sha256 {self.pretrained_sha256} does not match {self.pretrained_path} "
                    f"(sha256 {digest}): the file changed since the study was planned"
                )
            if digest is not None:
                object.__setattr__(self, "pretrained_sha256", digest)
        return self

    @model_validator(mode="wrap")
    @classmethod
    def _registered_sections(cls, data: Any, handler: Any) -> "ModelConfig":
        return validate_registered_sections(cls, data, handler, INSERT_SECTIONS)

    def inserts(self) -> dict[str, InsertSection]:
        """Every registered inserted module's section, on or off, in registration order."""
        return registered_sections(self, INSERT_SECTIONS)

    def active_inserts(self) -> dict[str, InsertSection]:
        """The sections of the inserted modules that are on."""
        return {name: section for name, section in self.inserts().items() if section.is_active()}


class TripletConfig(Section):
    """Metric-learning loss on the embeddings (Robust-ReID eqs. 3-5).

    ``batch_hard``: hardest positive and negative per anchor (eq. 3); ``batch_soft``: softmax-
    weighted positives and negatives (eq. 4). ``soft_margin`` replaces ``[m + .]_+`` with
    ``softplus(.)`` (eq. 5), so ``margin`` is unused and resets to its default. With
    ``kind: none`` every other field resets.
    """

    kind: Literal["batch_hard", "batch_soft", "batch_all", "none"] = Field(
        "batch_hard", description="batch_all: every valid triplet of the batch, eq. 2 (Schroff et al.'s original loss)."
    )
    margin: float = Field(0.3, ge=0.0)
    soft_margin: bool = False
    weight: float = Field(1.0, ge=0.0)

    @model_validator(mode="after")
    def _reset_unused_parameters(self) -> "TripletConfig":
        fields = type(self).model_fields
        unused = ("margin", "soft_margin", "weight") if self.kind == "none" else ("margin",) if self.soft_margin else ()
        for name in unused:
            object.__setattr__(self, name, fields[name].get_default())
        return self


class CenterConfig(Section):
    """Center loss (Wen et al. 2016, eq. 2) as Bag of Tricks uses it (Luo et al., section 3.6):
    ``weight * L_C`` on the pre-BNNeck feature, the centers trained by their own SGD (``lr``,
    BoT: 0.5). ``weight: 0`` (the default) is off, and ``lr`` then resets."""

    weight: float = Field(0.0, ge=0.0, description="beta of L = L_id + L_tri + beta * L_C (Bag of Tricks: 0.0005); 0 is off.")
    lr: float = Field(0.5, gt=0.0, description="Learning rate of the centers' own SGD optimizer (Bag of Tricks: 0.5).")

    @model_validator(mode="after")
    def _reset_lr_when_off(self) -> "CenterConfig":
        if self.weight == 0:
            object.__setattr__(self, "lr", type(self).model_fields["lr"].get_default())
        return self


#: Decorator factory registering a :class:`LossSection` subclass as ``loss.<name>``.
register_loss_section = section_registrar(LOSS_SECTIONS, LossSection, "loss", lambda: globals().get("LossConfig"))


class LossConfig(Section):
    """``L = id_weight * L_id + triplet.weight * L_tri + center.weight * L_C`` (Bag of Tricks
    baseline), plus ``model.apra.lam * L_cam`` with APRA and ``model.dranet.hard_weight *
    L_id(hard)`` with DRANet, plus ``loss.<name>.weight * L_<name>`` for each registered loss
    term that is on."""

    model_config = ConfigDict(extra="allow", frozen=True)  # extras: registered sections only

    @model_validator(mode="wrap")
    @classmethod
    def _registered_sections(cls, data: Any, handler: Any) -> "LossConfig":
        return validate_registered_sections(cls, data, handler, LOSS_SECTIONS)

    def active_terms(self) -> dict[str, LossSection]:
        """The registered loss terms that are on, in registration order."""
        return {name: section for name, section in registered_sections(self, LOSS_SECTIONS).items() if section.is_active()}

    id_weight: float = Field(1.0, ge=0.0)
    label_smoothing: float = Field(0.1, ge=0.0, lt=1.0)
    triplet: TripletConfig = TripletConfig()
    center: CenterConfig = CenterConfig()


class RandomErasingConfig(Section):
    """Random erasing (Zhong et al. 2017); Robust-ReID uses p=0.5, area 0.02-0.4, ratio 0.3-3.3."""

    p: float = Field(0.0, ge=0.0, le=1.0)
    area: tuple[float, float] = (0.02, 0.4)
    ratio: tuple[float, float] = (0.3, 3.3)

    @model_validator(mode="after")
    def _ranges_are_ordered(self) -> "RandomErasingConfig":
        for name in ("area", "ratio"):
            low, high = getattr(self, name)
            if not 0 < low <= high:
                raise ValueError(f"{name}: 0 < low <= high must hold, got ({low}, {high})")
        if self.area[1] > 1.0:
            raise ValueError(f"area: the erased fraction cannot exceed 1, got {self.area[1]}")
        return self


class ImplicitAttentionConfig(ToggleSection):
    """Implicit-attention augmentation (Yaghoubi et al., implicit_attention_augmentation.md).

    With probability ``p`` a training image i becomes ``S(i->j) = ROI_i U UR_j`` (eq. 1): the
    ROI pixels of i pasted onto the unwanted region of a compatible partner j (j's own ROI,
    dilated ``dilation`` x ``dilation``, removed by Telea inpainting), keeping i's label. The
    constraints of section 3.2 pick the partners (all thresholds configurable):

    - size: ``min(A_i, A_j) / max(A_i, A_j) >= area_ratio`` with ``A`` the ROI mask area. The
      paper writes "< T_s" (T_s = 0.8), which would pair only persons of *different* sizes and
      contradicts its own aim ("avoid combining images with significant differences");
      we read it as the similarity test it means, so 0.8 keeps persons within 20% in area.
    - shape: ``IoU(M_i, M_j) >= mask_iou`` on the pixel-aligned masks (the composite is pixel
      aligned). The paper's "lower than T_i" reads backwards the same way; we keep similar shapes.
    - viewpoint: ``same_viewpoint`` pairs only images with the same viewpoint label.
    - smoothness: the ``dilation`` kernel and Telea ``inpaint_radius`` (pixels).

    ``roi: upper_body`` keeps the top ``upper_fraction`` of the person mask's height as the ROI
    (head and torso), so j's lower body stays; ``full_body`` uses the whole mask. At most
    ``max_partners`` partners are kept per image (a fixed random subset of the compatible ones).
    Everything but ``p`` is precomputed once per dataset and cached beside it.
    """

    p: float = Field(0.5, ge=0.0, le=1.0, description="Probability that a sample is composited (paper: best 0.3-0.5).")
    roi: Literal["full_body", "upper_body"] = "full_body"
    upper_fraction: float = Field(0.5, gt=0.0, le=1.0, description="upper_body only: top fraction of the mask height kept.")
    area_ratio: float = Field(0.8, ge=0.0, le=1.0, description="T_s: minimum min/max ratio of the two ROI areas.")
    mask_iou: float = Field(0.5, ge=0.0, le=1.0, description="Minimum IoU of the two ROI masks.")
    same_viewpoint: bool = Field(False, description="Pair only equal viewpoint labels (<root>/viewpoints.txt).")
    dilation: int = Field(7, ge=1, le=63, description="Side of the square dilation kernel applied before inpainting.")
    inpaint_radius: float = Field(3.0, gt=0.0, le=32.0, description="cv2.inpaint (Telea) neighbourhood radius in pixels.")
    max_partners: int = Field(256, ge=1, le=65536, description="Compatible partners kept per image.")

    @model_validator(mode="after")
    def _upper_fraction_only_for_upper_body(self) -> "ImplicitAttentionConfig":
        if self.roi != "upper_body":
            object.__setattr__(self, "upper_fraction", type(self).model_fields["upper_fraction"].get_default())
        return self


#: Decorator factory registering an :class:`AugmentSection` subclass as ``augment.<name>``.
register_augment_section = section_registrar(AUGMENT_SECTIONS, AugmentSection, "augment", lambda: globals().get("AugmentConfig"))


class AugmentConfig(Section):
    """Training-time augmentation, applied batch-wise on the trial's device. Registered
    augmentations (plugins) add their sections ``augment.<name>``, applied after these."""

    model_config = ConfigDict(extra="allow", frozen=True)  # extras: registered sections only

    flip: bool = True
    pad: int = Field(10, ge=0, description="Zero padding (px) before a random crop back to size.")
    random_erasing: RandomErasingConfig = RandomErasingConfig()
    implicit_attention: ImplicitAttentionConfig = ImplicitAttentionConfig()

    @model_validator(mode="wrap")
    @classmethod
    def _registered_sections(cls, data: Any, handler: Any) -> "AugmentConfig":
        return validate_registered_sections(cls, data, handler, AUGMENT_SECTIONS)

    def active_augmentations(self) -> dict[str, AugmentSection]:
        """The registered augmentations that are on, in registration order."""
        return {name: section for name, section in registered_sections(self, AUGMENT_SECTIONS).items() if section.is_active()}


class SWAConfig(ToggleSection):
    """SWA / SWAG after the main schedule (Robust-ReID section 3.1 "SWAG", section 4: 15 cycles
    of 35 epochs, decay 0.7, continued after the 350 step-schedule epochs).

    ``cycles * cycle_epochs`` extra epochs run after ``train.epochs``. Within a cycle the LR
    follows a cosine from the cycle's peak towards 0; the peak starts at ``lr`` (default
    ``train.lr``) and is multiplied by ``decay`` after each cycle. The weights at the end of each
    cycle are averaged (SWA); with ``swag`` the diagonal second moment is kept too and the final
    embeddings are the average over ``swag_samples`` weight sets drawn from
    ``N(mean, swag_scale * diag_var)`` (Maddox et al.). BatchNorm statistics are recomputed on
    the training images after averaging and for every sample.
    """

    cycles: int = Field(15, ge=1)
    cycle_epochs: int = Field(35, ge=1)
    decay: float = Field(0.7, gt=0.0, le=1.0, description="Peak-LR factor applied after each cycle.")
    lr: float | None = Field(None, gt=0.0, description="Peak LR of the first cycle (default: train.lr).")
    average: bool = Field(
        True,
        description="false: the cyclic schedule alone, evaluating the last SGD weights (Robust-ReID "
        "Table 3's '+LR scheme'); swag then resets to false.",
    )
    swag: bool = False
    swag_samples: int = Field(10, ge=1, description="SWAG: weight sets in the Bayesian model average.")
    swag_scale: float = Field(0.5, gt=0.0, description="SWAG: variance scale of the sampled weights.")

    @model_validator(mode="after")
    def _reset_swag_parameters_without_swag(self) -> "SWAConfig":
        if not self.average:
            object.__setattr__(self, "swag", False)  # nothing is averaged: no SWAG either
        if not self.swag:
            fields = type(self).model_fields
            for name in ("swag_samples", "swag_scale"):
                object.__setattr__(self, name, fields[name].get_default())
        return self


class TrainConfig(Section):
    """Optimisation: P x K batches, warm-up then step decay, then optionally SWA/SWAG cycles."""

    epochs: int = Field(30, ge=1)
    ids_per_batch: int = Field(16, ge=2, description="P: identities per batch.")
    images_per_id: int = Field(4, ge=2, description="K: images per identity in a batch.")
    optimizer: Literal["adam", "sgd"] = "adam"
    lr: float = Field(3.5e-4, gt=0.0)
    weight_decay: float = Field(5e-4, ge=0.0)
    warmup_epochs: int = Field(5, ge=0)
    warmup_factor: float = Field(0.1, gt=0.0, le=1.0, description="LR starts at lr * factor.")
    lr_steps: tuple[int, ...] = Field((20, 25), description="Epochs after which LR is decayed.")
    lr_gamma: float = Field(0.1, gt=0.0, le=1.0)
    eval_every: int = Field(10, ge=1, description="Evaluate every N epochs and after the last.")
    swa: SWAConfig = SWAConfig()
    init_from: str | None = Field(
        None,
        pattern=r"^[0-9a-f]{16}$",
        description="Config hash of the parent trial whose final model this trial continues "
        "(set by a variant's 'continues', never by hand; Robust-ReID Table 3's '+LR scheme' and "
        "'+SWAG' continue the converged '-' model). The parent's checkpoint is loaded strictly, "
        "the main phase is skipped (train.epochs is then the parent's last epoch) and only the "
        "train.swa cycles run, numbered on from train.epochs. null: train from the start.",
    )

    @property
    def total_epochs(self) -> int:
        """The number of the trial's last epoch: ``epochs`` plus the SWA/SWAG cycles that follow
        them. Also the epochs it runs, except when it continues a parent (``init_from``): then
        only the cycles run, numbered on from ``epochs``."""
        return self.epochs + (self.swa.cycles * self.swa.cycle_epochs if self.swa.enabled else 0)

    @property
    def first_epoch(self) -> int:
        """The first epoch the trial runs (1-based): 1, or ``epochs + 1`` when it continues a
        parent's model (its main phase is the parent's)."""
        return self.epochs + 1 if self.init_from else 1

    @model_validator(mode="after")
    def _steps_increase(self) -> "TrainConfig":
        if list(self.lr_steps) != sorted(set(self.lr_steps)):
            raise ValueError(f"lr_steps must be strictly increasing, got {list(self.lr_steps)}")
        return self

    @model_validator(mode="after")
    def _continuation_has_cycles(self) -> "TrainConfig":
        if self.init_from and not self.swa.enabled:
            raise ValueError("init_from continues a parent's model with the train.swa cycles; switch train.swa on")
        return self


def schedule_problem(train: TrainConfig) -> str | None:
    """Why a schedule cannot do what it says (a decay step or warm-up past the last epoch), or None.

    A check of the spec, not a validator of the config: configs stored before it existed (with
    steps that never took effect) must still load with their identity. Only values the user
    changed count: the defaults (steps 20, 25) suit the default 30 epochs, and a short smoke run
    with them simply never decays.
    """
    fields = type(train).model_fields
    if train.lr_steps != fields["lr_steps"].get_default() and any(step >= train.epochs for step in train.lr_steps):
        return (
            f"lr_steps {list(train.lr_steps)} must lie below epochs ({train.epochs}): a step at or after the "
            "last epoch never takes effect; lower the steps or raise epochs"
        )
    if train.warmup_epochs != fields["warmup_epochs"].get_default() and train.warmup_epochs > train.epochs:
        return f"warmup_epochs ({train.warmup_epochs}) exceeds epochs ({train.epochs}); warm-up must fit in training"
    return None


class EvalTarget(DatasetConfig):
    """One more test set every trial is evaluated on after training (``eval.targets``), with
    the same model and protocol as its own (``eval.feature``, ``distance``, ``max_rank``):
    direct transfer, as torchreid's ``targets`` and fast-reid's test sets do it (train on
    Market-1501, test on DukeMTMC-reID: rank-1 in the 30s to 60s).

    The keys of ``dataset`` plus a ``label`` naming the target's metrics (``<label>/mAP``, see
    :mod:`search_spaces.metrics`). Only the query and gallery splits are read. ``height`` and
    ``width`` left unset (null) follow the trial's ``dataset`` size, so an axis on the size
    moves the target with it.
    """

    label: str = Field(description="Short name of the target's metrics (duke -> duke/mAP): a letter, then letters, digits, '_', '-'.")
    name: str = Field(description="The dataset reader, as dataset.name (a target names its dataset).")
    height: int | None = Field(None, ge=16, le=1024, description="Resize height; null: the trial's dataset.height.")
    width: int | None = Field(None, ge=8, le=1024, description="Resize width; null: the trial's dataset.width.")

    @field_validator("label")
    @classmethod
    def _usable_label(cls, label: str) -> str:
        problem = target_label_problem(label)
        if problem:
            raise ValueError(problem)
        return label

    def dataset_for(self, training: DatasetConfig) -> DatasetConfig:
        """The target as a dataset section, its size defaulting to the trial's ``training`` one."""
        values = self.model_dump(exclude={"label"})
        values["height"] = self.height or training.height
        values["width"] = self.width or training.width
        return DatasetConfig(**values)


class EvalConfig(Section):
    """How query and gallery embeddings are compared, and on which further test sets."""

    distance: Literal["euclidean", "cosine"] = Field(
        "euclidean",
        description="cosine ranks as the euclidean distance of L2-normalised features does "
        "(|a - b|^2 = 2 - 2 cos for unit vectors): Bag of Tricks' normalised test feature.",
    )
    feature: Literal["post_neck", "pre_neck"] = Field(
        "post_neck",
        description="Retrieval feature: after the neck (BNNeck's f_i, Bag of Tricks section 3.4) or the pooled feature before it (f_t).",
    )
    max_rank: int = Field(50, ge=1, description="Length of the CMC curve; rank-k for k in 1, 5, 10, 20, 50 up to it is reported.")
    targets: tuple[EvalTarget, ...] = Field(
        (),
        description="Further datasets evaluated after training with the same model and protocol (cross-dataset "
        "evaluation); each reports its metrics as <label>/<metric>. Empty: the trial's own test set only.",
    )

    @field_validator("targets")
    @classmethod
    def _unique_labels(cls, targets: tuple[EvalTarget, ...]) -> tuple[EvalTarget, ...]:
        seen: set[str] = set()
        for target in targets:
            if target.label.lower() in seen:
                raise ValueError(f"target label '{target.label}' is used twice; each target needs its own label")
            seen.add(target.label.lower())
        return targets


class Recipe(Section):
    """A training recipe: the spec's ``baseline:`` block, i.e. a trial config without its seed."""

    dataset: DatasetConfig = DatasetConfig()
    model: ModelConfig = ModelConfig()
    loss: LossConfig = LossConfig()
    augment: AugmentConfig = AugmentConfig()
    train: TrainConfig = TrainConfig()
    eval: EvalConfig = EvalConfig()


class TrialConfig(Recipe):
    """Everything that determines one trial's result. Hash it with ``config_hash``.

    ``plugins`` is the identity of the plugins whose components the trial uses (plugin name ->
    ``sha256:<digest>`` of a file plugin's sources, or ``<package>==<version>`` of an installed
    one; see :mod:`search_spaces.plugins`). It is computed on validation, never chosen: a
    record passed in must match the plugins loaded now (else the plugin changed since the
    trial was planned). Empty -- and then left out of the dump, so the hash of a trial that uses
    no plugin is unchanged -- when the trial uses built-in components only.
    """

    seed: int = Field(0, ge=0)
    plugins: dict[str, str] = Field(default_factory=dict, description="Identity of the plugins the trial uses (computed).")

    @model_validator(mode="after")
    def _record_plugins(self) -> "TrialConfig":
        record = plugin_record(self)
        if self.plugins and self.plugins != record:
            raise ValueError(
                f"plugins: the trial was planned with {self.plugins} but the plugins loaded now are {record or 'none'}; "
                "the plugin source changed (relaunch the study to plan it again)"
            )
        object.__setattr__(self, "plugins", record)
        return self

    @model_serializer(mode="wrap")
    def _no_empty_plugin_record(self, handler: Any) -> dict[str, Any]:
        data = handler(self)
        if not data.get("plugins"):
            data.pop("plugins", None)
        return data


def field_paths(model: type[BaseModel] = TrialConfig, prefix: str = "") -> list[str]:
    """Every leaf dotted path of a config tree, e.g. ``loss.triplet.margin``."""
    paths: list[str] = []
    for name, annotation in section_fields(model).items():
        dotted = f"{prefix}{name}"
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            paths.extend(field_paths(annotation, dotted + "."))
        else:
            paths.append(dotted)
    return paths


def section_fields(model: type[BaseModel]) -> dict[str, Any]:
    """Field name -> annotation of a config section, including the registered insert sections
    of ``model`` (``ModelConfig``) that are not declared fields."""
    fields = {name: info.annotation for name, info in model.model_fields.items()}
    if model is ModelConfig:
        fields.update({name: section for name, section in INSERT_SECTIONS.items() if name not in fields})
    if model is AugmentConfig:
        fields.update(AUGMENT_SECTIONS.items())
    if model is LossConfig:
        fields.update(LOSS_SECTIONS.items())
    if model is TrialConfig:
        fields.pop("plugins", None)  # computed, not a setting
    return fields
