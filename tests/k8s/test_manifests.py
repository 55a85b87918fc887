"""Offline validation of every rendered and shipped Kubernetes manifest.

Core kinds are checked against the Kubernetes schemas shipped by kubernetes-validate (strict:
unknown fields are errors). A RayJob is checked against the project's own schema of the fields it
renders (``k8s/schema/rayjob.schema.yaml``), its pod templates against Kubernetes' PodTemplateSpec;
where KubeRay's CRD files are present beside the project (``../shared/k8s-schemas/``) the full
CRD check runs in addition (made strict the same way), otherwise it is skipped with the reason.
No cluster needed; a clean clone with nothing beside it passes.
"""

from __future__ import annotations

import copy
import os
import subprocess
import sys
from pathlib import Path

import jsonschema
import kubernetes_validate
import pytest
import yaml

from orchestrator.k8s_render import RenderOptions, render_manifests, write_manifests
from orchestrator.spec import load_spec, parse_spec
from orchestrator.yaml_source import YamlSource

ROOT = Path(__file__).resolve().parents[2]
# Beside the project, or where REID_ORCH_K8S_SCHEMAS points (a worktree elsewhere).
SCHEMAS = Path(os.environ.get("REID_ORCH_K8S_SCHEMAS") or ROOT.parent / "shared" / "k8s-schemas")
RAYJOB_SCHEMA = ROOT / "k8s" / "schema" / "rayjob.schema.yaml"
SHIPPED = ROOT / "k8s" / "base"
CORE_KINDS = {"ConfigMap", "Deployment", "Service", "NetworkPolicy"}
SECRET_VALUES = {
    "AWS_SECRET_ACCESS_KEY": "s3cret-value-that-must-not-leak",
    "AWS_ACCESS_KEY_ID": "AKIA-MUST-NOT-LEAK",
    "MLFLOW_TRACKING_PASSWORD": "mlflow-pass-must-not-leak",
    "RAY_AUTH_TOKEN": "ray-token-must-not-leak",
}


def strict(schema):
    """Forbid unknown fields wherever the CRD lists properties (as the API server would prune them)."""
    schema = copy.deepcopy(schema)

    def walk(node):
        if isinstance(node, dict):
            if "properties" in node and not node.get("x-kubernetes-preserve-unknown-fields") and "additionalProperties" not in node:
                node["additionalProperties"] = False
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(schema)
    return schema


@pytest.fixture(scope="module")
def project_schemas():
    """The project's schema of the RayJob fields it writes (always available)."""
    schema = yaml.safe_load(RAYJOB_SCHEMA.read_text())
    jsonschema.Draft202012Validator.check_schema(schema)
    return {"RayJob": schema}


@pytest.fixture(scope="module")
def crd_schemas():
    """KubeRay's full CRD schemas, only where the folder is present beside the project."""
    if not SCHEMAS.is_dir():
        pytest.skip(f"KubeRay CRD schemas not present at {SCHEMAS} (extra check; the project's own schema ran)")
    schemas = {}
    for file, kind in (("ray.io_rayjobs.yaml", "RayJob"), ("ray.io_rayclusters.yaml", "RayCluster")):
        crd = yaml.load((SCHEMAS / file).read_text(), Loader=yaml.CSafeLoader)
        version = next(v for v in crd["spec"]["versions"] if v["name"] == "v1")
        schemas[kind] = strict(version["schema"]["openAPIV3Schema"])
    return schemas


@pytest.fixture(params=["project-schema", "kuberay-crd"])
def schemas(request):
    """Each test runs against the project's schema, and again against the CRD where present."""
    return request.getfixturevalue("project_schemas" if request.param == "project-schema" else "crd_schemas")


def pod_templates(rayjob):
    cluster = rayjob["spec"]["rayClusterSpec"]
    yield cluster["headGroupSpec"]["template"]
    for group in cluster.get("workerGroupSpecs", []):
        yield group["template"]


def validate_documents(documents, schemas):
    for doc in documents:
        kind = doc["kind"]
        if kind in CORE_KINDS:
            kubernetes_validate.validate(doc, kubernetes_validate.latest_version(), strict=True)
        elif kind in schemas:
            jsonschema.validate(doc, schemas[kind])
            if kind == "RayJob":
                for template in pod_templates(doc):
                    pod_template = {"apiVersion": "v1", "kind": "PodTemplate", "metadata": {"name": "t"}, "template": template}
                    kubernetes_validate.validate(pod_template, kubernetes_validate.latest_version(), strict=True)
        elif kind == "Kustomization":
            assert doc["resources"]
        else:
            raise AssertionError(f"unexpected kind {kind}")


def documents_in(folder: Path):
    for path in sorted(folder.glob("*.yaml")):
        yield path, [d for d in yaml.safe_load_all(path.read_text()) if d]


OPTION_SETS = [
    RenderOptions(),
    RenderOptions(
        image="registry.example.org/reid:1.2",
        gpus_per_trial=0.25,
        workers=4,
        gpus_per_worker=8,
        data_pvc="market",
        dataset_root="/data/Market-1501",
        namespace="reid",
    ),
    RenderOptions(gpus_per_trial=0, workers=1, gpus_per_worker=0, store_uri="s3://bucket/prefix/deeper"),
]


@pytest.mark.parametrize("options", OPTION_SETS)
def test_rendered_manifests_validate(options, schemas, tmp_path, monkeypatch):
    for name, value in SECRET_VALUES.items():
        monkeypatch.setenv(name, value)
    loaded = load_spec(ROOT / "examples" / "quickstart.yaml")
    write_manifests(render_manifests(loaded, options), tmp_path)
    kinds = set()
    for path, documents in documents_in(tmp_path):
        validate_documents(documents, schemas)
        kinds |= {d["kind"] for d in documents}
        text = path.read_text()
        for secret in SECRET_VALUES.values():
            assert secret not in text, f"{secret} leaked into {path}"
    assert kinds == {"ConfigMap", "RayJob", "Deployment", "Service", "NetworkPolicy", "Kustomization"}
    kustomization = yaml.safe_load((tmp_path / "kustomization.yaml").read_text())
    assert all((tmp_path / resource).is_file() for resource in kustomization["resources"])


def test_rayjob_carries_the_study_and_cluster_shape():
    loaded = load_spec(ROOT / "examples" / "quickstart.yaml")
    options = RenderOptions(workers=3, gpus_per_worker=2, gpus_per_trial=0.5)
    manifests = render_manifests(loaded, options)
    job = manifests["rayjob.yaml"]["spec"]
    assert job["shutdownAfterJobFinishes"] is True
    assert job["entrypoint"].startswith("orchestrator launch /etc/reid-orchestrator/study.yaml")
    cluster = job["rayClusterSpec"]
    assert cluster["authOptions"] == {"mode": "token", "secretName": "reid-ray-auth-token"}
    worker = cluster["workerGroupSpecs"][0]
    assert worker["replicas"] == 3
    assert worker["template"]["spec"]["containers"][0]["resources"]["limits"]["nvidia.com/gpu"] == "2"
    # The spec in the ConfigMap is a valid study spec pointing at shared storage.
    text = manifests["configmap.yaml"]["data"]["study.yaml"]
    cluster_spec = parse_spec(YamlSource(Path("study.yaml"), yaml.safe_load(text))).spec
    assert cluster_spec.output.store == options.store_uri
    assert cluster_spec.resources.gpus_per_trial == 0.5
    assert cluster_spec.output.tracking_uri == "http://quickstart-mlflow:5000"


def test_every_credential_is_a_secret_reference():
    manifests = render_manifests(load_spec(ROOT / "examples" / "quickstart.yaml"), RenderOptions())
    deployment = manifests["mlflow.yaml"][0]
    env = {e["name"]: e for e in deployment["spec"]["template"]["spec"]["containers"][0]["env"]}
    for name in ("MLFLOW_BACKEND_STORE_URI", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        assert "value" not in env[name] and "secretKeyRef" in env[name]["valueFrom"]
    service = manifests["mlflow.yaml"][1]
    assert service["spec"]["type"] == "ClusterIP"  # not exposed outside the cluster


def test_shipped_manifests_validate_and_match_a_fresh_render(schemas, tmp_path):
    shipped = dict(documents_in(SHIPPED))
    assert set(shipped) >= {SHIPPED / n for n in ("configmap.yaml", "rayjob.yaml", "mlflow.yaml", "kustomization.yaml")}
    for documents in shipped.values():
        validate_documents(documents, schemas)
    write_manifests(render_manifests(load_spec(ROOT / "examples" / "quickstart.yaml"), RenderOptions()), tmp_path)
    for path, documents in documents_in(tmp_path):
        assert shipped[SHIPPED / path.name] == documents, f"k8s/base/{path.name} is stale: re-render it"


def test_a_uri_with_a_credential_is_refused_by_the_cli(tmp_path):
    exe = Path(sys.executable).with_name("orchestrator")
    result = subprocess.run(
        [
            str(exe),
            "k8s",
            "render",
            str(ROOT / "examples" / "quickstart.yaml"),
            "--out",
            str(tmp_path / "out"),
            "--store-uri",
            "s3://AKIA:topsecret@bucket/x",
        ],
        capture_output=True,
        text=True,
        env={**os.environ},
    )
    assert result.returncode == 2
    assert "embeds a credential" in result.stderr and "topsecret" not in result.stderr
    assert not (tmp_path / "out").exists()


def test_a_broken_rayjob_is_caught(schemas):
    job = copy.deepcopy(render_manifests(load_spec(ROOT / "examples" / "quickstart.yaml"), RenderOptions())["rayjob.yaml"])
    job["spec"]["rayClusterSpec"]["workerGroupSpecs"][0]["replicaz"] = 2
    with pytest.raises(jsonschema.ValidationError, match="replicaz"):
        validate_documents([job], schemas)


RAYJOB_MISTAKES = [
    (
        "a number where the API wants a string",
        lambda job: job["spec"]["rayClusterSpec"]["headGroupSpec"]["rayStartParams"].update({"num-gpus": 0}),
    ),
    ("an unknown submission mode", lambda job: job["spec"].update({"submissionMode": "BatchMode"})),
    ("an unknown auth mode", lambda job: job["spec"]["rayClusterSpec"]["authOptions"].update({"mode": "password"})),
    ("a worker group without maxReplicas", lambda job: job["spec"]["rayClusterSpec"]["workerGroupSpecs"][0].pop("maxReplicas")),
    ("a field at the wrong level", lambda job: job["spec"].update({"rayVersion": "2.60.0"})),
]


@pytest.mark.parametrize("mistake", [m[1] for m in RAYJOB_MISTAKES], ids=[m[0] for m in RAYJOB_MISTAKES])
def test_the_project_schema_catches_rayjob_mistakes(mistake, project_schemas):
    job = copy.deepcopy(render_manifests(load_spec(ROOT / "examples" / "quickstart.yaml"), RenderOptions())["rayjob.yaml"])
    validate_documents([job], project_schemas)
    mistake(job)
    with pytest.raises(jsonschema.ValidationError):
        validate_documents([job], project_schemas)


def test_a_broken_pod_template_is_caught(project_schemas):
    job = copy.deepcopy(render_manifests(load_spec(ROOT / "examples" / "quickstart.yaml"), RenderOptions())["rayjob.yaml"])
    job["spec"]["rayClusterSpec"]["workerGroupSpecs"][0]["template"]["spec"]["containers"][0]["imagePullPolicy"] = 3
    with pytest.raises(kubernetes_validate.ValidationError):
        validate_documents([job], project_schemas)


@pytest.mark.parametrize(
    "option, value, fragment",
    [
        ("--namespace", "Reid_Studies", "--namespace 'Reid_Studies' is not a valid Kubernetes namespace"),
        ("--namespace", "-reid", "is not a valid Kubernetes namespace"),
        ("--namespace", "a" * 64, "at most 63 characters"),
        ("--image", "Registry.example.org/Reid:1.0", "--image 'Registry.example.org/Reid:1.0' is not a valid image reference"),
        ("--image", "reid orchestrator:1", "is not a valid image reference"),
        ("--image", "reid:1:2", "is not a valid image reference"),
        ("--image", "https://registry.example.org/reid:1", "is not a valid image reference"),
    ],
)
def test_names_kubernetes_would_reject_are_refused(option, value, fragment, tmp_path):
    from typer.testing import CliRunner

    from orchestrator.cli import app

    result = CliRunner().invoke(
        app, ["k8s", "render", str(ROOT / "examples" / "quickstart.yaml"), "--out", str(tmp_path / "out"), option, value]
    )
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert result.exit_code == 2 and len(lines) == 1, result.stderr
    assert fragment in lines[0]
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize(
    "image", ["reid-orchestrator:0.1.0", "localhost:5000/team/reid-orchestrator:v2", "ghcr.io/org/reid@sha256:" + "a" * 64]
)
def test_valid_image_references_render(image):
    job = render_manifests(load_spec(ROOT / "examples" / "quickstart.yaml"), RenderOptions(image=image, namespace="reid-1"))["rayjob.yaml"]
    assert job["spec"]["rayClusterSpec"]["headGroupSpec"]["template"]["spec"]["containers"][0]["image"] == image


def test_render_out_pointing_at_a_file_is_one_line(tmp_path):
    from typer.testing import CliRunner

    from orchestrator.cli import app

    target = tmp_path / "manifests.yaml"
    target.write_text("not a folder")
    result = CliRunner().invoke(app, ["k8s", "render", str(ROOT / "examples" / "quickstart.yaml"), "--out", str(target)])
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert result.exit_code == 2 and len(lines) == 1, result.stderr
    assert f"--out {target}: {target} is a file, not a folder" in lines[0]
    assert target.read_text() == "not a folder"
