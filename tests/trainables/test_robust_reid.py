"""HA-CNN and Robust-ReID as timm models (Robust-ReID Table 1), and their ReID head."""

from __future__ import annotations

import pytest
import timm
import torch

from search_spaces import TrialConfig
from trainables.models import ReIDModel, feature_stages
from trainables.trial import model_kwargs

MARKET_TRAIN_IDS = 751


def test_classifier_size_follows_the_training_identities():
    """Sizes against the papers: tests/trainables/test_model_sizes.py (one counting rule)."""
    model = timm.create_model("robust_reid_1x", num_classes=MARKET_TRAIN_IDS)
    assert model.get_classifier().out_features == MARKET_TRAIN_IDS


def test_the_inception_variants_and_hacnn():
    hacnn = timm.create_model("hacnn")
    assert not hacnn.shuffle_blocks and hacnn.embedding_dims == (512, 512)
    inception_2x = timm.create_model("robust_reid_2x", shuffle_blocks=False)
    assert inception_2x.embedding_dims == (960, 700) and not inception_2x.shuffle_blocks
    with pytest.raises(ValueError, match="no pretrained weights exist for robust_reid_1x"):
        timm.create_model("robust_reid_1x", pretrained=True)


@pytest.mark.parametrize("shuffle_blocks", [True, False])
def test_features_stages_and_descriptor_shapes(shuffle_blocks):
    net = timm.create_model("robust_reid_1x", shuffle_blocks=shuffle_blocks, global_pool="gem").eval()
    stages = feature_stages(net)
    assert [(s.channels, s.reduction) for s in stages] == [(32, 2), (128, 4), (256, 8), (384, 16)]
    with torch.no_grad():
        global_map, local_maps = net.forward_features(torch.randn(2, 3, 160, 64))
        assert global_map.shape == (2, 384, 10, 4)
        assert [m.shape for m in local_maps] == [(2, 384, 3, 4)] * 4  # Table 1: 4 x (3 x 4)
        assert net.forward_head((global_map, local_maps), pre_logits=True).shape == (2, 512 + 312)


def test_shuffle_blocks_and_width_are_separate_axes():
    for tree, expected in (
        ({"model": {"backbone": "robust_reid_2x", "shuffle_blocks": False}}, {"shuffle_blocks": False}),
        ({"model": {"backbone": "robust_reid_1x"}}, {"shuffle_blocks": True}),
        ({"model": {"backbone": "resnet10t"}}, {}),
    ):
        assert model_kwargs(TrialConfig.model_validate(tree), 3)["backbone_kwargs"] == expected
    # a conditional axis: meaningless for other backbones, so it does not change their config
    assert TrialConfig.model_validate({"model": {"shuffle_blocks": False}}) == TrialConfig()


def test_reid_head_normalises_each_branch_and_pools_inside():
    model = ReIDModel(backbone="robust_reid_1x", num_classes=4, neck="l2norm", pooling="gem")
    assert model.backbone.global_pool == "gem" and model.feature_dim == 824
    out = model(torch.randn(4, 3, 64, 32))
    global_part, local_part = out.features.split([512, 312], dim=1)
    assert torch.allclose(global_part.norm(dim=1), torch.ones(4), atol=1e-5)
    assert torch.allclose(local_part.norm(dim=1), torch.ones(4), atol=1e-5)
    assert out.logits.shape == (4, 4)


@torch.no_grad()
def test_apra_and_dranet_on_the_robust_reid_stages():
    """Hard examples appended in the global branch meet the local branch's originals."""
    x = torch.randn(2, 3, 64, 32)
    for apra_stage, dranet_stage in ((3, 0), (1, 2)):
        inserts = [
            {"module": "apra", "stage": apra_stage, "kwargs": {"num_cameras": 3}},
            {"module": "dranet", "stage": dranet_stage, "kwargs": {"rcam": True, "rsam": True}},
        ]
        model = ReIDModel(backbone="robust_reid_1x", num_classes=3, inserts=inserts)
        out = model(x)
        assert out.features.shape == (2, 824) and len(out.hard_logits) == 2 and len(out.aux_logits) == 1
        assert all(h.shape == (2, 3) for h in out.hard_logits.values())
