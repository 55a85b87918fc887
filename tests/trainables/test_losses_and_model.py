import pytest
import torch

from trainables.losses import ReIDObjective, batch_hard_triplet
from trainables.models import ReIDModel
from trainables.schedule import learning_rate


def brute_force_batch_hard(features, labels, margin):
    losses = []
    for a in range(len(labels)):
        pos = [torch.dist(features[a], features[p]) for p in range(len(labels)) if p != a and labels[p] == labels[a]]
        neg = [torch.dist(features[a], features[n]) for n in range(len(labels)) if labels[n] != labels[a]]
        losses.append(torch.relu(margin + max(pos) - min(neg)))
    return torch.stack(losses).mean()


def test_batch_hard_triplet_matches_a_loop():
    g = torch.Generator().manual_seed(0)
    features = torch.randn(12, 8, generator=g)
    labels = torch.arange(4).repeat_interleave(3)
    assert batch_hard_triplet(features, labels, 0.3) == pytest.approx(float(brute_force_batch_hard(features, labels, 0.3)), rel=1e-5)


def test_batch_hard_triplet_is_zero_for_separated_clusters():
    labels = torch.tensor([0, 0, 1, 1])
    features = torch.tensor([[0.0, 0], [0.01, 0], [10.0, 0], [10.01, 0]])
    assert float(batch_hard_triplet(features, labels, 0.3)) == 0.0


@pytest.mark.parametrize("backbone", ["resnet18", "mobilenetv3_small_050"])
@pytest.mark.parametrize("neck", ["bnneck", "l2norm", "none"])
def test_model_outputs_and_backward(backbone, neck):
    model = ReIDModel(backbone=backbone, num_classes=5, neck=neck, pooling="gem" if neck == "l2norm" else "avg")
    x = torch.randn(8, 3, 64, 32)
    out = model(x)
    assert out.logits.shape == (8, 5)
    assert out.features.shape == out.embedding.shape == (8, model.feature_dim)
    if neck == "l2norm":
        assert torch.allclose(out.embedding.norm(dim=1), torch.ones(8), atol=1e-5)
    objective = ReIDObjective(label_smoothing=0.1, triplet_margin=0.3)
    terms = objective(out, torch.tensor([0, 0, 1, 1, 2, 2, 3, 3]))
    terms.total.backward()
    assert {"loss", "loss_id", "loss_triplet"} <= set(terms.parts)
    assert model.classifier.weight.grad is not None
    model.eval()
    assert model(x).logits is None


def test_bnneck_has_no_learned_shift_and_classifier_no_bias():
    model = ReIDModel(backbone="resnet18", num_classes=3)
    assert not model.bottleneck.bias.requires_grad
    assert model.classifier.bias is None


def test_missing_weights_file_is_a_clear_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="backbone weights file not found"):
        ReIDModel(backbone="resnet18", num_classes=3, pretrained_path=str(tmp_path / "none.pth"))


def test_local_weights_load_strictly(tmp_path):
    import timm

    source = timm.create_model("resnet18", num_classes=0, global_pool="")
    path = tmp_path / "w.pth"
    torch.save(source.state_dict(), path)
    model = ReIDModel(backbone="resnet18", num_classes=3, pretrained_path=str(path))
    assert torch.equal(model.backbone.conv1.weight, source.conv1.weight)
    torch.save({"conv1.weight": source.conv1.weight}, path)
    with pytest.raises(ValueError, match="do not match the backbone"):
        ReIDModel(backbone="resnet18", num_classes=3, pretrained_path=str(path))


def test_warmup_then_step_schedule():
    kwargs = dict(base_lr=1.0, warmup_epochs=4, warmup_factor=0.1, steps=(6, 8), gamma=0.1)
    lrs = [learning_rate(e, **kwargs) for e in range(1, 11)]
    assert lrs[0] == pytest.approx(0.1)
    assert lrs[:4] == sorted(lrs[:4]) and lrs[3] == 1.0
    assert lrs[4] == lrs[5] == 1.0
    assert lrs[6] == pytest.approx(0.1) and lrs[8] == pytest.approx(0.01)


def test_robust_reid_eq1_is_a_special_case():
    kwargs = dict(base_lr=3e-2, warmup_epochs=10, warmup_factor=0.1, steps=(150, 225), gamma=0.1)
    for t in range(1, 11):
        assert learning_rate(t, **kwargs) == pytest.approx(3e-2 * t / 10)
    assert learning_rate(100, **kwargs) == pytest.approx(3e-2)
    assert learning_rate(200, **kwargs) == pytest.approx(3e-3)
    assert learning_rate(300, **kwargs) == pytest.approx(3e-4)
