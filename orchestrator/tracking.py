"""MLflow tracking for a study: one parent run per study, one child run per trial.

Runs are found again by tags (``reid.study``, ``reid.role``, ``reid.config_hash``), so a
relaunched or resumed study reuses its parent run and never leaves two live child runs for
the same trial config: an unfinished child from an interrupted attempt is deleted (MLflow's
soft delete) before the trial's fresh run starts.

Only values from the spec and the metrics reach MLflow; credentials stay in the environment.

How the study opens in the MLflow UI (MLflow 3):

* the experiment opens in the model-training view rather than the GenAI one: it carries
  ``mlflow.experimentKind = custom_model_development``, the tag MLflow 3's UI reads for that,
  and since the UI has its "GenAI | Model training" switch (3.x, seen in 3.17) the mode comes
  from the ``workflowType`` URL parameter (else the user's last choice), so every link this
  project prints carries ``workflowType=machine_learning``;
* a *shared view* (the UI's saved-view state, stored as the experiment tag
  ``mlflow.sharedViewState.<key>``; :mod:`orchestrator.mlflow_view`) shows only the trial
  runs, grouped by the ``reid.variant`` tag with the seeds averaged, in the chart view, its
  first section the study metric and rank-1, then the weakest camera and each camera;
  :meth:`StudyTracker.view_path` is its link
  (``#/experiments/<id>/runs?workflowType=machine_learning&viewStateShareKey=<key>&compareRunsMode=CHART``);
* the parent run carries the summary as artifacts: the tables and figures, and the numbers per
  variant and table metric (mean over seeds, the paired difference to the row's contrast with
  its interval) as a CSV table (:meth:`StudyTracker.log_summary`); none of them is a metric, so
  the chart view, which also draws the parent run, charts trials only.
"""

from __future__ import annotations

import csv
import tempfile
import logging
import os
import time
import uuid
from pathlib import Path
from typing import Any, Iterable, Mapping

from orchestrator import mlflow_view
from orchestrator.redact import has_credentials, redact_uri
from search_spaces import PlannedTrial, flat_config
from search_spaces.metrics import G_MAP, Q_MAP, WEAKEST_G_MAP, WEAKEST_Q_MAP

PARENT, CHILD = "study", "trial"
MAX_PARAM_LENGTH = 6000
EXPERIMENT_KIND_TAG = "mlflow.experimentKind"
MODEL_TRAINING_KIND = "custom_model_development"  # MLflow 3's ExperimentKind for model training
SHARED_VIEW_PREFIX = "mlflow.sharedViewState."
SUMMARY_TABLE = "summary/variant_numbers.csv"  # the parent run's per-variant numbers
MODEL_TRAINING_MODE = "workflowType=machine_learning"  # the UI's model-training mode, as a URL parameter


def variant_view_state(study_metric: str = "mAP", cameras: Iterable[int] = ()) -> dict[str, Any]:
    """The runs page state of the shared view: the trial runs only (so none hides under a
    collapsed parent), grouped by the ``reid.variant`` tag, seeds averaged in the charts, the
    chart sections in reading order (:func:`orchestrator.mlflow_view.variant_view_state`)."""
    return mlflow_view.variant_view_state(CHILD, study_metric, cameras)


def variant_view_key() -> str:
    """A stable share key: the same link for every launch of every study."""
    return mlflow_view.view_key(CHILD)


def default_tracking_uri(study_dir: Path) -> str:
    """A SQLite store inside the study folder."""
    return f"sqlite:///{study_dir / 'mlflow.db'}"


def resolve_tracking_uri(cli_value: str | None, spec_value: str | None, study_dir: Path) -> str:
    """Precedence: ``--tracking-uri``, then ``MLFLOW_TRACKING_URI``, then the spec, then the default."""
    return cli_value or os.environ.get("MLFLOW_TRACKING_URI") or spec_value or default_tracking_uri(study_dir)


def _quiet_mlflow_logs() -> None:
    # The SQLite store runs its schema migrations on first use and logs each at INFO.
    for name in ("alembic", "mlflow.store.db.utils", "mlflow.tracking", "mlflow.store"):
        logging.getLogger(name).setLevel(logging.WARNING)


class StudyTracker:
    """Creates and finds the study's MLflow runs and logs to them."""

    def __init__(self, tracking_uri: str, study: str, artifact_location: str | None = None):
        _quiet_mlflow_logs()
        from mlflow.tracking import MlflowClient

        self.tracking_uri = tracking_uri
        self.study = study
        if has_credentials(tracking_uri):
            # MLflow prints "View run ... at: <the tracking URI>/#/..." when a run ends, password
            # included; the only switch for it is this documented variable.
            os.environ["MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT"] = "true"
        self.client = MlflowClient(tracking_uri=tracking_uri)
        experiment = self.client.get_experiment_by_name(study)
        if experiment is None:
            self.experiment_id = self.client.create_experiment(study, artifact_location=artifact_location)
        else:
            self.experiment_id = experiment.experiment_id
            if experiment.lifecycle_stage == "deleted":
                self.client.restore_experiment(self.experiment_id)
        self._tag_experiment()
        self.parent_run_id: str | None = None
        # Runs of this launch are told apart from those an earlier, killed launch left behind.
        self.launch_id = uuid.uuid4().hex[:12]

    def _tag_experiment(self) -> None:
        """Open in the model-training view."""
        self.client.set_experiment_tag(self.experiment_id, EXPERIMENT_KIND_TAG, MODEL_TRAINING_KIND)

    def save_variant_view(self, study_metric: str, cameras: Iterable[int]) -> None:
        """Save (or update) the grouped-by-variant view: its charts name the study metric and
        the dataset's ``cameras``, so a launch writes it once the data is decoded."""
        state = variant_view_state(study_metric, cameras)
        envelope = mlflow_view.view_envelope(state, int(time.time() * 1000))
        self.client.set_experiment_tag(self.experiment_id, SHARED_VIEW_PREFIX + variant_view_key(), envelope)

    def __getstate__(self) -> dict[str, Any]:
        """What a pickle of the tracker holds: no client and the URI's password masked. Ray Tune
        pickles its run configuration, whose callback (the recorder) holds this tracker, into
        ``tuner.pkl`` in the study folder; the tracker is never unpickled to log again."""
        state = self.__dict__.copy()
        state.pop("client", None)
        state["tracking_uri"] = redact_uri(self.tracking_uri)
        return state

    def view_path(self) -> str:
        """The UI path (after the server's address) of the runs grouped by variant, chart view."""
        return f"#/experiments/{self.experiment_id}/runs?{MODEL_TRAINING_MODE}&viewStateShareKey={variant_view_key()}&compareRunsMode=CHART"

    def experiment_path(self) -> str:
        """The UI path of the experiment, in the model-training view."""
        return f"#/experiments/{self.experiment_id}?{MODEL_TRAINING_MODE}"

    def view_url(self) -> str:
        """:meth:`view_path` on the tracking server, or on ``mlflow ui``'s default address for a
        local store."""
        base = redact_uri(self.tracking_uri) if self.tracking_uri.startswith(("http://", "https://")) else "http://127.0.0.1:5000"
        return f"{base.rstrip('/')}/{self.view_path()}"

    # -- runs -----------------------------------------------------------------------------
    def _search(self, filter_string: str) -> list[Any]:
        return self.client.search_runs([self.experiment_id], filter_string=filter_string, max_results=1000)

    def start_study(self, params: Mapping[str, Any], tags: Mapping[str, str]) -> str:
        """The study's parent run: reused if it exists, else created."""
        existing = self._search(f"tags.`reid.role` = '{PARENT}' and tags.`reid.study` = '{self.study}'")
        if existing:
            self.parent_run_id = existing[0].info.run_id
            self.client.update_run(self.parent_run_id, status="RUNNING")
        else:
            run = self.client.create_run(
                self.experiment_id,
                run_name=self.study,
                tags={"reid.role": PARENT, "reid.study": self.study, **tags},
            )
            self.parent_run_id = run.info.run_id
            self._log_params(self.parent_run_id, params)
        return self.parent_run_id

    def start_trial(self, trial: PlannedTrial, axes: list[str]) -> str:
        """A fresh child run for ``trial``. Unfinished runs of the same config left by an earlier
        launch are deleted, so a rerun trial has one run; runs of this launch are never touched
        (a search may run two samples that resolve to the same config at once)."""
        assert self.parent_run_id is not None, "start_study must be called first"
        for run in self._earlier_unfinished_runs(trial.config_hash):
            self.client.delete_run(run.info.run_id)
        tags = {
            "reid.launch_id": self.launch_id,
            "mlflow.parentRunId": self.parent_run_id,
            "reid.role": CHILD,
            "reid.study": self.study,
            "reid.variant": trial.variant,
            "reid.seed": str(trial.seed),
            "reid.config_hash": trial.config_hash,
            # The row its table compares it with (search_spaces.contrasts); "" for a reference row.
            "reid.compare_to": trial.contrast or "",
        }
        # Axes as tags too, so the runs table can be grouped and filtered by them.
        flat = flat_config(trial.config)
        tags.update({f"axis.{path}": str(flat.get(path)) for path in axes})
        run = self.client.create_run(self.experiment_id, run_name=f"{trial.variant} seed={trial.seed}", tags=tags)
        self._log_params(run.info.run_id, flat)
        return run.info.run_id

    def resume_trial(self, trial: PlannedTrial, axes: list[str]) -> tuple[str, int]:
        """``(run_id, last logged epoch)`` for a trial that resumes from an earlier launch's
        checkpoint: that launch's run of the same config (closed as KILLED when its driver went
        away) is reopened under this launch, so the trial keeps one run whose curve goes on; the
        epochs it has are not logged again. Without such a run, a fresh one (epoch 0)."""
        from search_spaces.metrics import EPOCH

        earlier = self._earlier_unfinished_runs(trial.config_hash)
        if not earlier:
            return self.start_trial(trial, axes), 0
        latest = max(earlier, key=lambda run: run.info.start_time or 0)
        for run in earlier:
            if run is not latest:
                self.client.delete_run(run.info.run_id)
        run_id = latest.info.run_id
        self.client.update_run(run_id, status="RUNNING")
        self.client.set_tag(run_id, "reid.launch_id", self.launch_id)
        logged = max((int(m.step) for m in self.client.get_metric_history(run_id, EPOCH)), default=0)
        return run_id, logged

    def _earlier_unfinished_runs(self, config_hash: str) -> list[Any]:
        """Child runs of ``config_hash`` that earlier launches left unfinished (KILLED, FAILED).
        RUNNING ones are a live driver's (the study lock keeps a second driver out; a dead
        driver's runs were closed as KILLED by reconcile) and this launch's are its own: neither
        is ever touched."""
        runs = self._search(
            f"tags.`reid.role` = '{CHILD}' and tags.`reid.study` = '{self.study}' and tags.`reid.config_hash` = '{config_hash}'"
        )
        return [r for r in runs if r.info.status not in ("FINISHED", "RUNNING") and r.data.tags.get("reid.launch_id") != self.launch_id]

    def _log_params(self, run_id: str, params: Mapping[str, Any]) -> None:
        from mlflow.entities import Param

        entries = [Param(key, str(value)[:MAX_PARAM_LENGTH]) for key, value in sorted(params.items())]
        for start in range(0, len(entries), 100):  # MLflow's log_batch takes at most 100 params
            self.client.log_batch(run_id, params=entries[start : start + 100])

    def log_metrics(self, run_id: str, metrics: Mapping[str, float], step: int) -> None:
        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        entries = [Metric(key, float(value), now, step) for key, value in metrics.items()]
        for start in range(0, len(entries), 1000):
            self.client.log_batch(run_id, metrics=entries[start : start + 1000])

    def finish_trial(self, run_id: str, status: str, error: str | None = None, outcome: str | None = None) -> None:
        """``status``: FINISHED or FAILED (MLflow's); ``outcome`` (completed, pruned, failed) and
        the error text are kept as tags."""
        from mlflow.entities import RunTag

        tags = [RunTag(key, value) for key, value in (("reid.status", outcome), ("reid.error", (error or "")[:5000])) if value]
        if tags:  # one write for both tags: the driver writes this between trials
            self.client.log_batch(run_id, tags=tags)
        self.client.set_terminated(run_id, status=status)

    def finish_study(self, status: str = "FINISHED") -> None:
        if self.parent_run_id:
            self.client.set_terminated(self.parent_run_id, status=status)

    def log_study_artifact(self, path: Path, artifact_path: str | None = None) -> None:
        """Attach ``path`` to the parent run, under the folder ``artifact_path`` (None: top level)."""
        if self.parent_run_id:
            self.client.log_artifact(self.parent_run_id, str(path), artifact_path)

    def log_summary(self, summary) -> None:
        """The numbers of an :class:`analysis.summary.AblationSummary` on the parent run, in the
        store's units, as the CSV table :data:`SUMMARY_TABLE` (MLflow's artifact view shows it as
        a table): a row per variant and table metric with the seeds, the mean and std over them
        and, for every row with a contrast, the mean paired difference to it, its 95% interval
        and the Holm-adjusted p-value. The weakest camera (the summary's one definition) becomes
        the tag ``reid.weakest_camera`` and each trial run's ``weakest_camera/<m>``. The numbers
        are not run metrics: the chart view draws the parent run too, as an "Unassigned" group."""
        if not self.parent_run_id:
            return
        with tempfile.TemporaryDirectory(prefix="reid-summary-") as folder:
            path = Path(folder) / Path(SUMMARY_TABLE).name
            with open(path, "w", newline="", encoding="utf-8") as handle:
                writer = csv.writer(handle)
                writer.writerows(summary_table(summary))
            self.client.log_artifact(self.parent_run_id, str(path), str(Path(SUMMARY_TABLE).parent))
        if summary.weakest_camera is not None:
            self.client.set_tag(self.parent_run_id, "reid.weakest_camera", f"c{summary.weakest_camera}")
            self._log_study_weakest_camera(summary)

    def _log_study_weakest_camera(self, summary) -> None:
        """Each finished trial run gets ``weakest_camera/q_mAP`` and ``/g_mAP``: its values at the
        study's weakest camera (the summary's one definition), beside the trial's own
        ``lowest_*`` (its own lowest camera), so the grouped charts compare one camera."""
        runs = {
            (run.data.tags.get("reid.variant"), run.data.tags.get("reid.seed")): run.info.run_id
            for run in self.child_runs()
            if run.info.status == "FINISHED"
        }
        for row in summary.rows:
            per_seed: dict[int, dict[str, float]] = {}
            for metric, camera_metric in ((WEAKEST_Q_MAP, Q_MAP), (WEAKEST_G_MAP, G_MAP)):
                for seed, value in getattr(row.stats.get(metric), "values", {}).items():
                    per_seed.setdefault(seed, {})[mlflow_view.weakest_camera_key(camera_metric)] = value
            for seed, values in per_seed.items():
                run_id = runs.get((row.variant, str(seed)))
                if run_id:
                    self.log_metrics(run_id, values, step=0)
                    self.client.set_tag(run_id, "reid.weakest_camera", f"c{summary.weakest_camera}")

    def reconcile(self, done_hashes: set[str]) -> int:
        """Close the child runs an earlier, killed launch left RUNNING: FINISHED where the trial
        is done in the store (its Parquet part is written before its run is closed), KILLED
        otherwise (it reruns under a fresh run, which deletes this one). Call before starting
        trials. Returns how many runs were closed."""
        closed = 0
        for run in self.child_runs():
            if run.info.status == "RUNNING" and run.data.tags.get("reid.launch_id") != self.launch_id:
                done = run.data.tags.get("reid.config_hash") in done_hashes
                self.client.set_terminated(run.info.run_id, status="FINISHED" if done else "KILLED")
                closed += 1
        return closed

    def child_runs(self) -> list[Any]:
        """Live child runs of this study (for tests and status views)."""
        return self._search(f"tags.`reid.role` = '{CHILD}' and tags.`reid.study` = '{self.study}'")


SUMMARY_COLUMNS = ("variant", "metric", "seeds", "mean", "std", "contrast", "delta", "delta_low", "delta_high", "p_holm")


def summary_table(summary) -> list[list[Any]]:
    """:meth:`StudyTracker.log_summary`'s table: a header and one row per variant and table
    metric (fractions, as in the store); the effect columns stay empty where a row has no
    contrast, the interval where it has one seed."""
    rows: list[list[Any]] = [list(SUMMARY_COLUMNS)]
    for row in summary.rows:
        contrast = row.contrast or ""
        for metric, stats in row.stats.items():
            effect = stats.effect
            interval = (effect.low, effect.high) if effect is not None and effect.has_interval else ("", "")
            p_holm = effect.p_adjusted if effect is not None and effect.p_adjusted is not None else ""
            effect_columns = [contrast, effect.mean, *interval, p_holm] if effect is not None else ["", "", "", "", ""]
            rows.append([row.variant, metric, stats.count, stats.mean, stats.std, *effect_columns])
    return rows
