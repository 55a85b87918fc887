"""DRANet (Liu et al.): RCAM/RSAM formulas, hard examples through the rest of the network,
their ID loss, and the off switches reducing to the baseline."""

from __future__ import annotations

import pytest
import torch

from search_spaces import TrialConfig
from trainables.losses import ReIDObjective
from trainables.models import ReIDModel
from trainables.models.dranet import DRANet
from trainables.models.seeding import seed_modules
from trainables.trial import build_model, build_objective, model_kwargs

TOGGLES = {"rcam": (True, False), "rsam": (False, True), "both": (True, True)}
LABELS = torch.tensor([0, 0, 1, 1])


def test_rcam_and_rsam_follow_the_formulas():
    torch.manual_seed(0)
    block = DRANet(channels=16, rcam=True, rsam=True, alpha_c=2.0, alpha_s=0.5, reduction=4)
    a = torch.randn(3, 16, 6, 4)
    out, (c, d) = block.attend(a)
    g = a.mean((2, 3))
    m = torch.sigmoid(block.rcam.w1(torch.relu(block.rcam.w0(g))))[:, :, None, None]
    b = a * m
    h = torch.sigmoid(block.rsam.f1x1(block.rsam.f3x3(b)))
    assert torch.allclose(c, a * (1 - m) ** 2.0, atol=1e-6)
    assert torch.allclose(d, b * (1 - h) ** 0.5, atol=1e-6)
    assert torch.allclose(out, b * h, atol=1e-6)
    for attention in (m.detach(), h.detach()):
        assert float(attention.min()) >= 0.0 and float(attention.max()) <= 1.0
    assert h.shape == (3, 1, 6, 4) and m.shape == (3, 16, 1, 1)


def test_alpha_zero_gives_unerased_hard_examples():
    block = DRANet(channels=8, rcam=True, rsam=True, alpha_c=0.0, alpha_s=0.0, reduction=2)
    a = torch.randn(2, 8, 4, 4)
    out, (c, d) = block.attend(a)
    b = a * block.rcam(a)
    assert torch.equal(c, a)
    assert torch.allclose(d, b)


def test_hard_examples_do_not_train_the_attention_that_made_them():
    block = DRANet(channels=8, rcam=True, rsam=False, reduction=2)
    a = torch.randn(2, 8, 4, 4, requires_grad=True)
    _, (c,) = block.attend(a)
    c.sum().backward()
    assert block.rcam.w0.weight.grad is None or float(block.rcam.w0.weight.grad.abs().sum()) == 0.0
    assert a.grad is not None and float(a.grad.abs().sum()) > 0


@pytest.mark.parametrize("backbone", ["resnet10t", "mobilenetv3_small_050"])
@pytest.mark.parametrize("toggle", sorted(TOGGLES))
@torch.no_grad()
def test_every_toggle_after_every_stage_keeps_shapes_and_adds_hard_logits(backbone, toggle):
    rcam, rsam = TOGGLES[toggle]
    x = torch.randn(4, 3, 64, 32)
    for stage in range(5):
        model = ReIDModel(
            backbone=backbone, num_classes=3, inserts=[{"module": "dranet", "stage": stage, "kwargs": {"rcam": rcam, "rsam": rsam}}]
        )
        out = model(x)
        assert out.logits.shape == (4, 3) and out.features.shape == (4, model.feature_dim)
        assert list(out.hard_logits) == [n for n, on in (("dranet_channel", rcam), ("dranet_spatial", rsam)) if on]
        assert all(h.shape == (4, 3) for h in out.hard_logits.values())
        model.eval()
        assert model(x).embedding.shape == (4, model.feature_dim)


def test_hard_examples_are_trained_with_the_id_loss():
    torch.manual_seed(0)
    model = ReIDModel(
        backbone="resnet10t", num_classes=3, inserts=[{"module": "dranet", "stage": 3, "kwargs": {"rcam": True, "rsam": True}}]
    )
    out = model(torch.randn(4, 3, 64, 32))
    terms = ReIDObjective(term_weights={"loss_hard": 0.5})(out, LABELS)
    ce = [torch.nn.functional.cross_entropy(h, LABELS, label_smoothing=0.1) for h in out.hard_logits.values()]
    expected_hard = float(torch.stack(ce).mean().detach())
    assert terms.parts["loss_hard"] == pytest.approx(expected_hard, rel=1e-5)
    assert terms.parts["loss"] == pytest.approx(terms.parts["loss_id"] + terms.parts["loss_triplet"] + 0.5 * expected_hard, rel=1e-5)
    terms.total.backward()
    assert model.backbone.layer4[0].conv1.weight.grad is not None


def test_switched_off_modules_reduce_to_the_baseline_model_and_loss():
    off = TrialConfig.model_validate(
        {"model": {"apra": {"stages": [], "lam": 0.5}, "dranet": {"rcam": False, "rsam": False, "alpha_c": 3}}}
    )
    assert off == TrialConfig()  # the off modules' parameters do not change the config (or its hash)
    assert model_kwargs(off, 3, 6)["inserts"] == []
    plain = seed_modules(ReIDModel(backbone="resnet10t", num_classes=3), off.seed)  # as build_model seeds it
    model = build_model(off, 3, 6)
    assert model.state_dict().keys() == plain.state_dict().keys()
    x = torch.randn(4, 3, 64, 32)
    out, ref = model(x), plain(x)
    assert torch.equal(out.logits, ref.logits) and out.aux_logits == [] and out.hard_logits == {}
    assert build_objective(off)(out, LABELS).parts == ReIDObjective()(ref, LABELS).parts


def test_only_one_module_may_append_hard_examples():
    inserts = [{"module": "dranet", "stage": s, "kwargs": {}} for s in (2, 3)]
    with pytest.raises(ValueError, match="at most one inserted module"):
        ReIDModel(backbone="resnet10t", num_classes=3, inserts=inserts)
    with pytest.raises(ValueError, match="needs rcam or rsam"):
        DRANet(channels=8, rcam=False, rsam=False)
