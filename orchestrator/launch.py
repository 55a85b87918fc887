"""Launch a study on Ray Tune: skip what is done, run the rest, record, summarise.

Order of work, so that bad input costs seconds and nothing is lost:
1. checks (spec, models, datasets, result store) — any failure exits 2 before Ray starts;
2. trials whose config hash is already done in the store are skipped (``--force`` reruns);
   a search design is warm-started with its finished samples and runs only the rest;
3. each dataset is decoded once in the driver and shared with all trials via the object store;
4. Ray Tune runs the trials (:mod:`orchestrator.tune_runner`, given a :class:`StudyRun` built
   complete); its :class:`StudyRecorder` callback writes MLflow runs and Parquet part files as
   trials finish;
5. the ablation table is printed and saved in the study folder and on the MLflow parent run.

The way is one direction: this module calls ``tune_runner`` (through :mod:`orchestrator.phases`
for a list of trials run in waves), which builds the recorder; none calls back here, and each
returns what the caller needs (a :class:`Tally`).
"""

from __future__ import annotations

import json
import shutil
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator

from orchestrator.checks import check_resources, check_spec, check_store, check_tracking
from orchestrator.errors import DataError, OrchestratorError, StoreError, StudyBusyError, StudyInterrupted, StudyTerminated
from orchestrator.redact import redact_text, redact_uri
from orchestrator.signals import Terminated, received_sigterm
from orchestrator.study_files import LAUNCH_RECORD, SPEC_COPY, StudyLocation, record_launch
from orchestrator.spec import LoadedSpec
from orchestrator.tracking import StudyTracker, resolve_tracking_uri
from orchestrator.overrides import spec_text_with_overrides
from orchestrator.phases import run_waves
from orchestrator.progress import CountedProgress
from orchestrator import tune_runner
from orchestrator.unsaved_rows import store_unsaved, unsaved_dir, unsaved_trials
from orchestrator.tune_runner import PLUGIN_STAGING, RaySession, StudyRun, Tally, check_ray_address, run_search
from search_spaces import PlannedTrial, resolve_sample
from search_spaces.designs import SEARCH_DESIGNS
from storage import ResultStore
from storage.result_store import DONE_STATUSES

Echo = Callable[[str], None]


@dataclass
class LaunchResult:
    study: str
    planned: int
    skipped: int
    ran: int
    failed: int
    table: str
    study_dir: Path
    store_uri: str
    tracking_uri: str


def launch_study(
    loaded: LoadedSpec,
    *,
    tracking_uri: str | None = None,
    force: bool = False,
    address: str | None = None,
    echo: Echo = print,
) -> LaunchResult:
    """Run every not-yet-done trial of ``loaded`` and return the ablation table.

    A launch that fails before the study is recorded leaves no folder behind; one interrupted
    (Ctrl-C) afterwards raises :class:`StudyInterrupted` with its MLflow runs marked KILLED."""
    spec = loaded.spec
    study_dir = spec.study_dir()
    created = [_first_missing(path) for path in (study_dir, _local_store_root(spec.store_uri())) if path is not None and not path.exists()]
    try:
        return _launch(loaded, tracking_uri=tracking_uri, force=force, address=address, echo=echo)
    except BaseException:
        if not (study_dir / LAUNCH_RECORD).exists():  # once recorded, the study is resumable: keep it
            if created:  # plugin sources staged for Ray (by a refused cluster launch) go too
                shutil.rmtree(study_dir / PLUGIN_STAGING, ignore_errors=True)
            for path in created:
                _remove_empty_folders(path)
        raise


def _launch(loaded: LoadedSpec, *, tracking_uri: str | None, force: bool, address: str | None, echo: Echo) -> LaunchResult:
    """Checks, Ray, the study lock; then :func:`_run_locked`. Ray is shut down on every way out."""
    spec = loaded.spec
    if address:
        check_ray_address(address)  # a TCP connect: seconds, before the slower model and data checks
    check_spec(loaded)
    check_resources(loaded, address, echo=echo)
    store = check_store(spec.store_uri())
    uri = resolve_tracking_uri(tracking_uri, spec.output.tracking_uri, spec.study_dir())
    check_tracking(uri)
    ray = RaySession(loaded, address, echo)
    try:
        if address:
            ray.connect()  # an unreachable cluster fails here, before anything is recorded
            check_resources(loaded, address, cluster=True, echo=echo)
        with _study_lock(store, loaded.name, echo):
            return _run_locked(loaded, ray, store, uri, force, echo)
    finally:
        ray.close()


@contextmanager
def _study_lock(store: ResultStore, study: str, echo: Echo) -> Iterator[None]:
    """One driver per study: taken before any MLflow run is touched or any trial starts."""
    from storage.lock import LockHeldError, LockUnavailableError, StudyLock

    lock = StudyLock(store.uri, study, warn=echo, command="orchestrator launch")
    try:
        lock.acquire()
    except LockHeldError as err:
        raise StudyBusyError(str(err)) from None
    except LockUnavailableError as err:
        raise StoreError(redact_text(str(err), store.uri)) from None
    try:
        yield
    finally:
        lock.release()


def _run_locked(loaded: LoadedSpec, ray: RaySession, store: ResultStore, uri: str, force: bool, echo: Echo) -> LaunchResult:
    """Plan, decode, record the launch, open MLflow; run the trials; publish the report."""
    spec = loaded.spec
    study = loaded.name
    study_dir = spec.study_dir()
    searching = spec.ablation.design in SEARCH_DESIGNS
    store_unsaved(unsaved_dir(study_dir), store, study, echo)  # rows an earlier launch could not store
    todo = pending_trials(loaded, store, force)
    if spec.ablation.adaptive is not None:
        echo(
            f"study '{study}': adaptive seeds, first wave of {len(loaded.trials)} trials "
            f"({len(loaded.trials) - len(todo)} already completed, {len(todo)} to run), up to {spec.ablation.adaptive.max_seeds} seeds per row"
        )
    elif not searching:
        echo(
            f"study '{study}': {len(loaded.trials)} trials planned, {len(loaded.trials) - len(todo)} already completed, {len(todo)} to run"
        )
    else:
        echo(f"study '{study}': design {spec.ablation.design}")
    echo(f"  results -> {redact_uri(store.uri)}\n  MLflow  -> {redact_uri(uri)}")

    # Decode before anything is recorded: a broken dataset launches nothing, not even a run.
    datasets: dict = {}
    _decode_datasets(todo if not searching else [resolve_sample(spec.baseline, {}, spec.ablation.seeds[0])], echo, datasets)
    if loaded.source.overrides or loaded.source.path.resolve() != (study_dir / SPEC_COPY).resolve():
        spec_text = spec_text_with_overrides(loaded.source) if loaded.source.overrides else loaded.source.path.read_text(encoding="utf-8")
        record_launch(
            study_dir,
            spec_text,
            store_uri=store.uri,
            tracking_uri=uri,
            address=ray.address,
            spec_dir=str(loaded.source.path.resolve().parent),
        )
    # MLflow's store opens (schema set-up and the parent run: ~2 s on a new SQLite file) in a
    # thread while Ray starts in this one (ray.init belongs on the main thread): the two waits
    # overlap instead of adding up. A relaunch with nothing to run starts no Ray.
    opening = _TrackerOpening(loaded, store, uri)
    tracker: StudyTracker | None = None
    status = "FINISHED"
    try:
        if todo or searching:
            ray.connect()
        tracker = opening.result()
        if datasets:  # the view's per-camera charts follow the decoded data
            tracker.save_variant_view(spec.study.metric, dataset_cameras(datasets))
        run = StudyRun(loaded, store, tracker, ray, study_axes(loaded), echo, fresh=force)
        if searching:
            tally = _run_search(run, force, datasets)
        elif spec.ablation.adaptive is not None:  # seeds in waves until each comparison is decided
            from orchestrator.adaptive_waves import run_adaptive

            tally = run_adaptive(
                run, todo, datasets, Tally(variant_order=_planned_variants(loaded)), lambda trials: _decode_datasets(trials, echo, datasets)
            )
        else:  # continued trials after their parents
            tally = run_waves(run, todo, datasets, Tally(variant_order=_planned_variants(loaded)))
    except KeyboardInterrupt as interrupt:  # Ctrl-C, or SIGTERM (orchestrator.signals)
        status = "KILLED"
        _ignore_further_interrupts()  # the clean-up below takes seconds; let it finish
        tracker = tracker or opening.settled()
        if tracker is not None:
            _kill_live_runs(tracker)
        stopped = StudyTerminated if isinstance(interrupt, Terminated) or received_sigterm() else StudyInterrupted
        raise stopped(
            f"{'terminated (SIGTERM)' if stopped is StudyTerminated else 'interrupted'}: study '{study}' stopped; "
            f"finished trials are kept, the rest run on `orchestrator resume {study}`"
        ) from None
    except BaseException as err:
        status = "FAILED"
        tracker = tracker or opening.settled()
        if tracker is not None:
            _kill_live_runs(tracker)
        store_error = _store_error_in(err)
        if store_error is not None:
            raise _store_failed_mid_run(store_error, store, study, study_dir) from None
        raise
    finally:
        if status != "FINISHED":
            ray.close()
        if tracker is not None:
            tracker.finish_study(status)

    from orchestrator.checkpoint_cleanup import sweep_study

    sweep_study(loaded, store, echo)  # checkpoints an older launch left for trials now done

    # Tables in every format and the figures, also on the MLflow parent run (see
    # analysis.report), written in a thread while Ray shuts down (~1 s) in this one.
    from analysis.report import publish_study_report
    from analysis.settings import ReportSettings
    from orchestrator.report_settings import with_plan

    def report() -> str | None:
        settings = with_plan(ReportSettings.from_report(spec.report, spec.baseline.dataset.name, spec.study.metric), loaded)
        return publish_study_report(study, store, study_dir / "report", tracker, settings, echo)

    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="study-report") as pool:
        reporting = pool.submit(report)
        ray.close()
        table = reporting.result() or ""
    return LaunchResult(
        study, len(loaded.trials), len(loaded.trials) - len(todo), tally.ran, tally.failed, table, study_dir, store.uri, uri
    )


class _TrackerOpening:
    """:func:`_open_tracker` running in a thread of its own from construction on."""

    def __init__(self, loaded: LoadedSpec, store: ResultStore, uri: str):
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="mlflow-open")
        self._future = self._pool.submit(_open_tracker, loaded, store, uri)
        self._pool.shutdown(wait=False)  # the one task runs on; nothing more is submitted

    def result(self) -> StudyTracker:
        """The open tracker; raises what opening it raised."""
        return self._future.result()

    def settled(self) -> StudyTracker | None:
        """On the way out after another failure: the tracker once opening has ended (its parent
        run is to be closed too), or None if opening failed."""
        try:
            return self._future.result()
        except BaseException:  # noqa: BLE001 - the failure being handled is the one to report
            return None


def _open_tracker(loaded: LoadedSpec, store: ResultStore, uri: str) -> StudyTracker:
    """The study's MLflow experiment with its parent run open and an earlier launch's
    leftover child runs closed."""
    spec = loaded.spec
    try:
        tracker = StudyTracker(uri, loaded.name, artifact_location=_artifact_location(uri, spec.study_dir()))
    except Exception as err:  # noqa: BLE001 - any MLflow failure here means the store is unusable
        raise StoreError(f"MLflow tracking store {redact_uri(uri)}: {redact_text(str(err), uri)[:300]}") from None
    tracker.start_study(
        params={"design": spec.ablation.design, "seeds": spec.ablation.seeds, "trials": len(loaded.trials)},
        tags={"reid.spec_file": str(loaded.source.path)},
    )
    tracker.reconcile(store.completed_hashes(loaded.name))
    return tracker


def _planned_variants(loaded: LoadedSpec) -> tuple[str, ...]:
    return tuple(dict.fromkeys(t.variant for t in loaded.trials))


def _run_list(run: StudyRun, trials: list[PlannedTrial], datasets: dict, tally: Tally) -> Tally:
    """Run planned trials (their datasets decoded into ``datasets`` first, once per launch)."""
    if trials:
        _decode_datasets(trials, run.echo, datasets)
    return tally.then(tune_runner.run_trials(run, trials, datasets, tally.variant_order))


def _run_search(run: StudyRun, force: bool, datasets: dict) -> Tally:
    """The search's remaining samples, then its best points repeated at the other seeds."""
    loaded, store, echo = run.loaded, run.store, run.echo
    spec = loaded.spec
    search = spec.ablation.search
    metric = search.metric or spec.study.metric
    seeds = spec.ablation.seeds
    history = [] if force else search_history(store, loaded.name, metric, seeds[0])
    remaining = max(0, search.num_samples - len(history))
    echo(f"optuna search: {search.num_samples} samples, {len(history)} done, {remaining} to run (seed {seeds[0]})")
    tally = Tally(variant_order=_planned_variants(loaded))
    recipe = spec.baseline.model_dump(mode="python")
    if remaining:
        _decode_datasets([resolve_sample(recipe, {}, seeds[0])], echo, datasets)
        tally = tally.then(run_search(run, datasets, tally.variant_order, num_samples=remaining, metric=metric, history=history))
    if len(seeds) > 1 and search.repeat_best:
        history = search_history(store, loaded.name, metric, seeds[0])
        best = best_points(history, search.repeat_best, search.mode)
        # Distinct points can resolve to one config (a parameter of a switched-off module).
        repeats = list({t.config_hash: t for t in (resolve_sample(recipe, point, seed) for point in best for seed in seeds[1:])}.values())
        done = set() if force else store.completed_hashes(loaded.name)
        todo = [t for t in repeats if t.config_hash not in done]
        echo(f"repeating the {len(best)} best configuration(s) at seeds {seeds[1:]}: {len(todo)} trials to run")
        tally = _run_list(run, todo, datasets, tally)
    return tally


def _decode_datasets(trials: list[PlannedTrial], echo: Echo, datasets: dict | None = None) -> dict:
    """Decode each distinct dataset (name, root, size) once, and the query and gallery of each
    distinct evaluation target; ``datasets`` caches earlier ones."""
    from trainables.data.datasets import dataset_key, load_reid_data
    from trainables.data.errors import DatasetError

    datasets = {} if datasets is None else datasets
    for trial in trials:
        key = dataset_key(trial.config.dataset, trial.config.augment)
        if key in datasets:
            continue
        echo(f"decoding dataset {key} ...")
        progress = CountedProgress(echo)  # one line for the splits' counts, not one per 10% of each
        try:
            data = load_reid_data(trial.config.dataset, progress=progress, augment=trial.config.augment)
        except DatasetError as err:
            raise DataError(str(err)) from None
        echo(
            f"  {progress.summary()}: {len(data.train.images)} train ({len(set(data.train.pids.tolist()))} ids), "
            f"{len(data.query.images)} query, {len(data.gallery.images)} gallery images"
        )
        datasets[key] = data
    from orchestrator.eval_targets import decode_targets

    return decode_targets(trials, echo, datasets)


def dataset_cameras(datasets: dict) -> list[int]:
    """Every camera id of the decoded training datasets' query and gallery splits (what the
    per-camera metrics ``cam/cNN/...`` name; an evaluation target's are ``<label>/cam/...``)."""
    from trainables.data.datasets import EVAL_KEY_PREFIX

    cameras: set[int] = set()
    for key, data in datasets.items():
        if str(key).startswith(EVAL_KEY_PREFIX):
            continue
        for split in (data.query, data.gallery):
            cameras.update(int(c) for c in set(split.camids.tolist()))
    return sorted(cameras)


def search_history(store: ResultStore, study: str, metric: str, seed: int) -> list[tuple[dict[str, Any], float]]:
    """(sampled point, metric value) of the search samples already done at the search seed."""
    history = []
    for row in store.read_rows("trials", study):
        if row.get("design") == "optuna" and row.get("status") in DONE_STATUSES and row.get("seed") == seed:
            value = row.get(metric)
            if value is not None:
                history.append((json.loads(row["changes"]), float(value)))
    return history


def best_points(history: list[tuple[dict[str, Any], float]], count: int, mode: str) -> list[dict[str, Any]]:
    """The ``count`` best distinct points of a search history."""
    ranked = sorted(history, key=lambda item: item[1], reverse=(mode == "max"))
    points: list[dict[str, Any]] = []
    for point, _ in ranked:
        if point not in points:
            points.append(point)
    return points[:count]


def pending_trials(loaded: LoadedSpec, store: ResultStore, force: bool = False) -> list[PlannedTrial]:
    """Planned trials whose config hash is not yet done in the store (all of them with ``force``).

    Matching is by content hash, so a grid grown by one value runs only the new trials.
    """
    if force:
        return list(loaded.trials)
    done = store.completed_hashes(loaded.name)
    return [trial for trial in loaded.trials if trial.config_hash not in done]


def study_axes(loaded: LoadedSpec) -> tuple[str, ...]:
    """The axes a study varies: every changed path of a planned trial and the search space."""
    search = loaded.spec.ablation.search
    return tuple(sorted({path for t in loaded.trials for path in t.changes} | set(search.space if search else ())))


def _ignore_further_interrupts() -> None:
    import signal
    import threading

    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGINT, signal.SIG_IGN)


def _kill_live_runs(tracker: StudyTracker) -> None:
    """Mark this launch's child runs still RUNNING as KILLED (the driver is going away)."""
    try:
        for child in tracker.child_runs():
            if child.info.status == "RUNNING" and child.data.tags.get("reid.launch_id") == tracker.launch_id:
                tracker.client.set_terminated(child.info.run_id, status="KILLED")
    except Exception:  # noqa: BLE001 - best effort on the way out; reconcile closes them next time
        pass


def _store_failed_mid_run(error: BaseException, store: ResultStore, study: str, study_dir: Path) -> OrchestratorError:
    """A store that worked at the start and failed while trials ran: a fault of the run (exit 1),
    with the finished trials' rows kept beside the study for the next launch to store."""
    kept = len(unsaved_trials(unsaved_dir(study_dir)))
    where = f"; the rows of {kept} finished trial(s) are kept in {unsaved_dir(study_dir)}" if kept else ""
    return OrchestratorError(
        f"the result store stopped taking rows mid-run: {redact_text(str(error), store.uri)}{where}; "
        f"make {redact_uri(store.uri)} writable again and run `orchestrator resume {study}` (it stores them first)"
    )


def _store_error_in(err: BaseException) -> BaseException | None:
    """A result-store failure inside Ray Tune's wrapping (TuneError from a callback), if any."""
    from storage import StoreUnavailableError

    seen: set[int] = set()
    current: BaseException | None = err
    while current is not None and id(current) not in seen:
        if isinstance(current, StoreUnavailableError):
            return current
        seen.add(id(current))
        current = current.__cause__ or current.__context__
    return None


def _local_store_root(uri: str) -> Path | None:
    if "://" in uri and not uri.startswith("file://"):
        return None
    return Path(uri[len("file://") :] if uri.startswith("file://") else uri).expanduser().resolve()


def _first_missing(path: Path) -> Path:
    """The outermost folder of ``path`` that does not exist yet (what creating it would add)."""
    while not path.parent.exists():
        path = path.parent
    return path


def _remove_empty_folders(root: Path) -> None:
    """Remove ``root`` and the folders under it, where empty (what a failed launch created)."""
    import os

    if not root.is_dir():
        return
    for folder, _, _ in sorted(os.walk(root), key=lambda entry: -len(entry[0])):
        try:
            os.rmdir(folder)
        except OSError:
            pass


def load_for_resume(location: StudyLocation) -> LoadedSpec:
    """The spec a study was launched with, pointed at the study's own folder and store."""
    import dataclasses

    from orchestrator.errors import StudyNotFoundError
    from orchestrator.spec import load_spec

    if location.spec_copy is None:
        where = location.study_dir or f"studies/{location.name}"
        raise StudyNotFoundError(f"no launched study '{location.name}' at {where} (no {SPEC_COPY}); launch it first")
    loaded = load_spec(location.spec_copy, plugin_dir=location.record.get("spec_dir"))  # plugins beside the original spec
    output = loaded.spec.output.model_copy(
        update={"dir": str(location.study_dir), "store": location.store_uri(), "tracking_uri": location.record.get("tracking_uri")}
    )
    return dataclasses.replace(loaded, spec=loaded.spec.model_copy(update={"output": output}))


def _artifact_location(tracking_uri: str, study_dir: Path) -> str | None:
    """Local stores keep artifacts in the study folder; a server decides for itself."""
    if tracking_uri.startswith(("sqlite:", "file:")) or "://" not in tracking_uri:
        return (study_dir / "mlartifacts").resolve().as_uri()
    return None
