"""A tiny adaptive study through the real CLI (Ray Tune, MLflow on SQLite, Parquet): after the
first wave one comparison is decided, and the second wave runs only for the one still open;
status and the table say how each was decided, every row states its compute, and no
checkpoint is left in the study folder."""

from __future__ import annotations

import re
import textwrap

import pytest

from storage import ResultStore
from tests.cli import run_orchestrator

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def test_a_second_wave_runs_only_for_the_open_comparison(tiny_market, tmp_path):
    spec = tmp_path / "adaptive.yaml"
    spec.write_text(
        textwrap.dedent(
            f"""
            study: {{name: ada, metric: mAP}}
            baseline:
              dataset: {{name: market1501, root: "{tiny_market}", height: 32, width: 16}}
              model: {{backbone: resnet10t}}
              train: {{epochs: 2, ids_per_batch: 4, images_per_id: 4, warmup_epochs: 0, lr_steps: [], eval_every: 2}}
            ablation:
              design: one_at_a_time
              variants:
                # The CMC curve's length does not touch mAP: identical results at every seed.
                - {{name: +short_cmc, set: {{eval.max_rank: 20}}}}
                - {{name: +erasing, set: {{augment.random_erasing.p: 0.5}}}}
              seeds: [0, 1, 2]
              adaptive: {{max_seeds: 5, smallest_effect: 1.0}}
            resources: {{cpus_per_trial: 1, checkpoint_every: 1}}
            """
        ),
        encoding="utf-8",
    )
    plan = run_orchestrator("plan", str(spec), cwd=tmp_path, timeout=120)
    assert plan.returncode == 0, plan.stderr
    assert "the 9 trials above are the first wave (seeds 0, 1, 2)" in plan.stdout
    assert "at most 15 trials (5 seeds x 3 rows)" in plan.stdout

    result = run_orchestrator("launch", str(spec), cwd=tmp_path, timeout=1500)
    out = result.stdout
    assert result.returncode == 0, out[-3000:] + result.stderr[-3000:]
    assert "+short_cmc vs baseline: no effect > 1, decided at 3 seeds" in out, out
    assert "adaptive seeds: next wave, seeds 3, 4 for +erasing, baseline: 4 trials" in out, out

    store = ResultStore(str(tmp_path / "studies" / "ada" / "results"))
    rows = store.read_rows("trials", "ada")
    ran = sorted((r["variant"], r["seed"]) for r in rows)
    assert ran == sorted(
        [(v, s) for v in ("baseline", "+short_cmc", "+erasing") for s in (0, 1, 2)]
        + [(v, s) for v in ("baseline", "+erasing") for s in (3, 4)]
    )
    assert all(r["status"] == "completed" and r["cpu_seconds"] > 0 and r["gpu_seconds"] == 0 for r in rows)

    # The table: the decision and the compute of each row, and the study's total.
    table = out[out.index("| variant |") :]
    assert re.search(r"\| \+short_cmc \| 3 \|.*\| no effect > 1, decided at 3 seeds \| [0-9.]+ CPU-h \|", table), table
    assert re.search(r"\| \+erasing \| 5 \|.*\| ((no )?effect( > 1)?, decided at 5 seeds|undecided at 5) \| [0-9.]+ CPU-h \|", table), table
    assert "Compute: " in table and "CPU-hours (no GPU was used)" in table

    status = run_orchestrator("status", "ada", cwd=tmp_path, timeout=120)
    assert status.returncode == 0, status.stderr
    assert "adaptive seeds: 2 of 2 looks taken (3, 5 seeds)" in status.stdout, status.stdout
    assert "+short_cmc vs baseline: no effect > 1, decided at 3 seeds" in status.stdout
    assert re.search(r"compute: [0-9.]+ CPU-h spent", status.stdout), status.stdout
    assert "no checkpoint files" in status.stdout and "study folder: " in status.stdout

    # Every trial checkpointed each epoch; none is left once its row was stored.
    assert list((tmp_path / "studies" / "ada").rglob("trainer.pt")) == []

    again = run_orchestrator("launch", str(spec), cwd=tmp_path, timeout=300)
    assert again.returncode == 0, again.stderr[-3000:]
    assert "started" not in again.stdout  # decisions recomputed from the store: nothing to run
