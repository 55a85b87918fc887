"""Per-module seeding: variants that share a seed start the modules they share from the same
weights, whatever else either inserts."""

from __future__ import annotations

import torch

from trainables.models.reid_model import ReIDModel
import pytest

from trainables.models.seeding import _plain_key, module_seed, seed_modules, seeded_model

APRA1 = {"module": "apra", "stage": 1, "kwargs": {"num_cameras": 3}}
DRANET2 = {"module": "dranet", "stage": 2, "kwargs": {"rcam": True, "rsam": True}}


def build(inserts, seed, *, seeding=True):
    torch.manual_seed(seed)  # what the trial does first: the global generator at the trial seed
    model = ReIDModel(backbone="resnet10t", num_classes=5, inserts=inserts)
    return seed_modules(model, seed) if seeding else model


def shared_weights(plain: ReIDModel, other: ReIDModel) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
    mine = plain.state_dict()
    pairs = {}
    for key, value in other.state_dict().items():
        plain_key = _plain_key(other, key)
        if plain_key is not None:
            pairs[plain_key] = (mine[plain_key], value)
    assert set(pairs) == set(mine)  # every module of the plain model is shared
    return pairs


def test_a_module_inserted_after_stage_1_leaves_every_shared_module_as_it_was():
    plain, with_apra = build([], 3), build([APRA1], 3)
    for key, (a, b) in shared_weights(plain, with_apra).items():
        assert torch.equal(a, b), key
    # The classifier is built after the inserts: with one global generator it differed.
    unseeded = shared_weights(build([], 3, seeding=False), build([APRA1], 3, seeding=False))
    assert not torch.equal(*unseeded["classifier.weight"])


def test_an_insert_starts_the_same_whatever_else_is_inserted():
    one, two = build([APRA1], 5), build([APRA1, DRANET2], 5)
    apra = {k: v for k, v in one.state_dict().items() if ".inserted." in k}
    both = two.state_dict()
    assert apra and all(torch.equal(v, both[k]) for k, v in apra.items())
    for key, (a, b) in shared_weights(build([], 5), two).items():
        assert torch.equal(a, b), key


def test_other_seeds_give_other_weights_and_the_global_generator_is_untouched():
    a, b = build([APRA1], 0), build([APRA1], 1)
    assert not torch.equal(a.classifier.weight, b.classifier.weight)
    assert not torch.equal(a.backbone.conv1[0].weight, b.backbone.conv1[0].weight)
    model = ReIDModel(backbone="resnet10t", num_classes=5)
    torch.manual_seed(11)
    expected = torch.rand(3)
    torch.manual_seed(11)
    seed_modules(model, 2)  # its own generators only
    assert torch.equal(torch.rand(3), expected)
    assert module_seed(0, "network") != module_seed(1, "network") != module_seed(0, "apra@stage1")


DRANET1 = {"module": "dranet", "stage": 1, "kwargs": {"rcam": True, "rsam": False}}


@pytest.mark.parametrize(
    "inserts", [[], [APRA1], [APRA1, DRANET2], [APRA1, DRANET1]], ids=["none", "apra", "apra+dranet", "two-at-stage-1"]
)
def test_the_one_pass_build_gives_the_weights_of_the_re_initialised_model(inserts):
    kwargs = dict(backbone="resnet10t", num_classes=5, inserts=inserts)
    torch.manual_seed(0)
    expected = seed_modules(ReIDModel(**kwargs), 4).state_dict()
    torch.manual_seed(123)  # the global generator must not matter
    before = torch.get_rng_state()
    built = seeded_model(kwargs, 4)
    assert torch.equal(torch.get_rng_state(), before)
    got = built.state_dict()
    assert got.keys() == expected.keys()
    for key, value in expected.items():
        assert torch.equal(got[key], value), key
    assert built.build_kwargs == ReIDModel(**kwargs).build_kwargs  # the factory is not recorded
