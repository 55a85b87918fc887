"""Triplet losses of Robust-ReID eqs. 3-5 against brute-force loops, and their registry."""

from __future__ import annotations

import math

import pytest
import torch

from trainables.losses import ReIDObjective, batch_hard_triplet, batch_soft_triplet, register_triplet, triplet_loss
from trainables.models.registry import RegistryError
from trainables.models.reid_model import ReIDOutput


def brute_force_batch_soft(features, labels, margin, soft):
    losses = []
    for a in range(len(labels)):
        pos = [float(torch.dist(features[a], features[p])) for p in range(len(labels)) if p != a and labels[p] == labels[a]]
        neg = [float(torch.dist(features[a], features[n])) for n in range(len(labels)) if labels[n] != labels[a]]
        w_p = [math.exp(d) / sum(math.exp(x) for x in pos) for d in pos]
        w_n = [math.exp(-d) / sum(math.exp(-x) for x in neg) for d in neg]
        gap = sum(w * d for w, d in zip(w_p, pos)) - sum(w * d for w, d in zip(w_n, neg))
        losses.append(math.log1p(math.exp(gap)) if soft else max(0.0, margin + gap))
    return sum(losses) / len(losses)


@pytest.mark.parametrize("soft", [False, True])
def test_weighted_batch_soft_triplet_matches_equations_4_and_5(soft):
    g = torch.Generator().manual_seed(1)
    features = torch.randn(12, 6, generator=g)
    labels = torch.arange(4).repeat_interleave(3)
    expected = brute_force_batch_soft(features, labels, 0.3, soft)
    assert float(batch_soft_triplet(features, labels, 0.3, soft_margin=soft)) == pytest.approx(expected, rel=1e-5)


def test_soft_margin_on_batch_hard_is_softplus_of_the_hard_gap():
    g = torch.Generator().manual_seed(2)
    features = torch.randn(8, 4, generator=g)
    labels = torch.arange(4).repeat_interleave(2)
    soft = triplet_loss(features, labels, kind="batch_hard", soft_margin=True)
    dist = torch.cdist(features, features)
    same = labels[:, None] == labels[None]
    d_ap = dist.masked_fill(~same | torch.eye(8, dtype=torch.bool), -1).amax(1)
    d_an = dist.masked_fill(same, 1e9).amin(1)
    assert float(soft) == pytest.approx(float(torch.nn.functional.softplus(d_ap - d_an).mean()), rel=1e-4)
    # the soft margin has no margin parameter
    assert float(triplet_loss(features, labels, kind="batch_hard", margin=5.0, soft_margin=True)) == pytest.approx(float(soft))


def test_anchors_without_positives_are_skipped_and_gradients_stay_finite():
    features = torch.randn(5, 3, requires_grad=True)
    labels = torch.tensor([0, 0, 1, 1, 2])  # id 2 has no positive
    loss = batch_soft_triplet(features, labels)
    loss.backward()
    assert torch.isfinite(loss) and torch.isfinite(features.grad).all()
    assert float(batch_soft_triplet(torch.randn(3, 2), torch.tensor([0, 1, 2]))) == 0.0


def test_batch_hard_with_hinge_still_matches_the_original_function():
    g = torch.Generator().manual_seed(0)
    features = torch.randn(12, 8, generator=g)
    labels = torch.arange(4).repeat_interleave(3)
    assert float(batch_hard_triplet(features, labels, 0.3)) == pytest.approx(
        float(triplet_loss(features, labels, kind="batch_hard", margin=0.3))
    )


def test_triplet_registry_errors():
    with pytest.raises(RegistryError, match="triplet loss 'batch_hard' is already registered"):
        register_triplet("batch_hard")(lambda d, p, n: (d, d))
    with pytest.raises(RegistryError, match="unknown triplet loss 'batch_sof'; known: batch_all, batch_hard, batch_soft"):
        ReIDObjective(triplet_kind="batch_sof")


def test_objective_uses_the_configured_triplet():
    features = torch.randn(8, 4)
    labels = torch.arange(4).repeat_interleave(2)
    output = ReIDOutput(features=features, logits=torch.randn(8, 4), embedding=features)
    parts = ReIDObjective(triplet_kind="batch_soft", triplet_soft_margin=True)(output, labels).parts
    assert parts["loss_triplet"] == pytest.approx(float(batch_soft_triplet(features, labels, soft_margin=True)), rel=1e-5)
    assert "loss_triplet" not in ReIDObjective(triplet_kind="none")(output, labels).parts
    with pytest.raises(ValueError, match="call model.train"):
        ReIDObjective()(ReIDOutput(features=features, logits=None, embedding=features), labels)
