"""The example plugin study (examples/plugins/) launched for real: Ray Tune workers load the
plugin through the runtime environment; trials, metrics and config land in Parquet and MLflow,
and each checkpoint reloads strictly with its plugin."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest

from tests.cli import run_orchestrator

pytestmark = pytest.mark.integration

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "plugins"


def example_study(folder: Path, dataset_root: Path) -> Path:
    """The example (plugin and spec) copied to ``folder``, on the tiny synthetic dataset."""
    shutil.copy(EXAMPLE / "se_block.py", folder / "se_block.py")
    text = (EXAMPLE / "se_placement.yaml").read_text(encoding="utf-8")
    text = text.replace("dataset: {name: synthetic,", f'dataset: {{name: market1501, root: "{dataset_root}",')
    assert str(dataset_root) in text
    text += "output: {checkpoints: checkpoints}\n"
    spec = folder / "se_placement.yaml"
    spec.write_text(text, encoding="utf-8")
    return spec


@pytest.fixture(scope="module")
def plugin_study(tiny_market, tmp_path_factory):
    workdir = tmp_path_factory.mktemp("plugin_study")
    spec = example_study(workdir, tiny_market)
    # Run from another folder: the plugin path is relative to the spec, not to the cwd.
    elsewhere = tmp_path_factory.mktemp("cwd")
    result = run_orchestrator("launch", str(spec), cwd=elsewhere)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return elsewhere, spec, result


def test_every_placement_trains_and_lands_in_parquet(plugin_study):
    import pyarrow.parquet as pq

    workdir, _, result = plugin_study
    assert "4 trials planned, 0 already completed, 4 to run" in result.stdout
    results = workdir / "studies" / "se_placement" / "results"
    rows = [pq.read_table(f).to_pylist()[0] for f in (results / "trials" / "se_placement").glob("part-*.parquet")]
    assert len(rows) == 4 and all(r["status"] == "completed" for r in rows)
    # List values are stored as JSON text; the off trial has no model.se section at all.
    by_stages = {r.get("cfg.model.se.stages") or "off": r for r in rows}
    assert set(by_stages) == {"off", "[1]", "[2]", "[3]"}
    identity = by_stages["[1]"]["cfg.plugins.se_block"]
    assert re.fullmatch(r"sha256:[0-9a-f]{16}", identity)
    assert by_stages["[2]"]["cfg.plugins.se_block"] == by_stages["[3]"]["cfg.plugins.se_block"] == identity
    assert by_stages["off"].get("cfg.plugins.se_block") is None  # the trial without the block carries no plugin
    assert by_stages["[1]"]["cfg.model.se.reduction"] == 8
    for row in rows:
        assert 0.0 <= row["mAP"] <= 1.0 and row["loss"] > 0


def test_mlflow_child_runs_carry_the_plugin_section_and_metrics(plugin_study):
    from mlflow.tracking import MlflowClient

    workdir, _, _ = plugin_study
    client = MlflowClient(tracking_uri=f"sqlite:///{workdir / 'studies' / 'se_placement' / 'mlflow.db'}")
    experiment = client.get_experiment_by_name("se_placement")
    children = [r for r in client.search_runs([experiment.experiment_id]) if r.data.tags.get("reid.role") == "trial"]
    assert len(children) == 4
    placed = sorted(r.data.params.get("model.se.stages", "-") for r in children)
    assert placed == ["-", "[1]", "[2]", "[3]"]
    for run in children:
        assert run.info.status == "FINISHED" and "mAP" in run.data.metrics and "cam/c01/q_mAP" in run.data.metrics


def test_checkpoint_of_a_plugin_trial_reloads_strictly(plugin_study):
    import torch

    from trainables.models.checkpoint import load_checkpoint

    workdir, _, _ = plugin_study
    checkpoints = sorted((workdir / "checkpoints").glob("*.pt"))
    assert len(checkpoints) == 4
    with_plugin = [c for c in checkpoints if torch.load(c, weights_only=True)["plugins"]]
    assert len(with_plugin) == 3
    model, kwargs = load_checkpoint(with_plugin[0], plugin_dirs=[EXAMPLE])
    assert [spec["module"] for spec in kwargs["inserts"]] == ["se"]
    assert type(model.inserted[0]).__name__ == "SqueezeExcitation"


def test_relaunch_runs_nothing(plugin_study):
    workdir, spec, _ = plugin_study
    again = run_orchestrator("launch", str(spec), cwd=workdir)
    assert again.returncode == 0, again.stderr[-2000:]
    assert "4 trials planned, 4 already completed, 0 to run" in again.stdout
