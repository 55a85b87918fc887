"""Workers are reused from trial to trial, and a trial in a reused worker is the trial it would
be alone: real CLI, real Ray Tune (one worker, three trials in turn), Parquet results compared
with the same configs run in this process without Ray."""

from __future__ import annotations

import json
import textwrap

import pytest

from search_spaces.metrics import MAP, RANK1
from tests.cli import run_orchestrator

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def test_three_trials_share_one_worker_and_match_their_runs_alone(tiny_market, tmp_path):
    from orchestrator.spec import load_spec
    from storage import ResultStore
    from trainables.trial import RuntimeOptions, run_trial

    spec = tmp_path / "reuse.yaml"
    spec.write_text(
        textwrap.dedent(
            f"""
            study: {{name: reuse}}
            baseline:
              dataset: {{name: market1501, root: "{tiny_market}", height: 64, width: 32}}
              model: {{backbone: resnet10t}}
              train: {{epochs: 1, ids_per_batch: 4, images_per_id: 4, warmup_epochs: 0, lr_steps: [], eval_every: 1}}
            ablation:
              design: grid
              axes: {{loss.triplet.margin: [0.2, 0.3, 0.4]}}
            resources: {{cpus_per_trial: 1, max_concurrent_trials: 1}}
            """
        ),
        encoding="utf-8",
    )
    result = run_orchestrator("launch", str(spec), cwd=tmp_path)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]

    # Tune's own record of each trial names the worker process that ran it.
    results = sorted((tmp_path / "studies" / "reuse" / "ray").glob("*/*/result.json"))
    assert len(results) == 3
    pids = {json.loads(path.read_text().splitlines()[-1])["pid"] for path in results}
    assert len(pids) == 1, pids

    rows = {row["config_hash"]: row for row in ResultStore(str(tmp_path / "studies" / "reuse" / "results")).read_rows("trials", "reuse")}
    loaded = load_spec(spec)
    assert set(rows) == {trial.config_hash for trial in loaded.trials}
    # The later trials ran after others in the same process; alone they give the same numbers.
    for trial in loaded.trials:
        alone = run_trial(trial.config, report=lambda metrics: None, runtime=RuntimeOptions(threads=1))
        for metric in (MAP, RANK1):
            assert rows[trial.config_hash][metric] == pytest.approx(alone[metric], rel=1e-6, abs=1e-9), metric
