"""``orchestrator k8s render`` keeps the spec's resources unless a flag overrides them, refuses
what the cluster could never run (in one line, exit 2, nothing written), takes every credential
from a Kubernetes Secret, and deploys an MLflow server that runs."""

from __future__ import annotations

import os
import re
import subprocess
import urllib.error
import urllib.request
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from orchestrator.cli import app
from orchestrator.k8s_render import MLFLOW_DB_SECRET, RAY_TOKEN_SECRET, S3_SECRET, RenderOptions, render_manifests, write_manifests
from orchestrator.spec import load_spec
from orchestrator.yaml_source import YamlSource
from tests.k8s.test_manifests import crd_schemas, documents_in, pod_templates, project_schemas, schemas, validate_documents  # noqa: F401

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "examples"


def render(*args: str, out: Path) -> tuple[int, list[str]]:
    result = CliRunner().invoke(app, ["k8s", "render", *args, "--out", str(out)])
    return result.exit_code, [line for line in result.stderr.splitlines() if line.strip()]


def cluster_spec(manifests) -> dict:
    return yaml.safe_load(manifests["configmap.yaml"]["data"]["study.yaml"])


def test_the_specs_resources_are_kept_unless_a_flag_overrides_them():
    loaded = load_spec(EXAMPLES / "apra_table2.yaml")
    assert loaded.spec.resources.gpus_per_trial == 0.5
    kept = render_manifests(loaded, RenderOptions(data_pvc="market", dataset_root="/data/Market-1501"))
    assert cluster_spec(kept)["resources"]["gpus_per_trial"] == 0.5
    overridden = render_manifests(
        loaded, RenderOptions(gpus_per_trial=0.25, cpus_per_trial=3, data_pvc="market", dataset_root="/data/Market-1501")
    )
    assert cluster_spec(overridden)["resources"]["gpus_per_trial"] == 0.25
    assert cluster_spec(overridden)["resources"]["cpus_per_trial"] == 3
    assert cluster_spec(kept)["baseline"]["dataset"]["root"] == "/data/Market-1501"


@pytest.fixture
def cpu16(tmp_path) -> Path:
    path = tmp_path / "cpu16.yaml"
    path.write_text(
        "study: {name: c}\nbaseline:\n  dataset: {name: synthetic, height: 64, width: 32}\nresources:\n  cpus_per_trial: 16\n",
        encoding="utf-8",
    )
    return path


QUICKSTART = str(EXAMPLES / "quickstart.yaml")
TABLE2 = str(EXAMPLES / "apra_table2.yaml")


def line_of(path: str, text: str) -> int:
    """The 1-based line of ``path`` that first holds ``text`` (the preset may gain lines)."""
    return next(number for number, line in enumerate(Path(path).read_text(encoding="utf-8").splitlines(), start=1) if text in line)


GPUS_LINE, ROOT_LINE = line_of(TABLE2, "gpus_per_trial:"), line_of(TABLE2, "root: /path/to/Market-1501")
REFUSED = [
    (
        "cpus on 8-CPU workers (flag)",
        [QUICKSTART, "--cpus-per-trial", "16"],
        "--cpus-per-trial 16: a trial asks for 16 CPU but a worker pod has 8 (--cpus-per-worker)",
    ),
    (
        "more GPUs than a worker has",
        [QUICKSTART, "--gpus-per-trial", "2", "--gpus-per-worker", "1"],
        "--gpus-per-trial 2: a trial asks for 2 GPU but a worker pod has 1",
    ),
    (
        "GPUs on CPU-only workers",
        [TABLE2, "--gpus-per-worker", "0", "--data-pvc", "m", "--dataset-root", "/data/M"],
        f"apra_table2.yaml:{GPUS_LINE}: resources.gpus_per_trial: a trial asks for 0.5 GPU but a worker pod has 0",
    ),
    (
        "a fraction above one GPU",
        [QUICKSTART, "--gpus-per-trial", "1.5", "--gpus-per-worker", "4"],
        "--gpus-per-trial 1.5: 1.5 GPUs: above 1, Ray takes whole GPUs only",
    ),
    (
        "a laptop dataset, no volume",
        [TABLE2],
        f"apra_table2.yaml:{ROOT_LINE}: baseline.dataset.root: dataset 'market1501' at /path/to/Market-1501 is on no volume the pods mount: pass --data-pvc",
    ),
    (
        "a volume, no root inside it",
        [TABLE2, "--data-pvc", "market"],
        "dataset 'market1501' at /path/to/Market-1501: the pods mount --data-pvc at /data; pass --dataset-root /data/<folder>",
    ),
    (
        "a root outside the volume",
        [TABLE2, "--data-pvc", "market", "--dataset-root", "/home/me/Market"],
        "--dataset-root '/home/me/Market': the dataset volume is mounted at /data",
    ),
    ("a PVC name with a space", [QUICKSTART, "--data-pvc", "Bad PVC!"], "--data-pvc 'Bad PVC!' is not a valid PersistentVolumeClaim name"),
    (
        "a PVC name with a newline",
        [QUICKSTART, "--data-pvc", "market\nx"],
        "--data-pvc 'market\\nx' is not a valid PersistentVolumeClaim name",
    ),
    (
        "an FTP store",
        [QUICKSTART, "--store-uri", "ftp://x/y"],
        "--store-uri 'ftp://x/y': every pod of the cluster writes there, so it must be an S3 URI with a bucket",
    ),
    ("an empty store", [QUICKSTART, "--store-uri", ""], "--store-uri '': every pod of the cluster writes there"),
    ("a bucketless store", [QUICKSTART, "--store-uri", "s3://"], "--store-uri 's3://'"),
    ("a local artifacts folder", [QUICKSTART, "--artifacts-uri", "/tmp/mlflow"], "--artifacts-uri '/tmp/mlflow'"),
    ("an image with a newline", [QUICKSTART, "--image", "reid\n:1"], "--image 'reid\\n:1' is not a valid image reference"),
    ("an image with a trailing newline", [QUICKSTART, "--image", "reid:1\n"], "--image 'reid:1\\n' is not a valid image reference"),
]


@pytest.mark.parametrize(("args", "fragment"), [case[1:] for case in REFUSED], ids=[case[0] for case in REFUSED])
def test_what_the_cluster_could_never_run_is_refused_in_one_line(args, fragment, tmp_path):
    out = tmp_path / "out"
    code, lines = render(*args, out=out)
    assert code == 2 and len(lines) == 1, lines
    assert fragment in lines[0], lines[0]
    assert not out.exists()


def test_a_spec_asking_more_cpus_than_a_worker_has_is_refused_at_its_line(cpu16, tmp_path):
    code, lines = render(str(cpu16), out=tmp_path / "out")
    assert code == 2 and len(lines) == 1, lines
    assert f"{cpu16}:5: resources.cpus_per_trial: a trial asks for 16 CPU but a worker pod has 8" in lines[0]
    assert "(or override it with --cpus-per-trial)" in lines[0]
    code, _ = render(str(cpu16), "--cpus-per-worker", "16", out=tmp_path / "out")
    assert code == 0


def test_a_dataset_a_variant_points_elsewhere_is_refused(tmp_path):
    (tmp_path / "a").mkdir()
    spec = tmp_path / "s.yaml"
    spec.write_text(
        f"study: {{name: s}}\nbaseline:\n  dataset: {{name: market1501, root: {tmp_path / 'a'}}}\n"
        f"ablation:\n  variants:\n    - {{name: other, set: {{dataset.root: {tmp_path}}}}}\n",
        encoding="utf-8",
    )
    code, lines = render(str(spec), "--data-pvc", "market", "--dataset-root", "/data/a", out=tmp_path / "out")
    assert code == 2 and len(lines) == 1, lines
    assert (
        f"s.yaml:6: ablation.variants[0].set['dataset.root']: dataset 'market1501' at {tmp_path} (set by a variant) is outside the volume"
        in lines[0]
    )


def all_containers(manifests):
    for template in pod_templates(manifests["rayjob.yaml"]):
        yield from template["spec"]["containers"]
    yield from manifests["mlflow.yaml"][0]["spec"]["template"]["spec"]["containers"]


CREDENTIAL = re.compile(r"SECRET|PASSWORD|TOKEN|ACCESS_KEY|BACKEND_STORE_URI")


def test_pods_take_every_credential_from_a_secret_and_the_readme_says_which_to_create():
    manifests = render_manifests(load_spec(EXAMPLES / "quickstart.yaml"), RenderOptions())
    referenced = set()
    for container in all_containers(manifests):
        env = {entry["name"]: entry for entry in container["env"]}
        assert {"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"} <= set(env), container["name"]
        for name, entry in env.items():
            if CREDENTIAL.search(name):
                assert "value" not in entry and "secretKeyRef" in entry["valueFrom"], (container["name"], name)
            if "valueFrom" in entry:
                referenced.add(entry["valueFrom"]["secretKeyRef"]["name"])
        assert "envFrom" not in container
    job = manifests["rayjob.yaml"]["spec"]
    assert "runtimeEnvYAML" not in job  # nothing reaches the workers through the job's runtime environment
    referenced.add(job["rayClusterSpec"]["authOptions"]["secretName"])
    assert referenced == {S3_SECRET, MLFLOW_DB_SECRET, RAY_TOKEN_SECRET}
    readme = (ROOT / "k8s" / "README.md").read_text()
    for secret in referenced:
        assert f"kubectl create secret generic {secret}" in readme


def test_the_mlflow_server_runs_the_studys_image_and_names_its_service_as_an_allowed_host():
    manifests = render_manifests(load_spec(EXAMPLES / "quickstart.yaml"), RenderOptions(image="registry.example.org/reid:2"))
    container = manifests["mlflow.yaml"][0]["spec"]["template"]["spec"]["containers"][0]
    assert container["image"] == "registry.example.org/reid:2"  # MLflow + psycopg2 + boto3 (Dockerfile)
    assert "--allowed-hosts 'quickstart-mlflow,quickstart-mlflow:*," in container["args"][0]
    other = render_manifests(load_spec(EXAMPLES / "quickstart.yaml"), RenderOptions(mlflow_image="registry.example.org/mlflow:3"))
    assert other["mlflow.yaml"][0]["spec"]["template"]["spec"]["containers"][0]["image"] == "registry.example.org/mlflow:3"


def test_a_rendering_with_a_dataset_volume_and_the_specs_resources_validates(schemas, tmp_path):  # noqa: F811
    loaded = load_spec(EXAMPLES / "apra_table2.yaml")
    write_manifests(
        render_manifests(loaded, RenderOptions(data_pvc="market-1501.v2", dataset_root="/data/Market-1501", workers=3)), tmp_path
    )
    for _, documents in documents_in(tmp_path):
        validate_documents(documents, schemas)
    job = next(d for _, docs in documents_in(tmp_path) for d in docs if d["kind"] == "RayJob")
    for template in pod_templates(job):
        volumes = {v["name"]: v for v in template["spec"]["volumes"]}
        assert volumes["data"]["persistentVolumeClaim"] == {"claimName": "market-1501.v2", "readOnly": True}
    # The spec the pods read still validates.
    text = next(d for _, docs in documents_in(tmp_path) for d in docs if d["kind"] == "ConfigMap")["data"]["study.yaml"]
    from orchestrator.spec import parse_spec

    assert parse_spec(YamlSource(Path("study.yaml"), yaml.safe_load(text))).spec.resources.gpus_per_trial == 0.5


@pytest.mark.slow
def test_the_rendered_mlflow_server_command_serves_its_service_name(tmp_path):
    """The Deployment's own command, run here with a SQLite backend on a free port: it answers
    requests addressed to the Service's name (MLflow 3 refuses unknown Host headers)."""
    from tests.fixtures_s3 import free_port, stop_process_group, wait_for_http

    manifests = render_manifests(load_spec(EXAMPLES / "quickstart.yaml"), RenderOptions())
    command = manifests["mlflow.yaml"][0]["spec"]["template"]["spec"]["containers"][0]["args"][0]
    port = free_port()
    assert "--port 5000 " in command
    command = command.replace("--port 5000 ", f"--port {port} --workers 1 ")
    bin_dir = str(Path(os.sys.executable).parent)
    env = {**os.environ, "PATH": f"{bin_dir}:{os.environ['PATH']}", "MLFLOW_BACKEND_STORE_URI": f"sqlite:///{tmp_path / 'mlflow.db'}"}
    with open(tmp_path / "server.log", "wb") as log:
        server = subprocess.Popen(
            ["/bin/sh", "-c", command], env=env, cwd=tmp_path, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
        try:
            wait_for_http(f"http://127.0.0.1:{port}/health", timeout=180, process=server)

            def status(host: str) -> int:
                request = urllib.request.Request(
                    f"http://127.0.0.1:{port}/api/2.0/mlflow/experiments/search?max_results=1", headers={"Host": host}
                )
                try:
                    with urllib.request.urlopen(request, timeout=30) as response:
                        return response.status
                except urllib.error.HTTPError as err:
                    return err.code

            assert status("quickstart-mlflow:5000") == 200, (tmp_path / "server.log").read_text()[-2000:]
            assert status("quickstart-mlflow.reid.svc.cluster.local:5000") == 200
            assert status("evil.example.com") == 403  # the check is on: only the named hosts pass
        finally:
            stop_process_group(server)
