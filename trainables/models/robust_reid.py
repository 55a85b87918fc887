"""HA-CNN and Robust-ReID as timm models: ``hacnn``, ``robust_reid_1x``, ``robust_reid_2x``.

Robust-ReID (Lawen et al., "Attention network robustification for person ReID", Table 1) is
HA-CNN (Li et al. 2018) with ShuffleNet-v2 blocks, GeM pooling and separate global / local
embedding sizes, for 160x64 inputs:

========  ======  =====================  ======================  ===========  ==========
model     stem    stage widths           Shuffle-A repeats       FC global    FC local
========  ======  =====================  ======================  ===========  ==========
1x        32      128, 256, 384          7, 10, 7                512          312
2x        36      240, 320, 480          8, 11, 8                960          700
hacnn     32      128, 256, 384          (inception blocks)      512          512
========  ======  =====================  ======================  ===========  ==========

Global branch: 3x3 stride-2 conv stem, then per stage ``Shuffle-B (stride 1, channel
expansion) -> Shuffle-A x n -> Shuffle-B (stride 2)`` (``shuffle_blocks=False``: HA-CNN's
``Inception-A -> Inception-B``), each followed by a harmonious attention block whose soft map
multiplies the stage output. Local branch: at stage i the hard attention picks four horizontal
stripes of the previous global output (the stem's for i = 1) by a spatial transformer,
resized to 24x28, 12x14, 6x7 (Table 1); each goes through a stride-2 Shuffle-B (HA-CNN:
Inception-B) shared by the four stripes, added to the stripe's previous local output. The
global map (10x4) and the four local maps (3x4) are pooled (GeM or average), then
``Linear -> BN -> ReLU`` give the global and local embeddings, concatenated into the
descriptor. The stripe sizes do not depend on the input size, so other sizes work too.

Parameter counts, by the one rule of :mod:`trainables.models.size` (the ReID model without its
identity classifier; no parameter depends on the 160x64 input size): ``robust_reid_1x``
2.34M vs Table 1's 2.9M (-19%), ``robust_reid_2x`` 4.81M vs 6.4M (-25%), ``hacnn`` 2.92M vs
HA-CNN's 2.7M (+8%). The reading of Table 1 that causes the gaps:

- Robust-ReID: Table 1's "# of Params." row counts the training model *with* its identity
  classifier for Market-1501's 751 identities (it has no classifier row, but only then do the
  totals land: 2.96M, +2.2%, and 6.06M, -5.3%; the classifier is (512 + 312) x 751 = 0.62M
  for 1x, (960 + 700) x 751 = 1.25M for 2x). Our rule leaves the classifier out, so the
  networks come out 0.56M and 1.59M below the printed totals.
- HA-CNN: its widths here are read off Table 1's 1x column (stem 32, stages 128/256/384, FC
  512 global and 512 local, Li et al.'s sizes), with Li et al.'s inception blocks; Table 1
  does not give the inception blocks' branch widths, and the ones read from Li et al.'s
  description give 0.22M (+8%) more than their 2.7M (which, like ours, has no classifier).

Multiply-accumulates per image: 0.61G and 1.46G (paper: 0.72B and 1.68B FLOPs). The tests
``tests/trainables/test_model_sizes.py`` pin these counts and gaps.

timm contract: ``feature_info`` lists the stem and the three stage outputs (after the soft
attention) as identity taps ``stage_outputs.0..3``, so modules can be inserted after them
(:mod:`trainables.models.surgery`); ``forward_features`` returns the global map and the four
local maps; ``forward_head(features, pre_logits=True)`` returns the (B, global + local)
descriptor; ``embedding_dims`` gives its two parts (the L2 neck normalises each separately,
Robust-ReID section 3.1). Pooling is chosen by ``global_pool`` ('avg' or 'gem') or
``reset_classifier``. No weights exist for these models: ``pretrained=True`` is an error.
"""

from __future__ import annotations

from typing import Any

import torch
from timm.models import register_model
from torch import nn

from trainables.models.hacnn_blocks import (
    ConvBlock,
    HarmAttn,
    InceptionA,
    InceptionB,
    ShuffleA,
    ShuffleB,
    crop_regions,
)
from trainables.models.pooling import build_pooling

# Sizes (H, W) the four stripes are sampled at before local stages 1..3 (Table 1).
LOCAL_SIZES = ((24, 28), (12, 14), (6, 7))


def _match_batch(t: torch.Tensor, n: int) -> torch.Tensor:
    """Repeat ``t`` along dim 0 to ``n`` rows: a module inserted in the global branch may have
    appended hard examples (DRANet) after the local branch took its input."""
    if t.shape[0] == n:
        return t
    if n % t.shape[0]:
        raise ValueError(f"cannot match a batch of {t.shape[0]} to {n}")
    return t.repeat(n // t.shape[0], *([1] * (t.dim() - 1)))


class HACNN(nn.Module):
    """HA-CNN / Robust-ReID network; see the module docstring.

    Args:
        stem: stem channels.
        widths: output channels of the three stages.
        repeats: Shuffle-A blocks per stage (ignored with inception blocks).
        shuffle_blocks: ShuffleNet-v2 blocks (Robust-ReID) or HA-CNN inception blocks.
        global_dim, local_dim: embedding sizes of the two branches.
        global_pool: 'avg' or 'gem' ('' means 'avg').
        num_classes: identity classifier on the descriptor (0: none).
    """

    def __init__(
        self,
        *,
        stem: int = 32,
        widths: tuple[int, int, int] = (128, 256, 384),
        repeats: tuple[int, int, int] = (7, 10, 7),
        shuffle_blocks: bool = True,
        global_dim: int = 512,
        local_dim: int = 312,
        global_pool: str = "avg",
        num_classes: int = 0,
        in_chans: int = 3,
    ):
        super().__init__()
        self.shuffle_blocks = shuffle_blocks
        self.conv = ConvBlock(in_chans, stem, 3, stride=2, padding=1)
        inputs = (stem, *widths[:2])
        self.stages = nn.ModuleList(self._global_stage(c_in, c_out, n) for c_in, c_out, n in zip(inputs, widths, repeats))
        self.attention = nn.ModuleList(HarmAttn(c) for c in widths)
        self.local_stages = nn.ModuleList(
            (ShuffleB(c_in, c_out, stride=2) if shuffle_blocks else InceptionB(c_in, c_out)) for c_in, c_out in zip(inputs, widths)
        )
        # Identity taps: the stem and stage outputs that feature_info names (surgery points).
        self.stage_outputs = nn.ModuleList(nn.Identity() for _ in range(4))
        self.feature_info = [
            dict(num_chs=c, reduction=r, module=f"stage_outputs.{i}") for i, (c, r) in enumerate(zip((stem, *widths), (2, 4, 8, 16)))
        ]
        self.fc_global = nn.Sequential(nn.Linear(widths[2], global_dim), nn.BatchNorm1d(global_dim), nn.ReLU(inplace=True))
        self.fc_local = nn.Sequential(nn.Linear(widths[2] * 4, local_dim), nn.BatchNorm1d(local_dim), nn.ReLU(inplace=True))
        self.embedding_dims = (global_dim, local_dim)
        self.num_features = self.head_hidden_size = global_dim + local_dim
        self.global_pool = ""
        self.reset_classifier(num_classes, global_pool)

    def _global_stage(self, c_in: int, c_out: int, repeats: int) -> nn.Sequential:
        if not self.shuffle_blocks:
            return nn.Sequential(InceptionA(c_in, c_out), InceptionB(c_out, c_out))
        blocks: list[nn.Module] = [ShuffleB(c_in, c_out, stride=1)]
        blocks += [ShuffleA(c_out) for _ in range(repeats)]
        blocks.append(ShuffleB(c_out, c_out, stride=2))
        return nn.Sequential(*blocks)

    # -- timm classifier contract -------------------------------------------------------------
    def get_classifier(self) -> nn.Module:
        return self.classifier

    def reset_classifier(self, num_classes: int, global_pool: str | None = None) -> None:
        if global_pool is not None:
            self.global_pool = global_pool or "avg"
            self.pool_global = build_pooling(self.global_pool)
            self.pool_local = build_pooling(self.global_pool)
        self.num_classes = num_classes
        self.classifier = nn.Linear(self.num_features, num_classes) if num_classes > 0 else nn.Identity()

    # -- forward -----------------------------------------------------------------------------
    def forward_features(self, x: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """``(global map (B, C3, H/16, W/16), [four local maps (B, C3, 3, 4)])``."""
        x = self.stage_outputs[0](self.conv(x))
        local: list[torch.Tensor] | None = None
        for i, (stage, attention, local_stage) in enumerate(zip(self.stages, self.attention, self.local_stages)):
            g = stage(x)
            soft, theta = attention(g)
            regions = crop_regions(x, _match_batch(theta, x.shape[0]), LOCAL_SIZES[i])
            if local is not None:
                regions = [r + _match_batch(prev, r.shape[0]) for r, prev in zip(regions, local)]
            local = [local_stage(r) for r in regions]
            x = self.stage_outputs[i + 1](g * soft)
        assert local is not None  # three stages always run
        return x, local

    def forward_head(self, features: tuple[torch.Tensor, list[torch.Tensor]], pre_logits: bool = False) -> torch.Tensor:
        global_map, local_maps = features
        g = self.fc_global(self.pool_global(global_map))
        pooled_local = torch.cat([self.pool_local(m) for m in local_maps], dim=1)
        l = _match_batch(self.fc_local(pooled_local), g.shape[0])
        descriptor = torch.cat([g, l], dim=1)
        return descriptor if pre_logits else self.classifier(descriptor)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_head(self.forward_features(x))


def _create(name: str, pretrained: bool, kwargs: dict[str, Any], **defaults: Any) -> HACNN:
    if pretrained:
        raise ValueError(f"no pretrained weights exist for {name}; train from scratch or load a local file")
    for key in ("pretrained_cfg", "pretrained_cfg_overlay", "cache_dir", "drop_rate", "drop_path_rate"):
        kwargs.pop(key, None)
    model = HACNN(**{**defaults, **kwargs})
    model.pretrained_cfg = {"architecture": name, "input_size": (3, 160, 64)}
    return model


@register_model
def hacnn(pretrained: bool = False, **kwargs: Any) -> HACNN:
    """The original HA-CNN (Li et al. 2018): inception blocks, 512-d global and local embeddings."""
    kwargs.pop("shuffle_blocks", None)
    return _create("hacnn", pretrained, kwargs, stem=32, widths=(128, 256, 384), shuffle_blocks=False, global_dim=512, local_dim=512)


@register_model
def robust_reid_1x(pretrained: bool = False, **kwargs: Any) -> HACNN:
    """Robust-ReID 1x (Table 1): 2.9M parameters in the paper."""
    return _create("robust_reid_1x", pretrained, kwargs, stem=32, widths=(128, 256, 384), repeats=(7, 10, 7), global_dim=512, local_dim=312)


@register_model
def robust_reid_2x(pretrained: bool = False, **kwargs: Any) -> HACNN:
    """Robust-ReID 2x, "deeper & wider" (Table 1): 6.4M parameters in the paper."""
    return _create("robust_reid_2x", pretrained, kwargs, stem=36, widths=(240, 320, 480), repeats=(8, 11, 8), global_dim=960, local_dim=700)
