"""Render the Kubernetes manifests that run a study as a KubeRay RayJob.

``render_manifests`` returns plain dicts (one per resource) for:

- a ConfigMap holding the study spec, rewritten for the cluster (result store, tracking URI,
  GPUs per trial), and the sources of its file plugins, mounted beside the spec;
- a KubeRay ``RayJob`` with its RayCluster spec: a head group (runs ``orchestrator launch``
  on the spec from the ConfigMap), a GPU worker group, Ray token authentication from a
  Secret, and shutdown after the job finishes;
- an MLflow tracking server: Deployment and ClusterIP Service (reachable only inside the
  cluster), PostgreSQL backend and S3 artifacts, plus a NetworkPolicy admitting only pods of
  the study's namespace. It runs the study's own image (the repository's Dockerfile installs
  the PostgreSQL driver beside boto3, which ``ghcr.io/mlflow/mlflow`` lacks: mlflow/mlflow#9513),
  so server and client are one MLflow version, the one ``pyproject.toml`` pins;
- a ``kustomization.yaml`` tying them together.

Every credential is a reference to a Secret (``secretKeyRef``): no value of one is ever written
into a manifest, nor into the job's runtime environment (each pod reads its own). A URI that
embeds a credential is refused.

The spec's resources are kept unless a flag overrides them; what no worker can hold, a dataset
no volume provides and values Kubernetes or the orchestrator would refuse are refused here, in
one line (exit 2), before anything is written.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from orchestrator.errors import InputError
from orchestrator.redact import has_credentials, redact_uri
from orchestrator.spec import LoadedSpec, spec_error

SPEC_MOUNT = "/etc/reid-orchestrator"
SPEC_KEY = "study.yaml"
PLUGIN_DIR = "plugins"  # file plugins' sources, beside the spec in the mounted ConfigMap
DATA_MOUNT = "/data"
RAY_VERSION = "2.60.0"
# The image the repository's Dockerfile builds: `docker build -t reid-orchestrator:0.1.0 .`
# (the tag is the project's version in pyproject.toml; a test keeps them equal).
DEFAULT_IMAGE = "reid-orchestrator:0.1.0"

# RFC 1123 label, what Kubernetes accepts as a namespace name; a subdomain (labels joined by
# dots, 253 characters at most) is what it accepts as a PersistentVolumeClaim name.
DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
DNS_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
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
    """What ``orchestrator k8s render`` was told; None keeps the spec's value (resources) or
    follows another option (the MLflow server's image is ``image``)."""

    image: str = DEFAULT_IMAGE
    gpus_per_trial: float | None = None
    cpus_per_trial: float | None = None
    workers: int = 2
    gpus_per_worker: int = 1
    cpus_per_worker: int = 8
    memory_per_worker: str = "32Gi"
    store_uri: str = "s3://reid-results/studies"
    artifacts_uri: str = "s3://reid-results/mlflow"
    mlflow_image: str | None = None
    data_pvc: str | None = None
    dataset_root: str | None = None
    namespace: str | None = None

    @property
    def server_image(self) -> str:
        return self.mlflow_image or self.image


def _name(study: str) -> str:
    """A DNS-1123 label from the study name."""
    label = re.sub(r"[^a-z0-9-]+", "-", study.lower()).strip("-")
    return (label or "study")[:40]


def _check_no_credentials(options: RenderOptions) -> None:
    for field in ("store_uri", "artifacts_uri", "image", "mlflow_image"):
        value = getattr(options, field)
        if value is not None and has_credentials(value):
            raise InputError(
                f"--{field.replace('_', '-')} embeds a credential ({redact_uri(value)}); credentials belong in the Secret '{S3_SECRET}'"
            )


def check_names(options: RenderOptions) -> None:
    """Values Kubernetes would reject at apply time are refused at render time."""
    namespace = options.namespace
    if namespace is not None and (len(namespace) > 63 or not DNS_LABEL.match(namespace)):
        raise InputError(
            f"--namespace '{namespace}' is not a valid Kubernetes namespace: at most 63 characters, "
            "lowercase letters, digits and '-', starting and ending with a letter or digit (e.g. 'reid-studies')"
        )
    for option, image in (("--image", options.image), ("--mlflow-image", options.server_image)):
        if len(image) > 255 or not IMAGE_REFERENCE.fullmatch(image):
            raise InputError(
                f"{option} {_shown(image)} is not a valid image reference: [registry[:port]/]name[:tag][@sha256:digest], "
                f"the name in lowercase (e.g. registry.example.org/reid-orchestrator:0.1.0)"
            )
    pvc = options.data_pvc
    if pvc is not None and (len(pvc) > 253 or not DNS_SUBDOMAIN.fullmatch(pvc)):
        raise InputError(
            f"--data-pvc {_shown(pvc)} is not a valid PersistentVolumeClaim name: at most 253 characters, lowercase "
            "letters, digits, '-' and '.', starting and ending with a letter or digit (e.g. 'market1501')"
        )
    for option, uri, example in (
        ("--store-uri", options.store_uri, "s3://my-bucket/reid/studies"),
        ("--artifacts-uri", options.artifacts_uri, "s3://my-bucket/reid/mlflow"),
    ):
        bucket = uri[len("s3://") :].split("/", 1)[0] if uri.startswith("s3://") else ""
        if not bucket or any(c.isspace() for c in uri):
            raise InputError(
                f"{option} {_shown(uri)}: every pod of the cluster writes there, so it must be an S3 URI with a bucket "
                f"(e.g. {example}; credentials from the Secret '{S3_SECRET}')"
            )


def _shown(value: str) -> str:
    """A user's value quoted on one line (a newline in it shows as \\n)."""
    return repr(value)


def trial_resources(loaded: LoadedSpec, options: RenderOptions) -> tuple[float, float]:
    """(CPUs, GPUs) per trial on the cluster: the spec's, unless a flag overrides them."""
    resources = loaded.spec.resources
    cpus = options.cpus_per_trial if options.cpus_per_trial is not None else resources.cpus_per_trial
    gpus = options.gpus_per_trial if options.gpus_per_trial is not None else resources.gpus_per_trial
    return cpus, gpus


def check_fit(loaded: LoadedSpec, options: RenderOptions) -> None:
    """A trial must fit on one worker pod, or Ray would keep it pending for ever; more than one
    GPU must be a whole number of them (Ray's rule for fractional GPUs)."""
    cpus, gpus = trial_resources(loaded, options)

    def refuse(key: str, flag: str, message: str) -> InputError:
        if getattr(options, key) is not None:
            return InputError(f"{flag} {getattr(options, key):g}: {message}")
        return spec_error(loaded.source, ("resources", key), f"{message} (or override it with {flag})")

    if gpus > options.gpus_per_worker:
        raise refuse(
            "gpus_per_trial",
            "--gpus-per-trial",
            f"a trial asks for {gpus:g} GPU but a worker pod has {options.gpus_per_worker} (--gpus-per-worker): "
            "ask for fewer per trial or give the workers more",
        )
    if gpus > 1 and gpus != int(gpus):
        raise refuse("gpus_per_trial", "--gpus-per-trial", f"{gpus:g} GPUs: above 1, Ray takes whole GPUs only")
    if cpus > options.cpus_per_worker:
        raise refuse(
            "cpus_per_trial",
            "--cpus-per-trial",
            f"a trial asks for {cpus:g} CPU but a worker pod has {options.cpus_per_worker} (--cpus-per-worker): "
            "ask for fewer per trial or give the workers more",
        )


def check_dataset_volume(loaded: LoadedSpec, options: RenderOptions) -> None:
    """Every real dataset a trial reads must be on the volume the pods mount (the synthetic one
    is generated inside each pod): a laptop path would be read nowhere."""
    from orchestrator.checks import trials_to_check

    root = options.dataset_root
    if root is not None and ("\n" in root or not (root == DATA_MOUNT or root.startswith(DATA_MOUNT + "/"))):
        raise InputError(
            f"--dataset-root {_shown(root)}: the dataset volume is mounted at {DATA_MOUNT}; give a folder under it (e.g. {DATA_MOUNT}/Market-1501)"
        )
    baseline_root = loaded.spec.baseline.dataset.root
    for trial in trials_to_check(loaded):
        dataset = trial.config.dataset
        if dataset.name == "synthetic":
            continue
        from_baseline = dataset.root == baseline_root
        where = root if from_baseline and root is not None else dataset.root
        if options.data_pvc is not None and where is not None and (where == DATA_MOUNT or where.startswith(DATA_MOUNT + "/")):
            continue
        origin = trial.origin_of("dataset.root")
        if options.data_pvc is None:
            message = (
                f"dataset '{dataset.name}' at {dataset.root} is on no volume the pods mount: pass --data-pvc CLAIM "
                f"(a PersistentVolumeClaim holding it, mounted at {DATA_MOUNT}) and --dataset-root {DATA_MOUNT}/<folder>"
            )
        elif from_baseline:
            message = f"dataset '{dataset.name}' at {dataset.root}: the pods mount --data-pvc at {DATA_MOUNT}; pass --dataset-root {DATA_MOUNT}/<folder>"
        else:
            message = f"dataset '{dataset.name}' at {dataset.root} (set by a variant) is outside the volume mounted at {DATA_MOUNT}: give it a path under {DATA_MOUNT}"
        raise spec_error(loaded.source, origin, message)


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
    overrides = {key: getattr(options, key) for key in ("cpus_per_trial", "gpus_per_trial") if getattr(options, key) is not None}
    if overrides:
        data["resources"] = {**(data.get("resources") or {}), **overrides}
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
            "limits": {
                "cpu": str(options.cpus_per_worker),
                "memory": options.memory_per_worker,
                "nvidia.com/gpu": str(options.gpus_per_worker),
            },
            "requests": {
                "cpu": str(options.cpus_per_worker),
                "memory": options.memory_per_worker,
                "nvidia.com/gpu": str(options.gpus_per_worker),
            },
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
    check_fit(loaded, options)
    check_dataset_volume(loaded, options)
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
                            "image": options.server_image,
                            "command": ["/bin/sh", "-c"],
                            # The backend URI (with its password) comes from the Secret at run time.
                            "args": [mlflow_server_command(name, options.artifacts_uri)],
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


def mlflow_server_command(name: str, artifacts_uri: str, port: int = 5000) -> str:
    """The tracking server's shell command. MLflow 3 answers only requests whose Host header it
    allows (localhost and private IPs by default, against DNS rebinding): the Service's name,
    with and without its namespace, and port-forward's localhost are allowed here."""
    hosts = ",".join(f"{host},{host}:*" for host in (f"{name}-mlflow", f"{name}-mlflow.*", "localhost", "127.0.0.1"))
    return (
        f'exec mlflow server --host 0.0.0.0 --port {port} --backend-store-uri "$MLFLOW_BACKEND_STORE_URI" '
        f"--artifacts-destination {artifacts_uri} --allowed-hosts '{hosts}'"
    )


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
