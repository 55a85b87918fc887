"""Pre-flight checks run before any trial starts: models buildable, data and storage present.

Each problem becomes one :class:`InputError` naming the place (YAML key and line for spec
values, the folder or URI otherwise), so ``validate`` and ``launch`` fail in seconds with
exit status 2 and nothing launched.
"""

from __future__ import annotations

from pathlib import Path

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


def check_store(uri: str) -> ResultStore:
    """The result store is reachable and writable."""
    try:
        store = ResultStore(uri)
        store.check_writable()
    except StoreUnavailableError as err:
        raise StoreError(redact_text(str(err), uri)) from None
    return store


def check_tracking(uri: str) -> None:
    """A remote MLflow tracking server answers (local SQLite/file stores are created on use)."""
    if not uri.startswith(("http://", "https://", "databricks")):
        return
    import os

    from mlflow.tracking import MlflowClient

    # One quick try: MLflow's default retries would keep a user waiting minutes for a typo.
    quick = {"MLFLOW_HTTP_REQUEST_MAX_RETRIES": "1", "MLFLOW_HTTP_REQUEST_TIMEOUT": "15"}
    saved = {key: os.environ.get(key) for key in quick}
    os.environ.update(quick)
    try:
        MlflowClient(tracking_uri=uri).search_experiments(max_results=1)
    except Exception as err:  # noqa: BLE001 - MLflow raises many kinds; all mean "unusable"
        detail = redact_text(str(err).splitlines()[0] if str(err) else type(err).__name__, uri)
        raise StoreError(f"MLflow tracking server {redact_uri(uri)} is not usable: {detail[:300]}") from None
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def check_spec(loaded: LoadedSpec) -> None:
    """All checks that need no storage: what ``orchestrator validate`` runs."""
    check_datasets(loaded)
    check_models(loaded)
