"""A trial that fails mid-training resumes from its last Tune checkpoint: real Ray Tune, the
real recorder, MLflow store and Parquet store. The trial's worker process dies once after its
first checkpoint (a hook exits it before epoch 4, the first time only); Tune starts the trial
again and it trains on from the checkpoint at epoch 2, so only epoch 3 runs twice."""

from __future__ import annotations

import os
import sys
import textwrap
from pathlib import Path

import pytest

from trainables.engine import HookBase
from trainables.trial_checkpoint import checkpoint_due

pytestmark = pytest.mark.integration


class EpochLog(HookBase):
    """Appends ``epoch loss`` for every epoch trained, in any process (a file survives the
    worker), and kills its worker process once before ``crash_before`` (a marker file remembers
    that it did)."""

    def __init__(self, log: str, crash_before: int, marker: str):
        self.log, self.crash_before, self.marker = log, crash_before, marker

    def before_epoch(self) -> None:
        if self.trainer.epoch + 1 == self.crash_before and not Path(self.marker).exists():
            Path(self.marker).touch()
            os._exit(1)  # the worker dies as a killed one would: no exception, no clean-up

    def after_epoch(self) -> None:
        with open(self.log, "a", encoding="utf-8") as handle:
            handle.write(f"{self.trainer.metrics['epoch']} {self.trainer.metrics['loss']!r}\n")


def test_checkpoints_every_n_epochs_but_not_after_the_last():
    assert [e for e in range(1, 13) if checkpoint_due(e, 5, 12)] == [5, 10]
    assert [e for e in range(1, 11) if checkpoint_due(e, 5, 10)] == [5]
    assert not any(checkpoint_due(e, 0, 10) for e in range(1, 11))


@pytest.mark.parametrize("store_kind", ["folder", pytest.param("s3", marks=pytest.mark.slow)])
def test_a_trial_that_dies_resumes_from_its_checkpoint_without_duplicates(store_kind, tiny_market, tmp_path, monkeypatch, request):
    """With an S3 store, Tune's state and the checkpoints live beside it (as on a cluster)."""
    from mlflow.tracking import MlflowClient

    import orchestrator.tune_runner as tune_runner
    from orchestrator.launch import launch_study
    from orchestrator.spec import load_spec
    from ray import cloudpickle
    from storage import ResultStore

    # The hook's class travels to the worker by value (the tests package is not on its path).
    cloudpickle.register_pickle_by_value(sys.modules[__name__])
    bucket = request.getfixturevalue("s3_bucket") if store_kind == "s3" else None
    store_uri = f"s3://{bucket}/results" if bucket else str(tmp_path / "studies" / "ckpt" / "results")
    spec = tmp_path / "ckpt.yaml"
    spec.write_text(
        textwrap.dedent(
            f"""
            study: {{name: ckpt}}
            baseline:
              dataset: {{name: market1501, root: "{tiny_market}", height: 64, width: 32}}
              train: {{epochs: 5, ids_per_batch: 4, images_per_id: 4, warmup_epochs: 0, lr_steps: [], eval_every: 2}}
            ablation: {{design: list, variants: [{{name: base}}]}}
            resources: {{cpus_per_trial: 1, checkpoint_every: 2}}
            output: {{store: "{store_uri}"}}
            """
        ),
        encoding="utf-8",
    )
    log, marker = tmp_path / "epochs.log", tmp_path / "crashed"
    hook = EpochLog(str(log), crash_before=4, marker=str(marker))
    run_trials = tune_runner.run_trials
    monkeypatch.setattr(tune_runner, "run_trials", lambda *args, **kwargs: run_trials(*args, hooks=[hook], **kwargs))
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("REID_ORCH_NUM_CPUS", "1")
    lines: list[str] = []
    launch_study(load_spec(spec), echo=lines.append)

    assert marker.exists(), "the trial never crashed"
    trained = [line.split() for line in log.read_text(encoding="utf-8").splitlines()]
    assert [int(e) for e, _ in trained] == [1, 2, 3, 3, 4, 5]  # epochs 1-2 not trained again
    first, again = [float(loss) for e, loss in trained if e == "3"]
    assert again == pytest.approx(first, rel=1e-5)  # the same model, optimizer and random state
    assert sum("retrying base seed=0" in line and "from its checkpoint at epoch 2" in line for line in lines) == 1, lines

    store = ResultStore(store_uri)
    rows = store.read_rows("trials", "ckpt")
    assert len(rows) == 1 and rows[0]["status"] == "completed", rows
    assert rows[0]["epochs_done"] == 5 and rows[0]["epochs_rerun"] == 1
    assert rows[0]["mAP"] > 0
    # Its compute: the wall time of both attempts (each epoch's training inside it) times 1 CPU.
    assert rows[0]["cpus"] == 1 and rows[0]["gpus"] == 0 and rows[0]["gpu_seconds"] == 0
    assert rows[0]["wall_seconds"] > rows[0]["train_seconds"] + rows[0]["eval_seconds"] > 0
    assert rows[0]["cpu_seconds"] == pytest.approx(rows[0]["wall_seconds"])
    curves = store.read_rows("curves", "ckpt")
    assert sorted(int(r["epoch"]) for r in curves) == [1, 2, 3, 4, 5]
    assert len(store.read_rows("cameras", "ckpt")) > 0

    client = MlflowClient(tracking_uri=f"sqlite:///{tmp_path / 'studies' / 'ckpt' / 'mlflow.db'}")
    experiment = client.get_experiment_by_name("ckpt")
    runs = [r for r in client.search_runs([experiment.experiment_id]) if r.data.tags.get("reid.role") == "trial"]
    assert len(runs) == 1 and runs[0].info.status == "FINISHED"
    assert [m.step for m in client.get_metric_history(runs[0].info.run_id, "loss")] == [1, 2, 3, 4, 5]
    assert [m.step for m in client.get_metric_history(runs[0].info.run_id, "mAP")] == [2, 4, 5]
    assert runs[0].data.metrics["cpu_seconds"] == pytest.approx(rows[0]["cpu_seconds"])

    # The trial's row is in the store: no checkpoint of it is kept (on S3 as in a folder), while
    # Tune's own records of the trial stay.
    if bucket is None:
        ray_dir = tmp_path / "studies" / "ckpt" / "ray"
        kept = [str(p.relative_to(tmp_path)) for p in ray_dir.glob("*/*/checkpoint_*")]
        records = list(ray_dir.glob("*/*/params.json"))
    else:
        from tests.fixtures_s3 import boto3_client

        listing = boto3_client(os.environ["AWS_ENDPOINT_URL_S3"]).list_objects_v2(Bucket=bucket, Prefix="results/_ray/")
        keys = [o["Key"] for o in listing.get("Contents", [])]
        kept = [key for key in keys if "/checkpoint_" in key]
        records = [key for key in keys if key.endswith("/params.json")]
    assert kept == [] and len(records) == 1, (kept, records)
