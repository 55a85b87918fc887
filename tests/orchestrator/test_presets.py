"""Every preset is runnable as it is once a dataset path is swapped in."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from orchestrator.checks import check_spec
from orchestrator.cli import app
from orchestrator.errors import InputError
from orchestrator.preset_library import DATASET_PLACEHOLDER, TARGET_PLACEHOLDER, list_presets, preset_text
from orchestrator.spec import load_spec

# preset -> (design, variants, trials)
EXPECTED = {
    "quickstart": ("one_at_a_time", 2, 6),
    "apra_table2": ("list", 2, 6),
    "apra_synthetic_cpu": ("list", 2, 6),
    "apra_explore_placement_lambda": ("grid", 1 + 4 * 3, (1 + 4 * 3) * 3),
    "apra_explore_market_to_duke": ("list", 2, 6),
    "dranet_table4": ("list", 4, 12),
    "dranet_explore_alpha": ("list", 10, 30),
    "robust_reid_table2": ("leave_one_out", 11, 33),
    "robust_reid_table3": ("leave_one_out", 9, 27),
    "implicit_attention_table1": ("list", 6, 18),
    "implicit_attention_fig3": ("list", 8, 24),
    "implicit_attention_explore_full_body_p": ("grid", 1 + 5, (1 + 5) * 3),
}
PAPER_PRESETS = [name for name in EXPECTED if name != "quickstart" and "explore" not in name]


def test_every_preset_is_listed():
    assert set(list_presets()) == set(EXPECTED)


@pytest.fixture(scope="module")
def market_16_ids(tmp_path_factory) -> Path:
    """A tiny Market-layout set with the 16 training identities the presets' batches take."""
    from trainables.data.synthetic import SyntheticSpec, generate_synthetic_dataset

    spec = SyntheticSpec(num_train_ids=16, num_test_ids=6, num_distractors=2, num_junk=1, height=64, width=32, seed=5)
    return generate_synthetic_dataset(tmp_path_factory.mktemp("market_16") / "market", spec)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_preset_trial_counts_and_checks(name, market_16_ids, tiny_duke, tmp_path):
    path = tmp_path / f"{name}.yaml"
    text = preset_text(name, str(market_16_ids), target_root=str(tiny_duke))
    assert DATASET_PLACEHOLDER not in text and TARGET_PLACEHOLDER not in text
    path.write_text(text, encoding="utf-8")
    loaded = load_spec(path)
    design, variants, trials = EXPECTED[name]
    assert loaded.spec.ablation.design == design
    assert len({t.variant for t in loaded.trials}) == variants
    assert len(loaded.trials) == trials
    assert len({t.config_hash for t in loaded.trials}) == trials  # conditional axes: no duplicates
    check_spec(loaded)  # backbones buildable, stages exist, dataset folder present


def test_a_preset_without_a_dataset_names_the_placeholder(tmp_path):
    path = tmp_path / "apra.yaml"
    path.write_text(preset_text("apra_table2"), encoding="utf-8")
    with pytest.raises(InputError, match=f"dataset folder not found: {DATASET_PLACEHOLDER}"):
        check_spec(load_spec(path))


# Table 2's check marks, read column by column: the parts each column switches off.
TABLE_2_OFF = {
    "HA-CNN": {"BagOfTricks", "soft triplet", "L2 normalization", "shuffle blocks", "soft margin", "GeM", "deeper & wider", "SWAG"},
    "a": {"soft triplet", "L2 normalization", "shuffle blocks", "soft margin", "GeM", "deeper & wider", "SWAG"},
    "b": {"soft triplet", "soft margin", "SWAG"},
    "c": {"L2 normalization", "SWAG"},
    "d": {"shuffle blocks", "SWAG"},
    "e": {"soft margin", "SWAG"},
    "f": {"GeM", "SWAG"},
    "g": {"deeper & wider", "SWAG"},
    "h": {"deeper & wider"},
    "i": {"SWAG"},
    "Robust-ReID": set(),
}


def _rows(name: str):
    loaded = load_spec(Path(__file__).resolve().parents[2] / "examples" / f"{name}.yaml")
    return loaded, {t.variant: t for t in loaded.trials if t.seed == 0}


def test_robust_reid_table_2_columns_in_the_papers_check_mark_layout():
    loaded, rows = _rows("robust_reid_table2")
    assert list(rows) == list(TABLE_2_OFF)  # the paper's column order
    for name, off in TABLE_2_OFF.items():
        assert set(rows[name].variant_meta["off"]) == off, name
    config = {name: trial.config for name, trial in rows.items()}
    full = config["Robust-ReID"]
    assert (full.model.backbone, full.model.pooling, full.model.neck) == ("robust_reid_2x", "gem", "l2norm")
    assert (full.loss.triplet.kind, full.loss.triplet.soft_margin) == ("batch_soft", True)
    assert full.train.swa.enabled and full.train.swa.swag and full.train.total_epochs == 350 + 15 * 35
    assert (full.dataset.height, full.dataset.width, full.train.ids_per_batch, full.train.images_per_id) == (160, 64, 8, 4)
    # b: eq. 2's original triplet (every triplet, hinge at a margin), no SWAG
    b = config["b"].loss.triplet
    assert (b.kind, b.soft_margin, b.margin) == ("batch_all", False, 0.3) and not config["b"].train.swa.enabled
    # e: the weighted batch-soft triplet keeps its weights, loses the soft margin
    assert (config["e"].loss.triplet.kind, config["e"].loss.triplet.soft_margin) == ("batch_soft", False)
    assert config["c"].model.neck == "none" and config["f"].model.pooling == "avg"
    assert config["g"].model.backbone == "robust_reid_1x" and not config["g"].train.swa.enabled
    assert config["h"].model.backbone == "robust_reid_1x" and config["h"].train.swa.swag  # g continued with SWAG
    # a: what its check marks say, the Bag of Tricks alone on HA-CNN ("these tricks alone")
    a = config["a"]
    assert (a.model.backbone, a.loss.triplet.kind, a.model.neck, a.model.pooling) == ("hacnn", "none", "none", "avg")
    assert a.augment.random_erasing.p == 0.5 and a.train.warmup_epochs == 10 and not a.model.classifier_bias
    hacnn = config["HA-CNN"]
    assert hacnn.model.backbone == "hacnn" and hacnn.loss.triplet.kind == "none" and hacnn.augment.random_erasing.p == 0.0
    assert hacnn.train.warmup_epochs == 0 and hacnn.model.classifier_bias and hacnn.loss.label_smoothing == 0.0
    assert set(loaded.spec.report.reference.rows) == set(TABLE_2_OFF) and loaded.spec.report.metrics == ("rank1", "mAP")
    # Each column against the column the text compares it with (section 4.1).
    contrasts = {name: trial.contrast for name, trial in rows.items()}
    assert contrasts == {
        "HA-CNN": None,
        "a": "HA-CNN",
        **{column: "i" for column in "bcdefg"},
        "h": "g",
        "i": "Robust-ReID",
        "Robust-ReID": None,
    }


def test_robust_reid_table_3_setups_are_table_2_columns_continued():
    """Setup 2 is column g and setup 3 column i (section 4.2): their "-" rows are the same
    trials; their "+" rows continue those trials' models (at the same seed) with Table 2's h and
    Robust-ReID update, running only the 525 cyclic epochs."""
    _, t3 = _rows("robust_reid_table3")
    _, t2 = _rows("robust_reid_table2")
    assert t3["2 -"].config_hash == t2["g"].config_hash and t3["3 -"].config_hash == t2["i"].config_hash
    for setup in "123":
        for row in ("+LR scheme", "+SWAG"):
            continued, parent = t3[f"{setup} {row}"], t3[f"{setup} -"]
            assert continued.config.train.init_from == parent.config_hash and continued.seed == parent.seed
            assert (continued.config.train.first_epoch, continued.config.train.total_epochs) == (351, 875)
    for mine, theirs in (("2 +SWAG", "h"), ("3 +SWAG", "Robust-ReID")):
        train = t3[mine].config.model_dump(mode="json")
        train["train"]["init_from"] = None
        assert train == t2[theirs].config.model_dump(mode="json")  # the same update, continued
        assert t3[mine].config_hash != t2[theirs].config_hash
    lr_only = t3["3 +LR scheme"].config.train.swa
    assert (
        lr_only.enabled
        and not lr_only.average
        and not lr_only.swag
        and (lr_only.cycles, lr_only.cycle_epochs, lr_only.decay) == (15, 35, 0.7)
    )
    one = t3["1 -"].config.model
    assert (one.backbone, one.shuffle_blocks, one.pooling, one.neck) == ("robust_reid_1x", False, "avg", "l2norm")
    # Within each setup: the "+" rows against their own "-" row, which is a reference of its own.
    assert {name: trial.contrast for name, trial in t3.items()} == {
        f"{setup} {row}": (None if row == "-" else f"{setup} -") for setup in "123" for row in ("-", "+LR scheme", "+SWAG")
    }


def test_bag_of_tricks_baselines_have_the_papers_tricks():
    for name, first in (
        ("apra_table2", "BagTricks"),
        ("implicit_attention_table1", "Luo et al. (triplet)"),
        ("implicit_attention_fig3", "baseline"),
    ):
        _, rows = _rows(name)
        c = rows[first].config
        assert (c.model.backbone, c.model.pretrained, c.model.last_stride, c.model.neck) == ("resnet50", "resnet50.tv_in1k", 1, "bnneck"), (
            name
        )
        assert (c.eval.feature, c.eval.distance, c.dataset.height, c.dataset.width) == ("post_neck", "cosine", 256, 128), name
        assert (c.train.optimizer, c.train.lr, c.train.epochs, c.train.lr_steps, c.train.ids_per_batch) == (
            "adam",
            3.5e-4,
            120,
            (40, 70),
            16,
        ), name
    _, apra = _rows("apra_table2")
    assert apra["BagTricks"].config.loss.center.weight == 0.0005 and apra["+APRA"].config.model.apra.stages == (1,)
    assert apra["+APRA"].config.model.apra.lam == 0.01 and not apra["BagTricks"].config.model.apra.is_active()


def test_implicit_attention_presets_follow_table_1_and_figure_3():
    _, t1 = _rows("implicit_attention_table1")
    softmax = [name for name in t1 if "softmax" in name]
    assert all(t1[name].config.loss.triplet.kind == "none" for name in softmax)
    assert all(t1[name].config.loss.triplet.kind == "batch_hard" for name in t1 if name not in softmax)
    assert t1["Full Body (triplet)"].config.augment.implicit_attention.p == 0.3
    loaded, fig3 = _rows("implicit_attention_fig3")
    upper = sorted(
        t.config.augment.implicit_attention.p
        for t in fig3.values()
        if t.config.augment.implicit_attention.roi == "upper_body" and t.config.augment.implicit_attention.enabled
    )
    full = sorted(
        t.config.augment.implicit_attention.p
        for t in fig3.values()
        if t.config.augment.implicit_attention.roi == "full_body" and t.config.augment.implicit_attention.enabled
    )
    assert upper == [0.1, 0.3, 0.5, 0.7, 0.9] and full == [0.3, 0.5]
    assert "rank50" in loaded.spec.report.metrics
    # Each augmentation against the baseline of its own loss; the triplet baseline against softmax's.
    assert {name: trial.contrast for name, trial in t1.items()} == {
        "Luo et al. (softmax)": None,
        "Upper Body (softmax)": "Luo et al. (softmax)",
        "Full Body (softmax)": "Luo et al. (softmax)",
        "Luo et al. (triplet)": "Luo et al. (softmax)",
        "Upper Body (triplet)": "Luo et al. (triplet)",
        "Full Body (triplet)": "Luo et al. (triplet)",
    }


@pytest.mark.parametrize("name", PAPER_PRESETS)
def test_paper_presets_name_their_table_and_carry_its_numbers(name):
    text = preset_text(name)
    header = text.splitlines()[0]
    assert "Table" in header or "Fig." in header or "CPU scale" in header
    loaded, _ = _rows(name)
    reference = loaded.spec.report.reference
    assert reference is not None and reference.rows and reference.source
    for row in reference.rows.values():
        assert set(row) <= set(loaded.spec.report.metrics)  # every reference number has its column
    # A reproduction states the recipe the paper reports and where this preset departs from it.
    assert reference.recipe is not None and reference.recipe.seeds == 1
    assert loaded.spec.report.deviations and all(d.strip().endswith(".") for d in loaded.spec.report.deviations)


def readme_deviations() -> dict[str, list[str]]:
    """The README's "What the presets change" list: preset -> its sentences."""
    text = (Path(__file__).resolve().parents[2] / "README.md").read_text(encoding="utf-8")
    section = text.split("### What each preset changes from its paper", 1)[1].split("\n## ", 1)[0].split("\n### ", 1)[0]
    found: dict[str, list[str]] = {}
    current = None
    for line in section.splitlines():
        if line.startswith("- `"):
            current = line[3 : line.index("`", 3)]
            found[current] = []
        elif line.startswith("  - ") and current is not None:
            found[current].append(line[4:])
        elif line.startswith("    ") and current is not None and found[current]:
            found[current][-1] += " " + line.strip()
    return found


def test_the_readme_lists_every_presets_deviations_word_for_word():
    listed = readme_deviations()
    for name in EXPECTED:
        loaded, _ = _rows(name)
        assert listed.get(name, []) == list(loaded.spec.report.deviations), name
    assert set(listed) <= set(EXPECTED)


def test_a_presets_deviations_reach_preset_show_and_the_tables_footnote():
    from analysis.summary import summarize
    from analysis.tables import notes

    shown = CliRunner().invoke(app, ["preset", "show", "dranet_table4"])
    loaded, _ = _rows("dranet_table4")
    first = loaded.spec.report.deviations[0]
    assert first in shown.stdout.replace("\n    ", " ")
    summary = summarize(
        "s", [{"study": "s", "variant": "Baseline", "seed": 0, "config_hash": "h", "status": "completed", "mAP": 0.5}], metrics=("mAP",)
    )
    summary.deviations = loaded.spec.report.deviations
    assert "Departures from the paper: " + first in " ".join(notes(summary))


def test_cli_preset_list_and_show(tiny_market):
    runner = CliRunner()
    listed = runner.invoke(app, ["preset", "list"])
    assert listed.exit_code == 0 and "apra_table2" in listed.stdout
    shown = runner.invoke(app, ["preset", "show", "dranet_table4", "--dataset-root", str(tiny_market)])
    assert shown.exit_code == 0 and str(tiny_market) in shown.stdout and "+RCAM+RSAM" in shown.stdout
    unknown = runner.invoke(app, ["preset", "show", "nope"])
    assert unknown.exit_code == 2 and "unknown preset 'nope'" in unknown.stderr


def test_preset_show_swaps_in_the_evaluation_targets_folder(tiny_market, tiny_duke):
    runner = CliRunner()
    listed = runner.invoke(app, ["preset", "list"])
    assert any(line.split()[:3] == ["apra_explore_market_to_duke", "exploration:", "APRA"] for line in listed.stdout.splitlines())
    shown = runner.invoke(
        app, ["preset", "show", "apra_explore_market_to_duke", "--dataset-root", str(tiny_market), "--target-root", str(tiny_duke)]
    )
    assert shown.exit_code == 0, shown.stderr
    assert f"root: {tiny_market}" in shown.stdout and f"{{label: duke, name: dukemtmc, root: {tiny_duke}}}" in shown.stdout
