"""Ray Tune plumbing: start Ray, and run either a fixed list of trials or an Optuna search.

The launch (:mod:`orchestrator.launch`) hands over a :class:`StudyRun`, built complete, and
gets back a :class:`Tally`; the trials' results go to the :class:`StudyRecorder` built here, the
study's one writer of MLflow runs and Parquet rows. Nothing here calls back into the launch.

Configuration is kept separate from execution (Tuner(trainable, param_space, tune_config,
run_config)); the decoded datasets, the recipe and the runtime options reach the trainable
through ``tune.with_parameters`` so they travel once per node through the object store.
Workers are reused from trial to trial (``reuse_actors``): a one-epoch trial would otherwise
spend most of its time starting a process and importing torch and timm; the trainable puts
the process-wide state back before each trial (:mod:`trainables.process_state`).
``REID_ORCH_REUSE_WORKERS=0`` starts a fresh worker per trial instead (for a plugin that keeps
state of its own between trials, and for ``benchmarks/trial_overhead.py --fresh-workers``).
"""

from __future__ import annotations

import datetime as dt
import functools
import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

from orchestrator.spec import LoadedSpec
from orchestrator.study_files import tune_storage
from search_spaces import PlannedTrial, resolve_sample
from search_spaces.metrics import FAILED
from search_spaces.search import Choice, IntRange, LogUniform, SearchSpec, Uniform

if TYPE_CHECKING:
    from orchestrator.recorder import StudyRecorder
    from orchestrator.resume_points import ResumePoint
    from orchestrator.tracking import StudyTracker
    from storage import ResultStore

Echo = Callable[[str], None]


class RaySession:
    """Ray for one launch: joined or started before the first trial (a relaunch of a list study
    with nothing left to run never starts it), shut down at the end when this launch started it."""

    def __init__(self, loaded: LoadedSpec, address: str | None, echo: Echo):
        self.loaded, self.address, self.echo = loaded, address, echo
        self.started = False

    def connect(self) -> None:
        """Start (or join) Ray once; the spec's file plugins go with it to every worker."""
        runtime_env = plugin_runtime_env(self.loaded, self.loaded.spec.study_dir())
        self.started = start_ray(self.address, self.echo, runtime_env) or self.started

    def close(self) -> None:
        if self.started:
            import ray

            ray.shutdown()
            self.started = False


@dataclass(frozen=True)
class StudyRun:
    """What every trial of one launch shares: complete before the first trial runs."""

    loaded: LoadedSpec
    store: "ResultStore"
    tracker: "StudyTracker"
    ray: RaySession
    axes: tuple[str, ...]
    echo: Echo
    fresh: bool = False  # --force: every trial from epoch 1, no earlier launch's checkpoint used

    @property
    def study_dir(self) -> Path:
        return self.loaded.spec.study_dir()


@dataclass(frozen=True)
class Tally:
    """What a run of trials came to: trials finished, failed, and the variants in order of first
    appearance (a search adds its samples as they arrive)."""

    ran: int = 0
    failed: int = 0
    variant_order: tuple[str, ...] = ()

    def then(self, later: "Tally") -> "Tally":
        return Tally(self.ran + later.ran, self.failed + later.failed, later.variant_order or self.variant_order)


def _recorder(run: StudyRun, trials: list[PlannedTrial], variant_order: tuple[str, ...], **kwargs: Any) -> "StudyRecorder":
    from orchestrator.recorder import StudyRecorder
    from orchestrator.unsaved_rows import unsaved_dir

    return StudyRecorder(
        study=run.loaded.name,
        trials=trials,
        variant_order=list(variant_order),
        axes=list(run.axes),
        store=run.store,
        tracker=run.tracker,
        echo=run.echo,
        unsaved=unsaved_dir(run.study_dir),
        resources=(run.loaded.spec.resources.cpus_per_trial, run.loaded.spec.resources.gpus_per_trial),
        **kwargs,
    )


def reuse_workers() -> bool:
    """Whether Tune hands a finished trial's worker to the next trial (the default)."""
    return os.environ.get("REID_ORCH_REUSE_WORKERS", "1") != "0"


def _tally(recorder: "StudyRecorder") -> Tally:
    return Tally(recorder.finished, recorder.failed, tuple(recorder.variant_order))


PLUGIN_STAGING = ".ray_plugins"  # in the study folder


def plugin_runtime_env(loaded: LoadedSpec, study_dir: Path) -> dict[str, Any] | None:
    """Ray's runtime environment carrying the spec's file plugins to every worker: their
    sources staged as one package (``py_modules``) in the study folder; None without any."""
    from search_spaces.plugins import stage_files

    package = stage_files(loaded.plugins, study_dir / PLUGIN_STAGING)
    return {"py_modules": [str(package)]} if package is not None else None


def start_ray(address: str | None, echo: Echo, runtime_env: dict[str, Any] | None = None) -> bool:
    """Connect to ``address`` or start a local Ray; returns whether this call started it.
    ``runtime_env`` (plugins' files) is the job's: every worker of the study gets it."""
    import ray

    if ray.is_initialized():
        return False
    kwargs = dict(include_dashboard=False, log_to_driver=False, configure_logging=True, logging_level="WARNING", runtime_env=runtime_env)
    if address:
        check_ray_address(address)
        echo(f"connecting to Ray at {address}")
        try:
            ray.init(address=address, **kwargs)
        except (ConnectionError, RuntimeError, ValueError) as err:
            from orchestrator.errors import InputError

            raise InputError(
                f"cannot connect to the Ray cluster at {address}: {str(err).splitlines()[0] if str(err) else type(err).__name__}"
            ) from None
    else:
        # Token authentication is Ray's default for a new local cluster, announced with a
        # warning on every launch: kept, without the announcement. (Setting RAY_AUTH_MODE here
        # instead would not reach Ray's configuration if an earlier call had read it already.)
        logging.getLogger(RAY_TOKEN_NOTICE_LOGGER).setLevel(logging.ERROR)
        ray.init(num_cpus=int(os.environ.get("REID_ORCH_NUM_CPUS", os.cpu_count() or 1)), **kwargs)
    from orchestrator.signals import take_back_sigterm

    take_back_sigterm()  # ray.init put Ray's SIGTERM handler in place of the command's
    return True


RAY_TOKEN_NOTICE_LOGGER = "ray._private.authentication.authentication_token_setup"


RAY_PORT_TIMEOUT_SECONDS = 3.0


def check_ray_address(address: str) -> None:
    """Fail in seconds when nothing listens at a ``host:port`` (or ``ray://host:port``) address.

    ``ray.init`` itself retries the GCS for minutes, repeating warnings and ignoring Ctrl-C;
    a plain TCP connect with a short timeout tells a typo or a stopped cluster at once.
    ``auto`` (the cluster this machine belongs to) is left to Ray."""
    import socket

    from orchestrator.errors import InputError

    if address == "auto" or address.startswith("local"):
        return
    target = address.split("://", 1)[-1].rstrip("/")
    host, sep, port_text = target.rpartition(":")
    if not sep or not port_text.isdigit() or not host:
        raise InputError(f"--address {address}: expected host:port (e.g. 127.0.0.1:6379), ray://host:port or auto")
    host = host.strip("[]")
    try:
        with socket.create_connection((host, int(port_text)), timeout=RAY_PORT_TIMEOUT_SECONDS) as connection:
            answer = _http2_answer(connection)
    except OSError as err:
        reason = "timed out" if isinstance(err, socket.timeout) else (err.strerror or type(err).__name__).lower()
        raise InputError(
            f"no Ray cluster answers at {address} ({reason}): start one with `ray start --head --port={port_text}` "
            "there, fix --address, or leave it out to run on this machine"
        ) from None
    if answer is not None:
        raise InputError(
            f"--address {address}: another service listens there, not Ray ({answer}): give the Ray head's address "
            "(`ray start --head` prints it; port 6379 unless --port was given), or leave --address out to run on this machine"
        )


HTTP2_PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + b"\x00\x00\x00\x04\x00\x00\x00\x00\x00"  # RFC 9113 3.4, then empty SETTINGS
HTTP2_SETTINGS = 0x04


def _http2_answer(connection) -> str | None:
    """None when the server speaks HTTP/2, as Ray's GCS and Ray Client (gRPC) do: it answers a
    client's connection preface with a SETTINGS frame (RFC 9113 section 3.4). Otherwise what it
    said instead (a web server answers "HTTP/1.1 400 ..."; some say nothing). A cluster with TLS
    (``RAY_USE_TLS``) is left to Ray: its first bytes are a TLS handshake."""
    import socket

    if os.environ.get("RAY_USE_TLS", "0").lower() in ("1", "true"):
        return None
    try:
        connection.sendall(HTTP2_PREFACE)
        head = connection.recv(64)
    except socket.timeout:
        return f"no answer to gRPC's greeting within {RAY_PORT_TIMEOUT_SECONDS:g} s"
    except OSError as err:
        return f"it dropped gRPC's greeting: {(err.strerror or type(err).__name__).lower()}"
    if len(head) >= 4 and head[3] == HTTP2_SETTINGS:
        return None
    if not head:
        return "it closed the connection at gRPC's greeting"
    first = (head.decode("ascii", "replace").splitlines() or [""])[0][:40]
    return f"it answered '{first}...' to gRPC's greeting"


def _quiet_tune_output() -> None:
    # Ray's own progress tables would interleave with the recorder's lines; the legacy
    # reporter at verbose=0 prints nothing.
    os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")
    # Ctrl-C must reach the launch as KeyboardInterrupt (runs marked KILLED, exit 130, a hint
    # to `orchestrator resume`), not be swallowed by Tune's handler, which ends the run as if it
    # had finished and suggests Tuner.restore.
    os.environ["TUNE_DISABLE_SIGINT_HANDLER"] = "1"
    # Tune logs every failed attempt of a trial at ERROR with its whole traceback (tens of lines
    # each); the recorder prints one line per attempt instead, the traceback behind --debug.
    os.environ["TUNE_PRINT_ALL_TRIAL_ERRORS"] = "0"
    # ... and at the end of a run "Trials did not complete: [<Tune's trial names>]" (the launch
    # says how many failed, and the recorder which).
    logging.getLogger("ray.tune.tune").addFilter(_not_the_failed_trials_list)
    # Keeping one checkpoint per trial makes Tune save its experiment state at each trial
    # checkpoint; with several trials it warns each time. The state is Tune's, not the study's.
    os.environ.setdefault("TUNE_WARN_EXCESSIVE_EXPERIMENT_CHECKPOINT_SYNC_THRESHOLD_S", "0")


def _not_the_failed_trials_list(record: logging.LogRecord) -> bool:
    return not str(record.msg).startswith("Trials did not complete")


# Ray Tune copies these from the driver's environment into the runtime environment of every
# trial's actor (``ENV_VARS_TO_PROPAGATE`` in ray/tune/execution/class_cache.py), and Ray's
# runtime-env agent writes that environment in clear to ``runtime_env_agent.log`` in the
# session folder. Trials need no copy: on this machine the workers inherit the environment Ray
# was started with, and on a cluster each node takes credentials from its own environment (the
# RayJob's pods from a Kubernetes Secret).
CREDENTIAL_VARIABLES = ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SECURITY_TOKEN", "AWS_SESSION_TOKEN")


def withhold_credentials_from_trials() -> None:
    """Stop Ray Tune from putting the driver's AWS credentials in the trials' runtime environment."""
    from ray.tune.execution import class_cache

    class_cache.ENV_VARS_TO_PROPAGATE.difference_update(CREDENTIAL_VARIABLES)


def checkpoint_folder(loaded: LoadedSpec) -> Path | None:
    """Where each trial's final model is saved as ``<config hash>.pt``: ``output.checkpoints``;
    when unset and a trial continues another (``train.init_from``, whose parent's model it
    loads from there), ``<study dir>/checkpoints``; else None (nothing saved)."""
    if loaded.spec.output.checkpoints:
        return Path(loaded.spec.output.checkpoints).expanduser().resolve()
    if any(trial.config.train.init_from for trial in loaded.trials):
        return loaded.spec.study_dir() / "checkpoints"
    return None


def _trainable(loaded: LoadedSpec, datasets: dict, **parameters: Any):
    from ray import tune

    from trainables.trial_input import study_threads
    from trainables.tune_entry import tune_trainable

    resources = loaded.spec.resources
    runtime: dict[str, Any] = {"threads": study_threads(resources.cpus_per_trial)}  # python -m trainables uses the same
    folder = checkpoint_folder(loaded)
    if folder is not None:
        runtime["checkpoint_path"] = str(folder / "{hash}.pt")
    # Workers load the study's plugins by name and check their identity; file plugins' sources
    # come in the job's runtime environment (see plugin_runtime_env), on one machine or many.
    plugins = {plugin.name: plugin.identity for plugin in loaded.plugins}
    parameters.setdefault("checkpoint_every", resources.checkpoint_every)
    return tune.with_resources(
        tune.with_parameters(tune_trainable, datasets=datasets, runtime=runtime, plugins=plugins, **parameters),
        {"cpu": resources.cpus_per_trial, "gpu": resources.gpus_per_trial},
    )


_CALLBACK_HOOKS = (
    "setup",
    "on_step_begin",
    "on_step_end",
    "on_trial_start",
    "on_trial_restore",
    "on_trial_save",
    "on_trial_result",
    "on_trial_complete",
    "on_trial_recover",
    "on_trial_error",
    "on_checkpoint",
    "on_experiment_end",
)


def _ended_on_its_own(hook: str, trial: Any) -> bool:
    """A trial that failed, or finished with its final result (Tune marks it ``done``)."""
    if hook == "on_trial_error":
        return True
    return hook == "on_trial_complete" and bool((getattr(trial, "last_result", None) or {}).get("done"))


def store_guard(recorder):
    """``(callback, stopper)``: the recorder behind a guard that stops the study on the first
    result-store failure. Tune catches a callback's exception, logs its traceback and goes on
    training trials whose results cannot be kept; the guard keeps the error instead, the stopper
    ends the run, and :func:`raise_store_failure` re-raises it after ``fit`` as one clear line."""
    from ray import tune

    from storage import StoreUnavailableError

    class StoreGuard(tune.Callback):
        error: StoreUnavailableError | None = None

    def hook(name: str):
        def call(self, *args: Any, **kwargs: Any) -> None:
            # The study is stopping: record nothing more, except the rows of trials that end on
            # their own meanwhile, which the recorder keeps beside the study (unsaved_rows).
            # Tune also "completes" the trials it stops, unfinished: those run again on resume.
            if StoreGuard.error is not None and not _ended_on_its_own(name, kwargs.get("trial")):
                return
            try:
                getattr(recorder, name)(*args, **kwargs)
            except StoreUnavailableError as err:
                StoreGuard.error = StoreGuard.error or err

        return call

    for name in _CALLBACK_HOOKS:
        setattr(StoreGuard, name, hook(name))

    class StopOnStoreFailure(tune.Stopper):
        def __call__(self, trial_id: str, result: dict) -> bool:
            return False

        def stop_all(self) -> bool:
            return StoreGuard.error is not None

    return StoreGuard(), StopOnStoreFailure()


def raise_store_failure(guard) -> None:
    if type(guard).error is not None:
        raise type(guard).error


def _run_config(loaded: LoadedSpec, recorder, storage: tuple[str, Any]):
    """Tune's run configuration; ``storage`` is :func:`tune_storage`'s answer."""
    from ray import tune

    stamp = dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    storage_path, storage_filesystem = storage
    guard, stopper = store_guard(recorder)
    return tune.RunConfig(
        name=f"{loaded.name}-{stamp}",
        storage_path=storage_path,
        storage_filesystem=storage_filesystem,
        callbacks=[guard],
        stop=stopper,
        # Tune starts a failed trial again from its last checkpoint (see tune_trainable). It
        # counts a lost node or worker as a failure like an error in the trial (a node drained
        # for preemption excepted), so ``retries`` is the budget for both.
        failure_config=tune.FailureConfig(max_failures=loaded.spec.resources.retries),
        # Only the latest checkpoint is ever resumed from: keep one per trial.
        checkpoint_config=tune.CheckpointConfig(num_to_keep=1),
        verbose=0,
    ), guard


def run_trials(run: StudyRun, trials: list[PlannedTrial], datasets: dict, variant_order: tuple[str, ...], **parameters: Any) -> Tally:
    """Run a fixed list of planned trials, one Tune trial each; ``parameters`` go to the
    trainable (:func:`trainables.tune_entry.tune_trainable`)."""
    if not trials:
        return Tally(variant_order=variant_order)
    storage = tune_storage(run.loaded, run.study_dir)
    resume = resume_points(run, trials, *storage)
    recorder = _recorder(run, trials, variant_order, resumed=resume)
    run.ray.connect()
    _quiet_tune_output()
    withhold_credentials_from_trials()
    from ray import tune

    loaded = run.loaded
    # The hash travels with each trial so the recorder can match results to planned trials.
    param_space = {
        "trial": tune.grid_search([{"config": t.config.model_dump(mode="json"), "hash": t.config_hash} for t in trials]),
    }
    run_config, guard = _run_config(loaded, recorder, storage)
    parameters.setdefault("resume_from", {h: point.path for h, point in resume.items()})
    tuner = tune.Tuner(
        _trainable(loaded, datasets, resume_on_s3=storage[1] is not None, **parameters),
        param_space=param_space,
        tune_config=tune.TuneConfig(max_concurrent_trials=loaded.spec.resources.max_concurrent_trials, reuse_actors=reuse_workers()),
        run_config=run_config,
    )
    tuner.fit()
    raise_store_failure(guard)
    return _tally(recorder)


def resume_points(run: StudyRun, trials: list[PlannedTrial], storage_path: str, filesystem: Any) -> dict[str, "ResumePoint"]:
    """The latest checkpoint an earlier launch left in Tune's storage (:func:`tune_storage`) for
    each of ``trials`` that was interrupted (see :mod:`orchestrator.resume_points`), by config
    hash; none with ``--force``."""
    if run.fresh:
        return {}
    from orchestrator.resume_points import find_resume_points

    outcomes = run.store.last_outcomes(run.loaded.name)
    # Interrupted trials (no row): any checkpoint; failed ones: a later attempt's only.
    wanted = {
        t.config_hash: None if t.config_hash not in outcomes else _failure_time(outcomes[t.config_hash][1])
        for t in trials
        if t.config_hash not in outcomes or outcomes[t.config_hash][0] == FAILED
    }
    points = find_resume_points(storage_path, filesystem, run.loaded.name, wanted, warn=run.echo)
    if points:
        epochs = sorted(point.epoch for point in points.values())
        shown = ", ".join(str(epoch) for epoch in epochs[:8]) + (", ..." if len(epochs) > 8 else "")
        run.echo(f"  {len(points)} interrupted trial(s) resume from an earlier launch's checkpoint (at epochs {shown})")
    return points


def _failure_time(finished_at: str) -> dt.datetime:
    """A failed row's ``finished_at``; unreadable, the end of time (no checkpoint is later)."""
    try:
        return dt.datetime.fromisoformat(finished_at)
    except ValueError:
        return dt.datetime.max.replace(tzinfo=dt.timezone.utc) - dt.timedelta(days=1)


def tune_domain(dist):
    """Our search distribution as a Ray Tune sampling domain."""
    from ray import tune

    if isinstance(dist, LogUniform):
        return tune.loguniform(dist.low, dist.high)
    if isinstance(dist, Uniform):
        return tune.uniform(dist.low, dist.high)
    if isinstance(dist, IntRange):
        # Tune's randint excludes the upper bound; ours includes it.
        return tune.lograndint(dist.low, dist.high + 1) if dist.log else tune.randint(dist.low, dist.high + 1)
    if isinstance(dist, Choice):
        return tune.choice(list(dist.values))
    raise TypeError(f"unsupported distribution {dist!r}")


def run_search(
    run: StudyRun,
    datasets: dict,
    variant_order: tuple[str, ...],
    *,
    num_samples: int,
    metric: str,
    history: list[tuple[dict[str, Any], float]],
) -> Tally:
    """Optuna TPE through Ray Tune's searcher, warm-started with ``history`` (point, value):
    ``num_samples`` more samples, each resolved against the recipe at the search seed."""
    loaded = run.loaded
    seed = loaded.spec.ablation.seeds[0]
    recipe = loaded.spec.baseline.model_dump(mode="python")
    recorder = _recorder(run, [], variant_order, resolve_sample=functools.partial(resolve_sample, recipe, seed=seed), total=num_samples)
    run.ray.connect()
    _quiet_tune_output()
    withhold_credentials_from_trials()
    # Trials report every epoch but evaluate only every few; Tune must not demand the metric
    # in every result (the last epoch always evaluates, so the searcher sees it).
    os.environ["TUNE_DISABLE_STRICT_METRIC_CHECKING"] = "1"
    from ray import tune
    from ray.tune.schedulers import ASHAScheduler
    from ray.tune.search import ConcurrencyLimiter
    from ray.tune.search.optuna import OptunaSearch

    search: SearchSpec = loaded.spec.ablation.search
    searcher = evaluated_results_only(OptunaSearch)(
        metric=metric,
        mode=search.mode,
        seed=seed,
        # Optuna's searcher names parameters by their flattened path ("search/<axis>").
        points_to_evaluate=[{f"search/{path}": value for path, value in point.items()} for point, _ in history] or None,
        evaluated_rewards=[value for _, value in history] or None,
    )
    scheduler = None
    if search.asha is not None:
        max_epochs = _max_epochs(loaded)
        scheduler = ASHAScheduler(
            time_attr="epoch",
            max_t=max_epochs,
            grace_period=min(search.asha.grace_period, max_epochs),
            reduction_factor=search.asha.reduction_factor,
        )
    run_config, guard = _run_config(loaded, recorder, tune_storage(loaded, run.study_dir))
    tuner = tune.Tuner(
        _trainable(loaded, datasets, recipe=recipe, seed=seed),
        param_space={"search": {path: tune_domain(dist) for path, dist in search.space.items()}},
        tune_config=tune.TuneConfig(
            metric=metric,
            mode=search.mode,
            search_alg=ConcurrencyLimiter(searcher, max_concurrent=search.max_concurrent),
            scheduler=scheduler,
            num_samples=num_samples,
            reuse_actors=reuse_workers(),
        ),
        run_config=run_config,
    )
    tuner.fit()
    raise_store_failure(guard)
    return _tally(recorder)


def _max_epochs(loaded: LoadedSpec) -> int:
    """The most epochs any trial of the search can run (SWA/SWAG cycles included)."""
    train = loaded.spec.baseline.train
    dist = loaded.spec.ablation.search.space.get("train.epochs")
    if isinstance(dist, IntRange):
        return train.total_epochs - train.epochs + dist.high
    if isinstance(dist, Choice):
        return train.total_epochs - train.epochs + max(int(v) for v in dist.values)
    return train.total_epochs


def evaluated_results_only(searcher_class):
    """A searcher class that sees only results carrying the metric.

    Trials report every epoch but evaluate every ``train.eval_every`` epochs; Ray's Optuna
    searcher reads the metric from every intermediate result and fails without it.
    """

    class EvaluatedResultsOnly(searcher_class):
        def on_trial_result(self, trial_id: str, result: dict) -> None:
            if self.metric in result:
                super().on_trial_result(trial_id, result)

    EvaluatedResultsOnly.__name__ = f"{searcher_class.__name__}EvaluatedOnly"
    return EvaluatedResultsOnly
