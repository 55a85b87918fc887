"""The recorder's store writes: retried on transient failures, never duplicated."""

from __future__ import annotations

import pytest

from orchestrator.recorder import StudyRecorder, error_summary, reported_metrics
from search_spaces import AblationSpec, Recipe, expand
from storage import ResultStore, StoreUnavailableError


class FlakyStore(ResultStore):
    """A real Parquet store whose first ``failures`` writes fail like an unreachable S3."""

    def __init__(self, uri: str, failures: int):
        super().__init__(uri)
        self.failures = failures

    def write_trial(self, study, trial_id, tables):
        if self.failures:
            self.failures -= 1
            raise StoreUnavailableError("connection reset by peer")
        super().write_trial(study, trial_id, tables)


def recorder(store, echo):
    trials = expand(Recipe(), AblationSpec(design="list", variants=[{"name": "a"}]))
    return StudyRecorder(study="s", trials=trials, variant_order=["a"], axes=[], store=store, tracker=None, echo=echo), trials[0]


def test_transient_store_failures_are_retried(tmp_path, monkeypatch):
    monkeypatch.setattr("orchestrator.recorder.time.sleep", lambda seconds: None)
    lines: list[str] = []
    store = FlakyStore(str(tmp_path), failures=2)
    rec, trial = recorder(store, lines.append)
    rec._write(trial, {"trials": [{"study": "s", "config_hash": trial.config_hash, "status": "completed"}]})
    assert len(store.read_rows("trials", "s")) == 1
    assert sum("retrying" in line for line in lines) == 2


def test_a_store_that_stays_down_raises(tmp_path, monkeypatch):
    monkeypatch.setattr("orchestrator.recorder.time.sleep", lambda seconds: None)
    store = FlakyStore(str(tmp_path), failures=99)
    rec, trial = recorder(store, lambda line: None)
    with pytest.raises(StoreUnavailableError):
        rec._write(trial, {"trials": [{"study": "s", "config_hash": trial.config_hash}]})
    assert store.read_rows("trials", "s") == []


def test_reported_metrics_drop_ray_bookkeeping():
    result = {"mAP": 0.5, "epoch": 3, "time_total_s": 1.0, "pid": 7, "done": False, "node_id": "abc", "trial_id": "x", "hostname": "h"}
    assert reported_metrics(result) == {"mAP": 0.5, "epoch": 3.0}


def test_error_summary_finds_the_exception_line():
    text = "Failure # 1\nTraceback (most recent call last):\n  File x\nNonFiniteLossError: loss became nan at epoch 3\n"
    assert error_summary(text) == "NonFiniteLossError: loss became nan at epoch 3"
    assert error_summary("") == "unknown error"
