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

from typing import ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator


class Section(BaseModel):
    """Base of every config section: unknown keys are errors, instances are immutable."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class ToggleSection(Section):
    """An optional module that a study switches on and off.

    Conditional axes: a module's parameters exist only where the module is on. When
    :meth:`is_active` is false, every field other than the switches in ``SWITCHES`` is reset
    to its default after validation, so two configs that differ only in the parameters of a
    switched-off module are the same config with the same hash (a grid over ``enabled`` x
    ``lam`` runs the "off" trial once, not once per ``lam``). Values are still validated first:
    a negative lambda is an error even with the module off.
    """

    SWITCHES: ClassVar[tuple[str, ...]] = ("enabled",)

    enabled: bool = False

    def is_active(self) -> bool:
        return self.enabled

    @model_validator(mode="after")
    def _reset_parameters_when_off(self) -> "ToggleSection":
        if not self.is_active():
            for name, info in type(self).model_fields.items():
                if name not in self.SWITCHES:
                    # The instance is frozen; this runs while it is being built.
                    object.__setattr__(self, name, info.get_default(call_default_factory=True))
        return self


class DatasetConfig(Section):
    """Which images a trial trains and evaluates on, and the size they are resized to."""

    name: Literal["synthetic", "market1501"] = Field(
        "synthetic",
        description="'synthetic' is the embedded default generated on first use; "
        "'market1501' reads any folder in Market-1501 layout and naming.",
    )
    root: str | None = Field(
        None,
        description="Dataset folder. Required for real datasets; for 'synthetic' it defaults "
        "to the cache folder ($REID_ORCH_CACHE or ~/.cache/reid-orchestrator).",
    )
    height: int = Field(128, ge=16, le=1024)
    width: int = Field(64, ge=8, le=1024)

    @model_validator(mode="after")
    def _real_datasets_need_a_root(self) -> "DatasetConfig":
        if self.name != "synthetic" and not self.root:
            raise ValueError(f"dataset '{self.name}' needs 'root': the folder that holds it")
        return self


class ModelConfig(Section):
    """A timm backbone with a ReID head (pooling, neck, identity classifier)."""

    backbone: str = Field("resnet10t", description="Any timm model name with feature stages (small default for CPUs).")
    pretrained_path: str | None = Field(
        None, description="Local weights file for the backbone; weights are never downloaded."
    )
    pooling: Literal["avg", "gem"] = "avg"
    neck: Literal["bnneck", "l2norm", "none"] = Field(
        "bnneck",
        description="bnneck: BatchNorm between embedding and classifier (Bag of Tricks); "
        "l2norm: L2-normalised embedding (Robust-ReID); none: raw pooled features.",
    )
    classifier_bias: bool = False


class TripletConfig(Section):
    """Metric-learning loss on the embeddings."""

    kind: Literal["batch_hard", "none"] = "batch_hard"
    margin: float = Field(0.3, ge=0.0)
    weight: float = Field(1.0, ge=0.0)


class LossConfig(Section):
    """``L = id_weight * L_id + triplet.weight * L_tri`` (Bag of Tricks baseline)."""

    id_weight: float = Field(1.0, ge=0.0)
    label_smoothing: float = Field(0.1, ge=0.0, lt=1.0)
    triplet: TripletConfig = TripletConfig()


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


class AugmentConfig(Section):
    """Training-time augmentation, applied batch-wise on the trial's device."""

    flip: bool = True
    pad: int = Field(10, ge=0, description="Zero padding (px) before a random crop back to size.")
    random_erasing: RandomErasingConfig = RandomErasingConfig()


class TrainConfig(Section):
    """Optimisation: P x K batches, warm-up then step decay."""

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

    @model_validator(mode="after")
    def _steps_increase(self) -> "TrainConfig":
        if list(self.lr_steps) != sorted(set(self.lr_steps)):
            raise ValueError(f"lr_steps must be strictly increasing, got {list(self.lr_steps)}")
        return self


class EvalConfig(Section):
    """How query and gallery embeddings are compared."""

    distance: Literal["euclidean", "cosine"] = "euclidean"
    max_rank: int = Field(50, ge=1)


class Recipe(Section):
    """A training recipe: the spec's ``baseline:`` block, i.e. a trial config without its seed."""

    dataset: DatasetConfig = DatasetConfig()
    model: ModelConfig = ModelConfig()
    loss: LossConfig = LossConfig()
    augment: AugmentConfig = AugmentConfig()
    train: TrainConfig = TrainConfig()
    eval: EvalConfig = EvalConfig()


class TrialConfig(Recipe):
    """Everything that determines one trial's result. Hash it with ``config_hash``."""

    seed: int = Field(0, ge=0)


def field_paths(model: type[BaseModel] = TrialConfig, prefix: str = "") -> list[str]:
    """Every leaf dotted path of a config tree, e.g. ``loss.triplet.margin``."""
    paths: list[str] = []
    for name, info in model.model_fields.items():
        annotation = info.annotation
        dotted = f"{prefix}{name}"
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            paths.extend(field_paths(annotation, dotted + "."))
        else:
            paths.append(dotted)
    return paths
