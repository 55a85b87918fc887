"""The ``orchestrator`` command line.

Each command is a thin call into the library. Errors become one line on stderr: exit status 2
for bad input (spec, dataset, storage), 1 for failures while running; ``--debug`` shows the
traceback. Heavy libraries (torch, Ray, MLflow) are imported inside commands so that
``orchestrator --help`` stays fast.
"""

from __future__ import annotations

import functools
import sys
import traceback
from pathlib import Path
from typing import Callable, Optional

import typer

from orchestrator.errors import InputError, OrchestratorError

app = typer.Typer(
    help="Run person re-identification ablation studies on Ray Tune, tracked in MLflow, stored as Parquet.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
data_app = typer.Typer(help="Dataset tools: generate the synthetic dataset.", no_args_is_help=True)
app.add_typer(data_app, name="data")

_debug = {"on": False}


@app.callback()
def _main(debug: bool = typer.Option(False, "--debug", help="Show full tracebacks on errors.")) -> None:
    _debug["on"] = debug


def echo(message: str) -> None:
    print(message, flush=True)


def handle_errors(command: Callable) -> Callable:
    """Map the exception hierarchy to one stderr line and an exit status."""

    @functools.wraps(command)
    def wrapper(*args, **kwargs):
        from trainables.data.errors import DatasetError

        try:
            return command(*args, **kwargs)
        except (OrchestratorError, DatasetError) as err:
            if _debug["on"]:
                traceback.print_exc()
            print(f"error: {err}", file=sys.stderr)
            code = err.exit_code if isinstance(err, OrchestratorError) else InputError.exit_code
            raise typer.Exit(code) from None

    return wrapper


@app.command()
@handle_errors
def validate(spec: Path = typer.Argument(..., help="Study spec (YAML).")) -> None:
    """Check a spec without starting Ray: schema, axes, backbones, dataset folders."""
    from orchestrator.checks import check_spec
    from orchestrator.spec import load_spec

    loaded = load_spec(spec)
    check_spec(loaded)
    variants = len({t.variant for t in loaded.trials})
    echo(f"{spec}: OK — study '{loaded.name}', design {loaded.spec.ablation.design}, {variants} variants, {len(loaded.trials)} trials")


@app.command()
@handle_errors
def plan(spec: Path = typer.Argument(..., help="Study spec (YAML).")) -> None:
    """Print every trial of a study (variant, changed axes, seed, config hash) without running it."""
    from orchestrator.spec import load_spec

    loaded = load_spec(spec)
    width = max(len(t.variant) for t in loaded.trials)
    echo(f"{'variant':<{width}}  seed  hash              changes")
    for trial in loaded.trials:
        changes = ", ".join(f"{k}={v}" for k, v in trial.changes.items()) or "-"
        echo(f"{trial.variant:<{width}}  {trial.seed:>4}  {trial.config_hash}  {changes}")
    echo(f"{len(loaded.trials)} trials")


@app.command()
@handle_errors
def launch(
    spec: Path = typer.Argument(..., help="Study spec (YAML)."),
    tracking_uri: Optional[str] = typer.Option(None, "--tracking-uri", help="MLflow tracking URI (default: MLFLOW_TRACKING_URI, the spec, or a SQLite file in the study folder)."),
    address: Optional[str] = typer.Option(None, "--address", help="Address of an existing Ray cluster (default: start Ray on this machine)."),
    force: bool = typer.Option(False, "--force", help="Rerun trials that already completed."),
) -> None:
    """Run a study: every trial not yet completed, then print the ablation table."""
    from orchestrator.launch import launch_study
    from orchestrator.spec import load_spec

    loaded = load_spec(spec)
    result = launch_study(loaded, tracking_uri=tracking_uri, force=force, address=address, echo=echo)
    echo("")
    echo(result.table)
    echo(f"results: {result.store_uri}")
    echo(f"MLflow:  mlflow ui --backend-store-uri {result.tracking_uri}")
    if result.failed:
        echo(f"{result.failed} trial(s) failed; see the 'error' column of the trials table")
        raise typer.Exit(1)


@app.command()
@handle_errors
def summarize(
    study: str = typer.Argument(..., help="Study name, study folder, or the study's spec file."),
    store: Optional[str] = typer.Option(None, "--store", help="Result store URI (default: the study folder's results)."),
) -> None:
    """Print a study's ablation table (Markdown) from its result store."""
    from orchestrator.errors import StudyNotFoundError
    from orchestrator.summary import summarize as summarize_rows
    from orchestrator.summary import to_markdown
    from storage import ResultStore

    name, store_uri = _locate_study(study, store)
    rows = ResultStore(store_uri).read_rows("trials", name)
    if not rows:
        raise StudyNotFoundError(f"no results for study '{name}' in {store_uri}")
    echo(to_markdown(summarize_rows(name, rows)))


def _locate_study(study: str, store: str | None) -> tuple[str, str]:
    """(study name, store URI) from a name, a study folder or a spec file."""
    path = Path(study)
    if path.suffix in (".yaml", ".yml") and path.is_file():
        from orchestrator.spec import load_spec

        spec = load_spec(path).spec
        return spec.study.name, store or spec.store_uri()
    if path.is_dir() and (path / "results").is_dir():
        return path.resolve().name, store or str(path / "results")
    return study, store or str(Path("studies") / study / "results")


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


def main() -> None:
    app()


if __name__ == "__main__":
    main()
