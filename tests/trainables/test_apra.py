"""APRA (Ang et al. section 5.1): attention maps, person/camera paths, gradient reversal, the
camera loss, and its place in any timm backbone."""

from __future__ import annotations

import pytest
import torch

from search_spaces import TrialConfig
from trainables.losses import ReIDObjective
from trainables.models import ReIDModel
from trainables.models.apra import APRA, GradientReversal, reverse_gradient
from trainables.trial import build_optimizer, train_step

BACKBONES = {"resnet10t": 5, "mobilenetv3_small_050": 5}  # two families, stages 0..4
LABELS = torch.tensor([0, 0, 1, 1, 2, 2])
CAMERAS = torch.tensor([0, 1, 0, 2, 1, 2])


@pytest.mark.parametrize("scale", [1.0, 0.3, 0.0])
def test_gradient_reversal_flips_the_sign_and_scales(scale):
    x = torch.randn(4, 3, requires_grad=True)
    weights = torch.randn(4, 3)
    y = GradientReversal(scale)(x)
    assert torch.equal(y, x)
    (y * weights).sum().backward()
    assert torch.allclose(x.grad, -scale * weights)


def test_gradient_reversal_rejects_a_negative_scale():
    with pytest.raises(ValueError, match="grl_scale must be >= 0"):
        GradientReversal(-1.0)


def test_attention_maps_lie_in_0_1_and_paths_follow_section_5_1_1():
    module = APRA(channels=16, num_cameras=3, reduction=4).eval()
    x = torch.randn(2, 16, 8, 4) * 5
    with torch.no_grad():
        m_c, m_s = module.attention_maps(x)
    assert m_c.shape == (2, 16, 1, 1) and m_s.shape == (2, 1, 8, 4)
    for m in (m_c, m_s):
        assert float(m.min()) >= 0.0 and float(m.max()) <= 1.0
    with torch.no_grad():
        person, camera = module.paths(x)
        assert torch.allclose(person, torch.relu(x * m_c * m_s + x))
        assert torch.allclose(camera, torch.relu(x * (1 - m_c) * (1 - m_s) + x))
        assert torch.allclose(module(x), person)  # the rest of the network sees the person path


@pytest.mark.parametrize("backbone", sorted(BACKBONES))
@torch.no_grad()
def test_apra_after_every_stage_keeps_shapes_and_adds_camera_logits(backbone):
    plain = ReIDModel(backbone=backbone, num_classes=3)
    x = torch.randn(6, 3, 64, 32)
    for stage in range(BACKBONES[backbone]):
        model = ReIDModel(backbone=backbone, num_classes=3, inserts=[{"module": "apra", "stage": stage, "kwargs": {"num_cameras": 4}}])
        out = model(x)
        assert out.logits.shape == (6, 3) and out.features.shape == (6, plain.feature_dim)
        assert [c.shape for c in out.aux_logits] == [(6, 4)]
        model.eval()
        out = model(x)
        assert out.embedding.shape == (6, plain.feature_dim) and out.aux_logits == []


def test_apra_after_several_stages_gives_one_camera_head_each():
    inserts = [{"module": "apra", "stage": s, "kwargs": {"num_cameras": 3}} for s in (1, 2)]
    model = ReIDModel(backbone="resnet10t", num_classes=3, inserts=inserts)
    out = model(torch.randn(6, 3, 64, 32))
    assert len(out.aux_logits) == 2
    terms = ReIDObjective(term_weights={"loss_camera": 0.01})(out, LABELS, CAMERAS)
    assert "loss_camera" in terms.parts


def test_total_loss_is_person_loss_plus_lambda_camera_loss():
    torch.manual_seed(0)
    model = ReIDModel(backbone="resnet10t", num_classes=3, inserts=[{"module": "apra", "stage": 1, "kwargs": {"num_cameras": 3}}])
    out = model(torch.randn(6, 3, 64, 32))
    base = ReIDObjective(term_weights={"loss_camera": 0.0})(out, LABELS, CAMERAS)
    lam = ReIDObjective(term_weights={"loss_camera": 0.5})(out, LABELS, CAMERAS)
    camera = torch.nn.functional.cross_entropy(out.aux_logits[0], CAMERAS)
    assert lam.parts["loss"] == pytest.approx(base.parts["loss"] + 0.5 * float(camera.detach()), rel=1e-5)
    # lambda = 0 reduces the objective to the baseline's L_id + L_tri
    assert base.parts["loss"] == pytest.approx(base.parts["loss_id"] + base.parts["loss_triplet"], rel=1e-6)
    with pytest.raises(ValueError, match="pass the batch's camera labels"):
        ReIDObjective()(out, LABELS)


def camera_loss_gradient(grl_scale: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Gradient of the camera loss alone on a backbone weight before APRA and on the camera head."""
    torch.manual_seed(0)
    model = ReIDModel(
        backbone="resnet10t", num_classes=3, inserts=[{"module": "apra", "stage": 1, "kwargs": {"num_cameras": 3, "grl_scale": grl_scale}}]
    )
    out = model(torch.randn(6, 3, 64, 32))
    torch.nn.functional.cross_entropy(out.aux_logits[0], CAMERAS).backward()
    apra = model.inserted[0]
    return model.backbone.conv1[0].weight.grad.clone(), apra.camera_classifier.weight.grad.clone()


def test_reversal_scale_reaches_the_backbone_but_not_the_camera_classifier():
    backbone_1, head_1 = camera_loss_gradient(1.0)
    backbone_2, head_2 = camera_loss_gradient(2.0)
    backbone_0, head_0 = camera_loss_gradient(0.0)
    assert torch.allclose(head_1, head_2) and torch.allclose(head_1, head_0)  # the classifier learns normally
    assert torch.allclose(backbone_2, 2 * backbone_1, rtol=1e-4, atol=1e-9)
    assert float(backbone_1.abs().sum()) > 0 and float(backbone_0.abs().sum()) == 0.0


def test_reversed_gradient_has_the_opposite_sign_of_the_plain_one():
    x = torch.randn(2, 8, 4, 4, requires_grad=True)
    (reverse_gradient(x, 0.5) ** 2).sum().backward()
    assert torch.allclose(x.grad, -0.5 * 2 * x.detach())


def test_apra_needs_two_cameras():
    with pytest.raises(ValueError, match="at least 2 training cameras"):
        APRA(channels=8, num_cameras=1)


def test_one_bf16_channels_last_step_with_apra_on_cpu():
    """The CUDA path's numerics (bf16 autocast + channels_last) exercised on the CPU.

    oneDNN's bf16 convolution under CPU autocast returns NaN now and then on some CPUs, so the
    step runs with oneDNN off (PyTorch's reference kernels, deterministic); training itself
    autocasts only on CUDA. The bf16 forward must agree with the fp32 one within bf16 precision."""
    torch.manual_seed(0)
    model = ReIDModel(backbone="resnet10t", num_classes=3, inserts=[{"module": "apra", "stage": 1, "kwargs": {"num_cameras": 3}}])
    model = model.to(memory_format=torch.channels_last)  # train mode: BN uses the batch statistics in both passes
    x = torch.randn(6, 3, 64, 32).contiguous(memory_format=torch.channels_last)
    with torch.backends.mkldnn.flags(enabled=False):
        with torch.no_grad():
            reference = model(x)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            out = model(x)
        assert out.aux_logits[0].dtype == torch.bfloat16
        assert torch.isfinite(out.embedding).all() and torch.isfinite(out.aux_logits[0]).all()
        # bf16 keeps 8 bits of mantissa; after a dozen layers the embeddings agree to a few percent.
        error = (out.embedding.float() - reference.embedding).norm() / reference.embedding.norm()
        assert error < 0.05, error
        cosine = torch.nn.functional.cosine_similarity(out.embedding.float(), reference.embedding, dim=1)
        assert (cosine > 0.99).all(), cosine
        terms = ReIDObjective(term_weights={"loss_camera": 0.01})(out, LABELS, CAMERAS)
        terms.total.backward()
    grad = model.inserted[0].channel_attention.mlp[0].weight.grad
    assert torch.isfinite(grad).all() and grad.abs().sum() > 0


@pytest.mark.gpu
def test_one_bf16_channels_last_training_step_with_apra_on_cuda():
    device = torch.device("cuda")
    config = TrialConfig.model_validate({"model": {"backbone": "resnet18", "apra": {"stages": [1]}}})
    model = ReIDModel(backbone="resnet18", num_classes=3, inserts=[{"module": "apra", "stage": 1, "kwargs": {"num_cameras": 3}}])
    model = model.to(device).to(memory_format=torch.channels_last)
    optimizer = build_optimizer(config, model)
    before = model.inserted[0].camera_classifier.weight.detach().clone()
    parts = train_step(
        model,
        ReIDObjective(term_weights={"loss_camera": 0.01}),
        optimizer,
        torch.randn(6, 3, 128, 64, device=device),
        LABELS.to(device),
        CAMERAS.to(device),
    )
    assert all(torch.isfinite(torch.tensor(v)) for v in parts.values())
    assert "loss_camera" in parts
    assert not torch.equal(before, model.inserted[0].camera_classifier.weight)
    assert model.backbone.conv1.weight.is_contiguous(memory_format=torch.channels_last)
