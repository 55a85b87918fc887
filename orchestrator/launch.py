"""Launch a study on Ray Tune: skip what is done, run the rest, record, summarise.

Order of work, so that bad input costs seconds and nothing is lost:
1. checks (spec, models, datasets, result store) — any failure exits 2 before Ray starts;
2. trials whose config hash already completed in the store are skipped (``--force`` reruns);
3. each dataset is decoded once in the driver and shared with all trials via the object store;
4. Ray Tune runs one trial per planned config; the :class:`StudyRecorder` callback writes
   MLflow runs and Parquet part files as trials finish;
5. the ablation table is printed and saved in the study folder and on the MLflow parent run.
"""

from __future__ import annotations

import datetime as dt
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from orchestrator.checks import check_spec, check_store
from orchestrator.errors import DataError
from orchestrator.spec import LoadedSpec
from orchestrator.summary import summarize, to_markdown
from orchestrator.tracking import StudyTracker, resolve_tracking_uri
from search_spaces import PlannedTrial

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


def _decode_datasets(trials: list[PlannedTrial], echo: Echo) -> dict:
    """Decode each distinct dataset (name, root, size) once."""
    from trainables.data.datasets import dataset_key, load_reid_data
    from trainables.data.errors import DatasetError

    datasets = {}
    for trial in trials:
        key = dataset_key(trial.config.dataset)
        if key in datasets:
            continue
        echo(f"decoding dataset {key} ...")
        try:
            data = load_reid_data(trial.config.dataset, progress=lambda msg: echo(f"  {msg}"))
        except DatasetError as err:
            raise DataError(str(err)) from None
        echo(
            f"  {len(data.train.images)} train ({len(set(data.train.pids.tolist()))} ids), "
            f"{len(data.query.images)} query, {len(data.gallery.images)} gallery images"
        )
        datasets[key] = data
    return datasets


def _start_ray(address: str | None, echo: Echo) -> bool:
    """Connect to ``address`` or start a local Ray; returns whether we started it."""
    import ray

    if ray.is_initialized():
        return False
    kwargs = dict(include_dashboard=False, log_to_driver=False, configure_logging=True, logging_level="WARNING")
    if address:
        echo(f"connecting to Ray at {address}")
        ray.init(address=address, **kwargs)
    else:
        ray.init(num_cpus=int(os.environ.get("REID_ORCH_NUM_CPUS", os.cpu_count() or 1)), **kwargs)
    return True


def _run_tune(loaded: LoadedSpec, todo: list[PlannedTrial], recorder, datasets: dict, study_dir: Path) -> None:
    # Ray's own progress tables would interleave with the recorder's lines; the legacy
    # reporter at verbose=0 prints nothing.
    os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")
    from ray import tune

    from trainables.tune_entry import tune_trainable

    resources = loaded.spec.resources
    trainable = tune.with_resources(
        tune.with_parameters(tune_trainable, datasets=datasets),
        {"cpu": resources.cpus_per_trial, "gpu": resources.gpus_per_trial},
    )
    runtime = {"threads": max(1, int(resources.cpus_per_trial))}
    # The hash travels with each trial so the recorder can match results to planned trials.
    param_space = {
        "trial": tune.grid_search([{"config": t.config.model_dump(mode="json"), "hash": t.config_hash} for t in todo]),
        "runtime": runtime,
    }
    stamp = dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    tuner = tune.Tuner(
        trainable,
        param_space=param_space,
        tune_config=tune.TuneConfig(max_concurrent_trials=resources.max_concurrent_trials, reuse_actors=False),
        run_config=tune.RunConfig(
            name=f"{loaded.name}-{stamp}",
            storage_path=str(study_dir / "ray"),
            callbacks=[recorder],
            failure_config=tune.FailureConfig(max_failures=resources.retries),
            verbose=0,
        ),
    )
    tuner.fit()


def launch_study(
    loaded: LoadedSpec,
    *,
    tracking_uri: str | None = None,
    force: bool = False,
    address: str | None = None,
    echo: Echo = print,
) -> LaunchResult:
    """Run every not-yet-completed trial of ``loaded`` and return the ablation table."""
    spec = loaded.spec
    study = loaded.name
    check_spec(loaded)
    study_dir = spec.study_dir()
    study_dir.mkdir(parents=True, exist_ok=True)
    store = check_store(spec.store_uri())
    uri = resolve_tracking_uri(tracking_uri, spec.output.tracking_uri, study_dir)

    completed = set() if force else store.completed_hashes(study)
    todo = [t for t in loaded.trials if t.config_hash not in completed]
    echo(
        f"study '{study}': {len(loaded.trials)} trials planned, "
        f"{len(loaded.trials) - len(todo)} already completed, {len(todo)} to run"
    )
    echo(f"  results -> {store.uri}\n  MLflow  -> {uri}")

    tracker = StudyTracker(uri, study, artifact_location=_artifact_location(uri, study_dir))
    tracker.start_study(
        params={"design": spec.ablation.design, "seeds": spec.ablation.seeds, "trials": len(loaded.trials)},
        tags={"reid.spec_file": str(loaded.source.path)},
    )
    failed = 0
    status = "FINISHED"
    try:
        if todo:
            from orchestrator.recorder import StudyRecorder

            datasets = _decode_datasets(todo, echo)
            variant_order = list(dict.fromkeys(t.variant for t in loaded.trials))
            axes = sorted({path for t in loaded.trials for path in t.changes})
            recorder = StudyRecorder(
                study=study, trials=todo, variant_order=variant_order, axes=axes, store=store, tracker=tracker, echo=echo
            )
            started_ray = _start_ray(address, echo)
            try:
                _run_tune(loaded, todo, recorder, datasets, study_dir)
            finally:
                if started_ray:
                    import ray

                    ray.shutdown()
            failed = recorder.failed
    except BaseException:
        status = "KILLED"
        raise
    finally:
        tracker.finish_study(status)

    table = to_markdown(summarize(study, store.read_rows("trials", study)))
    table_path = study_dir / "tables" / "ablation.md"
    table_path.parent.mkdir(parents=True, exist_ok=True)
    table_path.write_text(table, encoding="utf-8")
    tracker.log_study_artifact(table_path)
    return LaunchResult(study, len(loaded.trials), len(loaded.trials) - len(todo), len(todo), failed, table, study_dir, store.uri, uri)


def _artifact_location(tracking_uri: str, study_dir: Path) -> str | None:
    """Local stores keep artifacts in the study folder; a server decides for itself."""
    if tracking_uri.startswith(("sqlite:", "file:")) or "://" not in tracking_uri:
        return (study_dir / "mlartifacts").resolve().as_uri()
    return None
