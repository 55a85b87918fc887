"""Pre-flight checks run before any trial starts: models buildable, data and storage present.

Each problem becomes one :class:`InputError` naming the place (YAML key and line for spec
values, the folder or URI otherwise), so ``validate`` and ``launch`` fail in seconds with
exit status 2 and nothing launched.
"""

from __future__ import annotations

from pathlib import Path

from orchestrator.errors import StoreError
from orchestrator.spec import LoadedSpec, spec_error
from storage import ResultStore, StoreUnavailableError


def check_models(loaded: LoadedSpec) -> None:
    """Every distinct trial config names a buildable model (backbone exists, weights present)."""
    from trainables.compat import check_trial_config

    seen: set[str] = set()
    for trial in loaded.trials:
        key = trial.config.model.model_dump_json()
        if key in seen:
            continue
        seen.add(key)
        for path, message in check_trial_config(trial.config):
            raise spec_error(loaded.source, trial.origin_of(path), message)


def check_datasets(loaded: LoadedSpec) -> None:
    """Real datasets' folders exist (the synthetic one is generated on demand)."""
    for trial in loaded.trials:
        dataset = trial.config.dataset
        if dataset.name != "synthetic" and not Path(dataset.root or "").expanduser().is_dir():
            raise spec_error(
                loaded.source,
                trial.origin_of("dataset.root"),
                f"dataset folder not found: {Path(dataset.root or '').expanduser().resolve()}",
            )


def check_store(uri: str) -> ResultStore:
    """The result store is reachable and writable."""
    store = ResultStore(uri)
    try:
        store.check_writable()
    except StoreUnavailableError as err:
        raise StoreError(str(err)) from None
    return store


def check_spec(loaded: LoadedSpec) -> None:
    """All checks that need no storage: what ``orchestrator validate`` runs."""
    check_datasets(loaded)
    check_models(loaded)
