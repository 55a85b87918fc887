"""Model surgery on timm feature stages, the insert registry, checkpoints after surgery, and
the pre-flight compatibility checks."""

from __future__ import annotations

import re

import pytest
import timm
import torch
from torch import nn

from search_spaces import TrialConfig
from trainables.compat import check_trial_config
from trainables.models import (
    INSERTS,
    InsertedModule,
    ReIDModel,
    SurgeryError,
    feature_stages,
    insert_after_stage,
    load_checkpoint,
    register_insert,
    save_checkpoint,
)
from trainables.models.registry import Registry, RegistryError
from trainables.models.surgery import AfterStage


class Doubler(nn.Module):
    def forward(self, x):
        return 2 * x


def test_stages_are_feature_info_indices_and_resnet_index_0_is_the_stem():
    net = timm.create_model("resnet10t", num_classes=0, global_pool="")
    stages = feature_stages(net)
    assert [s.module for s in stages] == ["act1", "layer1", "layer2", "layer3", "layer4"]
    assert [s.reduction for s in stages] == [2, 4, 8, 16, 32]
    assert stages[2].channels == 128


def test_insert_after_stage_is_pure_and_applies_the_module_to_the_stage_output():
    net = timm.create_model("resnet10t", num_classes=0, global_pool="").eval()
    x = torch.randn(2, 3, 64, 32)
    before = net.forward_features(x)
    doubled = insert_after_stage(net, 2, Doubler()).eval()
    assert isinstance(doubled.layer2, AfterStage) and not isinstance(net.layer2, AfterStage)
    assert torch.equal(net.forward_features(x), before)  # the input model is unchanged
    y = torch.randn(2, 64, 16, 8)
    assert torch.equal(doubled.layer2(y), 2 * net.layer2(y))  # same weights, module applied after


def test_insert_into_a_sequential_block_of_another_family():
    net = timm.create_model("mobilenetv3_small_050", num_classes=0, global_pool="")
    stages = feature_stages(net)
    assert stages[1].module == "blocks.0"
    result = insert_after_stage(net, 1, Doubler())
    assert isinstance(result.blocks[0], AfterStage)
    assert result.forward_features(torch.randn(1, 3, 64, 32)).shape == net.forward_features(torch.randn(1, 3, 64, 32)).shape


def test_a_bad_stage_lists_the_available_ones():
    net = timm.create_model("resnet10t", num_classes=0, global_pool="")
    with pytest.raises(SurgeryError, match=r"has no stage 7; available stages: 0 \(act1: 64 ch, stride 2\), 1 \(layer1"):
        insert_after_stage(net, 7, Doubler())


def test_a_backbone_without_feature_info_is_a_clear_error():
    with pytest.raises(SurgeryError, match="exposes no feature stages"):
        insert_after_stage(nn.Sequential(nn.Conv2d(3, 4, 3)), 0, Doubler())


def test_two_inserts_at_one_stage_nest_in_order():
    net = timm.create_model("resnet10t", num_classes=0, global_pool="")
    once = insert_after_stage(net, 1, Doubler())
    twice = insert_after_stage(once, 1, nn.Identity())
    assert isinstance(twice.layer1, AfterStage) and isinstance(twice.layer1.stage, AfterStage)
    assert isinstance(twice.layer1.inserted, nn.Identity)


def test_registries_refuse_duplicates_and_list_known_names():
    registry: Registry[int] = Registry("widget")
    registry.register("a")(1)
    with pytest.raises(RegistryError, match="widget 'a' is already registered"):
        registry.register("a")(2)
    with pytest.raises(RegistryError, match="unknown widget 'b'; known: a"):
        registry.get("b")
    assert {"apra", "dranet"} <= set(INSERTS.names())
    with pytest.raises(RegistryError, match="already registered"):
        register_insert("apra")(InsertedModule)
    with pytest.raises(RegistryError, match=r"unknown inserted module 'aprA'; known: apra, dranet.*did you mean 'apra'"):
        ReIDModel(backbone="resnet10t", num_classes=3, inserts=[{"module": "aprA", "stage": 1}])


def apra_dranet_model(**kw) -> ReIDModel:
    inserts = [
        {"module": "apra", "stage": 1, "kwargs": {"num_cameras": 3}},
        {"module": "dranet", "stage": 3, "kwargs": {"rcam": True, "rsam": True, "alpha_c": 2.0}},
    ]
    return ReIDModel(backbone="resnet10t", num_classes=5, inserts=inserts, **kw)


def test_a_checkpoint_saved_after_surgery_reloads_strictly(tmp_path):
    torch.manual_seed(0)
    model = apra_dranet_model(neck="bnneck", pooling="gem")
    model.train()
    model(torch.randn(8, 3, 64, 32))  # move BatchNorm statistics away from their init
    path = save_checkpoint(tmp_path / "m.pt", model, model.build_kwargs)
    loaded, kwargs = load_checkpoint(path)
    assert kwargs["inserts"][0]["module"] == "apra" and kwargs["inserts"][1]["kwargs"]["alpha_c"] == 2.0
    assert loaded.state_dict().keys() == model.state_dict().keys()
    model.eval(), loaded.eval()
    x = torch.randn(3, 3, 64, 32)
    assert torch.equal(model(x).embedding, loaded(x).embedding)


def test_a_checkpoint_that_does_not_match_its_surgery_fails(tmp_path):
    model = apra_dranet_model()
    path = save_checkpoint(tmp_path / "m.pt", model)
    payload = torch.load(path, weights_only=True)
    payload["build_kwargs"]["inserts"] = payload["build_kwargs"]["inserts"][:1]  # drop DRANet
    torch.save(payload, path)
    with pytest.raises(RuntimeError, match="Unexpected key"):
        load_checkpoint(path)
    with pytest.raises(FileNotFoundError, match="checkpoint not found"):
        load_checkpoint(tmp_path / "missing.pt")


@pytest.mark.parametrize(
    "tree, path, message",
    [
        ({"model": {"apra": {"stages": [1, 5]}}}, "model.apra.stages", r"'resnet10t' has no stage 5; available stages: 0 \(act1"),
        ({"model": {"dranet": {"rsam": True, "stage": 9}}}, "model.dranet.stage", "has no stage 9"),
        (
            {"model": {"backbone": "vit_tiny_patch16_224", "apra": {"stages": [2]}}, "dataset": {"height": 224, "width": 224}},
            "model.apra.stages",
            r"token sequence, not a \(B, C, H, W\) feature map; APRA needs a CNN stage",
        ),
        ({"model": {"backbone": "robust_reid_1x", "dranet": {"rcam": True, "stage": 4}}}, "model.dranet.stage", "stage_outputs.3"),
        ({"model": {"backbone": "resnet10tt"}}, "model.backbone", "unknown timm backbone"),
    ],
)
def test_incompatible_placements_fail_validation_naming_the_config_path(tree, path, message):
    problems = check_trial_config(TrialConfig.model_validate(tree))
    assert len(problems) == 1
    assert problems[0][0] == path
    assert re.search(message, problems[0][1]), problems[0][1]


def test_compatible_placements_pass_validation():
    for tree in (
        {"model": {"apra": {"stages": [0, 1, 4]}, "dranet": {"rcam": True, "stage": 4}}},
        {"model": {"backbone": "mobilenetv3_small_050", "apra": {"stages": [2]}}},
        {"model": {"backbone": "robust_reid_2x", "shuffle_blocks": False, "apra": {"stages": [1]}}},
        {},
    ):
        assert check_trial_config(TrialConfig.model_validate(tree)) == []
