"""Render the Kubernetes manifests that run a study as a KubeRay RayJob.

``render_manifests`` returns plain dicts (one per resource) for:

- a ConfigMap holding the study spec, rewritten for the cluster (result store, tracking URI,
  GPUs per trial), and the sources of its file plugins, mounted beside the spec;
- a KubeRay ``RayJob`` with its RayCluster spec: a head group (runs ``orchestrator launch``
  on the spec from the ConfigMap), a GPU worker group, Ray token authentication from a
  Secret, and shutdown after the job finishes;
- an MLflow tracking server: Deployment and ClusterIP Service (reachable only inside the
  cluster), PostgreSQL backend and S3 artifacts, plus a NetworkPolicy admitting only pods of
  the study's namespace;
- a ``kustomization.yaml`` tying them together.

Every credential is a reference to a Secret (``secretKeyRef``/``envFrom``): no value of one
is ever written into a manifest. A URI that embeds a credential is refused.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from orchestrator.errors import InputError
from orchestrator.redact import has_credentials, redact_uri
from orchestrator.spec import LoadedSpec

SPEC_MOUNT = "/etc/reid-orchestrator"
SPEC_KEY = "study.yaml"
PLUGIN_DIR = "plugins"  # file plugins' sources, beside the spec in the mounted ConfigMap
DATA_MOUNT = "/data"
RAY_VERSION = "2.60.0"
# The image the repository's Dockerfile builds: `docker build -t reid-orchestrator:0.1.0 .`
# (the tag is the project's version in pyproject.toml; a test keeps them equal).
DEFAULT_IMAGE = "reid-orchestrator:0.1.0"

# RFC 1123 label, what Kubernetes accepts as a namespace name.
DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
# The image reference grammar of the distribution project (reference/regexp.go), without the
# optional lowercase-only check on the domain: [domain[:port]/]path[:tag][@digest].
_COMPONENT = r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*"
_DOMAIN = r"(?:[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?(?:\.[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?)*|\[[0-9a-fA-F:]+\])(?::[0-9]+)?"
IMAGE_REFERENCE = re.compile(
    rf"^(?:{_DOMAIN}/)?{_COMPONENT}(?:/{_COMPONENT})*(?::[\w][\w.-]{{0,127}})?(?:@[A-Za-z][A-Za-z0-9]*(?:[-_+.][A-Za-z][A-Za-z0-9]*)*:[0-9a-fA-F]{{32,}})?$"
)

# Secrets the manifests reference (created by the operator; see k8s/README.md).
S3_SECRET = "reid-s3-credentials"  # AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY (+ optional AWS_ENDPOINT_URL)
MLFLOW_DB_SECRET = "reid-mlflow-db"  # key "uri": postgresql://user:password@host:5432/mlflow
RAY_TOKEN_SECRET = "reid-ray-auth-token"  # Ray token authentication, shared by every Ray pod


@dataclass(frozen=True)
class RenderOptions:
    image: str = DEFAULT_IMAGE
    gpus_per_trial: float = 1.0
    workers: int = 2
    gpus_per_worker: int = 1
    cpus_per_worker: int = 8
    memory_per_worker: str = "32Gi"
    store_uri: str = "s3://reid-results/studies"
    artifacts_uri: str = "s3://reid-results/mlflow"
    mlflow_image: str = "ghcr.io/mlflow/mlflow:v3.1.0"
    data_pvc: str | None = None
    dataset_root: str | None = None
    namespace: str | None = None


def _name(study: str) -> str:
    """A DNS-1123 label from the study name."""
    label = re.sub(r"[^a-z0-9-]+", "-", study.lower()).strip("-")
    return (label or "study")[:40]


def _check_no_credentials(options: RenderOptions) -> None:
    for field in ("store_uri", "artifacts_uri", "image", "mlflow_image"):
        value = getattr(options, field)
        if has_credentials(value):
            raise InputError(
                f"--{field.replace('_', '-')} embeds a credential ({redact_uri(value)}); "
                f"credentials belong in the Secret '{S3_SECRET}'"
            )


def check_names(options: RenderOptions) -> None:
    """Values Kubernetes would reject at apply time are refused at render time."""
    namespace = options.namespace
    if namespace is not None and (len(namespace) > 63 or not DNS_LABEL.match(namespace)):
        raise InputError(
            f"--namespace '{namespace}' is not a valid Kubernetes namespace: at most 63 characters, "
            "lowercase letters, digits and '-', starting and ending with a letter or digit (e.g. 'reid-studies')"
        )
    for option, image in (("--image", options.image), ("--mlflow-image", options.mlflow_image)):
        if len(image) > 255 or not IMAGE_REFERENCE.match(image):
            raise InputError(
                f"{option} '{image}' is not a valid image reference: [registry[:port]/]name[:tag][@sha256:digest], "
                f"the name in lowercase (e.g. registry.example.org/reid-orchestrator:0.1.0)"
            )


def plugin_files(loaded: LoadedSpec) -> list[tuple[str, str, str]]:
    """``(ConfigMap key, path under the spec mount, source text)`` of every file plugin's
    sources: the pods find them beside the spec at ``plugins/<name>/<file>``."""
    files = []
    for plugin in loaded.plugins:
        if plugin.root is None:
            continue  # an installed package: it must be installed in the image
        for index, relative in enumerate(plugin.files):
            key = f"plugin-{plugin.name}-{index}-{Path(relative).name}"
            files.append((key, f"{PLUGIN_DIR}/{plugin.name}/{relative}", (plugin.root / relative).read_text(encoding="utf-8")))
    return files


def _cluster_plugins(loaded: LoadedSpec) -> list[str]:
    """The spec's ``plugins:`` as the pods read them: file plugins at their ConfigMap paths."""
    return [f"{PLUGIN_DIR}/{plugin.name}/{plugin.files[0]}" if plugin.root is not None else plugin.name for plugin in loaded.plugins]


def cluster_spec_text(loaded: LoadedSpec, options: RenderOptions, tracking_uri: str) -> str:
    """The study spec as the cluster runs it: shared store, in-cluster MLflow, GPUs per trial,
    file plugins read from the ConfigMap beside it."""
    data = dict(loaded.source.data)
    if loaded.plugins:
        data["plugins"] = _cluster_plugins(loaded)
    data["output"] = {**(data.get("output") or {}), "store": options.store_uri, "tracking_uri": tracking_uri}
    data["output"].pop("dir", None)
    data["resources"] = {**(data.get("resources") or {}), "gpus_per_trial": options.gpus_per_trial}
    if options.dataset_root:
        baseline = dict(data.get("baseline") or {})
        baseline["dataset"] = {**(baseline.get("dataset") or {}), "root": options.dataset_root}
        data["baseline"] = baseline
    header = f"# Rendered for Kubernetes from {loaded.source.path.name} by `orchestrator k8s render`.\n"
    return header + yaml.safe_dump(data, sort_keys=False)


def _s3_env() -> list[dict[str, Any]]:
    return [
        {"name": "AWS_ACCESS_KEY_ID", "valueFrom": {"secretKeyRef": {"name": S3_SECRET, "key": "AWS_ACCESS_KEY_ID"}}},
        {"name": "AWS_SECRET_ACCESS_KEY", "valueFrom": {"secretKeyRef": {"name": S3_SECRET, "key": "AWS_SECRET_ACCESS_KEY"}}},
        {
            "name": "AWS_ENDPOINT_URL",
            "valueFrom": {"secretKeyRef": {"name": S3_SECRET, "key": "AWS_ENDPOINT_URL", "optional": True}},
        },
    ]


def _ray_pod(
    name: str, options: RenderOptions, *, head: bool, command_env: list[dict[str, Any]], plugin_paths: list[tuple[str, str]] = ()
) -> dict[str, Any]:
    resources = (
        {"limits": {"cpu": "4", "memory": "16Gi"}, "requests": {"cpu": "2", "memory": "8Gi"}}
        if head
        else {
            "limits": {"cpu": str(options.cpus_per_worker), "memory": options.memory_per_worker, "nvidia.com/gpu": str(options.gpus_per_worker)},
            "requests": {"cpu": str(options.cpus_per_worker), "memory": options.memory_per_worker, "nvidia.com/gpu": str(options.gpus_per_worker)},
        }
    )
    mounts = [{"name": "spec", "mountPath": SPEC_MOUNT, "readOnly": True}, {"name": "dshm", "mountPath": "/dev/shm"}]
    volumes: list[dict[str, Any]] = [
        {"name": "spec", "configMap": {"name": f"{name}-spec"}},
        {"name": "dshm", "emptyDir": {"medium": "Memory"}},  # Ray's object store lives in /dev/shm
    ]
    if plugin_paths:  # ConfigMap keys are flat: items lay the plugin sources out in folders
        items = [{"key": SPEC_KEY, "path": SPEC_KEY}, *({"key": key, "path": path} for key, path in plugin_paths)]
        volumes[0]["configMap"]["items"] = items
    if options.data_pvc:
        mounts.append({"name": "data", "mountPath": DATA_MOUNT, "readOnly": True})
        volumes.append({"name": "data", "persistentVolumeClaim": {"claimName": options.data_pvc, "readOnly": True}})
    container = {
        "name": "ray-head" if head else "ray-worker",
        "image": options.image,
        "imagePullPolicy": "IfNotPresent",
        "env": command_env,
        "resources": resources,
        "volumeMounts": mounts,
    }
    if head:
        container["ports"] = [
            {"containerPort": 6379, "name": "gcs"},
            {"containerPort": 8265, "name": "dashboard"},
            {"containerPort": 10001, "name": "client"},
        ]
    return {"spec": {"containers": [container], "volumes": volumes}}


def render_manifests(loaded: LoadedSpec, options: RenderOptions) -> dict[str, list[dict[str, Any]] | dict[str, Any]]:
    """File name -> resource(s) for the study; no credential value appears anywhere."""
    _check_no_credentials(options)
    check_names(options)
    name = _name(loaded.name)
    labels = {"app.kubernetes.io/part-of": "reid-orchestrator", "reid-orchestrator/study": name}
    tracking_uri = f"http://{name}-mlflow:5000"
    meta = lambda suffix, extra=None: {  # noqa: E731 - small local helper
        "name": f"{name}{suffix}",
        "labels": {**labels, **(extra or {})},
        **({"namespace": options.namespace} if options.namespace else {}),
    }

    configmap = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": meta("-spec"),
        "data": {SPEC_KEY: cluster_spec_text(loaded, options, tracking_uri)},
    }
    # File plugins ride in the ConfigMap; the driver (head pod) loads them from the mount and
    # hands them to every Ray worker in the job's runtime environment (py_modules).
    sources = plugin_files(loaded)
    configmap["data"].update({key: text for key, _, text in sources})
    plugin_paths = [(key, path) for key, path, _ in sources]

    env = _s3_env() + [
        {"name": "MLFLOW_TRACKING_URI", "value": tracking_uri},
        {"name": "RAY_USAGE_STATS_ENABLED", "value": "0"},
    ]
    rayjob = {
        "apiVersion": "ray.io/v1",
        "kind": "RayJob",
        "metadata": meta(""),
        "spec": {
            "entrypoint": f"orchestrator launch {SPEC_MOUNT}/{SPEC_KEY} --address auto",
            "shutdownAfterJobFinishes": True,
            "ttlSecondsAfterFinished": 600,
            "backoffLimit": 0,
            "submissionMode": "K8sJobMode",
            "rayClusterSpec": {
                "rayVersion": RAY_VERSION,
                "authOptions": {"mode": "token", "secretName": RAY_TOKEN_SECRET},
                "headGroupSpec": {
                    "rayStartParams": {"num-gpus": "0"},
                    "template": _ray_pod(name, options, head=True, command_env=env, plugin_paths=plugin_paths),
                },
                "workerGroupSpecs": [
                    {
                        "groupName": "gpu",
                        "replicas": options.workers,
                        "minReplicas": options.workers,
                        "maxReplicas": options.workers,
                        "rayStartParams": {"num-gpus": str(options.gpus_per_worker)},
                        "template": _ray_pod(name, options, head=False, command_env=env, plugin_paths=plugin_paths),
                    }
                ],
            },
        },
    }

    mlflow_labels = {"app.kubernetes.io/name": f"{name}-mlflow"}
    deployment = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": meta("-mlflow", mlflow_labels),
        "spec": {
            "replicas": 1,
            "selector": {"matchLabels": mlflow_labels},
            "template": {
                "metadata": {"labels": {**labels, **mlflow_labels}},
                "spec": {
                    "containers": [
                        {
                            "name": "mlflow",
                            "image": options.mlflow_image,
                            "command": ["/bin/sh", "-c"],
                            # The backend URI (with its password) comes from the Secret at run time.
                            "args": [
                                'exec mlflow server --host 0.0.0.0 --port 5000 --backend-store-uri "$MLFLOW_BACKEND_STORE_URI" '
                                f"--artifacts-destination {options.artifacts_uri}"
                            ],
                            "env": [
                                {
                                    "name": "MLFLOW_BACKEND_STORE_URI",
                                    "valueFrom": {"secretKeyRef": {"name": MLFLOW_DB_SECRET, "key": "uri"}},
                                },
                                *_s3_env(),
                            ],
                            "ports": [{"containerPort": 5000, "name": "http"}],
                            "readinessProbe": {"httpGet": {"path": "/health", "port": 5000}, "periodSeconds": 10},
                            "resources": {"requests": {"cpu": "500m", "memory": "1Gi"}, "limits": {"cpu": "2", "memory": "4Gi"}},
                        }
                    ]
                },
            },
        },
    }
    service = {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": meta("-mlflow", mlflow_labels),
        "spec": {
            "type": "ClusterIP",  # inside the cluster only; use kubectl port-forward to browse
            "selector": mlflow_labels,
            "ports": [{"name": "http", "port": 5000, "targetPort": 5000}],
        },
    }
    network_policy = {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": meta("-mlflow", mlflow_labels),
        "spec": {
            "podSelector": {"matchLabels": mlflow_labels},
            "policyTypes": ["Ingress"],
            "ingress": [{"from": [{"podSelector": {}}], "ports": [{"protocol": "TCP", "port": 5000}]}],
        },
    }
    kustomization = {
        "apiVersion": "kustomize.config.k8s.io/v1beta1",
        "kind": "Kustomization",
        "resources": ["configmap.yaml", "mlflow.yaml", "rayjob.yaml"],
    }
    return {
        "configmap.yaml": configmap,
        "mlflow.yaml": [deployment, service, network_policy],
        "rayjob.yaml": rayjob,
        "kustomization.yaml": kustomization,
    }


class _PlainDumper(yaml.SafeDumper):
    """Writes shared sub-objects out in full: no YAML anchors and aliases in manifests."""

    def ignore_aliases(self, data: Any) -> bool:
        return True


def _literal_multiline(dumper: yaml.SafeDumper, value: str) -> yaml.ScalarNode:
    # The spec inside the ConfigMap stays readable as a block.
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style="|" if "\n" in value else None)


_PlainDumper.add_representer(str, _literal_multiline)


def manifest_text(content: dict[str, Any] | list[dict[str, Any]]) -> str:
    documents = content if isinstance(content, list) else [content]
    return yaml.dump_all(documents, Dumper=_PlainDumper, sort_keys=False)


def write_manifests(manifests: dict[str, Any], out_dir: Path) -> list[Path]:
    """Write each file (multi-document YAML where a file holds several resources)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for file_name, content in manifests.items():
        path = out_dir / file_name
        path.write_text(manifest_text(content), encoding="utf-8")
        written.append(path)
    return written
