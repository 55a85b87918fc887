"""Every preset is runnable as it is once a dataset path is swapped in."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from orchestrator.checks import check_spec
from orchestrator.cli import app
from orchestrator.errors import InputError
from orchestrator.preset_library import DATASET_PLACEHOLDER, list_presets, preset_text
from orchestrator.spec import load_spec

# preset -> (design, variants, trials)
EXPECTED = {
    "quickstart": ("one_at_a_time", 2, 6),
    "apra_placement_lambda": ("grid", 1 + 4 * 3, (1 + 4 * 3) * 3),
    "dranet_reverse_attention": ("list", 7, 21),
    "robust_reid_leave_one_out": ("leave_one_out", 12, 24),
    "implicit_attention_sweep": ("grid", 1 + 5 * 2, (1 + 5 * 2) * 3),
}


def test_every_preset_is_listed():
    assert set(list_presets()) == set(EXPECTED)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_preset_trial_counts_and_checks(name, tiny_market, tmp_path):
    path = tmp_path / f"{name}.yaml"
    text = preset_text(name, str(tiny_market))
    assert DATASET_PLACEHOLDER not in text
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
    path.write_text(preset_text("apra_placement_lambda"), encoding="utf-8")
    with pytest.raises(InputError, match=f"dataset folder not found: {DATASET_PLACEHOLDER}"):
        check_spec(load_spec(path))


def test_robust_reid_preset_rows_follow_table_2():
    loaded = load_spec(Path(__file__).resolve().parents[2] / "examples" / "robust_reid_leave_one_out.yaml")
    rows = {t.variant: t.config for t in loaded.trials if t.seed == 0}
    full = rows["full"]
    assert (full.model.backbone, full.model.pooling, full.model.neck, full.loss.triplet.kind) == ("robust_reid_2x", "gem", "l2norm", "batch_soft")
    assert full.train.swa.enabled and full.train.swa.swag
    assert rows["w/o deeper & wider"].model.backbone == "robust_reid_1x"
    assert rows["w/o GeM"].model.pooling == "avg" and rows["w/o GeM"].model.neck == "l2norm"
    assert not rows["w/o SWAG"].train.swa.enabled


def test_cli_preset_list_and_show(tiny_market):
    runner = CliRunner()
    listed = runner.invoke(app, ["preset", "list"])
    assert listed.exit_code == 0 and "apra_placement_lambda" in listed.stdout
    shown = runner.invoke(app, ["preset", "show", "dranet_reverse_attention", "--dataset-root", str(tiny_market)])
    assert shown.exit_code == 0 and str(tiny_market) in shown.stdout and "+RCAM+RSAM" in shown.stdout
    unknown = runner.invoke(app, ["preset", "show", "nope"])
    assert unknown.exit_code == 2 and "unknown preset 'nope'" in unknown.stderr
