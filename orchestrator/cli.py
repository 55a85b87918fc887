"""The ``orchestrator`` command line.

Each command is a thin call into the library. Errors become one line on stderr: exit status 2
for bad input (spec, dataset, storage), 1 for failures while running; ``--debug`` shows the
traceback. Heavy libraries (torch, Ray, MLflow) are imported inside commands so that
``orchestrator --help`` stays fast.
"""

from __future__ import annotations

import functools
import os
import sys
import traceback
from pathlib import Path
from typing import Callable, Optional

import typer

from orchestrator.errors import InputError, OrchestratorError
from orchestrator.redact import redact_uri

app = typer.Typer(
    help="Run person re-identification ablation studies on Ray Tune, tracked in MLflow, stored as Parquet.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
data_app = typer.Typer(
    help="Dataset tools: check a dataset, precompute person masks, generate the synthetic dataset.", no_args_is_help=True
)
app.add_typer(data_app, name="data")
preset_app = typer.Typer(help="Ready-made studies: one per paper, plus the quickstart.", no_args_is_help=True)
app.add_typer(preset_app, name="preset")
k8s_app = typer.Typer(help="Kubernetes: render KubeRay manifests for a study.", no_args_is_help=True)
app.add_typer(k8s_app, name="k8s")

_debug = {"on": False}


PACKAGE = "reid-ablation-orchestrator"


def _print_version(value: bool) -> None:
    if not value:
        return
    from importlib.metadata import PackageNotFoundError, version

    try:
        echo(f"orchestrator {version(PACKAGE)}")
    except PackageNotFoundError:  # run from a checkout that was never installed
        echo("orchestrator (not installed: version unknown)")
    raise typer.Exit()


PLUGIN_TIMEOUT_ENV = "REID_ORCH_PLUGIN_TIMEOUT"  # search_spaces.plugins.IMPORT_TIMEOUT_ENV, kept here so --help stays fast


@app.callback()
def _main(
    debug: bool = typer.Option(False, "--debug", help="Show full tracebacks on errors (and of each failed trial attempt)."),
    version: bool = typer.Option(False, "--version", is_eager=True, callback=_print_version, help="Print the version and exit."),
    plugin_timeout: Optional[float] = typer.Option(
        None, "--plugin-timeout", min=0, metavar="SECONDS", help="Longest a spec's plugin may take to import (default 120; 0: no limit)."
    ),
) -> None:
    _debug["on"] = debug
    if debug:
        _show_debug_logs()
    if plugin_timeout is not None:
        os.environ[PLUGIN_TIMEOUT_ENV] = f"{plugin_timeout:g}"


def _show_debug_logs() -> None:
    """The ``orchestrator.*`` loggers' debug records on stderr (e.g. each failed trial attempt's
    traceback, :data:`orchestrator.recorder.TRIAL_TRACEBACKS`)."""
    import logging

    logger = logging.getLogger("orchestrator")
    if not logger.handlers:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("%(message)s"))
        logger.addHandler(handler)
    logger.setLevel(logging.DEBUG)
    logger.propagate = False  # not twice where Ray has configured the root logger


def echo(message: str) -> None:
    print(message, flush=True)


INTERRUPTED = 130  # the shell's status for a process ended by SIGINT
BROKEN_PIPE = 141  # ... and by SIGPIPE


def handle_errors(command: Callable) -> Callable:
    """Map the exception hierarchy to one stderr line and an exit status: 2 for bad input,
    1 for any other failure (its traceback behind ``--debug``), 130 for Ctrl-C, 143 for SIGTERM
    (which stops a command as Ctrl-C does: :mod:`orchestrator.signals`)."""

    @functools.wraps(command)
    def wrapper(*args, **kwargs):
        import signal

        from orchestrator.signals import TERMINATED_EXIT, Terminated, received_sigterm, sigterm_as_interrupt
        from storage import StoreUnavailableError
        from trainables.data.errors import DatasetError

        try:
            with sigterm_as_interrupt():
                return command(*args, **kwargs)
        except typer.Exit:
            raise
        except (OrchestratorError, DatasetError, StoreUnavailableError) as err:
            if _debug["on"]:
                traceback.print_exc()
            print(f"error: {err}", file=sys.stderr)
            code = err.exit_code if isinstance(err, OrchestratorError) else InputError.exit_code
            raise typer.Exit(code) from None
        except KeyboardInterrupt as interrupt:
            if isinstance(interrupt, Terminated) or received_sigterm():
                print("terminated (SIGTERM)", file=sys.stderr)
                raise typer.Exit(TERMINATED_EXIT) from None
            print("interrupted", file=sys.stderr)
            raise typer.Exit(INTERRUPTED) from None
        except BrokenPipeError:
            # The reader left (`orchestrator summarize ... | head`): stop quietly, as a C tool
            # killed by SIGPIPE does, and keep Python from failing again on its final flush.
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
            raise typer.Exit(BROKEN_PIPE) from None
        except Exception as err:  # noqa: BLE001 - a runtime failure: one line, traceback on --debug
            if _debug["on"]:
                traceback.print_exc()
            first = str(err).strip().splitlines()[0] if str(err).strip() else ""
            hint = "" if _debug["on"] else " (rerun with --debug for the traceback)"
            print(f"error: {type(err).__name__}{': ' + first[:500] if first else ''}{hint}", file=sys.stderr)
            raise typer.Exit(1) from None
        finally:
            # A launch stops listening to Ctrl-C while it cleans up; listen again.
            if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
                signal.signal(signal.SIGINT, signal.default_int_handler)

    return wrapper


def _max_trials_option():
    from orchestrator.study_size import DEFAULT_MAX_TRIALS

    return typer.Option(
        DEFAULT_MAX_TRIALS, "--max-trials", min=1, help="Refuse studies that plan more trials (counted before anything is expanded)."
    )


def _overrides_argument():
    return typer.Argument(
        None,
        metavar="KEY=VALUE",
        help="Override spec values: a dotted key and a YAML value, e.g. baseline.train.epochs=2 or "
        "ablation.seeds=[0,1,2]; a recipe section may drop the 'baseline.' (train.epochs=2).",
        show_default=False,
    )


def _out_folder(out: Path, option: str = "--out") -> Path:
    """An output folder argument: refused (one line, exit 2) where a file is in the way."""
    blocker = next((p for p in (out, *out.parents) if p.exists()), None)
    if blocker is not None and not blocker.is_dir():
        raise InputError(f"{option} {out}: {blocker} is a file, not a folder; give a folder path")
    return out


@app.command()
@handle_errors
def validate(
    spec: Path = typer.Argument(..., help="Study spec (YAML)."),
    overrides: Optional[list[str]] = _overrides_argument(),
    max_trials: int = _max_trials_option(),
    address: Optional[str] = typer.Option(
        None, "--address", help="The Ray cluster it will run on: its CPUs and GPUs are judged at launch (default: this machine's, now)."
    ),
) -> None:
    """Check a spec without starting Ray: schema, axes, backbones, dataset folders, and the CPUs and GPUs a trial asks for."""
    from orchestrator.checks import check_resources, check_spec
    from orchestrator.spec import load_spec

    loaded = load_spec(spec, max_trials=max_trials, overrides=overrides or ())
    check_spec(loaded)
    check_resources(loaded, address)  # as `launch` without --address judges them
    _print_warnings(loaded)
    search = loaded.spec.ablation.search
    if search is not None:
        echo(
            f"{spec}: OK — study '{loaded.name}', design {loaded.spec.ablation.design}, {search.num_samples} samples over {len(search.space)} axes"
        )
        return
    variants = len({t.variant for t in loaded.trials})
    echo(f"{spec}: OK — study '{loaded.name}', design {loaded.spec.ablation.design}, {variants} variants, {len(loaded.trials)} trials")


def _print_warnings(loaded) -> None:
    from orchestrator.advice import scratch_training_warnings, weights_warnings

    for line in scratch_training_warnings(loaded) + weights_warnings(loaded):
        print(line, file=sys.stderr, flush=True)


def _plan_json(loaded) -> str:
    """The planned trials as JSON: variant, seed, config hash, the row the variant is compared
    with (``compare_to``, null for a reference row), changed keys, resolved config, and the torch
    threads a trial runs with (what `python -m trainables` needs to reproduce it)."""
    import json

    from trainables.trial_input import study_threads

    search = loaded.spec.ablation.search
    threads = study_threads(loaded.spec.resources.cpus_per_trial)
    payload = {
        "study": loaded.name,
        "design": loaded.spec.ablation.design,
        "search": search.model_dump(mode="json") if search is not None else None,
        "adaptive": _adaptive_json(loaded),
        "trials": [
            {
                "variant": trial.variant,
                "seed": trial.seed,
                "config_hash": trial.config_hash,
                "compare_to": trial.contrast,
                "changes": trial.changes,
                "variant_meta": trial.variant_meta,
                "threads": threads,
                "config": trial.config.model_dump(mode="json"),
            }
            for trial in loaded.trials
        ],
    }
    return json.dumps(payload, indent=2, default=str)


def _adaptive_json(loaded) -> dict | None:
    """An adaptive study's schedule for ``plan --format json``: the trials listed are its first wave."""
    from search_spaces.adaptive import seed_schedule

    adaptive = loaded.spec.ablation.adaptive
    if adaptive is None:
        return None
    schedule = seed_schedule(loaded.spec.ablation.seeds, adaptive)
    rows = len({t.variant for t in loaded.trials})
    return {
        **adaptive.model_dump(mode="json"),
        "seeds": list(schedule.seeds),
        "looks": list(schedule.looks),
        "first_wave_trials": len(loaded.trials),
        "max_trials": rows * schedule.max_seeds,
    }


@app.command()
@handle_errors
def plan(
    spec: Path = typer.Argument(..., help="Study spec (YAML)."),
    overrides: Optional[list[str]] = _overrides_argument(),
    output_format: str = typer.Option("text", "--format", help="text (a table) or json (every trial with its resolved config)."),
    max_trials: int = _max_trials_option(),
) -> None:
    """Print every trial of a study (variant, changed axes, seed, config hash) without running it."""
    from orchestrator.spec import load_spec

    if output_format not in ("text", "json"):
        raise InputError(f"--format must be text or json, got '{output_format}'")
    loaded = load_spec(spec, max_trials=max_trials, overrides=overrides or ())
    if output_format == "json":
        echo(_plan_json(loaded))
        return
    search = loaded.spec.ablation.search
    if search is not None:
        echo(
            f"design {loaded.spec.ablation.design}: Optuna TPE proposes {search.num_samples} configurations at seed {loaded.spec.ablation.seeds[0]}"
        )
        echo(
            f"  metric {search.metric or loaded.spec.study.metric} ({search.mode}), {search.max_concurrent} at a time"
            + (", ASHA early stopping" if search.asha else "")
        )
        for path, dist in search.space.items():
            echo(f"  {path}: {dist.model_dump(exclude={'type'})} ({dist.type})")
        repeats = search.repeat_best * (len(loaded.spec.ablation.seeds) - 1)
        if repeats:
            echo(f"  then the {search.repeat_best} best rerun at seeds {loaded.spec.ablation.seeds[1:]}: {repeats} more trials")
        echo(f"{search.num_samples + repeats} trials")
        return
    from orchestrator.study_costs import adaptive_lines, plan_cost_lines

    width = max(len(t.variant) for t in loaded.trials)
    versus = max(len(t.contrast or "-") for t in loaded.trials)
    echo(f"{'variant':<{width}}  {'vs':<{versus}}  seed  hash              changes")
    for trial in loaded.trials:
        changes = ", ".join(f"{k}={v}" for k, v in trial.changes.items()) or "-"
        echo(f"{trial.variant:<{width}}  {trial.contrast or '-':<{versus}}  {trial.seed:>4}  {trial.config_hash}  {changes}")
    echo(f"{len(loaded.trials)} trials; 'vs': the row each variant is compared with (its compare_to)")
    for line in adaptive_lines(loaded) + plan_cost_lines(loaded):
        echo(line)


@app.command()
@handle_errors
def launch(
    spec: Path = typer.Argument(..., help="Study spec (YAML)."),
    overrides: Optional[list[str]] = _overrides_argument(),
    tracking_uri: Optional[str] = typer.Option(
        None, "--tracking-uri", help="MLflow tracking URI (default: MLFLOW_TRACKING_URI, the spec, or a SQLite file in the study folder)."
    ),
    address: Optional[str] = typer.Option(
        None, "--address", help="Address of an existing Ray cluster (default: start Ray on this machine)."
    ),
    force: bool = typer.Option(False, "--force", help="Rerun trials that already completed."),
    max_trials: int = _max_trials_option(),
) -> None:
    """Run a study: every trial not yet completed, then print the ablation table.

    KEY=VALUE overrides are recorded in the study folder's copy of the spec, which resume and summarize read."""
    from orchestrator.launch import launch_study
    from orchestrator.spec import load_spec

    loaded = load_spec(spec, max_trials=max_trials, overrides=overrides or ())
    _print_warnings(loaded)
    result = launch_study(loaded, tracking_uri=tracking_uri, force=force, address=address, echo=echo)
    _closing_lines(result)


def _closing_lines(result) -> None:
    """The table, then where everything went: results, the report folder, MLflow."""
    echo("")
    echo(result.table)
    echo(f"results: {redact_uri(result.store_uri)}")
    report = result.study_dir / "report"
    if report.is_dir():
        echo(f"report:  {report}/  (the table as .md, .tex, .csv, .html; figures/)")
    if result.tracking_uri.startswith("sqlite:"):
        echo(f"MLflow:  mlflow ui --backend-store-uri {result.tracking_uri}")
    else:
        echo(f"MLflow:  {redact_uri(result.tracking_uri)}")
    if result.failed:
        echo(f"{result.failed} trial(s) failed; see the 'error' column of the trials table")
        raise typer.Exit(1)


@app.command()
@handle_errors
def summarize(
    study: str = typer.Argument(..., help="Study name, study folder, or the study's spec file."),
    store: Optional[str] = typer.Option(None, "--store", help="Result store URI (default: the study folder's results)."),
    formats: Optional[list[str]] = typer.Option(
        None, "--format", "-f", help="md, latex, csv, html or all; repeat the option or give a comma list (default: md)."
    ),
    out: Optional[Path] = typer.Option(
        None, "--out", help="Write the table file(s) and the PNG figures into this folder instead of printing."
    ),
    figures: bool = typer.Option(True, "--figures/--no-figures", help="With --out: also draw the figures."),
    reference: bool = typer.Option(
        False, "--reference", help="Show the paper's reported numbers (the spec's report.reference) beside the measured ones."
    ),
    seeds_needed: Optional[float] = typer.Option(
        None,
        "--seeds-needed",
        metavar="DELTA",
        min=0.001,
        help="Also estimate, per table metric, how many seeds detect a difference of DELTA points at 80% power.",
    ),
    bootstrap: bool = typer.Option(
        False, "--bootstrap", help="Percentile bootstrap intervals where 5 or more seeds are shared (else Student t)."
    ),
) -> None:
    """Print a study's ablation table (paired differences with 95% intervals) from its result store, or write tables and figures with --out."""
    from orchestrator.errors import StudyNotFoundError
    from analysis.formats import FORMATS, seeds_needed_text
    from analysis.report import parse_formats, study_summary, write_study_report
    from orchestrator.report_settings import read_report_settings
    from orchestrator.study_files import locate_study
    from storage import ResultStore

    try:
        chosen = parse_formats(formats or []) or ["md"]
    except ValueError as err:
        raise InputError(f"--format: {err}") from None
    location = locate_study(study)
    name, store_uri = location.name, location.store_uri(store)
    # The table's settings: the spec's report block (the study folder's copy of the spec).
    spec_file = Path(study) if Path(study).suffix in (".yaml", ".yml") and Path(study).is_file() else location.spec_copy
    settings = _with_plan_if_it_loads(read_report_settings(spec_file), location, spec_file)
    if reference and settings.reference is None:
        where = spec_file or f"the study folder of '{name}' (no spec copy)"
        raise InputError(f"--reference: no report.reference block in {where}; add the paper's numbers to the spec's report block")
    result_store = ResultStore(store_uri)
    summary = study_summary(name, result_store, settings, reference=reference, bootstrap=bootstrap)
    if summary is None:
        raise StudyNotFoundError(f"no results for study '{name}' in {redact_uri(store_uri)}")
    if out is not None:
        _out_folder(out)
    if reference:
        from analysis.tables import reproduction_warnings

        for warning in reproduction_warnings(summary):
            print(f"warning: {warning}", file=sys.stderr)
    if out is None:
        echo("\n".join(FORMATS[fmt][1](summary) for fmt in chosen))
    else:
        for path in write_study_report(name, result_store, out, formats=chosen, figures=figures, summary=summary):
            echo(str(path))
    if seeds_needed is not None:
        echo(seeds_needed_text(summary, seeds_needed))


def _with_plan_if_it_loads(settings, location, spec_file: Path | None):
    """The report settings with the plan's contrasts and model sizes when the study's spec still
    loads; as they are (the stored rows' contrasts, no sizes) when it does not, e.g. a spec
    written for an older version of the tool."""
    from orchestrator.launch import load_for_resume
    from orchestrator.report_settings import with_plan
    from orchestrator.spec import load_spec

    try:
        loaded = load_spec(spec_file) if spec_file is not None and location.spec_copy != spec_file else load_for_resume(location)
    except (OrchestratorError, OSError):
        return settings
    return with_plan(settings, loaded)


@app.command()
@handle_errors
def compact(
    study: str = typer.Argument(..., help="Study name, study folder, or the study's spec file."),
    store: Optional[str] = typer.Option(None, "--store", help="Result store URI (default: the study folder's results)."),
) -> None:
    """Merge a study's Parquet part files into one file per table; rerun to finish an interrupted compaction.

    No row is lost or duplicated at any point: the merged file is written before the parts are deleted, and readers take each part's rows once.
    """
    from orchestrator.errors import StudyNotFoundError
    from storage import ResultStore

    name, store_uri = _study_and_store(study, store)
    result_store = ResultStore(store_uri)
    if name not in result_store.studies():
        raise StudyNotFoundError(f"no results for study '{name}' in {redact_uri(store_uri)}")
    for result in result_store.compact(name):
        if result.files_merged:
            echo(f"{result.table}: {result.files_merged} files merged into 1 ({result.rows} rows)")
        else:
            echo(f"{result.table}: nothing to merge ({result.rows} rows)")


def _study_and_store(study: str, store: str | None) -> tuple[str, str]:
    """(study name, store URI) from a name, a study folder or a spec file."""
    from orchestrator.study_files import locate_study

    location = locate_study(study)
    return location.name, location.store_uri(store)


@app.command()
@handle_errors
def resume(
    study: str = typer.Argument(..., help="Study name (under ./studies), study folder, or the study's spec file."),
    tracking_uri: Optional[str] = typer.Option(
        None, "--tracking-uri", help="MLflow tracking URI (default: the one the study was launched with)."
    ),
    address: Optional[str] = typer.Option(None, "--address", help="Ray cluster address (default: the one the study was launched with)."),
) -> None:
    """Finish an interrupted study: run only the trials not yet done, from the launched spec."""
    from orchestrator.launch import launch_study, load_for_resume
    from orchestrator.study_files import locate_study

    location = locate_study(study)
    loaded = load_for_resume(location)
    if location.record.get("tracking_uri_withheld") and not (tracking_uri or os.environ.get("MLFLOW_TRACKING_URI")):
        raise InputError(
            f"study '{location.name}' was launched with a tracking URI that holds a credential, which is "
            "not stored: pass it again with --tracking-uri or MLFLOW_TRACKING_URI"
        )
    result = launch_study(loaded, tracking_uri=tracking_uri, address=address or location.record.get("address"), echo=echo)
    _closing_lines(result)


STATUS_MLFLOW_TIMEOUT_S = 5.0


@app.command()
@handle_errors
def status(
    study: str = typer.Argument(..., help="Study name (under ./studies), study folder, or the study's spec file."),
    tracking_uri: Optional[str] = typer.Option(None, "--tracking-uri", help="MLflow tracking URI, to show running trials."),
) -> None:
    """Show a study's progress: trials done, running, failed and pending, the best so far, time left,
    and whether its driver is alive. Exits 2 when the result store cannot be read."""
    from orchestrator.checks import quick_mlflow_requests
    from orchestrator.errors import StoreError
    from orchestrator.launch import load_for_resume
    from orchestrator.status import format_status, study_status
    from orchestrator.study_files import locate_study
    from orchestrator.tracking import StudyTracker, resolve_tracking_uri
    from storage import ResultStore
    from storage.lock import LockUnavailableError, StudyLock

    location = locate_study(study)
    loaded = load_for_resume(location)
    store = ResultStore(location.store_uri())
    store.check_readable()
    try:
        driver = StudyLock(store.uri, loaded.name).read()
    except LockUnavailableError as err:
        raise StoreError(str(err)) from None
    uri = resolve_tracking_uri(tracking_uri, location.record.get("tracking_uri"), loaded.spec.study_dir())
    running = []
    try:
        with quick_mlflow_requests(timeout_s=STATUS_MLFLOW_TIMEOUT_S, retries=0):  # a status is a glance: no minutes of retries
            running = StudyTracker(uri, loaded.name).child_runs()
    except Exception as err:  # noqa: BLE001 - status still shows what the store knows
        echo(f"(MLflow at {redact_uri(uri)} not readable: {type(err).__name__}; running trials unknown)")
    progress = study_status(loaded, store, running, driver)
    echo(format_status(progress))
    from orchestrator.study_costs import status_lines

    echo(
        "\n".join(
            status_lines(
                loaded, store.read_rows("trials", loaded.name), progress.pending + len(progress.interrupted), loaded.spec.study_dir()
            )
        )
    )


@preset_app.command("list")
@handle_errors
def preset_list() -> None:
    """List the presets."""
    from orchestrator.preset_library import list_presets

    presets = list_presets()
    width = max(map(len, presets))
    for name, description in presets.items():
        echo(f"{name:<{width}}  {description}")


@preset_app.command("show")
@handle_errors
def preset_show(
    name: str = typer.Argument(..., help="Preset name (see 'orchestrator preset list')."),
    dataset_root: Optional[str] = typer.Option(None, "--dataset-root", help="Your dataset folder, swapped in for the placeholder."),
    target_root: Optional[str] = typer.Option(
        None, "--target-root", help="Your evaluation target's folder (eval.targets, e.g. DukeMTMC-reID), swapped in for its placeholder."
    ),
) -> None:
    """Print a preset spec; redirect it to a file and launch it."""
    from orchestrator.preset_library import preset_text

    print(preset_text(name, dataset_root, target_root), end="")


DEFAULT_IMAGE = "reid-orchestrator:0.1.0"  # orchestrator.k8s_render.DEFAULT_IMAGE, kept here so --help stays fast


@k8s_app.command("render")
@handle_errors
def k8s_render(
    spec: Path = typer.Argument(..., help="Study spec (YAML)."),
    out: Path = typer.Option(..., "--out", help="Folder for the manifests (kubectl apply -k DIR)."),
    image: str = typer.Option(
        DEFAULT_IMAGE, "--image", help="Container image with this project installed (the repository's Dockerfile builds the default)."
    ),
    gpus_per_trial: Optional[float] = typer.Option(
        None,
        "--gpus-per-trial",
        min=0,
        help="GPUs per trial; fractions pack trials per GPU (default: the spec's resources.gpus_per_trial).",
    ),
    cpus_per_trial: Optional[float] = typer.Option(
        None, "--cpus-per-trial", min=0.01, help="CPUs per trial (default: the spec's resources.cpus_per_trial)."
    ),
    workers: int = typer.Option(2, "--workers", min=1, help="GPU worker pods."),
    gpus_per_worker: int = typer.Option(1, "--gpus-per-worker", min=0),
    cpus_per_worker: int = typer.Option(8, "--cpus-per-worker", min=1),
    store_uri: str = typer.Option(
        "s3://reid-results/studies", "--store-uri", help="Result store every pod writes to (s3://bucket/prefix)."
    ),
    artifacts_uri: str = typer.Option(
        "s3://reid-results/mlflow", "--artifacts-uri", help="MLflow artifact destination (s3://bucket/prefix)."
    ),
    mlflow_image: Optional[str] = typer.Option(
        None, "--mlflow-image", help="Image of the MLflow server (default: --image, which has MLflow with the PostgreSQL and S3 drivers)."
    ),
    data_pvc: Optional[str] = typer.Option(None, "--data-pvc", help="PersistentVolumeClaim with the dataset, mounted at /data."),
    dataset_root: Optional[str] = typer.Option(None, "--dataset-root", help="Dataset folder inside the pods, e.g. /data/Market-1501."),
    namespace: Optional[str] = typer.Option(None, "--namespace"),
    max_trials: int = _max_trials_option(),
) -> None:
    """Write the RayJob, MLflow server and spec ConfigMap manifests for a study."""
    from orchestrator.k8s_render import RenderOptions, render_manifests, write_manifests
    from orchestrator.spec import load_spec

    _out_folder(out)
    loaded = load_spec(spec, max_trials=max_trials)
    options = RenderOptions(
        image=image,
        gpus_per_trial=gpus_per_trial,
        cpus_per_trial=cpus_per_trial,
        workers=workers,
        gpus_per_worker=gpus_per_worker,
        cpus_per_worker=cpus_per_worker,
        store_uri=store_uri,
        artifacts_uri=artifacts_uri,
        mlflow_image=mlflow_image,
        data_pvc=data_pvc,
        dataset_root=dataset_root,
        namespace=namespace,
    )
    manifests = render_manifests(loaded, options)  # every refusal before anything is written
    for path in write_manifests(manifests, out):
        echo(f"wrote {path}")
    echo(f"apply with: kubectl apply -k {out}   (after creating the Secrets listed in k8s/README.md)")


@data_app.command("synth")
@handle_errors
def data_synth(
    out: Path = typer.Option(..., "--out", help="Folder to write the dataset into (Market-1501 layout)."),
    seed: int = typer.Option(0, "--seed", help="Generator seed; the same seed gives byte-identical files."),
    train_ids: int = typer.Option(100, "--train-ids", min=2),
    test_ids: int = typer.Option(100, "--test-ids", min=2),
) -> None:
    """Write the deterministic synthetic ReID dataset (6 cameras, one deliberately hard)."""
    from trainables.data.synthetic import SyntheticSpec, generate_synthetic_dataset

    spec = SyntheticSpec(num_train_ids=train_ids, num_test_ids=test_ids, seed=seed)
    root = generate_synthetic_dataset(out, spec, progress=echo)
    echo(f"synthetic dataset written to {root}")


def _dataset_options(subset: str | None, with_val: bool | None) -> dict:
    """Adapter options the user gave (an adapter that does not take one says so)."""
    options: dict = {}
    if subset is not None:
        options["subset"] = subset
    if with_val:
        options["with_val"] = True
    return options


_DATASET_HELP = "Adapter: market1501, dukemtmc, msmt17, cuhk03np, folder (any folder in Market naming) or synthetic."


@data_app.command("check")
@handle_errors
def data_check(
    dataset: str = typer.Option("folder", "--dataset", help=_DATASET_HELP),
    root: Path = typer.Option(..., "--root", help="The dataset folder as it ships (or its parent)."),
    subset: Optional[str] = typer.Option(None, "--subset", help="cuhk03np: detected (default) or labeled."),
    with_val: bool = typer.Option(False, "--with-val", help="msmt17: count list_val.txt into train."),
    decode: bool = typer.Option(True, "--decode/--no-decode", help="Decode every image and mask (default) or only read names."),
) -> None:
    """Read a dataset as it ships and print identities, images and cameras per split."""
    from trainables.data.check import check_dataset, format_report

    report = check_dataset(dataset, root, decode=decode, **_dataset_options(subset, with_val))
    for line in format_report(report):
        echo(line)
    echo("OK")


@data_app.command("masks")
@handle_errors
def data_masks(
    root: Path = typer.Option(..., "--root", help="The dataset folder as it ships (or its parent)."),
    weights: Path = typer.Option(..., "--weights", help="Local state dict of torchvision's maskrcnn_resnet50_fpn (never downloaded)."),
    dataset: str = typer.Option("folder", "--dataset", help=_DATASET_HELP),
    subset: Optional[str] = typer.Option(None, "--subset", help="cuhk03np: detected (default) or labeled."),
    with_val: bool = typer.Option(False, "--with-val", help="msmt17: include list_val.txt images."),
    split: list[str] = typer.Option(["train"], "--split", help="Split(s) to mask: train (what the augmentation needs), query, gallery."),
    device: str = typer.Option("auto", "--device", help="auto, cpu or cuda."),
    batch_size: int = typer.Option(8, "--batch-size", min=1),
    min_size: int = typer.Option(800, "--min-size", min=16, help="Mask R-CNN input resize (shorter side)."),
    score_threshold: float = typer.Option(0.5, "--score-threshold", min=0.0, max=1.0, help="Minimum person detection score."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Recompute masks that exist."),
) -> None:
    """Precompute person masks with Mask R-CNN into <root>/masks/ (existing masks are reused)."""
    from trainables.data.adapters import read_dataset
    from trainables.data.masks import compute_masks, load_mask_rcnn

    records = read_dataset(dataset, root, **_dataset_options(subset, with_val))
    model = load_mask_rcnn(weights, device=device, min_size=min_size, max_size=max(min_size, 1333))
    summary = compute_masks(
        records, model, splits=split, batch_size=batch_size, overwrite=overwrite, score_threshold=score_threshold, progress=echo
    )
    echo(
        f"masks in {summary.root / 'masks'}: {summary.computed} computed, {summary.reused} reused, "
        f"{summary.without_person} without a person (stored empty)"
    )


def main() -> None:
    app()


if __name__ == "__main__":
    main()
