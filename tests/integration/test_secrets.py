"""No credential leaves the environment it was given in: a real study tracked on a real
``mlflow server`` through a tracking URI that embeds a password, with AWS and MLflow secrets in
the environment, then every byte the run wrote (and printed) searched for them: the study
folder (Tune's pickles included), Ray's session folder (its logs), the server's backend store
and artifacts, the Parquet store, stdout and stderr."""

from __future__ import annotations

import os
import textwrap

import pytest

from tests.cli import run_orchestrator
from tests.mlflow_server import running_mlflow_server

pytestmark = [pytest.mark.integration, pytest.mark.slow]

URI_PASSWORD = "uri-pw-5c1e7b0d"
SECRETS = {
    "AWS_SECRET_ACCESS_KEY": "aws-secret-8d0f2a91",
    "AWS_SESSION_TOKEN": "aws-token-3b7c44e0",
    "MLFLOW_TRACKING_PASSWORD": "mlflow-pw-61a9f3c2",
}


@pytest.fixture(scope="module")
def mlflow_server(tmp_path_factory):
    """``mlflow server`` on 127.0.0.1 (no authentication: it ignores the URI's credentials),
    its SQLite store and artifacts in a folder of the test; the whole process group is stopped
    afterwards."""
    folder = tmp_path_factory.mktemp("mlflow_server")
    with running_mlflow_server(folder, str(folder / "artifacts"), os.environ) as port:
        yield port, folder


def test_no_secret_reaches_output_files_mlflow_parquet_or_ray_logs(mlflow_server, tiny_market, tmp_path, tmp_path_factory):
    port, server_folder = mlflow_server
    # Ray's session folder (its logs) inside the test's folders; a short path, as Ray's sockets
    # live there and a socket path may not exceed 107 characters.
    ray_tmp = tmp_path_factory.mktemp("r")
    spec = tmp_path / "spec.yaml"
    spec.write_text(
        textwrap.dedent(
            f"""
            study: {{name: secrets}}
            baseline:
              dataset: {{name: market1501, root: "{tiny_market}", height: 64, width: 32}}
              train: {{epochs: 2, ids_per_batch: 4, images_per_id: 4, warmup_epochs: 0, lr_steps: [], eval_every: 2}}
            ablation:
              design: grid
              axes: {{loss.triplet.margin: [0.2, 0.3]}}
            resources: {{cpus_per_trial: 1, checkpoint_every: 1}}
            """
        ),
        encoding="utf-8",
    )
    uri = f"http://reid:{URI_PASSWORD}@127.0.0.1:{port}"
    result = run_orchestrator("launch", str(spec), cwd=tmp_path, timeout=600, MLFLOW_TRACKING_URI=uri, RAY_TMPDIR=str(ray_tmp), **SECRETS)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]

    # The run went where the secrets could have gone: the server has its runs, Tune pickled
    # its state, Ray wrote its logs, the store its rows, and the URI was shown (masked).
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=f"http://127.0.0.1:{port}")
    runs = client.search_runs([client.get_experiment_by_name("secrets").experiment_id])
    assert sorted(r.info.status for r in runs if r.data.tags.get("reid.role") == "trial") == ["FINISHED"] * 2
    study_dir = tmp_path / "studies" / "secrets"
    assert list(study_dir.glob("ray/*/tuner.pkl"))
    assert list(ray_tmp.glob("ray/session_*/logs/runtime_env_agent.log"))
    assert list((study_dir / "results" / "trials").rglob("*.parquet"))
    assert f"http://reid:***@127.0.0.1:{port}/#/experiments/" in result.stdout  # the MLflow view link
    assert f"MLflow  -> http://reid:***@127.0.0.1:{port}" in result.stdout

    leaks = []
    for root in (tmp_path, ray_tmp, server_folder):
        for path in root.rglob("*"):
            if path.is_file() and not path.is_symlink():
                content = path.read_bytes()
                leaks += [f"{secret} in {path}" for secret in (URI_PASSWORD, *SECRETS.values()) if secret.encode() in content]
    for name, text in (("stdout", result.stdout), ("stderr", result.stderr)):
        leaks += [f"{secret} in {name}" for secret in (URI_PASSWORD, *SECRETS.values()) if secret in text]
    assert not leaks, "\n".join(leaks)
