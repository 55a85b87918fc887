"""A real Optuna (TPE) search with ASHA through Ray Tune on the tiny synthetic dataset."""

from __future__ import annotations

import subprocess
import textwrap
from pathlib import Path

import pytest

from tests.cli import run_orchestrator

pytestmark = pytest.mark.integration


def orchestrator(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return run_orchestrator(*args, cwd=cwd)


def test_optuna_with_asha_completes_records_pruned_trials_and_resumes(tiny_market, tmp_path):
    from storage import ResultStore

    spec = tmp_path / "search.yaml"
    spec.write_text(
        textwrap.dedent(
            f"""
            study: {{name: search}}
            baseline:
              dataset: {{name: market1501, root: "{tiny_market}", height: 64, width: 32}}
              train: {{epochs: 4, ids_per_batch: 4, images_per_id: 4, warmup_epochs: 0, lr_steps: [], eval_every: 2}}
            ablation:
              design: optuna
              seeds: [0, 1]
              search:
                num_samples: 6
                max_concurrent: 2
                space:
                  train.lr: {{type: loguniform, low: 1.0e-5, high: 1.0e-2}}
                  model.neck: {{type: choice, values: [bnneck, l2norm]}}
                asha: {{grace_period: 1, reduction_factor: 2}}
                repeat_best: 1
            """
        ),
        encoding="utf-8",
    )
    result = orchestrator("launch", str(spec), cwd=tmp_path)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    rows = ResultStore(str(tmp_path / "studies" / "search" / "results")).read_rows("trials", "search")
    search_rows = [r for r in rows if r["seed"] == 0]
    assert len(search_rows) == 6
    statuses = [r["status"] for r in search_rows]
    assert set(statuses) <= {"completed", "pruned"} and "pruned" in statuses
    assert all(r["design"] == "optuna" for r in rows)
    pruned = [r for r in search_rows if r["status"] == "pruned"]
    assert all(r["epochs_done"] < 4 for r in pruned)
    # The best configuration was rerun at the second seed.
    repeats = [r for r in rows if r["seed"] == 1]
    assert len(repeats) == 1 and repeats[0]["status"] == "completed"
    best = max((r for r in search_rows if r["status"] == "completed"), key=lambda r: r["mAP"])
    assert repeats[0]["changes"] == best["changes"]

    again = orchestrator("launch", str(spec), cwd=tmp_path)
    assert again.returncode == 0, again.stderr[-2000:]
    assert "6 done, 0 to run" in again.stdout and "0 trials to run" in again.stdout
