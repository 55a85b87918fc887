"""Pre-flight checks run before any trial starts: models buildable, data and storage present.

Each problem becomes one :class:`InputError` naming the place (YAML key and line for spec
values, the folder or URI otherwise), so ``validate`` and ``launch`` fail in seconds with
exit status 2 and nothing launched.
"""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Iterator

from orchestrator.errors import StoreError
from orchestrator.redact import redact_text, redact_uri
from orchestrator.spec import LoadedSpec, spec_error
from search_spaces import PlannedTrial, resolve_sample
from search_spaces.search import probe_points
from storage import ResultStore, StoreUnavailableError


def trials_to_check(loaded: LoadedSpec) -> list[PlannedTrial]:
    """The planned trials, or for a search design the baseline and every bound/choice of its space."""
    if loaded.trials:
        return loaded.trials
    seed = loaded.spec.ablation.seeds[0]
    recipe = loaded.spec.baseline
    points = [{}] + (probe_points(loaded.spec.ablation.search) if loaded.spec.ablation.search else [])
    return [resolve_sample(recipe, point, seed) for point in points]


def check_models(loaded: LoadedSpec) -> None:
    """Every distinct trial config names a buildable model (backbone exists, weights present)."""
    from trainables.compat import check_trial_config

    seen: set[str] = set()
    for trial in trials_to_check(loaded):
        # Stage checks build the model at the trial's input size: key on both.
        key = trial.config.model.model_dump_json() + trial.config.dataset.model_dump_json()
        if key in seen:
            continue
        seen.add(key)
        for path, message in check_trial_config(trial.config):
            raise spec_error(loaded.source, trial.origin_of(path), message)
        _check_input_size(loaded, trial)


def fixed_input_size(backbone: str) -> tuple[int, int] | None:
    """(height, width) a timm backbone accepts only (ViT, Swin: position embeddings and windows
    sized for one input), from its pretrained config: no weights, no model built. None: any size."""
    import timm

    try:
        cfg = timm.models.get_pretrained_cfg(backbone)
    except Exception:  # noqa: BLE001 - unknown to timm's config table: the backbone check decides
        return None
    if cfg is None or not getattr(cfg, "fixed_input_size", False):
        return None
    _, height, width = cfg.input_size
    return int(height), int(width)


def _check_input_size(loaded: LoadedSpec, trial: PlannedTrial) -> None:
    backbone, dataset = trial.config.model.backbone, trial.config.dataset
    fixed = fixed_input_size(backbone)
    if fixed is not None and fixed != (dataset.height, dataset.width):
        raise spec_error(
            loaded.source,
            trial.origin_of("model.backbone"),
            f"backbone '{backbone}' takes only {fixed[0]}x{fixed[1]} images (timm's fixed input size), but "
            f"dataset.height x width is {dataset.height}x{dataset.width}: set dataset.height: {fixed[0]} and "
            f"width: {fixed[1]}, or choose a backbone without a fixed size (a CNN such as resnet50)",
        )


STORE_SCHEMES = ("s3://", "file://")


def check_output(loaded: LoadedSpec) -> None:
    """``output.dir`` is a folder (or can be one) and ``output.store`` a scheme the store speaks."""
    output = loaded.spec.output
    if output.dir is not None:
        folder = Path(output.dir).expanduser()
        blocker = next((p for p in (folder, *folder.parents) if p.exists()), None)
        if blocker is not None and not blocker.is_dir():
            raise spec_error(
                loaded.source,
                ("output", "dir"),
                f"{blocker.resolve()} is a file, not a folder: give output.dir a folder path (or remove the file)",
            )
    store = output.store
    if store is not None and "://" in store and not store.startswith(STORE_SCHEMES):
        raise spec_error(
            loaded.source,
            ("output", "store"),
            f"result store '{redact_uri(store)}': the scheme is not supported; use a folder path or s3://bucket/prefix",
        )


def check_datasets(loaded: LoadedSpec) -> None:
    """Real datasets' folders exist and read with their adapter (layout and file names, no
    decoding); trials with the implicit-attention augmentation find the training masks (and
    viewpoint labels where asked). The synthetic dataset is generated on demand with masks."""
    seen: set[str] = set()
    for trial in trials_to_check(loaded):
        dataset = trial.config.dataset
        if dataset.name == "synthetic":
            continue
        if not Path(dataset.root or "").expanduser().is_dir():
            raise spec_error(
                loaded.source,
                trial.origin_of("dataset.root"),
                f"dataset folder not found: {Path(dataset.root or '').expanduser().resolve()}",
            )
        augment = trial.config.augment
        key = dataset.model_dump_json() + augment.implicit_attention.model_dump_json()
        if key in seen:
            continue
        seen.add(key)
        _check_dataset_files(loaded, trial)


def _check_dataset_files(loaded: LoadedSpec, trial: PlannedTrial) -> None:
    from trainables.data.datasets import masks_command, read_records
    from trainables.data.errors import DatasetError, summarize_paths
    from trainables.data.implicit_attention import read_viewpoints

    dataset, ia = trial.config.dataset, trial.config.augment.implicit_attention
    try:
        records = read_records(dataset)
    except DatasetError as err:
        raise spec_error(loaded.source, trial.origin_of("dataset.root"), str(err)) from None
    if not ia.is_active():
        return
    missing = [r.path for r in records.train if r.mask_path is None]
    if missing:
        raise spec_error(
            loaded.source,
            trial.origin_of("augment.implicit_attention.enabled"),
            f"implicit attention needs person masks; none under {records.root / 'masks'} for "
            f"{summarize_paths(missing, 3)}: run `{masks_command(dataset)}`",
        )
    if ia.same_viewpoint:
        try:
            read_viewpoints(records.train, records.root)
        except DatasetError as err:
            raise spec_error(loaded.source, trial.origin_of("augment.implicit_attention.same_viewpoint"), str(err)) from None


def train_identities(dataset) -> int:
    """Identities in a dataset's training split: the synthetic set's from its generator's
    settings (nothing generated), a real one's from its file names (nothing decoded)."""
    if dataset.name == "synthetic":
        from trainables.data.synthetic import SyntheticSpec

        return SyntheticSpec().num_train_ids  # trainables.data.datasets generates the default spec
    from trainables.data.datasets import read_records

    return len({record.pid for record in read_records(dataset).train})


def check_batch_identities(loaded: LoadedSpec) -> None:
    """A P x K batch takes ``train.ids_per_batch`` distinct identities: a training set with fewer
    would fail every trial at its first batch (``trainables.data.sampler.PKSampler``)."""
    counts: dict[str, int] = {}
    for trial in trials_to_check(loaded):
        dataset = trial.config.dataset
        key = dataset.model_dump_json()
        if key not in counts:
            counts[key] = train_identities(dataset)
        need = trial.config.train.ids_per_batch
        if need > counts[key]:
            raise spec_error(
                loaded.source,
                trial.origin_of("train.ids_per_batch"),
                f"a batch takes {need} identities (train.ids_per_batch) but the training split of dataset "
                f"'{dataset.name}' has {counts[key]}: lower train.ids_per_batch to at most {counts[key]}",
            )


def check_store(uri: str) -> ResultStore:
    """The result store is reachable and writable."""
    try:
        store = ResultStore(uri)
        store.check_writable()
    except StoreUnavailableError as err:
        raise StoreError(redact_text(str(err), uri)) from None
    return store


@contextlib.contextmanager
def quick_mlflow_requests(timeout_s: float, retries: int) -> Iterator[None]:
    """MLflow's HTTP requests within the block give up after ``timeout_s`` and ``retries``
    retries: its defaults (7 retries with backoff, 120 s per request) keep a user waiting minutes
    for a server that is down or a typo in its address."""
    import os

    quick = {"MLFLOW_HTTP_REQUEST_MAX_RETRIES": str(retries), "MLFLOW_HTTP_REQUEST_TIMEOUT": f"{timeout_s:g}"}
    saved = {key: os.environ.get(key) for key in quick}
    os.environ.update(quick)
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def check_tracking(uri: str) -> None:
    """A remote MLflow tracking server answers (local SQLite/file stores are created on use)."""
    if not uri.startswith(("http://", "https://", "databricks")):
        return
    from mlflow.tracking import MlflowClient

    try:
        with quick_mlflow_requests(timeout_s=15, retries=1):
            MlflowClient(tracking_uri=uri).search_experiments(max_results=1)
    except Exception as err:  # noqa: BLE001 - MLflow raises many kinds; all mean "unusable"
        detail = redact_text(str(err).splitlines()[0] if str(err) else type(err).__name__, uri)
        raise StoreError(f"MLflow tracking server {redact_uri(uri)} is not usable: {detail[:300]}") from None


def local_capacity() -> dict[str, float]:
    """CPUs and GPUs a Ray started on this machine gets (as ``tune_runner.start_ray`` starts it)."""
    import os

    cpus = float(os.environ.get("REID_ORCH_NUM_CPUS", os.cpu_count() or 1))
    gpus = 0.0
    if os.environ.get("CUDA_VISIBLE_DEVICES", None) != "":
        import torch

        gpus = float(torch.cuda.device_count())
    return {"CPU": cpus, "GPU": gpus}


def _fits(node: dict[str, float], need: dict[str, float]) -> bool:
    return all(node.get(kind, 0.0) >= amount for kind, amount in need.items() if amount > 0)


def _describe(nodes: list[dict[str, float]]) -> str:
    shapes = sorted({(node.get("CPU", 0.0), node.get("GPU", 0.0)) for node in nodes}, reverse=True)
    return ", ".join(f"{cpu:g} CPU / {gpu:g} GPU" for cpu, gpu in shapes) or "none"


def cluster_capacity() -> tuple[str, list[dict[str, float]], bool]:
    """(what was judged, resources per node or node type, whether an autoscaler may add nodes
    of unknown shape) for the Ray cluster this process is connected to.

    An autoscaling cluster that publishes its node types (Ray's autoscaler v2, KubeRay) is
    judged by the types it can start; otherwise by the nodes alive now."""
    import ray

    try:
        from ray._private.state import state

        config = state.get_cluster_config()
    except Exception:  # noqa: BLE001 - a private API: absent or changed means "unknown"
        config = None
    if config is not None and config.node_group_configs:
        types = [dict(group.resources) for group in config.node_group_configs if group.max_count != 0]
        return "node types the cluster can start", types, False
    nodes = [dict(node["Resources"]) for node in ray.nodes() if node.get("Alive")]
    return "nodes of the cluster", nodes, _has_autoscaler()


def _has_autoscaler() -> bool:
    """Whether an autoscaler that can add nodes (of types not published) runs: Ray's legacy
    monitor reports on every cluster, but on a fixed one (``ray start``) it maps each node to a
    type named after the node itself; a real autoscaler names its node types."""
    import json

    try:
        from ray.experimental.internal_kv import _internal_kv_get

        raw = _internal_kv_get("__autoscaling_status")
        report = (json.loads(raw) if raw else {}).get("autoscaler_report") or {}
    except Exception:  # noqa: BLE001 - a private API: absent or changed means "no autoscaler"
        return False
    mapping = report.get("node_type_mapping") or {}
    named_types = any(node_type != f"node_{node}" for node, node_type in mapping.items())
    return named_types or bool(report.get("pending_launches")) or bool(report.get("pending_nodes"))


def check_resources(loaded: LoadedSpec, address: str | None, *, cluster: bool = False, echo=print) -> None:
    """A trial's CPUs and GPUs fit on at least one node, or Ray would wait for ever.

    Without ``address`` this machine is judged before Ray starts; with one, call again with
    ``cluster=True`` once connected. Refused with one line naming ``resources.*``."""
    if bool(address) != cluster:
        return
    resources = loaded.spec.resources
    need = {"CPU": resources.cpus_per_trial, "GPU": resources.gpus_per_trial}
    if cluster:
        judged, nodes, autoscaling = cluster_capacity()
    else:
        judged, nodes, autoscaling = "", [local_capacity()], False
    if any(_fits(node, need) for node in nodes):
        return
    key = "gpus_per_trial" if need["GPU"] > 0 and not any(node.get("GPU", 0.0) >= need["GPU"] for node in nodes) else "cpus_per_trial"
    message = (
        f"a trial asks for {need['CPU']:g} CPU and {need['GPU']:g} GPU, more than "
        f"{f'any of the {judged}' if judged else 'this machine'} has ({_describe(nodes)}): lower resources.{key}"
        + (" (or run where GPUs are, e.g. --address of a GPU cluster)" if key == "gpus_per_trial" else "")
    )
    if autoscaling:
        echo(f"warning: {message}; waiting for the autoscaler to add a node that fits")
        return
    raise spec_error(loaded.source, ("resources", key), message)


def check_spec(loaded: LoadedSpec) -> None:
    """All checks that need no storage: what ``orchestrator validate`` runs."""
    from orchestrator.eval_targets import check_targets

    check_output(loaded)
    check_datasets(loaded)
    check_targets(loaded, trials_to_check(loaded))
    check_batch_identities(loaded)
    check_models(loaded)
