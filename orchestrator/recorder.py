"""The driver-side Tune callback: the single writer of a study's MLflow runs and Parquet rows.

Trials only report metrics; this callback, running in the driver, turns each report into MLflow
metrics and a ``curves`` row, and each finished (or failed) trial into its ``trials``,
``cameras`` and ``curves`` part files. It also prints the study's progress.

A trial that Tune starts again after a failure resumes from its last checkpoint (or from epoch 1
without one) and reports the epochs after it once more. Its MLflow run and its recorded curve
are kept: a result for an epoch already recorded replaces the curve rows from that epoch on,
and MLflow gets only epochs it has not seen (its metric history appends, so a step logged twice
would show twice). The trial's Parquet rows are written once, when it ends.

A trial that an earlier launch left interrupted (its driver died) and that resumes from that
launch's checkpoint (:mod:`orchestrator.resume_points`) continues the same way: its MLflow run
is reopened and its curve up to the checkpoint is rebuilt from the reports the checkpoint holds.
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import re
import time
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any, Callable, Mapping

from ray.tune import Callback
from ray.tune.result import AUTO_RESULT_KEYS

from orchestrator.progress import StudyProgress, format_duration
from orchestrator.resume_points import ResumePoint
from orchestrator.rows import camera_rows, curve_row, trial_row
from orchestrator.tracking import StudyTracker
from search_spaces import PlannedTrial
from search_spaces.metrics import (
    COMPLETED,
    EPOCH,
    EPOCH_SECONDS,
    EVAL_SECONDS,
    EVALUATION_MARKER,
    CPU_SECONDS,
    CPUS,
    FAILED,
    GPU_SECONDS,
    GPUS,
    MAP,
    NODE_ID,
    NODE_IP,
    PRUNED,
    RANK1,
    WALL_SECONDS,
)
from storage import ResultStore, StoreUnavailableError

# Keys Ray Tune adds to every result; only the trainable's own metrics are recorded.
RAY_KEYS = set(AUTO_RESULT_KEYS) | {"done", "trial_id", "experiment_tag", "should_checkpoint", "iterations_since_restore"}
# Set in a result that carried a checkpoint (Ray Tune's key).
CHECKPOINT_KEY = "checkpoint_dir_name"
STORE_WRITE_ATTEMPTS = 4


def reported_metrics(result: Mapping[str, Any]) -> dict[str, float]:
    """The numeric metrics a trial reported, without Ray's bookkeeping keys."""
    return {
        key: float(value)
        for key, value in result.items()
        if key not in RAY_KEYS and isinstance(value, (int, float)) and not isinstance(value, bool)
    }


def now_iso() -> str:
    return dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")


def error_summary(text: str) -> str:
    """The last ``SomeError: message`` line of a traceback, or its last line."""
    lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
    for line in reversed(lines):
        if re.match(r"^[\w.]+(Error|Exception|Interrupt)\b.*", line):
            return line
    return lines[-1] if lines else "unknown error"


ANSI_ESCAPE = re.compile(r"\x1b\[[0-9;]*m")


def trial_error_text(trial: Any) -> str:
    """The trial's error with its traceback, colour codes removed."""
    return ANSI_ESCAPE.sub("", _raw_error_text(trial))


def _raw_error_text(trial: Any) -> str:
    # The driver's own error log first: Tune appends each failure to it before it calls the
    # callbacks. The copy in the trial's storage (``get_error``) is synced later, so after a
    # retried attempt it may still end with the attempt before.
    path = getattr(trial, "error_file", None)
    if path:
        try:
            with open(path, encoding="utf-8") as handle:
                return handle.read()
        except OSError:
            pass
    try:
        error = trial.get_error()
    except Exception:  # noqa: BLE001 - Ray may not have stored a pickled error
        error = None
    if error is not None:
        return str(error)
    return "trial failed without an error message"


# Each failed attempt is one line; its traceback goes here, shown by ``orchestrator --debug``.
TRIAL_TRACEBACKS = logging.getLogger("orchestrator.trial_tracebacks")
TUNE_ERROR_FILE = "error.txt"  # Ray Tune's name for a trial's error log, one section per failure


def traceback_hint(trial: Any) -> str:
    """Where a failed attempt's traceback is: Ray Tune appends every failure of a trial to
    ``error.txt`` in the trial's folder, under the study's ``ray/`` folder (or beside an S3
    store). The folder's name is long (it spells out the config), so it is shown as a pattern
    that matches only it (Tune's trial folder names contain the trial id)."""
    path = getattr(trial, "path", None)
    trial_id = getattr(trial, "trial_id", None)
    if not isinstance(path, str) or not trial_id:
        return "traceback: orchestrator --debug"
    folder = PurePosixPath(path).parent
    filesystem = getattr(getattr(trial, "storage", None), "storage_filesystem", None)
    if getattr(filesystem, "type_name", "local") == "s3":  # Tune's S3 paths are bucket/key
        shown = f"s3://{folder}"
    elif Path(folder).is_relative_to(Path.cwd()):
        shown = os.path.relpath(folder)
    else:
        shown = str(folder)
    return f"traceback: {shown}/*{trial_id}*/{TUNE_ERROR_FILE}"


def last_failure(text: str) -> str:
    """The last failure of a trial's error log (Tune starts each with ``Failure # N``)."""
    start = text.rfind("Failure # ")
    return text[start:].strip() if start >= 0 else text.strip()


@dataclass
class TrialState:
    planned: PlannedTrial
    run_id: str
    started_at: str
    curves: list[dict[str, Any]] = field(default_factory=list)
    last_eval: dict[str, float] = field(default_factory=dict)
    evaluations: list[dict[str, float]] = field(default_factory=list)  # every evaluation's metrics
    logged_epoch: int = 0  # the last epoch MLflow has
    checkpoint_epoch: int = 0  # the epoch of the trial's last checkpoint
    rerun_epochs: int = 0  # epochs trained again after failures
    train_seconds: float = 0.0
    eval_seconds: float = 0.0
    node_ip: str | None = None
    node_id: str | None = None
    started_monotonic: float = field(default_factory=time.monotonic)
    earlier_seconds: float = 0.0  # trained and evaluated by an earlier launch (resumed from its checkpoint)


class StudyRecorder(Callback):
    """Records every trial of one study to MLflow and the result store."""

    def __init__(
        self,
        *,
        study: str,
        trials: list[PlannedTrial],
        variant_order: list[str],
        axes: list[str],
        store: ResultStore,
        tracker: StudyTracker,
        echo: Callable[[str], None] = print,
        resolve_sample: Callable[[dict[str, Any]], PlannedTrial] | None = None,
        total: int | None = None,
        resumed: Mapping[str, ResumePoint] | None = None,
        unsaved: Path | None = None,
        resources: tuple[float, float] = (1.0, 0.0),
    ):
        self.study = study
        self.by_hash = {trial.config_hash: trial for trial in trials}
        self.resolve_sample = resolve_sample
        self.variant_order = list(variant_order)
        self.axes = axes
        self.store = store
        self.tracker = tracker
        self.echo = echo
        self.states: dict[str, TrialState] = {}
        self.total = total if total is not None else len(trials)
        self.finished = 0
        self.failed = 0
        self.pruned = 0
        self.started = time.monotonic()
        self.resumed = dict(resumed or {})  # by config hash: where an interrupted trial resumes
        self.progress = StudyProgress(self.total, self._pending_epochs if self.by_hash else None)
        self.unsaved = unsaved  # where rows the store refuses are kept (orchestrator.unsaved_rows)
        self.store_failure: StoreUnavailableError | None = None
        self.cpus, self.gpus = resources  # what each trial holds (resources.cpus_per_trial, gpus_per_trial)

    # -- helpers --------------------------------------------------------------------------
    def _label(self, planned: PlannedTrial) -> str:
        return f"{planned.variant} seed={planned.seed} [{planned.config_hash[:8]}]"

    def _state(self, trial: Any) -> TrialState:
        key = trial.trial_id
        if key not in self.states:
            planned = self._planned(trial.config)
            if planned.variant not in self.variant_order:
                self.variant_order.append(planned.variant)
            point = self.resumed.get(planned.config_hash)
            if point is None:
                self.states[key] = TrialState(planned, self.tracker.start_trial(planned, self.axes), now_iso())
            else:
                self.states[key] = self._resumed_state(planned, point)
        return self.states[key]

    def _resumed_state(self, planned: PlannedTrial, point: ResumePoint) -> TrialState:
        """A trial interrupted with an earlier driver, as it stood at its checkpoint: its MLflow
        run reopened (with the epochs it has) and its curve up to the checkpoint rebuilt from the
        reports the checkpoint holds. The trial reports the epochs after it."""
        run_id, logged_epoch = self.tracker.resume_trial(planned, self.axes)
        state = TrialState(planned, run_id, now_iso(), logged_epoch=logged_epoch, checkpoint_epoch=point.epoch)
        for report in point.reports:
            metrics = reported_metrics(report)
            self._take(state, metrics, int(metrics.get(EPOCH, 0)))
        state.earlier_seconds = state.train_seconds + state.eval_seconds
        return state

    def _planned(self, config: dict[str, Any]) -> PlannedTrial:
        """The planned trial behind a Tune config: by hash, or resolved from a search sample."""
        if "trial" in config:
            return self.by_hash[config["trial"]["hash"]]
        if self.resolve_sample is None:
            raise KeyError("a search sample arrived but the recorder has no resolver")
        return self.resolve_sample(config["search"])

    def _write(self, planned: PlannedTrial, tables: dict[str, list[dict[str, Any]]]) -> None:
        """Write a trial's rows, retrying; once the store has failed for good, the rows of this
        and every later trial are kept in ``unsaved`` and the failure is raised again."""
        delay = 1.0
        for attempt in range(1, STORE_WRITE_ATTEMPTS + 1):
            if self.store_failure is not None:
                break
            try:
                self.store.write_trial(self.study, planned.trial_id, tables)
                return
            except StoreUnavailableError as err:
                if attempt == STORE_WRITE_ATTEMPTS:
                    self.store_failure = err
                    break
                self.echo(f"  result store write failed ({err}); retrying in {delay:.0f}s")
                time.sleep(delay)
                delay *= 2
        if self.unsaved is not None:
            from orchestrator.unsaved_rows import keep_unsaved

            keep_unsaved(self.unsaved, self.study, planned.trial_id, tables)
        raise self.store_failure

    def _progress(self) -> str:
        extra = "".join(f", {n} {what}" for n, what in ((self.pruned, PRUNED), (self.failed, FAILED)) if n)
        eta = self._eta()
        return f"[{self.finished}/{self.total} done{extra}{f', ~{eta} left' if eta else ''}]"

    def _eta(self) -> str | None:
        """The study's time left: epochs left at the pace measured so far (:mod:`orchestrator.progress`)."""
        seconds = self.progress.seconds_left() if self.finished < self.total else None
        return None if seconds is None else format_duration(seconds)

    def _pending_epochs(self) -> float:
        """Epochs of the planned trials that have not started."""
        started = {state.planned.config_hash for state in self.states.values()}
        return float(sum(t.config.train.total_epochs for h, t in self.by_hash.items() if h not in started))

    def _done(self, trial: Any) -> None:
        self.finished += 1
        self.progress.finish(trial.trial_id)

    # -- Tune callback hooks --------------------------------------------------------------
    def on_trial_start(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        state = self._state(trial)
        resumed = self.resumed.get(state.planned.config_hash)
        self.progress.start(trial.trial_id, state.planned.config.train.total_epochs, resumed.epoch if resumed else 0)
        where = f" from its checkpoint at epoch {resumed.epoch} (an earlier launch's)" if resumed else ""
        self.echo(f"{self._progress()} started {self._label(state.planned)}{where}")

    def on_trial_recover(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        state = self._state(trial)
        # The curve stays: the next results rewind it to the epoch they resume at.
        where = f" from its checkpoint at epoch {state.checkpoint_epoch}" if state.checkpoint_epoch else ""
        self.progress.restart(trial.trial_id, state.checkpoint_epoch)
        text = trial_error_text(trial)
        summary = error_summary(text)
        if len(summary) > 200:  # Ray's lost-worker messages run to a paragraph
            summary = summary[:197] + "..."
        failures, attempts = getattr(trial, "num_failures", None), getattr(trial, "max_failures", None)
        attempt = f"attempt {failures} of {attempts + 1}; " if isinstance(failures, int) and isinstance(attempts, int) else ""
        self.echo(f"  retrying {self._label(state.planned)}{where} after: {summary} ({attempt}{traceback_hint(trial)})")
        TRIAL_TRACEBACKS.debug("%s", last_failure(text))

    def on_trial_result(self, iteration: int, trials: list, trial: Any, result: dict, **info: Any) -> None:
        state = self._state(trial)
        metrics = reported_metrics(result)
        epoch = int(metrics.get(EPOCH, result.get("training_iteration", 0)))
        state.node_ip = result.get(NODE_IP, state.node_ip)
        state.node_id = result.get(NODE_ID, state.node_id)
        if result.get(CHECKPOINT_KEY):
            state.checkpoint_epoch = epoch
        self._rewind(state, epoch)
        self._take(state, metrics, epoch)
        line = self.progress.epoch_line(trial.trial_id, self._label(state.planned), epoch, metrics)
        if line is not None:
            self.echo(line)

    def _take(self, state: TrialState, metrics: dict[str, float], epoch: int) -> None:
        """Add one epoch's report to the trial's curve, timings and evaluations; MLflow gets it
        unless it has that epoch already."""
        state.curves.append(curve_row(self.study, state.planned, metrics))
        state.train_seconds += metrics.get(EPOCH_SECONDS, 0.0)
        if epoch > state.logged_epoch:
            self.tracker.log_metrics(state.run_id, metrics, step=epoch)
            state.logged_epoch = epoch
        if EVALUATION_MARKER in metrics:
            state.last_eval = metrics
            state.evaluations.append(metrics)
            state.eval_seconds += metrics.get(EVAL_SECONDS, 0.0)

    @staticmethod
    def _rewind(state: TrialState, epoch: int) -> None:
        """Forget the curve rows from ``epoch`` on: a resumed trial reports them again."""
        kept = [row for row in state.curves if int(row[EPOCH]) < epoch]
        if len(kept) == len(state.curves):
            return
        state.rerun_epochs += len(state.curves) - len(kept)
        state.curves = kept
        # The re-run epochs evaluate again; until then the last evaluation before them stands.
        state.evaluations = [m for m in state.evaluations if int(m.get(EPOCH, 0)) < epoch]
        state.last_eval = state.evaluations[-1] if state.evaluations else {}

    def on_trial_complete(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        state = self._state(trial)
        final = dict(state.last_eval)
        # A scheduler (ASHA) that stops a trial early completes it before its last epoch.
        epochs_done = int(state.curves[-1][EPOCH]) if state.curves else 0
        status = COMPLETED if epochs_done >= state.planned.config.train.total_epochs else PRUNED
        row = trial_row(
            self.study,
            state.planned,
            self._variant_index(state.planned),
            status=status,
            error=None,
            final=final,
            started_at=state.started_at,
            finished_at=now_iso(),
            extra=self._timings(state),
        )
        self._write(state.planned, {"trials": [row], "cameras": camera_rows(self.study, state.planned, final), "curves": state.curves})
        self._log_compute(state, row)
        self.tracker.finish_trial(state.run_id, "FINISHED", outcome=status)
        self._drop_checkpoints(trial, state)
        self._done(trial)
        self.pruned += status == PRUNED
        verb = "finished" if status == COMPLETED else f"pruned at epoch {epochs_done}"
        self.echo(
            f"{self._progress()} {verb} {self._label(state.planned)}: rank-1 {100 * final.get(RANK1, float('nan')):.1f}% "
            f"mAP {100 * final.get(MAP, float('nan')):.1f}% in {state.train_seconds + state.eval_seconds:.0f}s"
        )

    def on_trial_error(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        state = self._state(trial)
        text = trial_error_text(trial)
        summary = error_summary(text)
        row = trial_row(
            self.study,
            state.planned,
            self._variant_index(state.planned),
            status=FAILED,
            error=summary,
            final=dict(state.last_eval),
            started_at=state.started_at,
            finished_at=now_iso(),
            extra={**self._timings(state), "error_traceback": text[-20000:]},
        )
        self._write(state.planned, {"trials": [row], "curves": state.curves})
        self._log_compute(state, row)
        self.tracker.finish_trial(state.run_id, "FAILED", error=summary, outcome=FAILED)
        self._drop_checkpoints(trial, state)
        self._done(trial)
        self.failed += 1
        failures = getattr(trial, "num_failures", None)
        attempts = f" after {failures} attempt{'s' if failures != 1 else ''}" if isinstance(failures, int) and failures else ""
        self.echo(f"{self._progress()} FAILED {self._label(state.planned)}{attempts}: {summary} ({traceback_hint(trial)})")
        TRIAL_TRACEBACKS.debug("%s", last_failure(text))

    def _variant_index(self, planned: PlannedTrial) -> int:
        return self.variant_order.index(planned.variant) if planned.variant in self.variant_order else -1

    def _compute(self, state: TrialState) -> dict[str, float]:
        """The trial's compute: wall seconds from its start to its end in this launch (every
        attempt Tune made, the waits between them included) plus what an earlier launch spent
        on it up to the checkpoint it resumed from, times the CPUs and GPUs it held."""
        wall = time.monotonic() - state.started_monotonic + state.earlier_seconds
        return {WALL_SECONDS: wall, CPUS: self.cpus, GPUS: self.gpus, CPU_SECONDS: wall * self.cpus, GPU_SECONDS: wall * self.gpus}

    def _log_compute(self, state: TrialState, row: Mapping[str, Any]) -> None:
        """The compute columns of ``row`` on the trial's MLflow run too."""
        self.tracker.log_metrics(
            state.run_id, {key: float(row[key]) for key in (WALL_SECONDS, CPU_SECONDS, GPU_SECONDS)}, step=max(state.logged_epoch, 0)
        )

    def _drop_checkpoints(self, trial: Any, state: TrialState) -> None:
        """The trial's row is in the store: its checkpoints in Tune's storage can go
        (orchestrator.checkpoint_cleanup), with an earlier launch's it resumed from."""
        from orchestrator.checkpoint_cleanup import drop_trial_checkpoints

        point = self.resumed.get(state.planned.config_hash)
        drop_trial_checkpoints(trial, point.path if point is not None else None, self.echo)

    def _timings(self, state: TrialState) -> dict[str, Any]:
        return {
            **self._compute(state),
            "train_seconds": state.train_seconds,
            EVAL_SECONDS: state.eval_seconds,
            "epochs_done": len(state.curves),
            "epochs_rerun": state.rerun_epochs,
            NODE_IP: state.node_ip,
            NODE_ID: state.node_id,
            "elapsed_study_seconds": time.monotonic() - self.started,
        }
