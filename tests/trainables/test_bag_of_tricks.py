"""Bag of Tricks' baseline pieces: last stride 1, center loss, the retrieval feature, the
eq. 2 triplet, and a trial that uses them (cyclic LR without averaging, rank-50)."""

from __future__ import annotations

import itertools

import pytest
import timm
import torch

from search_spaces import TrialConfig
from trainables.data.datasets import load_reid_data
from trainables.losses.center import CenterLoss, CenterLossStep
from trainables.losses.triplet import pairwise_euclidean, triplet_loss
from trainables.models import ReIDModel
from trainables.models.last_stride import set_last_stride
from trainables.models.surgery import SurgeryError
from trainables.engine import StepContext
from trainables.engine_hooks import CenterLossHook
from trainables.trial import RuntimeOptions, build_center_loss, build_hooks, build_objective, run_trial, train_step


@pytest.mark.parametrize("backbone", ["resnet10t", "resnet18"])
def test_last_stride_one_doubles_the_final_map_without_new_parameters(backbone):
    net = timm.create_model(backbone, num_classes=0, global_pool="")
    before = sum(p.numel() for p in net.parameters())
    x = torch.randn(1, 3, 64, 32)
    assert net.forward_features(x).shape[-2:] == (2, 1)
    stage = set_last_stride(net, 1)
    assert stage.module == "layer4"
    assert net.forward_features(x).shape[-2:] == (4, 2)  # 16x instead of 32x reduction
    assert sum(p.numel() for p in net.parameters()) == before
    assert net.feature_info[-1]["reduction"] == 16
    dilated = [m for m in net.modules() if isinstance(m, torch.nn.Conv2d) and max(m.dilation) > 1]
    assert not dilated  # BoT: stride only, no dilation


def test_last_stride_is_refused_where_it_cannot_apply():
    with pytest.raises(ValueError, match="fixes its strides"):
        ReIDModel(backbone="robust_reid_1x", num_classes=3, last_stride=1)
    net = timm.create_model("resnet10t", num_classes=0, global_pool="")
    for module in net.layer4.modules():  # a backbone whose last stage holds no stride
        if isinstance(module, torch.nn.Conv2d):
            module.stride = (1, 1)
        if isinstance(module, torch.nn.AvgPool2d):
            module.stride = 1
    with pytest.raises(SurgeryError, match="holds no strided"):
        set_last_stride(net, 1)


def test_reid_model_with_last_stride_and_pre_neck_retrieval():
    model = ReIDModel(backbone="resnet10t", num_classes=4, last_stride=1, retrieval_feature="pre_neck").eval()
    model.bottleneck.running_var.fill_(4.0)  # trained statistics: the BNNeck is not the identity
    post = ReIDModel(backbone="resnet10t", num_classes=4, last_stride=1).eval()
    post.load_state_dict(model.state_dict())
    x = torch.randn(2, 3, 64, 32)
    with torch.no_grad():
        pre_out, post_out = model(x), post(x)
    assert torch.equal(pre_out.embedding, pre_out.features)  # f_t: the pooled feature
    assert torch.allclose(post_out.embedding, post.bottleneck(post_out.features))  # f_i: after BNNeck
    assert not torch.allclose(pre_out.embedding, post_out.embedding)


def test_center_loss_is_the_mean_squared_distance_to_the_centers():
    loss = CenterLoss(num_classes=3, feat_dim=4)
    features = torch.randn(5, 4)
    labels = torch.tensor([0, 1, 2, 1, 0])
    centers = loss.centers.detach()
    expected = sum(float(((features[i] - centers[labels[i]]) ** 2).sum()) for i in range(5)) / 5
    assert float(loss(features, labels).detach()) == pytest.approx(expected, rel=1e-6)


@pytest.mark.parametrize("weight", [0.0005, 1.0])
def test_centers_move_by_lr_times_their_own_gradient_whatever_the_weight(weight):
    """BoT rescales the centers' gradient by 1/weight: the update is lr * dL_C/dc."""
    torch.manual_seed(0)
    step = CenterLossStep(2, 3, weight=weight, lr=0.5)
    features = torch.randn(4, 3)
    labels = torch.tensor([0, 0, 1, 1])
    before = step.loss.centers.detach().clone()
    expected_grad = torch.stack([-(2 / 4) * (features[labels == c] - before[c]).sum(0) for c in range(2)])
    (weight * step(features, labels)).backward()
    step.step()
    assert torch.allclose(step.loss.centers.detach(), before - 0.5 * expected_grad, atol=1e-5)
    assert step.loss.centers.grad is None  # cleared for the next batch


def test_the_center_hook_adds_its_term_and_steps_the_centers():
    config = TrialConfig.model_validate({"loss": {"center": {"weight": 0.0005}}})
    torch.manual_seed(0)
    model = ReIDModel(backbone="resnet10t", num_classes=4)
    center = build_center_loss(config, model, 4, torch.device("cpu"))
    hook = CenterLossHook(center)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    centers = center.loss.centers.detach().clone()
    labels = torch.arange(4).repeat_interleave(2)
    images = torch.randn(8, 3, 64, 32)
    step = StepContext(1, 0, torch.arange(8), images, labels, None)

    def extra_terms(output):
        step.output = output
        return hook.loss_terms(step)

    parts = train_step(model.train(), build_objective(config), optimizer, images, labels, None, extra_terms)
    hook.after_step(step)
    assert parts["loss_center"] > 0  # the weighted term, 0.0005 * L_C
    assert parts["loss"] == pytest.approx(parts["loss_id"] + parts["loss_triplet"] + parts["loss_center"], rel=1e-4)
    assert not torch.allclose(center.loss.centers, centers)
    assert all(id(p) != id(center.loss.centers) for p in model.parameters())  # not the model's optimizer
    assert build_center_loss(TrialConfig(), model, 4, torch.device("cpu")) is None
    assert not any(isinstance(h, CenterLossHook) for h in build_hooks(TrialConfig(), None, RuntimeOptions()))
    assert any(isinstance(h, CenterLossHook) for h in build_hooks(config, None, RuntimeOptions(), center))


def test_batch_all_triplet_is_eq_2_over_every_valid_triplet():
    g = torch.Generator().manual_seed(1)
    features = torch.randn(9, 5, generator=g)
    labels = torch.tensor([0, 0, 0, 1, 1, 1, 2, 2, 2])
    dist = pairwise_euclidean(features)
    terms = [
        torch.relu(0.3 + dist[a, p] - dist[a, n])
        for a, p, n in itertools.product(range(9), repeat=3)
        if a != p and labels[a] == labels[p] and labels[n] != labels[a]
    ]
    expected = torch.stack(terms).mean()
    assert float(triplet_loss(features, labels, kind="batch_all", margin=0.3)) == pytest.approx(float(expected), rel=1e-5)


def test_a_bag_of_tricks_trial_with_the_cyclic_schedule_alone(tiny_market):
    """Last stride 1, center loss, post-neck cosine retrieval; then cyclic LR epochs with no
    averaging (Robust-ReID Table 3's "+LR scheme"): no snapshots, the last weights evaluated."""
    config = TrialConfig.model_validate(
        {
            "dataset": {"name": "market1501", "root": str(tiny_market), "height": 64, "width": 32},
            "model": {"backbone": "resnet10t", "last_stride": 1},
            "loss": {"center": {"weight": 0.0005}},
            "eval": {"distance": "cosine", "feature": "post_neck", "max_rank": 50},
            "train": {
                "epochs": 1,
                "ids_per_batch": 4,
                "images_per_id": 4,
                "warmup_epochs": 0,
                "lr_steps": [],
                "eval_every": 10,
                "swa": {"enabled": True, "average": False, "swag": True, "cycles": 2, "cycle_epochs": 1, "lr": 1e-3},
            },
        }
    )
    assert not config.train.swa.swag  # nothing averaged: no SWAG either
    reports: list[dict] = []
    final = run_trial(config, load_reid_data(config.dataset), report=reports.append, runtime=RuntimeOptions(threads=1))
    assert [r["epoch"] for r in reports] == [1, 2, 3]
    assert all("swa_snapshots" not in r for r in reports) and "mAP" in final and "loss_center" in final
    assert {"rank1", "rank5", "rank10", "rank20", "rank50"} <= set(final)
    assert final["rank1"] <= final["rank5"] <= final["rank10"] <= final["rank20"] <= final["rank50"]
