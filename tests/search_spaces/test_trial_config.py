import pytest
from pydantic import ValidationError

from search_spaces import Recipe, TrialConfig, field_paths


def test_defaults_resolve_to_a_complete_frozen_config():
    config = TrialConfig()
    assert config.model.backbone == "resnet10t"
    assert config.loss.triplet.kind == "batch_hard"
    with pytest.raises(ValidationError):
        config.seed = 3  # frozen


@pytest.mark.parametrize(
    "tree, message",
    [
        ({"model": {"backbon": "resnet18"}}, "Extra inputs are not permitted"),
        ({"train": {"epochs": 0}}, "greater than or equal to 1"),
        ({"train": {"lr_steps": [5, 3]}}, "strictly increasing"),
        ({"augment": {"random_erasing": {"area": [0.5, 0.1]}}}, "low <= high"),
        ({"dataset": {"name": "market1501"}}, "needs 'root'"),
        ({"loss": {"label_smoothing": 1.0}}, "less than 1"),
    ],
)
def test_invalid_values_are_rejected_with_the_rule(tree, message):
    with pytest.raises(ValidationError, match=message):
        TrialConfig.model_validate(tree)


def test_field_paths_are_dotted_leaves():
    paths = field_paths()
    assert "loss.triplet.margin" in paths
    assert "augment.random_erasing.p" in paths
    assert "seed" in paths
    assert "loss.triplet" not in paths  # sections are not leaves


def test_recipe_has_no_seed():
    with pytest.raises(ValidationError):
        Recipe.model_validate({"seed": 1})
