import pytest

from search_spaces import AblationSpec, ChangeError, DesignError, Recipe, expand


def ablation(**kwargs):
    return AblationSpec.model_validate(kwargs)


def test_grid_is_full_factorial_times_seeds():
    trials = expand(
        Recipe(),
        ablation(design="grid", axes={"loss.triplet.margin": [0.1, 0.3, 0.5], "model.neck": ["bnneck", "l2norm"]}, seeds=[0, 1]),
    )
    assert len(trials) == 3 * 2 * 2
    assert len({t.config_hash for t in trials}) == 12
    assert trials[0].changes == {"loss.triplet.margin": 0.1, "model.neck": "bnneck"}
    assert trials[0].variant == "loss.triplet.margin=0.1, model.neck=bnneck"
    assert trials[0].config.loss.triplet.margin == 0.1


def test_one_at_a_time_has_baseline_then_each_change_alone():
    trials = expand(
        Recipe(),
        ablation(
            design="one_at_a_time",
            axes={"loss.triplet.margin": [0.1, 0.5]},
            variants=[{"name": "+erasing", "set": {"augment.random_erasing.p": 0.5}}],
            seeds=[0, 1],
        ),
    )
    variants = list(dict.fromkeys(t.variant for t in trials))
    assert variants == ["baseline", "loss.triplet.margin=0.1", "loss.triplet.margin=0.5", "+erasing"]
    assert len(trials) == 8
    erasing = [t for t in trials if t.variant == "+erasing"]
    assert all(t.config.augment.random_erasing.p == 0.5 and t.config.loss.triplet.margin == 0.3 for t in erasing)


def test_a_value_equal_to_the_baseline_is_not_run_twice():
    trials = expand(Recipe(), ablation(design="one_at_a_time", axes={"loss.triplet.margin": [0.3, 0.5]}))
    assert [t.variant for t in trials] == ["baseline", "loss.triplet.margin=0.5"]


def test_list_design_runs_exactly_the_named_variants():
    trials = expand(
        Recipe(),
        ablation(design="list", variants=[{"name": "a"}, {"name": "b", "set": {"model.pooling": "gem"}}], seeds=[3]),
    )
    assert [(t.variant, t.seed) for t in trials] == [("a", 3), ("b", 3)]


@pytest.mark.parametrize(
    "kwargs, error, origin",
    [
        ({"design": "grid"}, DesignError, ("ablation", "design")),
        ({"design": "list"}, DesignError, ("ablation", "design")),
        ({"design": "one_at_a_time", "axes": {"model.backbon": ["x"]}}, ChangeError, ("ablation", "axes", "model.backbon", 0)),
        (
            {"design": "list", "variants": [{"name": "x", "set": {"train.epochs": -1}}]},
            ChangeError,
            ("ablation", "variants", 0, "set", "train.epochs"),
        ),
        ({"design": "list", "variants": [{"name": "x"}, {"name": "x", "set": {"seed": 1}}]}, DesignError, ("ablation", "variants")),
    ],
)
def test_bad_ablation_blocks_name_their_origin(kwargs, error, origin):
    with pytest.raises(error) as caught:
        expand(Recipe(), ablation(**kwargs))
    assert caught.value.origin == origin


def test_unknown_axis_suggests_the_near_name():
    with pytest.raises(ChangeError, match="did you mean 'model.backbone'"):
        expand(Recipe(), ablation(design="grid", axes={"model.backbon": ["resnet50"]}))


def test_unknown_design_lists_known_ones():
    with pytest.raises(ValueError, match="known designs: grid, leave_one_out, list, one_at_a_time"):
        AblationSpec(design="latin_square")


def test_planned_trial_origin_of_paths():
    trials = expand(Recipe(), ablation(design="grid", axes={"model.neck": ["l2norm"]}))
    assert trials[0].origin_of("model.neck") == ("ablation", "axes", "model.neck", 0)
    assert trials[0].origin_of("model.backbone") == ("baseline", "model", "backbone")


def test_leave_one_out_is_the_full_recipe_then_each_part_off():
    trials = expand(
        Recipe.model_validate({"model": {"pooling": "gem", "neck": "l2norm"}}),
        ablation(
            design="leave_one_out",
            variants=[{"name": "GeM", "set": {"model.pooling": "avg"}}, {"name": "L2 norm", "set": {"model.neck": "bnneck"}}],
            seeds=[0, 1],
        ),
    )
    assert [t.variant for t in trials[::2]] == ["full", "w/o GeM", "w/o L2 norm"]
    assert len(trials) == 6
    without_gem = trials[2].config.model
    assert (without_gem.pooling, without_gem.neck) == ("avg", "l2norm")
    assert trials[2].variant_meta == {"design": "leave_one_out", "parts": ["GeM", "L2 norm"], "off": ["GeM"], "compare_to": "full"}
    assert trials[0].variant_meta["off"] == []


def test_a_switched_off_module_ignores_its_parameters():
    from pydantic import Field

    from search_spaces.trial_config import ToggleSection

    class Module(ToggleSection):
        lam: float = Field(0.01, ge=0)

    assert Module(lam=0.5) == Module() == Module(lam=0.9)
    assert Module(enabled=True, lam=0.5).lam == 0.5
    with pytest.raises(ValueError):
        Module(lam=-1.0)  # still validated while off


def optuna_block(**search):
    return {
        "design": "optuna",
        "search": {"num_samples": 4, "space": {"train.lr": {"type": "loguniform", "low": 1e-4, "high": 1e-2}}, **search},
    }


def test_a_search_design_expands_to_no_trials_and_resolves_samples():
    from search_spaces import resolve_sample

    spec = ablation(**optuna_block())
    assert expand(Recipe(), spec) == []
    trial = resolve_sample(Recipe(), {"train.lr": 0.002, "model.neck": "l2norm"}, seed=3)
    assert trial.variant == "model.neck=l2norm, train.lr=0.002"
    assert (trial.config.train.lr, trial.config.model.neck, trial.seed) == (0.002, "l2norm", 3)
    assert trial.origin_of("train.lr") == ("ablation", "search", "space", "train.lr")
    assert resolve_sample(Recipe(), {"train.lr": 0.002}, 3).config_hash == resolve_sample(Recipe(), {"train.lr": 0.002}, 3).config_hash


@pytest.mark.parametrize(
    "block, message",
    [
        ({"design": "optuna"}, "needs a 'search' block"),
        ({**optuna_block(), "axes": {"train.lr": [0.1]}}, "remove 'axes' and 'variants'"),
        ({"design": "grid", "axes": {"train.lr": [0.1]}, "search": optuna_block()["search"]}, "'search' is for the optuna design"),
        (optuna_block(space={"train.lr": {"type": "loguniform", "low": 0.0, "high": 1.0}}), "a log range needs low > 0"),
        (optuna_block(space={"train.lr": {"type": "uniform", "low": 1.0, "high": 0.5}}), "low < high must hold"),
        (optuna_block(space={"train.lr": {"type": "normal", "mu": 1}}), "does not match any of the expected tags"),
    ],
)
def test_bad_search_blocks_are_rejected(block, message):
    with pytest.raises(ValueError, match=message):
        ablation(**block)


def test_search_bounds_are_validated_against_the_config():
    with pytest.raises(ChangeError) as caught:
        expand(Recipe(), ablation(**optuna_block(space={"train.epochs": {"type": "int", "low": 0, "high": 5}})))
    assert caught.value.origin == ("ablation", "search", "space", "train.epochs")
    with pytest.raises(ChangeError, match="unknown axis"):
        expand(Recipe(), ablation(**optuna_block(space={"train.lrr": {"type": "choice", "values": [1]}})))


def test_grid_over_a_module_switch_runs_the_off_row_once():
    trials = expand(
        Recipe(),
        ablation(
            design="grid",
            axes={"augment.implicit_attention.enabled": [False, True], "augment.implicit_attention.p": [0.1, 0.3, 0.5]},
        ),
    )
    names = [t.variant for t in trials]
    assert len(trials) == 1 + 3  # the off row once, not once per p
    assert names == [
        "augment.implicit_attention.enabled=false",
        "augment.implicit_attention.enabled=true, augment.implicit_attention.p=0.1",
        "augment.implicit_attention.enabled=true, augment.implicit_attention.p=0.3",
        "augment.implicit_attention.enabled=true, augment.implicit_attention.p=0.5",
    ]
    assert trials[0].changes == {"augment.implicit_attention.enabled": False}


def test_a_continuous_range_over_an_integer_field_is_rejected():
    with pytest.raises(ChangeError, match="takes integers; sample it with type: int") as caught:
        expand(Recipe(), ablation(**optuna_block(space={"train.epochs": {"type": "uniform", "low": 5, "high": 20}})))
    assert caught.value.origin == ("ablation", "search", "space", "train.epochs")
    expand(Recipe(), ablation(**optuna_block(space={"train.epochs": {"type": "int", "low": 5, "high": 20}})))
