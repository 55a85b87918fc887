"""A real study in which one variant continues another (Robust-ReID Table 3's "+SWAG" after
"-"): the parent runs first and saves its model, the dependent loads it and runs only the SWA
cycle (its epoch numbered on from the parent's), and a relaunch runs nothing."""

from __future__ import annotations

import textwrap

import pytest

from tests.cli import run_orchestrator

pytestmark = pytest.mark.integration


def test_a_dependent_runs_after_its_parent_from_its_checkpoint(tiny_market, tmp_path):
    import pyarrow.parquet as pq

    spec = tmp_path / "study.yaml"
    spec.write_text(
        textwrap.dedent(
            f"""
            study: {{name: cont}}
            baseline:
              dataset: {{name: market1501, root: "{tiny_market}", height: 32, width: 16}}
              model: {{backbone: resnet10t}}
              train: {{epochs: 1, ids_per_batch: 4, images_per_id: 4, warmup_epochs: 0, lr_steps: [], eval_every: 5,
                       swa: {{enabled: true, cycles: 1, cycle_epochs: 1, lr: 1.0e-4}}}}
            ablation:
              design: list
              variants:
                - {{name: "+SWA", continues: "-"}}
                - {{name: "-", set: {{train.swa.enabled: false}}}}
              seeds: [0]
            resources: {{cpus_per_trial: 1}}
            """
        ),
        encoding="utf-8",
    )
    first = run_orchestrator("launch", str(spec), cwd=tmp_path, timeout=400)
    assert first.returncode == 0, first.stdout[-3000:] + first.stderr[-3000:]
    out = first.stdout
    assert out.index("finished - seed=0") < out.index("started +SWA seed=0")  # parent first

    study = tmp_path / "studies" / "cont"
    results = study / "results"
    trials = {row["variant"]: row for f in (results / "trials" / "cont").glob("*.parquet") for row in pq.read_table(f).to_pylist()}
    parent, child = trials["-"], trials["+SWA"]
    assert parent["status"] == child["status"] == "completed"
    assert child["cfg.train.init_from"] == parent["config_hash"] and parent["cfg.train.init_from"] is None
    # The dependent loaded the parent's final model from the default checkpoint folder; once it
    # completed, no child needed a model any more, and the folder was emptied.
    assert list((study / "checkpoints").glob("*.pt")) == []
    curves = sorted(
        (row["variant"], row["epoch"]) for f in (results / "curves" / "cont").glob("*.parquet") for row in pq.read_table(f).to_pylist()
    )
    assert curves == [("+SWA", 2), ("-", 1)]  # the continuation alone, numbered on
    assert child["epochs_done"] == 1 and child["mAP"] is not None

    again = run_orchestrator("launch", str(spec), cwd=tmp_path, timeout=200)
    assert again.returncode == 0, again.stdout[-3000:] + again.stderr[-3000:]
    assert "2 trials planned, 2 already completed, 0 to run" in again.stdout
    assert "started" not in again.stdout
